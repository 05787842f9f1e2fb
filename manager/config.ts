import { z } from "zod";
import { durationSchema, loadConfigFile, validateConfig } from "../shared/config.ts";
import { labelKeyProblem } from "../shared/labels.ts";
import { ETCD_PROTOCOLS, type EtcdProtocol } from "../shared/store/etcd_store.ts";
import {
  readServerTls,
  type ServerTls,
  type ServerTlsFiles,
  serverTlsSchema,
} from "../shared/tls.ts";

export const SCHEDULERS = ["round-robin", "random", "least-loaded", "bin-pack", "spread"] as const;
export type SchedulerName = typeof SCHEDULERS[number];

/**
 * How long a finished task is kept: a day, as long as a worker keeps its log files (its
 * log_retention), so that `tasks get` and `tasks logs` answer for the same tasks.
 */
export const DEFAULT_TASK_RETENTION_MS = 86_400_000;

const managerSchema = z.strictObject({
  listen: z.string().regex(/^[^\s:]*:\d{1,5}$/, "expected host:port, e.g. 127.0.0.1:7070")
    .default("127.0.0.1:7070"),
  etcd: z.strictObject({
    endpoints: z.array(z.string().min(1)).min(1, "list at least one endpoint"),
    request_timeout: durationSchema.default(5000),
    prefix: z.string().startsWith("/").endsWith("/").default("/goschedule/"),
    protocol: z.enum(ETCD_PROTOCOLS, {
      error: (issue) =>
        `unknown etcd protocol ${JSON.stringify(issue.input)}: use ${ETCD_PROTOCOLS.join(", ")}`,
    }).default("grpc"),
    compaction_interval: durationSchema.default(300_000),
  }).optional(),
  store_path: z.string().min(1).optional(),
  ping_interval: durationSchema.default(2000),
  silence_timeout: durationSchema.default(10_000),
  lost_timeout: durationSchema.default(120_000),
  ack_timeout: durationSchema.default(5000),
  scheduler: z.enum(SCHEDULERS, {
    error: (issue) =>
      `unknown scheduler ${JSON.stringify(issue.input)}: use ${SCHEDULERS.join(", ")}`,
  }).default("round-robin"),
  spread_label: z.string().default("rack"),
  schedule_timeout: durationSchema.default(300_000),
  task_retention: durationSchema.default(DEFAULT_TASK_RETENTION_MS),
  tls: serverTlsSchema.optional(),
}).superRefine((config, ctx) => {
  const port = Number(config.listen.slice(config.listen.lastIndexOf(":") + 1));
  if (port > 65535) {
    ctx.addIssue({ code: "custom", path: ["listen"], message: `port ${port} is above 65535` });
  }
  if (config.ping_interval <= 0) {
    ctx.addIssue({ code: "custom", path: ["ping_interval"], message: "must be more than 0s" });
  }
  if (config.silence_timeout <= config.ping_interval) {
    ctx.addIssue({
      code: "custom",
      path: ["silence_timeout"],
      message: "must be longer than ping_interval, or every worker would look silent",
    });
  }
  if (config.lost_timeout <= config.silence_timeout) {
    ctx.addIssue({
      code: "custom",
      path: ["lost_timeout"],
      message: "must be longer than silence_timeout: a worker is disconnected before it is lost",
    });
  }
  const labelProblem = labelKeyProblem(config.spread_label);
  if (labelProblem) {
    ctx.addIssue({ code: "custom", path: ["spread_label"], message: labelProblem });
  }
  if (config.schedule_timeout <= 0) {
    ctx.addIssue({ code: "custom", path: ["schedule_timeout"], message: "must be more than 0s" });
  }
  if (config.task_retention !== 0 && config.task_retention < 1000) {
    ctx.addIssue({
      code: "custom",
      path: ["task_retention"],
      message: "must be at least 1s, or 0s to keep finished tasks forever",
    });
  }
  if (config.ack_timeout <= 0) {
    ctx.addIssue({ code: "custom", path: ["ack_timeout"], message: "must be more than 0s" });
  }
  if (config.etcd && config.store_path) {
    ctx.addIssue({
      code: "custom",
      path: ["store_path"],
      message: "cannot be used with etcd: choose one store",
    });
  }
});

/** The manager's settings, durations in milliseconds. */
export interface ManagerConfig {
  listen: { host: string; port: number };
  store:
    | {
      kind: "etcd";
      endpoints: string[];
      requestTimeoutMs: number;
      prefix: string;
      protocol: EtcdProtocol;
      /** How often the manager compacts etcd's history; 0: never (etcd is set to do it). */
      compactionIntervalMs: number;
    }
    | { kind: "sqlite"; path: string };
  pingIntervalMs: number;
  silenceTimeoutMs: number;
  lostTimeoutMs: number;
  ackTimeoutMs: number;
  scheduler: SchedulerName;
  /** The label the spread scheduler spreads across. */
  spreadLabel: string;
  /** How long a task may wait to be placed, unless it says otherwise. */
  scheduleTimeoutMs: number;
  /** How long a finished task is kept after it finished; 0: forever. */
  taskRetentionMs: number;
  /** Where the TLS certificate and key are (the API is served over TLS), as configured. */
  tlsFiles?: ServerTlsFiles;
  /** Their contents, once read (loadManagerConfig reads them). */
  tls?: ServerTls;
}

/** The embedded store's file when manager.yaml names no store. */
export const DEFAULT_STORE_PATH = "go-schedule.db";

export function parseManagerConfig(source: string, data: unknown): ManagerConfig {
  const raw = validateConfig(source, data, managerSchema);
  const colon = raw.listen.lastIndexOf(":");
  return {
    listen: {
      host: raw.listen.slice(0, colon) || "0.0.0.0",
      port: Number(raw.listen.slice(colon + 1)),
    },
    store: raw.etcd
      ? {
        kind: "etcd",
        endpoints: raw.etcd.endpoints,
        requestTimeoutMs: raw.etcd.request_timeout,
        prefix: raw.etcd.prefix,
        protocol: raw.etcd.protocol,
        compactionIntervalMs: raw.etcd.compaction_interval,
      }
      : { kind: "sqlite", path: raw.store_path ?? DEFAULT_STORE_PATH },
    pingIntervalMs: raw.ping_interval,
    silenceTimeoutMs: raw.silence_timeout,
    lostTimeoutMs: raw.lost_timeout,
    ackTimeoutMs: raw.ack_timeout,
    scheduler: raw.scheduler,
    spreadLabel: raw.spread_label,
    scheduleTimeoutMs: raw.schedule_timeout,
    taskRetentionMs: raw.task_retention,
    ...(raw.tls ? { tlsFiles: raw.tls } : {}),
  };
}

/** Reads and checks manager.yaml, and the TLS files it names. */
export async function loadManagerConfig(path: string): Promise<ManagerConfig> {
  const config = parseManagerConfig(path, await loadConfigFile(path, z.unknown()));
  if (config.tlsFiles) config.tls = await readServerTls(path, config.tlsFiles);
  return config;
}
