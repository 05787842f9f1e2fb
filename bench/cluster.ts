/**
 * A benchmark's cluster: a real etcd (fsync on), or on request the manager's embedded SQLite
 * file instead, and the real manager and workers as
 * processes, from the test harness, with the manager's production timings. Everything is
 * registered on the caller's AsyncDisposableStack, so it is stopped and removed however the
 * scenario ends.
 */
import { type EtcdProcess, startEtcd } from "../test/harness/etcd.ts";
import { Cluster, type DaemonProcess, type ManagerSettings } from "../test/harness/processes.ts";
import { createOperator, type Operator, phases } from "./common.ts";

/** The manager's defaults from manager/config.ts, rather than the harness's fast test timings. */
export const PRODUCTION_TIMINGS: ManagerSettings = {
  pingInterval: "2s",
  silenceTimeout: "10s",
  ackTimeout: "5s",
  lostTimeout: "2m",
  // The harness's 2s is for quick failures in fault tests; under load a request may queue
  // longer than that.
  requestTimeout: "5s",
};

/** How long a profiled manager or worker gets to write its profile when it is stopped. */
export const PROFILE_WRITE_MS = 30_000;

/** Where the manager keeps its state: etcd, or its embedded SQLite file (no etcd started). */
export type BenchStore = "etcd" | "sqlite";
export const BENCH_STORES: readonly BenchStore[] = ["etcd", "sqlite"];

export interface BenchClusterOptions {
  /** Reuse this etcd instead of starting one (its data is then the caller's). */
  etcd?: EtcdProcess;
  /** etcd unless told. */
  store?: BenchStore;
  manager?: ManagerSettings;
  /** Run the manager under `deno run --cpu-prof`, writing its profile into this dir. */
  profileDir?: string;
}

export interface BenchCluster {
  etcd: EtcdProcess;
  cluster: Cluster;
  /** The manager whose figures are taken. */
  manager: DaemonProcess;
  /** Epoch ms just before the manager process was spawned. */
  managerSpawnedAt: number;
  operator: Operator;
}

/** A cluster whose manager may run on SQLite, without etcd. */
export type AnyStoreCluster = Omit<BenchCluster, "etcd"> & { etcd?: EtcdProcess };

export function startBenchCluster(
  stack: AsyncDisposableStack,
  options?: BenchClusterOptions & { store?: "etcd" },
): Promise<BenchCluster>;
export function startBenchCluster(
  stack: AsyncDisposableStack,
  options: BenchClusterOptions,
): Promise<AnyStoreCluster>;
export async function startBenchCluster(
  stack: AsyncDisposableStack,
  options: BenchClusterOptions = {},
): Promise<AnyStoreCluster> {
  const etcd = options.store === "sqlite"
    ? undefined
    : options.etcd ?? stack.use(await startEtcd());
  const cluster = stack.use(await Cluster.create());
  const denoFlags: string[] = [];
  if (options.profileDir) {
    await Deno.mkdir(options.profileDir, { recursive: true });
    denoFlags.push("--cpu-prof", `--cpu-prof-dir=${options.profileDir}`);
  }
  const manager = await cluster.startManager({
    ...PRODUCTION_TIMINGS,
    ...options.manager,
    etcd: etcd?.endpoint, // Without it, the harness gives the manager SQLite in its dir.
    denoFlags,
  });
  const managerSpawnedAt = manager.startedAt;
  if (options.profileDir) {
    phases.origin = managerSpawnedAt;
    phases.list = [];
    // Before the cluster's own stop, which allows a few seconds only.
    stack.defer(async () => void await manager.stop(PROFILE_WRITE_MS));
  }
  const keep = Deno.env.get("BENCH_KEEP_LOGS");
  if (keep) {
    // For diagnosis: the manager's log outlives the cluster's temp dir.
    stack.defer(async () => {
      await Deno.mkdir(keep, { recursive: true });
      await Deno.writeTextFile(`${keep}/manager-${Date.now()}.log`, await manager.log());
    });
  }
  const operator = stack.use(createOperator(cluster.managerUrl));
  return { etcd, cluster, manager, managerSpawnedAt, operator };
}
