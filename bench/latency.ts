/**
 * Scenario 2, latency: one `/bin/true` task at a time on an idle cluster.
 *
 * Two views of each task:
 * - stored: the task's own timestamps, on the manager's clock. submit->scheduled is
 *   scheduledAt - createdAt, submit->done is finishedAt - createdAt. createdAt is taken when
 *   the manager starts handling ScheduleTasks (before the pending write); finishedAt when it
 *   applies the worker's report (before the done write is acknowledged by etcd).
 * - client: from just before the ScheduleTasks call until the answer of a GetTask that asks
 *   the manager to wait for the task's end (sent once ScheduleTasks has answered; the
 *   manager answers once the end is stored). It includes both RPC legs, the client's and
 *   the final etcd write.
 */
import { durationFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import { TaskState } from "../shared/gen/goschedule/v1/goschedule_pb.ts";
import { startBenchCluster } from "./cluster.ts";
import { startSimulator } from "./many_workers.ts";
import {
  type EtcdCounters,
  fixed,
  fsyncMeanMs,
  markPhase,
  type Operator,
  percentile,
  progress,
  readEtcdCounters,
  summary,
} from "./common.ts";

export interface LatencyOptions {
  tasks: number;
  workers: number;
  /**
   * One SIMULATED worker (bench/sim_workers.ts) instead of real ones: no process is started,
   * so the figures are the manager's and etcd's share of the latency alone.
   */
  simulated?: boolean;
  warmup: number;
  profileDir?: string;
}

/** How long the client's GetTask asks the manager to wait for the task's end. */
const WAIT_MS = 30_000;

export async function runLatency(options: LatencyOptions): Promise<string> {
  await using stack = new AsyncDisposableStack();
  progress(
    `${
      options.simulated ? "latency-simulated" : "latency"
    }: starting etcd, the manager and workers`,
  );
  const { etcd, cluster, operator } = await startBenchCluster(stack, {
    profileDir: options.profileDir,
  });
  if (options.simulated) {
    const sim = stack.use(
      startSimulator(cluster.managerUrl, { workers: 1, streamsPerConnection: 1 }),
    );
    await sim.next();
  } else {
    for (let i = 1; i <= options.workers; i++) await cluster.startWorker(`w${i}`);
  }
  const name = options.simulated ? "latency-simulated" : "latency";

  const scheduled: number[] = [];
  const done: number[] = [];
  const client: number[] = [];
  let failed = 0;
  const start = Date.now();
  let before: EtcdCounters | undefined;
  progress(`latency: ${options.warmup} warm-up tasks, then ${options.tasks} measured`);
  for (let i = 0; i < options.warmup + options.tasks; i++) {
    if (i === options.warmup) before = await readEtcdCounters(etcd.endpoint);
    const result = await runOne(operator);
    if (i < options.warmup) continue;
    if (!result) {
      failed++;
      continue;
    }
    scheduled.push(result.scheduled);
    done.push(result.done);
    client.push(result.client);
  }
  markPhase("run", start);
  const after = await readEtcdCounters(etcd.endpoint);
  const p = (values: number[], q: number) => fixed(percentile(values, q), 1);
  return summary(name, {
    tasks: options.tasks,
    workers: options.simulated ? 1 : options.workers,
    simulated: options.simulated ? "yes" : "no",
    sched_p50_ms: p(scheduled, 50),
    sched_p95_ms: p(scheduled, 95),
    sched_p99_ms: p(scheduled, 99),
    done_p50_ms: p(done, 50),
    done_p95_ms: p(done, 95),
    done_p99_ms: p(done, 99),
    client_done_p50_ms: p(client, 50),
    client_done_p95_ms: p(client, 95),
    client_done_p99_ms: p(client, 99),
    client_done_max_ms: p(client, 100),
    not_done: failed,
    etcd_fsync_mean_ms: before ? fixed(fsyncMeanMs(before, after), 2) : "nan",
  });
}

async function runOne(
  operator: Operator,
): Promise<{ scheduled: number; done: number; client: number } | undefined> {
  const started = performance.now();
  const { tasks: [created] } = await operator.client.scheduleTasks({
    tasks: [{ cmd: "/bin/true", params: [] }],
  });
  const { task } = await operator.client.getTask({ id: created.id, wait: durationFromMs(WAIT_MS) });
  const client = performance.now() - started;
  if (task?.state !== TaskState.DONE || !task.createdAt || !task.finishedAt) return undefined;
  const createdAt = timestampMs(task.createdAt);
  return {
    scheduled: task.scheduledAt ? timestampMs(task.scheduledAt) - createdAt : NaN,
    done: timestampMs(task.finishedAt) - createdAt,
    client,
  };
}
