/**
 * Fault tests: each scenario runs a batch of real tasks on a real etcd, manager and workers,
 * injects one fault mid-flight, waits for every task to end, and checks the invariants:
 * every acknowledged task is in the store; every task ends in one final state; no attempt ran
 * twice or on two workers; every result a worker produced is recorded. Each prints one summary
 * line. Run them alone with `deno task test:faults`.
 */
import assert from "node:assert/strict";
import { type EtcdProcess, startEtcd } from "./harness/etcd.ts";
import { Cluster, type DaemonProcess, waitFor } from "./harness/processes.ts";
import { TcpProxy } from "./harness/tcp_proxy.ts";

interface TaskJson {
  id: string;
  state: string;
  attempt: number;
  workerId: string;
  exitCode?: number;
  stdout: string;
  deadReason: string;
}

const SETTINGS = {
  pingInterval: "300ms",
  silenceTimeout: "1500ms",
  ackTimeout: "3s",
  lostTimeout: "8s",
};
const SILENCE_MS = 1500;
const LOST_MS = 8000;

interface Run {
  task: string;
  attempt: number;
  worker: string;
}

interface ScenarioOptions {
  workers?: number;
  viaProxy?: boolean;
  /** More worker.yaml for every worker (capacity, say). */
  workerConfig?: string;
}

/** One scenario's cluster, and the record every task's process keeps of its runs. */
class Scenario implements AsyncDisposable {
  readonly acknowledged: string[] = [];
  faults = 0;

  private constructor(
    readonly name: string,
    readonly etcd: EtcdProcess,
    readonly cluster: Cluster,
    readonly proxy: TcpProxy | undefined,
  ) {}

  static async start(
    name: string,
    options: ScenarioOptions = {},
  ): Promise<Scenario> {
    const etcd = await startEtcd();
    const cluster = await Cluster.create();
    try {
      await cluster.startManager({ etcd: etcd.endpoint, ...SETTINGS });
      const port = Number(new URL(cluster.managerUrl).port);
      const proxy = options.viaProxy ? new TcpProxy(port) : undefined;
      for (let i = 1; i <= (options.workers ?? 2); i++) {
        await cluster.startWorker(`w${i}`, {
          managerUrl: proxy?.url,
          extraConfig: options.workerConfig,
        });
      }
      return new Scenario(name, etcd, cluster, proxy);
    } catch (e) {
      await cluster[Symbol.asyncDispose]();
      await etcd[Symbol.asyncDispose]();
      throw e;
    }
  }

  get runsFile(): string {
    return `${this.cluster.dir}/runs.log`;
  }

  /**
   * Schedules tasks that record their start and end (task, attempt, worker) and sleep. Only
   * the ids schedctl printed count as acknowledged.
   */
  async submit(count: number, sleepSeconds: number, mayFail = false): Promise<string[]> {
    const script = `echo "start $GO_SCHEDULE_TASK_ID $GO_SCHEDULE_ATTEMPT $GO_SCHEDULE_WORKER_ID"` +
      ` >> ${this.runsFile}; sleep ${sleepSeconds}; ` +
      `echo "end $GO_SCHEDULE_TASK_ID $GO_SCHEDULE_ATTEMPT $GO_SCHEDULE_WORKER_ID"` +
      ` >> ${this.runsFile}; echo "result $GO_SCHEDULE_TASK_ID"`;
    const file = await this.cluster.writeFile(
      `batch-${crypto.randomUUID()}.yaml`,
      "tasks:\n" +
        Array.from(
          { length: count },
          () =>
            `  - cmd: sh\n    params: ["-c", ${JSON.stringify(script)}]\n    retries: 2\n` +
            `    retry_backoff: 500ms\n`,
        ).join(""),
    );
    const result = await this.cluster.schedctl("tasks", "schedule", "-f", file);
    if (result.code !== 0) {
      // Refused while the manager is down: not acknowledged, so nothing is owed.
      if (mayFail) return [];
      throw new Error(`schedctl tasks schedule exited ${result.code}: ${result.stderr}`);
    }
    const ids = result.stdout.trim().split("\n");
    this.acknowledged.push(...ids);
    return ids;
  }

  async runs(): Promise<{ starts: Run[]; ends: Run[] }> {
    const text = await Deno.readTextFile(this.runsFile).catch(() => "");
    const starts: Run[] = [];
    const ends: Run[] = [];
    for (const line of text.split("\n")) {
      const [kind, task, attempt, worker] = line.split(" ");
      if (kind === "start") starts.push({ task, attempt: Number(attempt), worker });
      if (kind === "end") ends.push({ task, attempt: Number(attempt), worker });
    }
    return { starts, ends };
  }

  /** Waits until `count` runs have started (so the fault hits running tasks). */
  async waitForRunning(count: number): Promise<void> {
    await waitFor(async () => (await this.runs()).starts.length >= count, {
      timeoutMs: 20_000,
      what: `${count} tasks to start`,
      log: () => this.cluster.logs(),
    });
  }

  /** The fault of the worker-sigkill scenarios: SIGKILL, then started again at once. */
  async sigkillAndRestart(worker: DaemonProcess): Promise<void> {
    await worker.kill();
    this.faults++;
    await worker.start();
  }

  /** Waits for every acknowledged task to end, then checks the invariants and prints a line. */
  async verify(): Promise<TaskJson[]> {
    let tasks: TaskJson[] = [];
    await waitFor(async () => {
      tasks = await this.cluster.schedctlJson<TaskJson[]>("tasks", "ls", "--all").catch(() => []);
      const byId = new Map(tasks.map((t) => [t.id, t]));
      return this.acknowledged.every((id) => {
        const state = byId.get(id)?.state;
        return state === "TASK_STATE_DONE" || state === "TASK_STATE_DEAD";
      });
    }, {
      timeoutMs: 60_000,
      what: `the ${this.acknowledged.length} tasks of ${this.name} to end`,
      log: () => this.cluster.logs(),
    });
    const byId = new Map(tasks.map((t) => [t.id, t]));
    const missing = this.acknowledged.filter((id) => !byId.has(id));
    assert.deepEqual(missing, [], "every acknowledged task is in the store");

    const { starts, ends } = await this.runs();
    const perAttempt = new Map<string, Run[]>();
    for (const run of starts) {
      const key = `${run.task}#${run.attempt}`;
      perAttempt.set(key, [...(perAttempt.get(key) ?? []), run]);
    }
    const duplicates = [...perAttempt.values()].filter((runs) => runs.length > 1);
    const unrecorded = ends.filter((run) => {
      const task = byId.get(run.task);
      return !(task?.state === "TASK_STATE_DONE" && task.attempt === run.attempt &&
        task.workerId === run.worker && task.stdout.includes(`result ${run.task}`));
    });
    const mine = this.acknowledged.map((id) => byId.get(id)!);
    const lost = mine.filter((t) => t.deadReason === "lost");
    const done = mine.filter((t) => t.state === "TASK_STATE_DONE").length;
    const reasons = new Map<string, number>();
    for (const t of mine) {
      if (t.deadReason) reasons.set(t.deadReason, (reasons.get(t.deadReason) ?? 0) + 1);
    }
    const why = [...reasons].map(([reason, n]) => `${n}x ${reason}`).join("; ");
    console.log(
      `faults: ${this.name} tasks=${mine.length} faults=${this.faults} lost=${lost.length} ` +
        `duplicates=${duplicates.length} unrecorded=${unrecorded.length} done=${done} ` +
        `dead=${mine.length - done} retried=${mine.filter((t) => t.attempt > 1).length}` +
        (why ? ` (${why})` : ""),
    );
    assert.deepEqual(duplicates, [], "no attempt ran twice");
    assert.deepEqual(unrecorded, [], "every result a worker produced is recorded");
    assert.deepEqual(lost.map((t) => t.id), [], "nothing is lost");
    return mine;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.proxy?.[Symbol.asyncDispose]();
    await this.cluster[Symbol.asyncDispose]();
    await this.etcd[Symbol.asyncDispose]();
  }
}

/** Runs a scenario; on failure prints every log before failing. */
async function scenario(
  name: string,
  options: ScenarioOptions,
  body: (s: Scenario) => Promise<void>,
): Promise<void> {
  await using s = await Scenario.start(name, options);
  try {
    await body(s);
  } catch (e) {
    console.error(await s.cluster.logs());
    throw e;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

Deno.test("fault: a worker SIGKILLed while running tasks, then restarted", async () => {
  await scenario("worker-sigkill", {}, async (s) => {
    await s.submit(8, 8);
    await s.waitForRunning(8);
    await s.sigkillAndRestart(s.cluster.workers[0]);
    const tasks = await s.verify();
    // The killed worker's attempts were stopped by its next life and placed again.
    assert.ok(tasks.every((t) => t.state === "TASK_STATE_DONE"), "retries finish every task");
    assert.ok(tasks.some((t) => t.attempt > 1), "the killed worker's tasks were retried");
  });
});

Deno.test("fault: a worker SIGKILLed with tasks running and queued, then restarted", async () => {
  await scenario("worker-sigkill-queued", {
    workerConfig: "capacity: {slots: 2, queue: 4}\n",
  }, async (s) => {
    await s.submit(12, 8);
    await s.waitForRunning(4);
    await s.sigkillAndRestart(s.cluster.workers[0]);
    const tasks = await s.verify();
    assert.ok(tasks.every((t) => t.state === "TASK_STATE_DONE"), "every task ends done");
    // Its queued tasks never started there: given back, they ran elsewhere or after the restart.
    const { starts } = await s.runs();
    assert.equal(starts.length, 12 + 2, "each task started once, the two killed ones twice");
  });
});

Deno.test("fault: worker streams cut while tasks run, then reconnected", async () => {
  await scenario("stream-cut", { viaProxy: true }, async (s) => {
    await s.submit(8, 3);
    await s.waitForRunning(8);
    s.faults += await s.proxy!.cutAll();
    const tasks = await s.verify();
    assert.ok(tasks.every((t) => t.state === "TASK_STATE_DONE" && t.attempt === 1));
  });
});

Deno.test("fault: the manager SIGKILLed while tasks run, then restarted", async () => {
  await scenario("manager-sigkill-running", {}, async (s) => {
    await s.submit(8, 3);
    await s.waitForRunning(8);
    await s.cluster.manager.kill();
    s.faults++;
    await sleep(1000);
    await s.cluster.restartManager();
    const tasks = await s.verify();
    assert.ok(tasks.every((t) => t.state === "TASK_STATE_DONE" && t.attempt === 1));
  });
});

Deno.test("fault: the manager SIGKILLed while tasks are being scheduled, then restarted", async () => {
  await scenario("manager-sigkill-scheduling", {}, async (s) => {
    const submitting = (async () => {
      for (let i = 0; i < 12; i++) await s.submit(4, 0.5, true);
    })();
    await sleep(1500);
    await s.cluster.manager.kill();
    s.faults++;
    await sleep(500);
    await s.cluster.restartManager();
    await submitting;
    assert.ok(s.acknowledged.length > 0);
    await s.verify();
  });
});

Deno.test("fault: etcd stopped for some seconds, then started again", async () => {
  await scenario("etcd-outage", {}, async (s) => {
    await s.submit(8, 2);
    await s.waitForRunning(8);
    await s.etcd.stop();
    s.faults++;
    await sleep(4000); // the tasks end while the store is down
    await s.etcd.restart();
    const tasks = await s.verify();
    assert.ok(tasks.every((t) => t.state === "TASK_STATE_DONE" && t.attempt === 1));
  });
});

Deno.test("fault: a network blip shorter than lost_timeout gives up nothing", async () => {
  await scenario("blip", {}, async (s) => {
    await s.submit(8, 2);
    await s.waitForRunning(8);
    const w1 = s.cluster.workers[0];
    w1.signal("SIGSTOP");
    s.faults++;
    try {
      await sleep(SILENCE_MS + 2000); // disconnected, not lost
      await s.cluster.waitForWorkerState("w1", "disconnected", 1000);
    } finally {
      w1.signal("SIGCONT");
    }
    const tasks = await s.verify();
    assert.ok(tasks.every((t) => t.state === "TASK_STATE_DONE" && t.attempt === 1));
  });
});

Deno.test("fault: every worker silent at once gives up nothing", async () => {
  await scenario("all-silent", {}, async (s) => {
    await s.submit(8, 2);
    await s.waitForRunning(8);
    for (const worker of s.cluster.workers) worker.signal("SIGSTOP");
    s.faults++;
    try {
      await sleep(LOST_MS + 3000); // longer than lost_timeout
    } finally {
      for (const worker of s.cluster.workers) worker.signal("SIGCONT");
    }
    const tasks = await s.verify();
    assert.ok(tasks.every((t) => t.state === "TASK_STATE_DONE" && t.attempt === 1));
    assert.match(await s.cluster.manager.log(), /every worker is silent/);
  });
});
