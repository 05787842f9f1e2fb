import assert from "node:assert/strict";
import { type Logger, silentLogger } from "../shared/log.ts";
import { Agent, type AgentOptions } from "./agent.ts";
import {
  createProcessExecutor,
  type Executor,
  type ProcessResult,
  type ProcessSpec,
  type RunningProcess,
  type Termination,
} from "./executor.ts";
import { LogStore } from "./log_store.ts";
import { type LogChunkOut, LogSession } from "./log_session.ts";
import { readProcStat } from "./proc.ts";
import { QueuedRecords } from "./queued_records.ts";
import { ReportOutbox, type TaskReport } from "./report_outbox.ts";
import { type RunningRecord, RunningRecords } from "./running_records.ts";
import { eventually, groupMembers, killGroup, readJournal } from "./test_util.ts";

/** An executor whose processes end when the test says so, or when stopped. */
class FakeExecutor implements Executor {
  readonly started: { spec: ProcessSpec; stops: Termination[]; end: () => void }[] = [];

  start(spec: ProcessSpec) {
    const stops: Termination[] = [];
    let end!: () => void;
    const ended = new Promise<void>((resolve) => end = resolve);
    this.started.push({ spec, stops, end });
    const result = ended.then((): ProcessResult => ({
      outcome: stops.length > 0
        ? { kind: "exited", exitCode: 143, signal: "SIGTERM" }
        : { kind: "exited", exitCode: 0 },
      output: { stdout: "", stderr: "", stdoutTruncated: false, stderrTruncated: false },
      startedAt: 0,
      finishedAt: 1,
      ...(stops.length > 0 ? { termination: stops[0] } : {}),
    }));
    return {
      // No real process: nothing here records it (these tests give the agent no records).
      spawned: Promise.resolve({ pid: 0, startedAt: 0 }),
      result,
      stop: (termination: Termination) => {
        stops.push(termination);
        end();
      },
    };
  }
}

interface Fixture {
  agent: Agent;
  reports: TaskReport[];
  logs: LogStore;
  logsDir: string;
  records: RunningRecords;
  queuedRecords: QueuedRecords;
}

async function withAgent(
  executor: Executor,
  fn: (f: Fixture) => Promise<void>,
  more: Partial<Pick<AgentOptions, "alreadyRun" | "slots" | "queue" | "log">> & {
    /** In place of the fixture's LogStore over the state_dir's logs/ (given its options). */
    logStore?: (options: ConstructorParameters<typeof LogStore>[0]) => LogStore;
  } = {},
) {
  const dir = await Deno.makeTempDir();
  const reports: TaskReport[] = [];
  const outbox = new ReportOutbox({
    stateDir: dir,
    log: silentLogger,
    maxRetryDelayMs: 1000,
    send: (report) => {
      reports.push(report);
      return Promise.resolve();
    },
  });
  const logOptions = {
    dir: `${dir}/logs`,
    limit: 1 << 20,
    retentionMs: 3_600_000,
    log: silentLogger,
  };
  const { logStore, ...agentOptions } = more;
  const logs = logStore?.(logOptions) ?? new LogStore(logOptions);
  const records = new RunningRecords({ stateDir: dir, log: silentLogger });
  const queuedRecords = new QueuedRecords({ stateDir: dir, log: silentLogger });
  const agent = new Agent({
    executor,
    outbox,
    logs,
    records,
    queuedRecords,
    log: silentLogger,
    ...agentOptions,
  });
  try {
    await outbox.load();
    await logs.start();
    await records.start();
    await queuedRecords.start();
    await fn({ agent, reports, logs, logsDir: `${dir}/logs`, records, queuedRecords });
  } finally {
    await agent.stopAll();
    await outbox.drain(1000);
    await outbox.close();
    records.close();
    queuedRecords.close();
    await logs.close();
    await Deno.remove(dir, { recursive: true });
  }
}

const request = (taskId: string, attempt = 1): ProcessSpec => ({
  taskId,
  attempt,
  cmd: "true",
  params: [],
});

/** A logger that keeps its lines as "level message key=value...". */
function recordingLogger(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  const at = (level: string) => (message: string, fields?: Record<string, unknown>) => {
    const extra = Object.entries(fields ?? {}).filter(([, v]) => v !== undefined)
      .map(([k, v]) => ` ${k}=${String(v)}`).join("");
    lines.push(`${level} ${message}${extra}`);
  };
  return {
    lines,
    log: { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") },
  };
}

Deno.test("more running tasks than slots is a warning (the manager's mistake); all run", async () => {
  const executor = new FakeExecutor();
  const { log, lines } = recordingLogger();
  await withAgent(executor, async ({ agent, reports }) => {
    agent.run(request("t-1"));
    agent.run(request("t-2"));
    assert.equal(agent.active, 2);
    assert.deepEqual(lines.filter((l) => l.startsWith("warn")), []);
    agent.run(request("t-3"));
    await eventually(() => executor.started.length === 3, "three starts");
    assert.deepEqual(lines.filter((l) => l.startsWith("warn")), [
      "warn the manager sent more tasks than this worker has slots and queue; running them anyway " +
      "task=t-3 running=3 slots=2",
    ]);
    assert.ok(lines.includes("info running task task=t-3 attempt=1 cmd=true running=3 slots=2"));
    // A task sent again takes no second slot.
    agent.run(request("t-3"));
    assert.equal(agent.active, 3);
    // The slot is free once the process ended, even before its report is delivered.
    executor.started[0].end();
    await eventually(() => agent.active === 2, "t-1's slot freed");
    await eventually(() => reports.length === 1, "t-1's report");
    agent.run(request("t-4"));
    assert.equal(lines.filter((l) => l.startsWith("warn")).length, 2);
    assert.ok(lines.includes("info running task task=t-4 attempt=1 cmd=true running=3 slots=2"));
  }, { slots: 2, log });
});

Deno.test("tasks beyond the slots wait in the queue and start in order as slots free", async () => {
  const executor = new FakeExecutor();
  const { log, lines } = recordingLogger();
  await withAgent(executor, async ({ agent, reports }) => {
    for (const id of ["t-1", "t-2", "t-3", "t-4"]) agent.run(request(id));
    await eventually(() => executor.started.length === 2, "two starts");
    assert.equal(agent.active, 2);
    assert.equal(agent.queued, 2);
    assert.deepEqual(lines.filter((l) => l.startsWith("warn")), []);
    assert.ok(
      lines.includes("info task queued until a slot frees task=t-4 attempt=1 running=2 queued=2"),
    );
    // Held, so a reconnect tells the manager about the queued ones too.
    assert.deepEqual(agent.runningAttempts().map((r) => r.taskId).sort(), [
      "t-1",
      "t-2",
      "t-3",
      "t-4",
    ]);
    agent.run(request("t-3")); // Sent again while queued: not queued twice.
    assert.equal(agent.queued, 2);

    executor.started[1].end();
    await eventually(() => executor.started.length === 3, "the first queued task started");
    assert.equal(executor.started[2].spec.taskId, "t-3");
    assert.equal(agent.queued, 1);
    executor.started[0].end();
    await eventually(() => executor.started.length === 4, "the second queued task started");
    assert.equal(executor.started[3].spec.taskId, "t-4");
    assert.equal(agent.queued, 0);
    executor.started[2].end();
    executor.started[3].end();
    await eventually(() => reports.length === 4, "four reports");
    assert.ok(reports.every((r) => r.result.outcome.kind === "exited"));
  }, { slots: 2, queue: 2, log });
});

Deno.test("the queue is on disk while it waits: recorded on arrival, removed as each leaves", async () => {
  const executor = new FakeExecutor();
  await withAgent(executor, async ({ agent, reports, queuedRecords }) => {
    const onDisk = async () => [...(await readJournal(queuedRecords.path)).keys()].sort();
    for (const id of ["t-1", "t-2", "t-3"]) agent.run(request(id));
    agent.run(request("t-4", 2));
    await eventually(() => executor.started.length === 1, "one start");
    assert.deepEqual(await onDisk(), ["t-2.1", "t-3.1", "t-4.2"], "the started one is not queued");
    executor.started[0].end();
    await eventually(() => executor.started.length === 2, "t-2 started");
    assert.deepEqual(await onDisk(), ["t-3.1", "t-4.2"]);
    agent.cancel("t-3", 1);
    agent.unqueue("t-4", 2);
    await eventually(() => reports.length === 3, "t-1's report and two give-backs");
    assert.deepEqual(await onDisk(), [], "given back: the outbox holds them now");
  }, { slots: 1, queue: 3 });
});

Deno.test("a freed slot goes to the queued task of highest priority, then the oldest", async () => {
  const executor = new FakeExecutor();
  await withAgent(executor, async ({ agent }) => {
    agent.run(request("running"));
    agent.run(request("low"));
    agent.run({ ...request("high"), priority: 5 });
    agent.run(request("low2"));
    agent.run({ ...request("high2"), priority: 5 });
    await eventually(() => executor.started.length === 1, "one start");
    for (let i = 0; i < 4; i++) {
      executor.started[i].end();
      await eventually(() => executor.started.length === i + 2, `start ${i + 2}`);
    }
    assert.deepEqual(executor.started.map((p) => p.spec.taskId), [
      "running",
      "high",
      "high2",
      "low",
      "low2",
    ]);
  }, { slots: 1, queue: 4 });
});

Deno.test("the agent says which attempts it queues, and when each starts", async () => {
  const executor = new FakeExecutor();
  await withAgent(executor, async ({ agent }) => {
    const started: string[] = [];
    agent.onQueuedStart = (taskId, attempt) => started.push(`${taskId}.${attempt}`);
    assert.equal(agent.run(request("t-1")), false, "started at once");
    assert.equal(agent.run(request("t-2", 3)), true, "queued");
    assert.equal(agent.run(request("t-2", 3)), true, "sent again: still queued");
    assert.deepEqual(agent.queuedAttempts(), [{ taskId: "t-2", attempt: 3 }]);
    await eventually(() => executor.started.length === 1, "t-1's start");
    executor.started[0].end();
    await eventually(() => executor.started.length === 2, "t-2's start");
    assert.deepEqual(started, ["t-2.3"]);
    assert.deepEqual(agent.queuedAttempts(), []);
    agent.onQueuedStart = undefined;
  }, { slots: 1, queue: 1 });
});

/** A LogStore whose open() for one task waits until the test lets it go on. */
class GatedLogStore extends LogStore {
  waiting = false;
  #go!: () => void;
  readonly #gate = new Promise<void>((resolve) => this.#go = resolve);

  constructor(options: ConstructorParameters<typeof LogStore>[0], readonly gatedTask: string) {
    super(options);
  }

  override async open(taskId: string, attempt: number) {
    if (taskId === this.gatedTask) {
      this.waiting = true;
      await this.#gate;
    }
    return super.open(taskId, attempt);
  }

  go(): void {
    this.#go();
  }
}

Deno.test("a queued attempt leaving the queue always has a record: queued, then running", async () => {
  const fake = new FakeExecutor();
  let atSpawn: { running: RunningRecord[]; queued: string[] } | undefined;
  const seen: { queued?: QueuedRecords } = {};
  const { executor, seen: seenRunning } = executorSeeing((spec, running) => {
    if (spec.taskId === "t-2") {
      atSpawn = { running, queued: seen.queued!.records().map((r) => r.task_id) };
    }
    return fake.start(spec);
  });
  let logs: GatedLogStore | undefined;
  await withAgent(executor, async ({ agent, reports, records, queuedRecords }) => {
    seenRunning.records = records;
    seen.queued = queuedRecords;
    agent.run(request("t-1"));
    agent.run(request("t-2"));
    await eventually(() => fake.started.length === 1, "t-1's start");
    fake.started[0].end();
    // t-2 has left the queue and is opening its log files: not spawned, so not running yet.
    await eventually(() => logs!.waiting, "t-2 opening its log files");
    try {
      assert.deepEqual(queuedRecords.records().map((r) => r.task_id), ["t-2"]);
      assert.ok(!records.records().some((r) => r.task_id === "t-2"));
    } finally {
      logs!.go(); // Else the agent's stop would wait for t-2 forever.
    }
    await eventually(() => fake.started.length === 2, "t-2's start");
    assert.deepEqual(atSpawn?.queued, []);
    assert.deepEqual(atSpawn?.running.map((r) => [r.task_id, r.pid]), [["t-2", null]]);
    fake.started[1].end();
    await eventually(() => reports.length === 2, "both reports");
  }, {
    slots: 1,
    queue: 1,
    logStore: (options) => logs = new GatedLogStore(options, "t-2"),
  });
});

Deno.test("an attempt started at once is journaled as queued until its running record is written", async () => {
  const fake = new FakeExecutor();
  let atSpawn: string[] | undefined;
  const seen: { queued?: QueuedRecords } = {};
  const { executor } = executorSeeing((spec) => {
    atSpawn = seen.queued!.records().map((r) => r.task_id);
    return fake.start(spec);
  });
  let logs: GatedLogStore | undefined;
  await withAgent(executor, async ({ agent, reports, queuedRecords }) => {
    seen.queued = queuedRecords;
    assert.equal(agent.run(request("t-1")), false, "not queued: a slot is free");
    await eventually(() => logs!.waiting, "t-1 opening its log files");
    try {
      assert.deepEqual(queuedRecords.records().map((r) => r.task_id), ["t-1"]);
    } finally {
      logs!.go();
    }
    await eventually(() => fake.started.length === 1, "t-1's start");
    assert.deepEqual(atSpawn, [], "the running record took over");
    fake.started[0].end();
    await eventually(() => reports.length === 1, "the report");
    assert.deepEqual(queuedRecords.records(), []);
  }, { slots: 1, queue: 1, logStore: (options) => logs = new GatedLogStore(options, "t-1") });
});

Deno.test("a full queue: more is the manager's mistake, run anyway with a warning", async () => {
  const executor = new FakeExecutor();
  const { log, lines } = recordingLogger();
  await withAgent(executor, async ({ agent }) => {
    for (const id of ["t-1", "t-2", "t-3"]) agent.run(request(id));
    await eventually(() => executor.started.length === 2, "two starts");
    assert.equal(agent.queued, 1);
    assert.deepEqual(
      executor.started.map((p) => p.spec.taskId),
      ["t-1", "t-3"],
      "the queued task waits; the one beyond the queue runs",
    );
    assert.equal(lines.filter((l) => l.startsWith("warn")).length, 1);
  }, { slots: 1, queue: 1, log });
});

Deno.test("a cancelled queued task is given back unstarted, cancelled", async () => {
  const executor = new FakeExecutor();
  await withAgent(executor, async ({ agent, reports }) => {
    agent.run(request("t-1"));
    agent.run(request("t-2", 3));
    assert.equal(agent.queued, 1);
    agent.cancel("t-2", 3);
    await eventually(() => reports.length === 1, "the report");
    assert.deepEqual(reports[0].result.outcome, {
      kind: "not_started",
      reason: "cancelled while queued",
    });
    assert.equal(reports[0].result.termination, "cancelled");
    assert.equal(reports[0].attempt, 3);
    assert.equal(agent.queued, 0);
    await eventually(() => executor.started.length === 1, "t-1's start");
    executor.started[0].end();
    await eventually(() => reports.length === 2, "t-1's report");
    assert.equal(executor.started.length, 1, "the cancelled task never started");
  }, { slots: 1, queue: 1 });
});

Deno.test("unqueue gives back a queued attempt and leaves a started one alone", async () => {
  const executor = new FakeExecutor();
  await withAgent(executor, async ({ agent, reports }) => {
    agent.run(request("t-1"));
    agent.run(request("t-2", 2));
    await eventually(() => executor.started.length === 1, "t-1's start");
    agent.unqueue("t-1", 1); // Started: left alone.
    agent.unqueue("t-2", 1); // Another attempt: left alone.
    assert.equal(agent.queued, 1);
    assert.deepEqual(executor.started[0].stops, []);
    agent.unqueue("t-2", 2);
    await eventually(() => reports.length === 1, "the give-back");
    assert.equal(reports[0].taskId, "t-2");
    assert.deepEqual(reports[0].result.outcome, {
      kind: "not_started",
      reason: "moved to a slot free elsewhere",
    });
    assert.equal(reports[0].result.termination, undefined, "nobody stopped it");
    executor.started[0].end();
    await eventually(() => reports.length === 2, "t-1's report");
    assert.equal(executor.started.length, 1, "t-2 never started here");
  }, { slots: 1, queue: 1 });
});

Deno.test("unqueue takes the manager's reason for the give-back", async () => {
  const executor = new FakeExecutor();
  await withAgent(executor, async ({ agent, reports }) => {
    agent.run(request("t-1"));
    agent.run(request("t-2"));
    agent.unqueue("t-2", 1, "its worker is draining");
    await eventually(() => reports.length === 1, "the give-back");
    assert.deepEqual(reports[0].result.outcome, {
      kind: "not_started",
      reason: "its worker is draining",
    });
  }, { slots: 1, queue: 1 });
});

Deno.test("a stopping worker gives its queued tasks back before stopping the running", async () => {
  const executor = new FakeExecutor();
  await withAgent(executor, async ({ agent, reports }) => {
    for (const id of ["t-1", "t-2", "t-3"]) agent.run(request(id));
    await eventually(() => executor.started.length === 1, "one start");
    await agent.stopAll();
    await eventually(() => reports.length === 3, "three reports");
    assert.equal(executor.started.length, 1, "no queued task started in a stopped one's slot");
    const byTask = Object.fromEntries(reports.map((r) => [r.taskId, r.result]));
    assert.equal(byTask["t-1"].termination, "worker_stopping");
    assert.equal(byTask["t-1"].outcome.kind, "exited");
    for (const id of ["t-2", "t-3"]) {
      assert.deepEqual(byTask[id].outcome, { kind: "not_started", reason: "the worker stopped" });
      assert.equal(byTask[id].termination, "worker_stopping");
    }
  }, { slots: 1, queue: 2 });
});

Deno.test("a cancel stops the running attempt and its report says cancelled", async () => {
  const executor = new FakeExecutor();
  await withAgent(executor, async ({ agent, reports }) => {
    agent.run(request("t-1", 2));
    await eventually(() => executor.started.length === 1, "the start");
    agent.cancel("t-1", 1); // Another attempt: ignored.
    agent.cancel("t-9", 2); // Unknown task: ignored.
    assert.deepEqual(executor.started[0].stops, []);
    agent.cancel("t-1", 2);
    await eventually(() => reports.length === 1, "the report");
    assert.equal(reports[0].result.termination, "cancelled");
    assert.equal(agent.running, 0);
    agent.cancel("t-1", 2); // Finished: ignored.
    assert.deepEqual(executor.started[0].stops, ["cancelled"]);
  });
});

Deno.test("a stopping worker stops every task and reports them as worker stopping", async () => {
  const executor = new FakeExecutor();
  await withAgent(executor, async ({ agent, reports }) => {
    agent.run(request("t-1"));
    agent.run(request("t-2"));
    agent.run(request("t-1")); // Sent again: not run twice.
    await eventually(() => executor.started.length === 2, "both starts");
    await agent.stopAll();
    assert.equal(agent.running, 0);
    await eventually(() => reports.length === 2, "both reports");
    assert.deepEqual(reports.map((r) => r.result.termination), [
      "worker_stopping",
      "worker_stopping",
    ]);
  });
});

Deno.test("a stop asked for before the process started reaches it once it starts", async () => {
  const executor = new FakeExecutor();
  await withAgent(executor, async ({ agent, reports }) => {
    agent.run(request("t-1"));
    agent.cancel("t-1", 1); // The log files are still being opened.
    await eventually(() => reports.length === 1, "the report");
    assert.equal(reports[0].result.termination, "cancelled");
  });
});

Deno.test("a follow receives a running task's lines as it prints them, then eof", async () => {
  const executor = createProcessExecutor({ outputLimit: 1024, workerId: "w-test" });
  await withAgent(executor, async ({ agent, reports, logs, logsDir }) => {
    const chunks: { chunk: LogChunkOut; at: number }[] = [];
    const session = new LogSession({
      store: logs,
      send: (chunk) => chunks.push({ chunk, at: Date.now() }),
      log: silentLogger,
    });
    try {
      agent.run({
        ...request("t-live"),
        cmd: "sh",
        params: ["-c", "for i in 1 2 3 4 5 6 7 8; do echo line $i; sleep 0.1; done"],
      });
      // The log exists once the agent has opened it.
      await eventually(async () => {
        try {
          await Deno.stat(`${logsDir}/t-live.1.stdout`);
          return true;
        } catch {
          return false;
        }
      }, "the log file");
      session.request({
        requestId: 1n,
        taskId: "t-live",
        attempt: 1,
        follow: true,
        stderr: false,
        tailLines: 0,
      });
      await eventually(() => chunks.some((c) => c.chunk.eof), "eof", 10_000);
      const data = chunks.filter((c) => c.chunk.data.length > 0);
      // A line comes every 100 ms: most of them must have come well before the end.
      const endedAt = chunks.at(-1)!.at;
      const early = data.filter((c) => c.at <= endedAt - 300);
      assert.ok(early.length >= 3, `${early.length} chunks came 300 ms or more before the end`);
      const all = data.map((c) => new TextDecoder().decode(c.chunk.data)).join("");
      assert.equal(all, [1, 2, 3, 4, 5, 6, 7, 8].map((i) => `line ${i}\n`).join(""));
      assert.equal(chunks.at(-1)!.chunk.eof, true);
      assert.equal(chunks.filter((c) => c.chunk.eof).length, 1);
      await eventually(() => reports.length === 1, "the report");
    } finally {
      session.close();
    }
  });
});

Deno.test("an attempt counts as running from its receipt until its report is in the outbox", async () => {
  const executor = new FakeExecutor();
  await withAgent(executor, async ({ agent, reports }) => {
    agent.run(request("t-1", 2));
    // Still opening its log files: already running as far as the manager is told.
    assert.deepEqual(agent.runningAttempts(), [{ taskId: "t-1", attempt: 2 }]);
    await eventually(() => executor.started.length === 1, "the start");
    executor.started[0].end();
    await eventually(() => reports.length === 1, "the report");
    await eventually(() => agent.runningAttempts().length === 0, "the end of the attempt");
  });
});

Deno.test("attempts a previous life ran are not run again", async () => {
  const executor = new FakeExecutor();
  await withAgent(executor, async ({ agent }) => {
    agent.run(request("t-old", 3));
    assert.equal(agent.running, 0);
    agent.run(request("t-old", 4));
    await eventually(() => executor.started.length === 1, "the new attempt's start");
    assert.equal(executor.started[0].spec.attempt, 4);
  }, { alreadyRun: [{ taskId: "t-old", attempt: 3 }] });
});

/** Runs `spawn` for each start, with the agent's running records as they are at that moment. */
function executorSeeing(spawn: (spec: ProcessSpec, atSpawn: RunningRecord[]) => RunningProcess) {
  const seen: { records?: RunningRecords } = {};
  const executor: Executor = { start: (spec) => spawn(spec, seen.records?.records() ?? []) };
  return { executor, seen };
}

Deno.test("an attempt is recorded in state_dir/running.jsonl before its process is spawned", async () => {
  const fake = new FakeExecutor();
  let atSpawn: RunningRecord[] = [];
  const { executor, seen } = executorSeeing((spec, records) => {
    atSpawn = records;
    return fake.start(spec);
  });
  await withAgent(executor, async ({ agent, reports, records }) => {
    seen.records = records;
    agent.run({ ...request("t-1", 2), killTimeoutMs: 1500 });
    await eventually(() => fake.started.length === 1, "the start");
    // A SIGKILL right after the spawn leaves this for the next life, which then looks for the
    // attempt's processes by their environment.
    assert.deepEqual(
      atSpawn.map((r) => [r.task_id, r.attempt, r.pid, r.kill_timeout_ms]),
      [["t-1", 2, null, 1500]],
    );
    fake.started[0].end();
    await eventually(() => reports.length === 1, "the report");
    await eventually(async () => (await records.list()).length === 0, "the record's removal");
  });
});

Deno.test("the record begun for a process that could not start goes once its report is kept", async () => {
  const { executor, seen } = executorSeeing(() => ({
    spawned: Promise.resolve(undefined),
    result: Promise.resolve({
      outcome: { kind: "start_failed", error: "no such command" },
      output: { stdout: "", stderr: "", stdoutTruncated: false, stderrTruncated: false },
      startedAt: 0,
      finishedAt: 1,
    }),
    stop: () => {},
  }));
  await withAgent(executor, async ({ agent, reports, records }) => {
    seen.records = records;
    agent.run(request("t-1"));
    await eventually(() => reports.length === 1, "the report");
    assert.equal(reports[0].result.outcome.kind, "start_failed");
    await eventually(() => agent.running === 0, "the end of the attempt");
    assert.deepEqual(await records.list(), [], "no record for a next life to report again");
  });
});

Deno.test("a running process is recorded in state_dir/running.jsonl until its report is kept", async () => {
  const executor = createProcessExecutor({ outputLimit: 1024, workerId: "w-test" });
  await withAgent(executor, async ({ agent, reports, records }) => {
    let pid: number | undefined;
    try {
      agent.run({
        ...request("t-rec", 2),
        cmd: "sh",
        params: ["-c", "sleep 100"],
        killTimeoutMs: 1500,
      });
      let record: RunningRecord | undefined;
      // The record begun before the spawn has no pid; the one written after it has.
      await eventually(async () => (record = (await records.list())[0])?.pid != null, "record");
      pid = record!.pid!;
      const stat = await readProcStat(pid);
      assert.ok(stat, "the recorded pid is a living process");
      assert.equal(stat.pgrp, pid, "the pid is its own process group");
      // The spawn's range of start times, which holds the one /proc gives.
      assert.ok(record!.start_time !== null && record!.start_time <= stat.startTime);
      assert.ok(typeof record!.start_time_latest === "number");
      assert.ok(stat.startTime <= record!.start_time_latest);
      assert.equal(record!.task_id, "t-rec");
      assert.equal(record!.attempt, 2);
      assert.equal(record!.kill_timeout_ms, 1500);
      assert.ok(Math.abs(record!.started_at - Date.now()) < 10_000);
      assert.match(record!.boot_id ?? "", /^[0-9a-f-]{36}$/);
      const onDisk = await readJournal(records.path);
      assert.deepEqual([...onDisk.keys()], ["t-rec.2"]);
      assert.deepEqual(onDisk.get("t-rec.2"), record);

      agent.cancel("t-rec", 2);
      await eventually(() => reports.length === 1, "the report");
      await eventually(() => agent.running === 0, "the end of the attempt");
      assert.deepEqual(await records.list(), []);
      assert.deepEqual([...(await readJournal(records.path)).keys()], []);
      assert.deepEqual(await groupMembers(pid), []);
    } finally {
      killGroup(pid);
    }
  });
});
