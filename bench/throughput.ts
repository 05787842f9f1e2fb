/**
 * Scenario 1, throughput, and scenario 5, store cost, measured in the same run.
 *
 * N tasks running `/bin/true` are submitted in batches to K real workers. The rate counts
 * from the first submit to the last `done` (the largest stored finishedAt; the manager's
 * clock, on this machine). The ceiling, measured in the same run (half of it before the
 * cluster starts, half after it stops), is how fast Deno starts and reaps `/bin/true` in K
 * processes at once.
 *
 * Completion is watched with ListWorkers, whose running-task counts the manager keeps in
 * memory, so that watching adds no etcd traffic: between the two readings of etcd's
 * counters, every request etcd serves is the manager's.
 */
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { TaskState } from "../shared/gen/goschedule/v1/goschedule_pb.ts";
import { type CeilingResult, measureCeiling } from "./ceiling.ts";
import { PROFILE_WRITE_MS, startBenchCluster } from "./cluster.ts";
import {
  anyUnfinished,
  delta,
  fixed,
  fsyncMeanMs,
  markPhase,
  type Operator,
  progress,
  readCpu,
  readEtcdCounters,
  rssMiB,
  sleep,
  summary,
} from "./common.ts";

export interface ThroughputOptions {
  tasks: number;
  workers: number;
  /** Tasks per ScheduleTasks call. */
  batch: number;
  /**
   * Each worker's slots (tasks it runs at once), and so the runs at once of each ceiling
   * process: the same concurrency on both sides of the ratio.
   */
  slots: number;
  /** Skip the ceiling (when only the store cost is wanted). */
  skipCeiling?: boolean;
  profileDir?: string;
}

export interface ThroughputResult {
  lines: string[];
}

export async function runThroughput(options: ThroughputOptions): Promise<ThroughputResult> {
  const { tasks } = options;
  // Half of the ceiling's runs before the cluster starts and half once it has stopped: this
  // VM's speed drifts by a third within minutes, and a drift during the run then moves both
  // sides of the ratio alike.
  const half = Math.ceil(tasks / 2);
  const before = options.skipCeiling ? undefined : await ceilingPart(options, half, "before");
  const report = await runCluster(options);
  const after = options.skipCeiling ? undefined : await ceilingPart(options, tasks - half, "after");
  return { lines: report(before, after) };
}

async function ceilingPart(
  options: ThroughputOptions,
  count: number,
  when: "before" | "after",
): Promise<CeilingResult> {
  progress(
    `throughput: ceiling (${when} the run): ${count} x /bin/true in ${options.workers} ` +
      `processes, ${options.slots} at once each`,
  );
  const ceiling = await measureCeiling(count, options.workers, options.slots);
  progress(`throughput: ceiling ${fixed(ceiling.rate)}/s (${ceiling.failures} failures)`);
  return ceiling;
}

/** The two parts of the ceiling as one measurement: all their runs over all their time. */
function combine(parts: (CeilingResult | undefined)[]): CeilingResult {
  const measured = parts.filter((p) => p !== undefined);
  if (measured.length === 0) {
    return { rate: NaN, failures: 0, count: 0, elapsedMs: NaN, cpuSeconds: NaN };
  }
  const count = measured.reduce((n, p) => n + p.count, 0);
  const elapsedMs = measured.reduce((n, p) => n + p.elapsedMs, 0);
  return {
    rate: count / (elapsedMs / 1000),
    count,
    failures: measured.reduce((n, p) => n + p.failures, 0),
    elapsedMs,
    cpuSeconds: measured.reduce((n, p) => n + p.cpuSeconds, 0),
  };
}

/**
 * Runs the tasks on a cluster, which is gone when this returns; the summary lines are made
 * once the ceiling's second part is measured too.
 */
async function runCluster(
  options: ThroughputOptions,
): Promise<(before?: CeilingResult, after?: CeilingResult) => string[]> {
  const { tasks, workers, batch } = options;
  await using stack = new AsyncDisposableStack();
  progress("throughput: starting etcd, the manager and workers");
  const { etcd, cluster, manager, operator } = await startBenchCluster(stack, {
    profileDir: options.profileDir,
  });
  const workerDir = options.profileDir && `${options.profileDir}/workers`;
  if (workerDir) await Deno.mkdir(workerDir, { recursive: true });
  for (let i = 1; i <= workers; i++) {
    await cluster.startWorker(`w${i}`, {
      extraConfig: `capacity: {slots: ${options.slots}}\n`,
      denoFlags: workerDir ? ["--cpu-prof", `--cpu-prof-dir=${workerDir}`] : [],
    });
  }
  if (workerDir) {
    // Before the manager's and the cluster's stops: the cluster gives a worker 3 s, too few to
    // write its profile, and no worker wrote one.
    stack.defer(async () => {
      await Promise.all(cluster.workers.map((w) => w.stop(PROFILE_WRITE_MS)));
    });
  }

  // A few tasks first, so that JIT warm-up and first connections are not in the figure.
  await runBatch(operator, 2 * workers);
  await waitIdle(operator);

  const processes = [
    { name: "manager", pid: manager.pid },
    { name: "workers", pid: NaN, each: cluster.workers.map((w) => w.pid) },
    { name: "etcd", pid: etcd.pid },
  ];
  const cpuBefore = await readCpu(processes);
  const countersBefore = await readEtcdCounters(etcd.endpoint);
  progress(`throughput: submitting ${tasks} tasks in batches of ${batch}`);
  const firstSubmit = Date.now();
  let submitted = 0;
  while (submitted < tasks) {
    const size = Math.min(batch, tasks - submitted);
    await runBatch(operator, size);
    submitted += size;
  }
  const submitEnd = Date.now();
  let peakRss = await rssMiB(manager.pid);
  await waitIdle(operator, async () => {
    peakRss = Math.max(peakRss, await rssMiB(manager.pid));
  });
  const observedEnd = Date.now();
  markPhase("run", firstSubmit, observedEnd);
  const countersAfter = await readEtcdCounters(etcd.endpoint);
  const cpuAfter = await readCpu(processes);

  // Outside the measured window: read every task back for its stored finish time.
  const finished = await listFinished(operator, firstSubmit);
  const lastDone = Math.max(...finished.doneAt);
  const elapsed = (lastDone - firstSubmit) / 1000;
  const rate = tasks / elapsed;
  if (finished.doneAt.length !== tasks) {
    progress(`throughput: WARNING ${finished.doneAt.length}/${tasks} done, ${finished.dead} dead`);
  }
  return (before, after) => {
    const ceiling = combine([before, after]);
    const lines = [summary("throughput", {
      tasks,
      workers,
      batch,
      rate: `${fixed(rate)}/s`,
      ceiling: `${fixed(ceiling.rate)}/s`,
      ratio: fixed(rate / ceiling.rate, 2),
      ceiling_before: `${fixed(before?.rate ?? NaN)}/s`,
      ceiling_after: `${fixed(after?.rate ?? NaN)}/s`,
      elapsed_s: fixed(elapsed, 2),
      submit_s: fixed((submitEnd - firstSubmit) / 1000, 2),
      observed_rate: `${fixed(tasks / ((observedEnd - firstSubmit) / 1000))}/s`,
      done: finished.doneAt.length,
      dead: finished.dead,
      manager_rss_mib: fixed(peakRss, 0),
    })];
    // Where the machine's time went, per task: the budget the ratio is made of.
    const cpuMs = (key: string) => fixed((cpuAfter[key] - cpuBefore[key]) * 1000 / tasks, 2);
    lines.push(summary("throughput-cpu", {
      tasks,
      manager_ms_per_task: cpuMs("manager"),
      workers_ms_per_task: cpuMs("workers"),
      tasks_ms_per_task: cpuMs("workers:children"),
      etcd_ms_per_task: cpuMs("etcd"),
      ceiling_ms_per_task: fixed(ceiling.cpuSeconds * 1000 / ceiling.count, 2),
    }));

    const per = (key: string) => fixed(delta(countersBefore, countersAfter, key) / tasks, 2);
    lines.push(summary("store-cost", {
      tasks,
      batch,
      round_trips_per_task: fixed(
        (delta(countersBefore, countersAfter, "grpc:Txn") +
          delta(countersBefore, countersAfter, "grpc:Range") +
          delta(countersBefore, countersAfter, "grpc:Put") +
          delta(countersBefore, countersAfter, "grpc:DeleteRange")) / tasks,
        2,
      ),
      txn_per_task: per("grpc:Txn"),
      range_per_task: per("grpc:Range"),
      put_per_task: per("etcd_mvcc_put_total"),
      delete_per_task: per("etcd_mvcc_delete_total"),
      proposals_per_task: per("etcd_server_proposals_committed_total"),
      fsyncs_per_task: per("etcd_disk_wal_fsync_duration_seconds_count"),
      wal_bytes_per_task: fixed(
        delta(countersBefore, countersAfter, "etcd_disk_wal_write_bytes_total") / tasks,
        0,
      ),
      fsync_mean_ms: fixed(fsyncMeanMs(countersBefore, countersAfter), 2),
      client_bytes_per_task: fixed(
        delta(countersBefore, countersAfter, "etcd_network_client_grpc_received_bytes_total") /
          tasks,
        0,
      ),
    }));
    return lines;
  };
}

async function runBatch(operator: Operator, size: number): Promise<void> {
  await operator.client.scheduleTasks({
    tasks: Array.from({ length: size }, () => ({ cmd: "/bin/true", params: [] })),
  });
}

/** Waits until no worker holds an unfinished task (the manager's in-memory counts). */
async function waitIdle(operator: Operator, each?: () => Promise<void>): Promise<void> {
  let polls = 0;
  for (;;) {
    const { workers } = await operator.client.listWorkers({});
    // Every worker can be between tasks at once while the queue is not empty yet (a result
    // stored, the next task not placed): the store has the last word.
    if (workers.every((w) => w.runningTasks === 0) && !(await anyUnfinished(operator))) return;
    if (each && polls++ % 10 === 0) await each();
    // Not faster: every poll is an RPC the manager answers, and its CPU counts per task.
    await sleep(100);
  }
}

/** The stored finish times of the done tasks created since `since`, and how many are dead. */
async function listFinished(
  operator: Operator,
  since: number,
): Promise<{ doneAt: number[]; dead: number }> {
  const doneAt: number[] = [];
  let dead = 0;
  for (const state of [TaskState.DONE, TaskState.DEAD]) {
    let pageToken = "";
    do {
      const page = await operator.client.listTasks({ state, pageSize: 1000, pageToken });
      for (const task of page.tasks) {
        if (!task.createdAt || timestampMs(task.createdAt) < since) continue;
        if (state === TaskState.DEAD) dead++;
        else {
          doneAt.push(task.finishedAt ? timestampMs(task.finishedAt) : NaN);
        }
      }
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
  }
  return { doneAt, dead };
}
