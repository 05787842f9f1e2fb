import { z } from "zod";
import { durationSchema, loadConfigFile, sizeSchema, validateConfig } from "../shared/config.ts";

const workerSchema = z.strictObject({
  manager: z.string().min(1).default("http://127.0.0.1:7070"),
  state_dir: z.string().min(1).default("/var/lib/go-schedule/worker"),
  id: z.string().regex(
    /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/,
    'use 1 to 63 letters, digits, ".", "_" or "-"',
  ).optional(),
  hostname: z.string().min(1).optional(),
  output_limit: sizeSchema.default(64 * 1024),
  log_limit: sizeSchema.default(10 * 1024 * 1024),
  log_retention: durationSchema.default(24 * 3_600_000),
  reconnect_max_delay: durationSchema.default(10_000),
}).superRefine((config, ctx) => {
  if (!/^https?:\/\//.test(config.manager) && /^[a-z][a-z0-9+.-]*:\/\//i.test(config.manager)) {
    ctx.addIssue({
      code: "custom",
      path: ["manager"],
      message: `"${config.manager}" is not an http:// or https:// address`,
    });
  }
  if (config.output_limit < 1024) {
    ctx.addIssue({ code: "custom", path: ["output_limit"], message: "must be at least 1KiB" });
  }
  if (config.log_limit < 1024) {
    ctx.addIssue({ code: "custom", path: ["log_limit"], message: "must be at least 1KiB" });
  }
  if (config.log_retention < 60_000) {
    ctx.addIssue({
      code: "custom",
      path: ["log_retention"],
      message: "must be at least 1m, or logs could be gone before anyone reads them",
    });
  }
  if (config.reconnect_max_delay < 100) {
    ctx.addIssue({
      code: "custom",
      path: ["reconnect_max_delay"],
      message: "must be at least 100ms",
    });
  }
});

export interface WorkerConfig {
  /** The manager's base URL. */
  manager: string;
  stateDir: string;
  /** A fixed id; otherwise one is chosen once and kept in stateDir. */
  id?: string;
  hostname?: string;
  /** Bytes of each output stream kept per task (the tail). */
  outputLimit: number;
  /** Bytes of each output stream kept per task in its log file (state_dir/logs). */
  logLimit: number;
  /** Log files of ended tasks are removed after this long. */
  logRetentionMs: number;
  reconnectMaxDelayMs: number;
}

export function parseWorkerConfig(source: string, data: unknown): WorkerConfig {
  const raw = validateConfig(source, data, workerSchema);
  return {
    manager: /^https?:\/\//.test(raw.manager) ? raw.manager : `http://${raw.manager}`,
    stateDir: raw.state_dir,
    id: raw.id,
    hostname: raw.hostname,
    outputLimit: raw.output_limit,
    logLimit: raw.log_limit,
    logRetentionMs: raw.log_retention,
    reconnectMaxDelayMs: raw.reconnect_max_delay,
  };
}

export async function loadWorkerConfig(path: string): Promise<WorkerConfig> {
  return parseWorkerConfig(path, await loadConfigFile(path, z.unknown()));
}
