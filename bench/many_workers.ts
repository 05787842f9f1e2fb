/**
 * Scenario 3, many workers: M SIMULATED workers (bench/sim_workers.ts, one process holding M
 * worker streams that answer pings, acknowledge and report tasks without starting processes)
 * on one real manager with its production timings (ping_interval 2s).
 *
 * Figures: the time to connect all (the simulator's clock, from its first dial to the last
 * Welcome), the manager's RSS (VmRSS) once all are connected and at its peak, the manager's CPU
 * over an idle window (utime + stime from /proc/<pid>/stat, as a percentage of one core), and
 * the placement rate: tasks per second from the first ScheduleTasks call until the last one
 * returned (every task placed, stored pending and queued to its worker), until the simulator
 * received the last RunTask, and until no task was pending or scheduled any more (every
 * result stored). The burst is placed twice: first on a manager that has never placed a task
 * (the figures as at every earlier stop), then again once every result of the first is
 * stored (`warm_*`), as a manager is after its first minutes.
 *
 * With `store: "sqlite"` the manager keeps its state in its embedded SQLite file (WAL, each
 * commit synced) and no etcd runs: the same run without etcd's cost, to see where the rate
 * is bound. The targets are judged on etcd.
 */
import { TaskState } from "../shared/gen/goschedule/v1/goschedule_pb.ts";
import { type BenchStore, startBenchCluster } from "./cluster.ts";
import {
  anyUnfinished,
  cpuSeconds,
  delta,
  fixed,
  markPhase,
  type Operator,
  progress,
  readCpu,
  readEtcdCounters,
  ROOT,
  rssMiB,
  sleep,
  summary,
  until,
} from "./common.ts";

export interface ManyWorkersOptions {
  workers: number;
  streamsPerConnection: number;
  idleSeconds: number;
  tasks: number;
  batch: number;
  /** ScheduleTasks calls under way at once. */
  inFlight: number;
  /** etcd, or SQLite to see the manager's own cost without etcd's: not the target's setup. */
  store: BenchStore;
  profileDir?: string;
}

interface SimStats {
  event: string;
  ms?: number;
  welcomed: number;
  streamsEnded: number;
  pings: number;
  pongs: number;
  runs: number;
  reports: number;
  reportFailures: number;
  firstRunAt: number;
  lastRunAt: number;
  lastReportAt: number;
  rssMiB: number;
  heapMiB: number;
}

export async function runManyWorkers(options: ManyWorkersOptions): Promise<string> {
  await using stack = new AsyncDisposableStack();
  progress(`many-workers: starting the manager on ${options.store}`);
  const { cluster, etcd, manager, operator } = await startBenchCluster(stack, {
    store: options.store,
    profileDir: options.profileDir,
  });
  const pid = manager.pid;
  const rssBefore = await rssMiB(pid);

  progress(`many-workers: connecting ${options.workers} simulated workers`);
  const connectStart = Date.now();
  const sim = stack.use(startSimulator(cluster.managerUrl, options));
  const connected = await sim.next();
  if (connected.event !== "connected") throw new Error(`the simulator said ${connected.event}`);
  await until(
    `${options.workers} workers connected in ListWorkers`,
    async () => (await connectedCount(operator)) >= options.workers - connected.streamsEnded,
    60_000,
    200,
  );
  markPhase("connect", connectStart);
  const connectS = (connected.ms ?? NaN) / 1000;
  progress(`many-workers: all connected in ${fixed(connectS, 2)} s`);
  await sleep(2_000); // Let the connection burst's garbage settle before the idle window.
  const rssConnected = await rssMiB(pid);

  progress(`many-workers: idle for ${options.idleSeconds} s`);
  const cpu0 = await cpuSeconds(pid);
  const { pings: pings0, pongs: pongs0 } = await sim.stats();
  const idleStart = performance.now();
  let rssPeak = rssConnected;
  const idleEnd = idleStart + options.idleSeconds * 1000;
  while (performance.now() < idleEnd) {
    await sleep(Math.min(5_000, idleEnd - performance.now()));
    rssPeak = Math.max(rssPeak, await rssMiB(pid));
    const simNow = await sim.stats();
    progress(`many-workers: simulator rss ${simNow.rssMiB} MiB, heap ${simNow.heapMiB} MiB`);
  }
  const cpu1 = await cpuSeconds(pid);
  markPhase("idle", Date.now() - options.idleSeconds * 1000);
  const idleS = (performance.now() - idleStart) / 1000;
  const idleCpuPct = ((cpu1 - cpu0) / idleS) * 100;
  const { pings: pings1, pongs: pongs1 } = await sim.stats();
  const pingsPerS = (pings1 - pings0) / idleS;
  const pongsPerS = (pongs1 - pongs0) / idleS;
  const rssIdle = await rssMiB(pid);

  const submitters = [
    { name: "manager", pid },
    { name: "sim", pid: sim.pid },
    ...(etcd ? [{ name: "etcd", pid: etcd.pid }] : []),
    { name: "bench", pid: Deno.pid },
  ];
  const round = (label: string) =>
    placeRound(label, options, {
      operator,
      sim,
      submitters,
      etcdEndpoint: etcd?.endpoint,
      sample: async () => void (rssPeak = Math.max(rssPeak, await rssMiB(pid))),
    });
  // The same burst twice: the first on a manager whose placement code has never run (as at
  // every earlier stop), the second on one that has, as a manager is after its first minutes.
  const cold = await round("");
  const warm = await round("warm_");
  const final = await sim.stats();
  const dead = await countDead(operator);

  return summary("many-workers", {
    workers: options.workers,
    simulated: "yes",
    store: options.store,
    streams_per_connection: options.streamsPerConnection,
    connect_s: fixed(connectS, 2),
    streams_lost: final.streamsEnded,
    rss_mib_start: fixed(rssBefore, 0),
    rss_mib_connected: fixed(rssConnected, 0),
    rss_mib_idle: fixed(rssIdle, 0),
    rss_mib_peak: fixed(rssPeak, 0),
    idle_s: fixed(idleS, 0),
    idle_cpu_pct: fixed(idleCpuPct, 1),
    pings_per_s: fixed(pingsPerS, 0),
    pongs_per_s: fixed(pongsPerS, 0),
    tasks: options.tasks,
    batch: options.batch,
    in_flight: options.inFlight,
    ...cold,
    ...warm,
    dead,
    runs: final.runs,
    reports: final.reports,
    report_failures: final.reportFailures,
  });
}

interface RoundContext {
  operator: Operator;
  sim: Simulator;
  submitters: { name: string; pid: number }[];
  etcdEndpoint?: string;
  /** Called now and then while the round runs (the manager's peak RSS). */
  sample: () => Promise<void>;
}

/**
 * One burst: `options.tasks` tasks submitted `options.inFlight` calls at a time, then until
 * every result is stored and every report answered. Its figures, keys prefixed by `prefix`.
 */
async function placeRound(
  prefix: string,
  options: ManyWorkersOptions,
  { operator, sim, submitters, etcdEndpoint, sample }: RoundContext,
): Promise<Record<string, string | number>> {
  progress(
    `many-workers: ${prefix ? "again, " : ""}placing ${options.tasks} tasks in batches of ` +
      `${options.batch}, ${options.inFlight} at a time`,
  );
  const runsBefore = (await sim.stats()).runs;
  const submitCpu0 = await readCpu(submitters);
  const etcd0 = etcdEndpoint && await readEtcdCounters(etcdEndpoint);
  const start = Date.now();
  let submitted = 0;
  let failedBatches = 0;
  let placed = 0;
  let firstError = "";
  const submitter = async () => {
    while (submitted < options.tasks) {
      const size = Math.min(options.batch, options.tasks - submitted);
      submitted += size;
      try {
        await operator.client.scheduleTasks({
          tasks: Array.from({ length: size }, () => ({ cmd: "/bin/true", params: [] })),
        });
        placed += size;
      } catch (e) {
        // A figure, not a failure: count it and go on.
        failedBatches++;
        firstError ||= (e as Error).message;
      }
      if (submitted % (options.batch * 10) === 0) await sample();
    }
  };
  await Promise.all(Array.from({ length: options.inFlight }, submitter));
  const submitEnd = Date.now();
  const submitCpu1 = await readCpu(submitters);
  markPhase(`${prefix}submit`, start, submitEnd);
  let polls = 0;
  await until(
    "every placed task to be reported",
    async () => {
      if (polls++ % 20 === 0) await sample();
      return !(await anyUnfinished(operator));
    },
    600_000,
    20,
  );
  const doneAt = Date.now();
  const doneCpu = await readCpu(submitters);
  const etcd1 = etcdEndpoint && await readEtcdCounters(etcdEndpoint);
  markPhase(`${prefix}placement`, start, doneAt);
  if (failedBatches > 0) {
    progress(`many-workers: ${failedBatches} ScheduleTasks calls failed, first: ${firstError}`);
  }
  // Answers to reports may wait for each worker's ping round (up to 2 s): wait for them, so
  // that `reports` counts every answer (and the next round starts on a quiet manager).
  await until(
    "every report answered",
    async () => {
      const now = await sim.stats();
      return now.reports + now.reportFailures >= now.runs;
    },
    10_000,
    200,
  ).catch((e) => progress(`many-workers: ${(e as Error).message}`));
  const after = await sim.stats();
  const rate = (end: number) => `${fixed(placed / ((end - start) / 1000))}/s`;
  const figures: Record<string, string | number> = {
    place_rate: rate(submitEnd),
    failed_batches: failedBatches,
    sent_rate: after.runs - runsBefore >= placed ? rate(after.lastRunAt) : "nan",
    done_rate: rate(doneAt),
    place_cpu_s: fixed(doneCpu.manager - submitCpu0.manager, 1),
    ...cpuPerTask("submit", placed, submitters, submitCpu0, submitCpu1),
    ...cpuPerTask("done", placed, submitters, submitCpu0, doneCpu),
    // Until every result is stored; the bench's own ListTasks polls are a few of them.
    ...(etcd0 && etcd1
      ? {
        etcd_txns_per_task: fixed(delta(etcd0, etcd1, "grpc:Txn") / placed, 3),
        etcd_round_trips_per_task: fixed(
          (delta(etcd0, etcd1, "grpc:Txn") + delta(etcd0, etcd1, "grpc:Range")) / placed,
          3,
        ),
      }
      : {}),
  };
  return Object.fromEntries(Object.entries(figures).map(([k, v]) => [prefix + k, v]));
}

/**
 * CPU milliseconds per placed task of the manager, the simulator, etcd (when it is the store)
 * and the bench itself
 * (the client): on two cores they share, where the rate goes. `submit` is while tasks were
 * being submitted, which holds whatever part of recording results fell in it; `done` is
 * from the first submit until every task was reported, the whole cost of a task.
 */
function cpuPerTask(
  phase: "submit" | "done",
  placed: number,
  processes: { name: string }[],
  before: Record<string, number>,
  after: Record<string, number>,
): Record<string, string> {
  const split: Record<string, string> = {};
  for (const { name } of processes) {
    split[`${phase}_${name}_ms_per_task`] = fixed(
      ((after[name] - before[name]) * 1000) / placed,
      2,
    );
  }
  return split;
}

/** Tasks that ended dead (for example not acknowledged in time by an overloaded manager). */
async function countDead(operator: Operator): Promise<number> {
  let dead = 0;
  let pageToken = "";
  do {
    const page = await operator.client.listTasks({
      state: TaskState.DEAD,
      pageSize: 1000,
      pageToken,
    });
    dead += page.tasks.length;
    pageToken = page.nextPageToken;
  } while (pageToken !== "");
  return dead;
}

/**
 * Whether the store still holds a pending or scheduled task: two one-task pages, cheap to ask
 * every 20 ms (a listing of 5,000 workers is not, and took the manager's time from the reports).
 */
async function connectedCount(operator: Operator): Promise<number> {
  const { workers } = await operator.client.listWorkers({});
  return workers.filter((w) => w.state === 1).length;
}

export interface Simulator extends AsyncDisposable {
  readonly pid: number;
  /** The next line the simulator prints. */
  next(): Promise<SimStats>;
  stats(): Promise<SimStats>;
}

export function startSimulator(
  managerUrl: string,
  options: Pick<ManyWorkersOptions, "workers" | "streamsPerConnection">,
): Simulator {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      `${ROOT}bench/sim_workers.ts`,
      "--manager",
      managerUrl,
      "--count",
      String(options.workers),
      "--streams-per-connection",
      String(options.streamsPerConnection),
    ],
    cwd: ROOT,
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const writer = child.stdin.getWriter();
  const lines = readJsonLines(child.stdout);
  const next = async (): Promise<SimStats> => {
    const line = await Promise.race([lines.next(), child.status.then(() => undefined)]);
    if (!line || line.done) throw new Error("the simulator exited");
    return line.value;
  };
  return {
    pid: child.pid,
    next,
    async stats() {
      await writer.write(new TextEncoder().encode("stats\n"));
      for (;;) {
        const line = await next();
        if (line.event === "stats") return line;
      }
    },
    async [Symbol.asyncDispose]() {
      await writer.close().catch(() => {});
      try {
        child.kill("SIGTERM");
      } catch {
        // It has exited.
      }
      const timer = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch {
          // It has exited.
        }
      }, 5_000);
      await child.status;
      clearTimeout(timer);
      await child.stdout.cancel().catch(() => {});
    },
  };
}

async function* readJsonLines(stream: ReadableStream<Uint8Array>): AsyncGenerator<SimStats> {
  let buffered = "";
  for await (const text of stream.pipeThrough(new TextDecoderStream())) {
    buffered += text;
    let newline;
    while ((newline = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
      if (line.startsWith("{")) yield JSON.parse(line) as SimStats;
    }
  }
}
