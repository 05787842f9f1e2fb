/**
 * What every scenario shares: the operator client, /proc readings of a process, etcd's
 * Prometheus counters, percentiles, the summary line, and the one abort signal that a Ctrl-C
 * raises so that every scenario unwinds and cleans up what it started.
 */
import { type Client, createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { OperatorService, TaskState } from "../shared/gen/goschedule/v1/goschedule_pb.ts";
import { freePort } from "../test/harness/ports.ts";

/** The repository's root, with a trailing slash. */
export const ROOT = new URL("../", import.meta.url).pathname;

// --- stopping ---

const interrupt = new AbortController();

/** Aborted on SIGINT or SIGTERM: every wait in the suite gives up, and cleanup runs. */
export const stopSignal: AbortSignal = interrupt.signal;

/** Turns SIGINT and SIGTERM into {@link stopSignal}; a second one exits at once. */
export function installSignalHandlers(): void {
  const onSignal = () => {
    if (interrupt.signal.aborted) Deno.exit(130);
    progress("interrupted: stopping and cleaning up (again to exit at once)");
    interrupt.abort(new Error("interrupted"));
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
}

/** Throws when the suite is being stopped. */
export function checkStop(): void {
  if (stopSignal.aborted) throw stopSignal.reason;
}

/** Sleeps, but wakes (and throws) when the suite is stopped. */
export function sleep(ms: number): Promise<void> {
  checkStop();
  return new Promise((resolve, reject) => {
    const done = () => {
      clearTimeout(timer);
      stopSignal.removeEventListener("abort", stop);
      resolve();
    };
    const stop = () => {
      clearTimeout(timer);
      reject(stopSignal.reason);
    };
    const timer = setTimeout(done, ms);
    stopSignal.addEventListener("abort", stop, { once: true });
  });
}

/** Polls `condition` every `intervalMs` until it holds; throws after `timeoutMs`. */
export async function until(
  what: string,
  condition: () => boolean | Promise<boolean>,
  timeoutMs: number,
  intervalMs = 50,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await sleep(intervalMs);
  }
}

// --- output ---

/** Progress and detail go to stderr; stdout carries only the summary lines. */
export function progress(message: string): void {
  console.error(`[${new Date().toISOString().slice(11, 23)}] ${message}`);
}

/** Prints a scenario's one summary line: `bench: <scenario> key=value ...`. */
export function summary(scenario: string, fields: Record<string, string | number>): string {
  const parts = Object.entries(fields).map(([k, v]) => `${k}=${v}`);
  const line = `bench: ${scenario} ${parts.join(" ")}`;
  console.log(line);
  return line;
}

/** A number with a fixed number of decimals, for the summary line. */
export function fixed(value: number, digits = 1): string {
  return Number.isFinite(value) ? value.toFixed(digits) : "nan";
}

// --- statistics ---

/** The nearest-rank percentile (p in 0..100) of `values`. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

export function median(values: number[]): number {
  return percentile(values, 50);
}

// --- the operator client ---

/** An OperatorService client on its own HTTP/2 connection; `close` ends the connection. */
export interface Operator extends Disposable {
  client: Client<typeof OperatorService>;
  close(): void;
}

export function createOperator(managerUrl: string): Operator {
  const sessionManager = new Http2SessionManager(managerUrl, { connectTimeoutMs: 10_000 });
  // gRPC framing, as schedctl uses (see schedctl/client.ts on Connect streams under Deno).
  const transport = createGrpcTransport({ baseUrl: managerUrl, sessionManager });
  const close = () => sessionManager.abort();
  return {
    client: createClient(OperatorService, transport),
    close,
    [Symbol.dispose]: close,
  };
}

// --- /proc ---

/** Clock ticks per second for /proc/<pid>/stat times (USER_HZ, 100 on every Linux we run). */
const CLOCK_TICKS = 100;

/** A process's resident set size in MiB (VmRSS), or NaN when it is gone. */
export async function rssMiB(pid: number): Promise<number> {
  try {
    const status = await Deno.readTextFile(`/proc/${pid}/status`);
    const kib = Number(/^VmRSS:\s+(\d+)\s+kB/m.exec(status)?.[1]);
    return kib / 1024;
  } catch {
    return NaN;
  }
}

/** CPU seconds (user + system, every thread) a process has used so far. */
/** CPU seconds of each named process (a group's summed), and of the children they reaped. */
export async function readCpu(
  processes: { name: string; pid: number; each?: number[] }[],
): Promise<Record<string, number>> {
  const cpu: Record<string, number> = {};
  for (const { name, pid, each } of processes) {
    let self = 0, children = 0;
    for (const p of each ?? [pid]) {
      const reading = await cpuWithChildren(p);
      self += reading.self;
      children += reading.children;
    }
    cpu[name] = self;
    cpu[`${name}:children`] = children;
  }
  return cpu;
}

export async function cpuSeconds(pid: number): Promise<number> {
  return (await cpuWithChildren(pid)).self;
}

/**
 * CPU seconds a process has used so far (user + system, every thread), and those of its
 * children it has waited for (a worker's tasks).
 */
export async function cpuWithChildren(pid: number): Promise<{ self: number; children: number }> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // fields[0] is field 3; utime, stime, cutime and cstime are fields 14 to 17.
  const field = (n: number) => Number(fields[n - 3]) / CLOCK_TICKS;
  return { self: field(14) + field(15), children: field(16) + field(17) };
}

// --- etcd's metrics ---

/** etcd's counters (Prometheus text), summed over label sets, keyed by `name{label}`. */
export type EtcdCounters = Map<string, number>;

/**
 * Reads etcd's `/metrics` and keeps the counters the store-cost figures need. gRPC calls are
 * summed over result codes, per method: `grpc:Txn`, `grpc:Range`, ...
 */
export async function readEtcdCounters(endpoint: string): Promise<EtcdCounters> {
  const text = await (await fetch(`${endpoint}/metrics`)).text();
  const counters: EtcdCounters = new Map();
  const add = (key: string, value: number) => counters.set(key, (counters.get(key) ?? 0) + value);
  for (const line of text.split("\n")) {
    if (line.startsWith("#") || line === "") continue;
    const match = /^([a-zA-Z_:]+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (!match) continue;
    const [, name, labels = "", raw] = match;
    const value = Number(raw);
    if (name === "grpc_server_handled_total" && labels.includes('grpc_service="etcdserverpb.KV"')) {
      add(`grpc:${/grpc_method="(\w+)"/.exec(labels)?.[1]}`, value);
    } else if (labels === "") {
      add(name, value);
    }
  }
  return counters;
}

/** after - before, for one counter (0 when etcd does not have it). */
export function delta(before: EtcdCounters, after: EtcdCounters, key: string): number {
  return (after.get(key) ?? 0) - (before.get(key) ?? 0);
}

/** The mean duration of etcd's WAL fsyncs between two readings, in milliseconds. */
export function fsyncMeanMs(before: EtcdCounters, after: EtcdCounters): number {
  return (delta(before, after, "etcd_disk_wal_fsync_duration_seconds_sum") * 1000) /
    delta(before, after, "etcd_disk_wal_fsync_duration_seconds_count");
}

export { freePort };

// --- phases, for slicing a profile ---

/** A stretch of a scenario, in epoch milliseconds, whose profile is summarised on its own. */
export interface Phase {
  name: string;
  from: number;
  to: number;
}

/** The current scenario's phases and the epoch ms its (profiled) manager was spawned at. */
export const phases: { origin: number; list: Phase[] } = { origin: 0, list: [] };

/** Records a phase of the current scenario (used only when a profile is taken). */
export function markPhase(name: string, from: number, to = Date.now()): void {
  phases.list.push({ name, from, to });
}

/** Whether any task is still pending or scheduled: two one-task pages. */
export async function anyUnfinished(operator: Operator): Promise<boolean> {
  for (const state of [TaskState.PENDING, TaskState.SCHEDULED]) {
    const page = await operator.client.listTasks({ state, pageSize: 1 });
    if (page.tasks.length > 0) return true;
  }
  return false;
}
