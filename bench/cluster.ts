/**
 * A benchmark's cluster: a real etcd (fsync on) and the real manager and workers as
 * processes, from the test harness, with the manager's production timings. Everything is
 * registered on the caller's AsyncDisposableStack, so it is stopped and removed however the
 * scenario ends.
 */
import { type EtcdProcess, startEtcd } from "../test/harness/etcd.ts";
import { Cluster, type ManagerSettings } from "../test/harness/processes.ts";
import {
  createOperator,
  type ManagerHandle,
  type Operator,
  phases,
  ProfiledManager,
} from "./common.ts";

/** The manager's defaults from manager/config.ts, rather than the harness's fast test timings. */
export const PRODUCTION_TIMINGS: ManagerSettings = {
  pingInterval: "2s",
  silenceTimeout: "10s",
  ackTimeout: "5s",
  lostTimeout: "2m",
};

/** etcd's request timeout, as manager/config.ts defaults it. */
export const REQUEST_TIMEOUT = "5s";

export interface BenchClusterOptions {
  /** Reuse this etcd instead of starting one (its data is then the caller's). */
  etcd?: EtcdProcess;
  manager?: ManagerSettings;
  /** Run the manager under `deno run --cpu-prof`, writing its profile into this dir. */
  profileDir?: string;
}

export interface BenchCluster {
  etcd: EtcdProcess;
  cluster: Cluster;
  /** The manager whose figures are taken (the profiled one when profiling). */
  manager: ManagerHandle;
  /** Epoch ms just before the measured manager process was spawned. */
  managerSpawnedAt: number;
  operator: Operator;
}

export async function startBenchCluster(
  stack: AsyncDisposableStack,
  options: BenchClusterOptions = {},
): Promise<BenchCluster> {
  const etcd = options.etcd ?? stack.use(await startEtcd());
  const cluster = stack.use(await Cluster.create());
  const settings = { ...PRODUCTION_TIMINGS, ...options.manager, etcd: etcd.endpoint };
  let managerSpawnedAt = Date.now();
  await cluster.startManager(settings);
  // The harness gives etcd requests 2s (quick failures for fault tests); production's
  // default is 5s. Under load a request may queue longer than 2s, so run with 5s.
  const config = await Deno.readTextFile(cluster.managerConfig);
  const production = config.replace(/request_timeout: \S+/, `request_timeout: ${REQUEST_TIMEOUT}`);
  if (production !== config || options.profileDir) {
    await cluster.manager.stop();
    await Deno.writeTextFile(cluster.managerConfig, production);
  }
  let manager: ManagerHandle = cluster.manager;
  if (!options.profileDir && production !== config) {
    managerSpawnedAt = Date.now();
    await cluster.restartManager();
  }
  if (options.profileDir) {
    // The harness wrote the config; run the same config under the profiler instead.
    await Deno.mkdir(options.profileDir, { recursive: true });
    const profiled = new ProfiledManager(
      cluster.managerConfig,
      `${cluster.dir}/manager-profiled.log`,
      ["--cpu-prof", `--cpu-prof-dir=${options.profileDir}`],
    );
    managerSpawnedAt = Date.now();
    phases.origin = managerSpawnedAt;
    phases.list = [];
    stack.use(profiled);
    await profiled.start();
    manager = profiled;
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
