import { z } from "zod";
import {
  type ClientTls,
  type ClientTlsFiles,
  clientTlsSchema,
  readClientTls,
} from "../shared/tls.ts";
import { durationSchema, loadConfigFile, sizeSchema, validateConfig } from "../shared/config.ts";
import type { Capacity } from "./capacity.ts";
import { labelKeyProblem, labelValueProblem } from "../shared/labels.ts";

/** The most slots a worker may offer (the API's uint32). */
const MAX_SLOTS = 0xffff_ffff;

const capacitySchema = z.strictObject({
  cpu: z.number().optional(),
  memory: sizeSchema.optional(),
  slots: z.number().optional(),
  queue: z.number().optional(),
});

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
  capacity: capacitySchema.nullable().optional(),
  labels: z.unknown().optional(),
  tls: clientTlsSchema.optional(),
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
  const { cpu, memory, slots, queue } = config.capacity ?? {};
  if (cpu !== undefined && !(cpu > 0 && Number.isFinite(cpu))) {
    ctx.addIssue({
      code: "custom",
      path: ["capacity", "cpu"],
      message: `${cpu} is not a number of cores above 0 (fractions allowed, e.g. 0.5 or 4)`,
    });
  }
  if (memory !== undefined && (memory <= 0 || !Number.isSafeInteger(memory))) {
    ctx.addIssue({
      code: "custom",
      path: ["capacity", "memory"],
      message: "must be a size above 0, e.g. 8GiB",
    });
  }
  if (slots !== undefined && !(Number.isInteger(slots) && slots >= 1 && slots <= MAX_SLOTS)) {
    ctx.addIssue({
      code: "custom",
      path: ["capacity", "slots"],
      message: `${slots} is not a whole number of tasks from 1 up (how many run at once)`,
    });
  }
  if (queue !== undefined && !(Number.isInteger(queue) && queue >= 0 && queue <= MAX_SLOTS)) {
    ctx.addIssue({
      code: "custom",
      path: ["capacity", "queue"],
      message:
        `${queue} is not a whole number of tasks from 0 up (how many wait here for a free slot)`,
    });
  }
  const problem = labelsProblem(config.labels);
  if (problem !== undefined) ctx.addIssue({ code: "custom", path: ["labels"], message: problem });
});

const LABELS_EXAMPLE = 'e.g. labels: {zone: a, gpu: "true"}';

/** What is wrong with the labels of worker.yaml, or undefined. */
function labelsProblem(labels: unknown): string | undefined {
  if (labels === undefined || labels === null) return undefined;
  if (typeof labels !== "object" || Array.isArray(labels)) {
    const what = Array.isArray(labels) ? "a list" : typeof labels;
    return `expected a mapping of label keys to texts, not ${what}, ${LABELS_EXAMPLE}`;
  }
  for (const [key, value] of Object.entries(labels)) {
    const keyProblem = labelKeyProblem(key);
    if (keyProblem !== undefined) return keyProblem;
    if (value === null || value === undefined) {
      return `${key} has no value: write ${key}: "" for a label without one`;
    }
    if (typeof value === "boolean" || typeof value === "number") {
      // A number or a yes/no read by YAML would come back reformatted (01 as 1): refused.
      return `${key}: the value must be text, not ${typeof value}: quote it, ` +
        `e.g. ${key}: "${String(value)}"`;
    }
    if (typeof value !== "string") {
      return `${key}: the value must be text, not ${Array.isArray(value) ? "a list" : "a mapping"}`;
    }
    const valueProblem = labelValueProblem(key, value);
    if (valueProblem !== undefined) return valueProblem;
  }
  return undefined;
}

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
  /**
   * What worker.yaml sets of the capacity offered to tasks; the rest is detected
   * (resolveCapacity in capacity.ts).
   */
  capacity: Partial<Capacity>;
  /** Free-form labels that tasks select workers by (`--label zone=a`). */
  labels: Record<string, string>;
  /** Where the TLS files for an https:// manager are, as configured. */
  tlsFiles?: ClientTlsFiles;
  /** Their contents, once read (loadWorkerConfig reads them). */
  tls?: ClientTls;
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
    capacity: {
      ...(raw.capacity?.cpu === undefined ? {} : { cpu: raw.capacity.cpu }),
      ...(raw.capacity?.memory === undefined ? {} : { memoryBytes: raw.capacity.memory }),
      ...(raw.capacity?.slots === undefined ? {} : { slots: raw.capacity.slots }),
      ...(raw.capacity?.queue === undefined ? {} : { queue: raw.capacity.queue }),
    },
    labels: { ...(raw.labels ?? {}) as Record<string, string> },
    ...(raw.tls ? { tlsFiles: raw.tls } : {}),
  };
}

/** Reads and checks worker.yaml, and the TLS files it names. */
export async function loadWorkerConfig(path: string): Promise<WorkerConfig> {
  const config = parseWorkerConfig(path, await loadConfigFile(path, z.unknown()));
  if (config.tlsFiles) config.tls = await readClientTls(path, config.manager, config.tlsFiles);
  return config;
}
