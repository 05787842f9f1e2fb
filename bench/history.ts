/**
 * Scenario 4, history: H finished tasks in the store, then a manager start and `tasks ls`.
 *
 * The tasks are written straight into etcd through the store module (createEtcdStore +
 * createTasks, 64 per transaction, several transactions at once): the same keys and records a
 * manager writes, without running 100,000 processes first. Each is a `done` /bin/true task
 * with a realistic attempt history; one in ten is `dead`.
 *
 * Figures: the manager's start-up (from spawning its process to the timestamp of its
 * "manager listening" log line, so Deno's own start is included), its RSS once ready and after
 * the listings, and ListTasks(state=done, page_size=100) timed over a fresh HTTP/2 connection
 * (cold: the first call; then the median of 20), the same deep in (the page token of task
 * H/2), unfiltered, and schedctl's `tasks ls --state done` end to end (a new Deno process, so
 * its start-up is in it; `workers ls`, which touches no store, is the baseline).
 */
import { TaskState } from "../shared/gen/goschedule/v1/goschedule_pb.ts";
import { createTaskIds } from "../shared/ids.ts";
import { createEtcdStore } from "../shared/store/etcd_store.ts";
import type { TaskRecord } from "../shared/task.ts";
import { startEtcd } from "../test/harness/etcd.ts";
import { startBenchCluster } from "./cluster.ts";
import {
  checkStop,
  fixed,
  markPhase,
  median,
  type Operator,
  progress,
  rssMiB,
  summary,
} from "./common.ts";

export interface HistoryOptions {
  tasks: number;
  profileDir?: string;
}

const PER_TXN = 64;
const WRITERS = 8;
const REPEATS = 20;

export async function runHistory(options: HistoryOptions): Promise<string> {
  await using stack = new AsyncDisposableStack();
  progress("history: starting etcd");
  const etcd = stack.use(await startEtcd());
  const writeStart = performance.now();
  const ids = await writeHistory(etcd.endpoint, options.tasks);
  const writeS = (performance.now() - writeStart) / 1000;
  progress(`history: ${options.tasks} finished tasks written in ${fixed(writeS, 1)} s`);

  const { cluster, manager, managerSpawnedAt, operator } = await startBenchCluster(stack, {
    etcd,
    profileDir: options.profileDir,
  });
  const log = await manager.log();
  // The log may hold an earlier start (see startBenchCluster): the last lines are this start's.
  const lastAt = (pattern: RegExp) => {
    const found = [...log.matchAll(pattern)].at(-1);
    return found ? Date.parse(found[1]) - managerSpawnedAt : NaN;
  };
  const readyMs = lastAt(/^(\S+) INFO\s+manager listening/gm);
  const loadedMs = lastAt(/^(\S+) INFO\s+manager state loaded/gm);
  const rssReady = await rssMiB(manager.pid);
  markPhase("start-up", managerSpawnedAt, managerSpawnedAt + readyMs);
  const lsStart = Date.now();

  const done = await timeList(operator, { state: TaskState.DONE, pageSize: 100 });
  const deepToken = [...ids].sort()[Math.floor(ids.length / 2)];
  const deep = await timeList(operator, {
    state: TaskState.DONE,
    pageSize: 100,
    pageToken: deepToken,
  });
  const all = await timeList(operator, { pageSize: 100 });
  const big = await timeList(operator, { state: TaskState.DONE, pageSize: 1000 });

  markPhase("ls", lsStart);
  // schedctl end to end: a Deno start plus one ListTasks call.
  const cliLs = await timeCli(() => cluster.schedctl("tasks", "ls", "--state", "done"));
  const cliBase = await timeCli(() => cluster.schedctl("workers", "ls"));
  const rssAfter = await rssMiB(manager.pid);

  return summary("history", {
    tasks: options.tasks,
    write_s: fixed(writeS, 1),
    ready_ms: fixed(readyMs, 0),
    state_loaded_ms: fixed(loadedMs, 0),
    rss_mib_ready: fixed(rssReady, 0),
    rss_mib_after_ls: fixed(rssAfter, 0),
    ls_done_cold_ms: fixed(done.cold, 1),
    ls_done_p50_ms: fixed(done.median, 1),
    ls_done_deep_p50_ms: fixed(deep.median, 1),
    ls_all_p50_ms: fixed(all.median, 1),
    ls_done_1000_p50_ms: fixed(big.median, 1),
    cli_ls_ms: fixed(cliLs, 0),
    cli_baseline_ms: fixed(cliBase, 0),
  });
}

/** Writes `count` finished tasks, created over the last day, oldest first; returns their ids. */
async function writeHistory(endpoint: string, count: number): Promise<string[]> {
  const store = await createEtcdStore({ endpoints: [endpoint], requestTimeoutMs: 30_000 });
  try {
    const batches = Math.ceil(count / PER_TXN);
    const start = Date.now() - 86_400_000;
    const step = 86_400_000 / batches;
    const ids: string[] = [];
    let nextBatch = 0;
    await Promise.all(Array.from({ length: WRITERS }, async () => {
      while (nextBatch < batches) {
        checkStop();
        const b = nextBatch++;
        const size = Math.min(PER_TXN, count - b * PER_TXN);
        const createdAt = Math.floor(start + b * step);
        const tasks = createTaskIds(size, createdAt).map((id, i) =>
          finishedTask(id, createdAt, b * PER_TXN + i)
        );
        await store.createTasks(tasks);
        for (const task of tasks) ids.push(task.id);
        if (b % 200 === 0) progress(`history: ${b * PER_TXN}/${count} written`);
      }
    }));
    return ids;
  } finally {
    await store.close();
  }
}

function finishedTask(id: string, createdAt: number, n: number): TaskRecord {
  const workerId = `w${(n % 4) + 1}`;
  const assignedAt = createdAt + 2;
  const scheduledAt = createdAt + 4;
  const finishedAt = createdAt + 9;
  const dead = n % 10 === 9;
  return {
    id,
    cmd: "/bin/true",
    params: [],
    state: dead ? "dead" : "done",
    workerId,
    attempt: 1,
    ...(dead ? { deadReason: "deadline exceeded", signal: "SIGKILL" } : { exitCode: 0 }),
    stdout: dead ? "" : `task ${n} ran\n`,
    stderr: "",
    stdoutTruncated: false,
    stderrTruncated: false,
    timeoutMs: dead ? 1000 : undefined,
    attempts: [{
      attempt: 1,
      workerId,
      assignedAt,
      scheduledAt,
      finishedAt,
      outcome: dead ? "deadline exceeded" : "exit code 0",
    }],
    createdAt,
    assignedAt,
    scheduledAt,
    finishedAt,
  };
}

async function timeList(
  operator: Operator,
  request: { state?: TaskState; pageSize: number; pageToken?: string },
): Promise<{ cold: number; median: number }> {
  const times: number[] = [];
  for (let i = 0; i < REPEATS + 1; i++) {
    const started = performance.now();
    const page = await operator.client.listTasks(request);
    times.push(performance.now() - started);
    if (page.tasks.length === 0) throw new Error(`ListTasks ${JSON.stringify(request)} is empty`);
  }
  return { cold: times[0], median: median(times.slice(1)) };
}

async function timeCli(
  run: () => Promise<{ code: number; stderr: string; elapsedMs: number }>,
): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < 3; i++) {
    const result = await run();
    if (result.code !== 0) throw new Error(`schedctl exited ${result.code}: ${result.stderr}`);
    times.push(result.elapsedMs);
  }
  return median(times);
}
