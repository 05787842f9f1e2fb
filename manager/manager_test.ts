import { create } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import assert from "node:assert/strict";
import { type Clock as FakeClock, createClock } from "@sinonjs/fake-timers";
import { silentLogger } from "../shared/log.ts";
import { createMemoryStore, type MemoryStore } from "../shared/store/memory_store.ts";
import { StoreUnavailableError } from "../shared/store/store.ts";
import type { TaskRecord, TaskSpec, WorkerRecord } from "../shared/task.ts";
import { LogChunkSchema } from "../shared/gen/goschedule/v1/goschedule_pb.ts";
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from "./errors.ts";
import { Manager, type TaskReport } from "./manager.ts";
import type { WorkerIntroduction } from "./worker_registry.ts";
import type { Outgoing, WorkerSession } from "./worker_session.ts";
import { clockOf } from "../shared/fake_clock.ts";

const START = Date.UTC(2025, 0, 1, 12);
const PING_MS = 1_000;
const SILENCE_MS = 3_000;
const ACK_MS = 2_000;
const LOST_MS = 10_000;
const SCHEDULE_MS = 20_000;

const INTRO: WorkerIntroduction = {
  hostname: "box.example",
  capabilities: { cpuCores: 4, memoryBytes: 8 * 1024 ** 3, os: "linux", arch: "x86_64" },
  version: "0.1.0",
};

/** Stands in for Math.random: distinct values (so task ids differ), the same every run. */
function fixedRandom(): () => number {
  let n = 0;
  return () => (n++ * 0.6180339887) % 1;
}

/** A session with every message the manager sent it, collected as they are sent. */
interface Recorded {
  session: WorkerSession;
  messages: Outgoing[];
  /** Settles once the session's queue is closed and drained. */
  drained: Promise<void>;
}

/** A started Manager on a memory store and a fake clock; disposing it stops everything. */
class Harness implements AsyncDisposable {
  readonly manager: Manager;
  readonly #recorded: Recorded[] = [];

  private constructor(
    readonly store: MemoryStore,
    readonly fake: FakeClock,
    overrides: Partial<ConstructorParameters<typeof Manager>[0]>,
  ) {
    this.manager = new Manager({
      store,
      log: silentLogger,
      pingIntervalMs: PING_MS,
      silenceTimeoutMs: SILENCE_MS,
      lostTimeoutMs: LOST_MS,
      scheduleTimeoutMs: SCHEDULE_MS,
      ackTimeoutMs: ACK_MS,
      scheduler: "round-robin",
      clock: clockOf(fake),
      random: fixedRandom(),
      ...overrides,
    });
  }

  static async start(
    store: MemoryStore = createMemoryStore(),
    fake: FakeClock = createClock(START),
    overrides: Partial<ConstructorParameters<typeof Manager>[0]> = {},
  ): Promise<Harness> {
    const harness = new Harness(store, fake, overrides);
    await harness.manager.start();
    return harness;
  }

  /** Opens a session for `workerId` and records what it is sent. */
  async connect(
    workerId: string,
    held?: Parameters<Manager["openSession"]>[3],
    intro: WorkerIntroduction = INTRO,
  ): Promise<Recorded> {
    const session = await this.manager.openSession(workerId, "10.0.0.9:40000", intro, held);
    const messages: Outgoing[] = [];
    const drained = (async () => {
      for await (const message of session.outgoing) messages.push(message);
    })();
    const recorded = { session, messages, drained };
    this.#recorded.push(recorded);
    return recorded;
  }

  /**
   * Lets async work that is already under way finish (one real macrotask, in which every
   * queued promise job runs); no fake time passes.
   */
  async settle(): Promise<void> {
    await this.fake.tickAsync(0);
  }

  /** Advances fake time, firing timers (and the async work they start) on the way. */
  async advance(ms: number): Promise<void> {
    await this.fake.tickAsync(ms);
  }

  /**
   * The task as the manager sees it, checked against the store. Acknowledgements reach the
   * store late on purpose (TaskBook's deferred writes, tested on their own); they are written
   * first, so that what is compared is the state the store will have.
   */
  async task(id: string): Promise<TaskRecord> {
    await this.manager.writeDeferred();
    const fromManager = await this.manager.getTask(id);
    const stored = await this.store.getTask(id);
    assert.deepEqual(stored?.value, fromManager, "the manager and its store agree");
    return fromManager;
  }

  worker(id: string): WorkerRecord | undefined {
    return this.manager.listWorkers().find((w) => w.worker.id === id)?.worker;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.manager.stop();
    await Promise.all(this.#recorded.map((r) => r.drained));
    assert.equal(this.fake.countTimers(), 0, "stop() leaves no timer behind");
  }
}

/** The kinds of message a session was sent, in order. */
function kinds(recorded: Recorded): string[] {
  return recorded.messages.map((m) => m.msg?.case ?? "none");
}

function runs(recorded: Recorded) {
  return recorded.messages.flatMap((m) => m.msg?.case === "run" ? [m.msg.value] : []);
}

function pending(
  id: string,
  workerId: string,
  extra: Partial<TaskRecord> = {},
): TaskRecord {
  return {
    id,
    cmd: "echo",
    params: ["hello"],
    state: "pending",
    workerId,
    attempt: 1,
    stdout: "",
    stderr: "",
    stdoutTruncated: false,
    stderrTruncated: false,
    createdAt: START,
    assignedAt: START,
    ...extra,
  };
}

const ECHO = { cmd: "echo", params: ["hello"] };

/** A task sent to w1 at START that w1 never acknowledged, dead at `finishedAt`. */
function ackTimedOut(id: string, finishedAt: number): TaskRecord {
  return ended(
    pending(id, "w1", {
      state: "dead",
      deadReason: "worker w1 did not acknowledge within 2s",
      finishedAt,
    }),
    "ack timeout",
  );
}

/** The record with its current attempt's end appended to its history. */
function ended(task: TaskRecord, outcome: string): TaskRecord {
  const attempt = Object.fromEntries(
    Object.entries({
      attempt: task.attempt,
      workerId: task.workerId,
      assignedAt: task.assignedAt,
      scheduledAt: task.scheduledAt,
      finishedAt: task.finishedAt,
      outcome,
    }).filter(([, v]) => v !== undefined),
  ) as unknown as NonNullable<TaskRecord["attempts"]>[number];
  return { ...task, attempts: [...(task.attempts ?? []), attempt] };
}

/** A worker's report that it gave an attempt back from its queue, unstarted. */
function notStarted(taskId: string, workerId: string, reason: string, attempt = 1): TaskReport {
  return {
    workerId,
    taskId,
    attempt,
    outcome: { kind: "not_started", reason },
    output: { stdout: "", stderr: "", stdoutTruncated: false, stderrTruncated: false },
  };
}

function exited(
  taskId: string,
  workerId: string,
  exitCode: number,
  attempt = 1,
): TaskReport {
  return {
    workerId,
    taskId,
    attempt,
    outcome: { kind: "exited", exitCode },
    output: { stdout: "out\n", stderr: "err\n", stdoutTruncated: false, stderrTruncated: true },
  };
}

Deno.test("with no worker connected tasks wait, and are dead after schedule_timeout", async () => {
  await using h = await Harness.start();
  const tasks = await h.manager.schedule([ECHO, { cmd: "sleep", params: ["1"] }]);
  assert.ok(tasks[0].id < tasks[1].id, "ids sort in the order given");
  assert.deepEqual(
    tasks.map((t) => [t.state, t.placement]),
    [["pending", "no worker is connected"], ["pending", "no worker is connected"]],
  );
  assert.equal((await h.store.getTask(tasks[0].id))?.value.placement, "no worker is connected");
  await h.advance(SCHEDULE_MS - 1);
  assert.equal((await h.task(tasks[0].id)).state, "pending");
  await h.advance(1);
  const dead = await h.task(tasks[0].id);
  assert.deepEqual([dead.state, dead.deadReason, dead.finishedAt], [
    "dead",
    "not placed within 20s: no worker is connected",
    START + SCHEDULE_MS,
  ]);
  assert.equal(dead.attempts, undefined, "it never had an attempt");
});

Deno.test("a waiting task is placed as soon as a worker connects", async () => {
  await using h = await Harness.start();
  const [task] = await h.manager.schedule([ECHO]);
  await h.advance(1000);
  const w1 = await h.connect("w1");
  await h.settle();
  assert.deepEqual(runs(w1).map((r) => r.taskId), [task.id]);
  const placed = await h.task(task.id);
  assert.deepEqual([placed.workerId, placed.attempt, placed.placement], ["w1", 1, undefined]);
  await h.manager.acknowledge(w1.session, task.id, 1);
  await keepHearing(h, SCHEDULE_MS, w1);
  assert.equal((await h.task(task.id)).state, "scheduled", "no schedule timeout once placed");
});

Deno.test("schedule places tasks round-robin and sends each worker a run message", async () => {
  await using h = await Harness.start();
  const w1 = await h.connect("w1");
  const w2 = await h.connect("w2");
  const tasks = await h.manager.schedule([
    ECHO,
    { cmd: "sleep", params: ["2"] },
    { cmd: "true", params: [] },
  ]);
  await h.settle();
  assert.deepEqual(tasks.map((t) => [t.workerId, t.state, t.attempt]), [
    ["w1", "pending", 1],
    ["w2", "pending", 1],
    ["w1", "pending", 1],
  ]);
  assert.deepEqual(tasks[0], pending(tasks[0].id, "w1"));
  assert.deepEqual((await h.store.listTasks()).map((v) => v.value), tasks);

  assert.deepEqual(w1.messages[0], {
    msg: { case: "welcome", value: { pingIntervalMs: PING_MS, acceptsReports: true } },
  });
  assert.deepEqual(kinds(w1), ["welcome", "run", "run"]);
  assert.deepEqual(kinds(w2), ["welcome", "run"]);
  assert.deepEqual(runs(w1), [
    { taskId: tasks[0].id, attempt: 1, cmd: "echo", params: ["hello"] },
    { taskId: tasks[2].id, attempt: 1, cmd: "true", params: [] },
  ]);
  assert.deepEqual(runs(w2), [{ taskId: tasks[1].id, attempt: 1, cmd: "sleep", params: ["2"] }]);
  const [full] = await h.manager.schedule([{
    cmd: "env",
    params: [],
    env: { GREETING: "hi" },
    cwd: "/tmp",
    timeoutMs: 30_000,
    killTimeoutMs: 2500,
  }]);
  assert.deepEqual(runs(w2)[1], {
    taskId: full.id,
    attempt: 1,
    cmd: "env",
    params: [],
    env: { GREETING: "hi" },
    cwd: "/tmp",
    timeout: durationFromMs(30_000),
    killTimeout: durationFromMs(2500),
  });
  assert.deepEqual(
    h.manager.listWorkers().map((w) => [w.worker.id, w.worker.state, w.runningTasks]),
    [["w1", "connected", 2], ["w2", "connected", 2]],
  );
});

Deno.test("a task is pending until acknowledged, scheduled after, done on its report", async () => {
  await using h = await Harness.start();
  const w1 = await h.connect("w1");
  await h.connect("w2");
  const [t1, t2] = await h.manager.schedule([ECHO, ECHO]);
  assert.deepEqual(await h.task(t1.id), pending(t1.id, "w1"));

  await h.advance(100);
  await h.manager.acknowledge(w1.session, t1.id, 1);
  const scheduled = pending(t1.id, "w1", { state: "scheduled", scheduledAt: START + 100 });
  assert.deepEqual(await h.task(t1.id), scheduled);
  // A repeated acknowledgement changes nothing.
  const revision = (await h.store.getTask(t1.id))?.revision;
  await h.manager.acknowledge(w1.session, t1.id, 1);
  assert.equal((await h.store.getTask(t1.id))?.revision, revision);

  await h.advance(400);
  await h.manager.report(exited(t1.id, "w1", 3));
  const done: TaskRecord = {
    ...scheduled,
    state: "done",
    exitCode: 3,
    stdout: "out\n",
    stderr: "err\n",
    stdoutTruncated: false,
    stderrTruncated: true,
    finishedAt: START + 500,
  };
  assert.deepEqual(await h.task(t1.id), ended(done, "exit code 3"));
  const stored = await h.store.getTask(t1.id);

  // The same report again (a worker resending after a reconnect) is accepted and changes nothing.
  await h.advance(100);
  await h.manager.report(exited(t1.id, "w1", 3));
  assert.deepEqual(await h.store.getTask(t1.id), stored);

  // Reports from another worker, another attempt, or with another result are refused.
  await assert.rejects(h.manager.report(exited(t1.id, "w2", 3)), {
    name: "FailedPreconditionError",
    message:
      `task ${t1.id} attempt 1 on worker w2 is stale: the task is held by attempt 1 on worker w1`,
  });
  await assert.rejects(h.manager.report(exited(t1.id, "w1", 3, 2)), FailedPreconditionError);
  await assert.rejects(h.manager.report(exited(t1.id, "w1", 0)), {
    name: "FailedPreconditionError",
    message: `task ${t1.id} is already done with exit code 3`,
  });
  assert.deepEqual(await h.store.getTask(t1.id), stored);

  // A stale report for a task still running elsewhere leaves it alone too.
  const t2Before = await h.store.getTask(t2.id);
  await assert.rejects(h.manager.report(exited(t2.id, "w1", 0)), FailedPreconditionError);
  assert.deepEqual(await h.store.getTask(t2.id), t2Before);
  assert.deepEqual(
    h.manager.listWorkers().map((w) => [w.worker.id, w.runningTasks]),
    [["w1", 0], ["w2", 1]],
  );
});

Deno.test("a process that cannot start makes its task dead with the error", async () => {
  await using h = await Harness.start();
  const w1 = await h.connect("w1");
  const [task] = await h.manager.schedule([{ cmd: "nosuch", params: [] }]);
  await h.advance(50);
  const report: TaskReport = {
    workerId: "w1",
    taskId: task.id,
    attempt: 1,
    outcome: { kind: "start_failed", error: "nosuch: command not found" },
    output: { stdout: "", stderr: "", stdoutTruncated: false, stderrTruncated: false },
  };
  await h.manager.report(report);
  const dead = pending(task.id, "w1", {
    cmd: "nosuch",
    params: [],
    state: "dead",
    deadReason: "cannot start: nosuch: command not found",
    finishedAt: START + 50,
  });
  assert.deepEqual(
    await h.task(task.id),
    ended(dead, "cannot start: nosuch: command not found"),
  );
  const stored = await h.store.getTask(task.id);
  await h.manager.report(report);
  await h.manager.acknowledge(w1.session, task.id, 1);
  assert.deepEqual(await h.store.getTask(task.id), stored);
  // No acknowledgement timer is left to fire on it.
  await h.advance(ACK_MS);
  assert.deepEqual(await h.store.getTask(task.id), stored);
});

Deno.test("no acknowledgement within ack_timeout makes the task dead, for good", async () => {
  await using h = await Harness.start();
  const w1 = await h.connect("w1");
  const [task] = await h.manager.schedule([ECHO]);

  await h.advance(ACK_MS - 1);
  assert.deepEqual(await h.task(task.id), pending(task.id, "w1"));
  await h.advance(1);
  assert.deepEqual(await h.task(task.id), ackTimedOut(task.id, START + ACK_MS));
  assert.equal(h.manager.listWorkers()[0].runningTasks, 0);

  // A late acknowledgement is refused and does not bring the task back; nor does a result.
  const stored = await h.store.getTask(task.id);
  await h.manager.acknowledge(w1.session, task.id, 1);
  await assert.rejects(h.manager.report(exited(task.id, "w1", 0)), {
    name: "FailedPreconditionError",
    message: `task ${task.id} is already dead: worker w1 did not acknowledge within 2s`,
  });
  assert.deepEqual(await h.store.getTask(task.id), stored);
});

Deno.test("an acknowledgement timeout that cannot be stored is retried, not forgotten", async () => {
  await using h = await Harness.start();
  const w1 = await h.connect("w1");
  const [task] = await h.manager.schedule([ECHO]);
  await h.advance(PING_MS);
  h.manager.heard(w1.session);
  h.store.unavailable = true;
  await h.advance(PING_MS); // The deadline passes while the store is down.
  h.manager.heard(w1.session);
  h.store.unavailable = false;
  assert.equal((await h.task(task.id)).state, "pending");
  // Retried one ack_timeout after the failed attempt.
  await h.advance(PING_MS);
  h.manager.heard(w1.session);
  await h.advance(PING_MS - 1);
  assert.equal((await h.task(task.id)).state, "pending");
  await h.advance(1);
  assert.deepEqual(
    await h.task(task.id),
    ackTimedOut(task.id, START + 2 * ACK_MS),
  );
});

Deno.test("a silent worker's stream is dropped with its connection, not ended with a goodbye", async () => {
  await using h = await Harness.start();
  const calls: string[] = [];
  const sink = {
    write: () => {},
    close: () => void calls.push("close"),
    drop: () => void calls.push("drop"),
  };
  const session = await h.manager.openSession("w1", "10.0.0.9:40000", INTRO, undefined, sink);
  await h.advance(SILENCE_MS + PING_MS);
  assert.equal(session.open, false);
  assert.deepEqual(calls, ["drop"]);
  assert.equal(h.worker("w1")?.state, "disconnected");
  // A stream the manager ends for any other reason still says goodbye.
  const other = await h.manager.openSession("w2", "10.0.0.9:40001", INTRO, undefined, sink);
  await h.manager.closeSession(other, "the manager is stopping");
  assert.deepEqual(calls, ["drop", "close"]);
});

Deno.test("sessions are pinged; a silent one is closed and its worker disconnected", async () => {
  await using h = await Harness.start();
  const quiet = await h.connect("w1");
  const chatty = await h.connect("w2");
  for (let i = 0; i < 3; i++) {
    await h.advance(PING_MS);
    h.manager.heard(chatty.session);
  }
  assert.deepEqual(kinds(quiet), ["welcome", "ping", "ping", "ping"]);
  assert.deepEqual(
    quiet.messages.slice(1).map((m) => m.msg?.case === "ping" && m.msg.value.seq),
    [1n, 2n, 3n],
  );
  // Silent for exactly silence_timeout is not yet too long.
  assert.equal(h.worker("w1")?.state, "connected");
  assert.ok(quiet.session.open);

  await h.advance(PING_MS);
  h.manager.heard(chatty.session);
  assert.equal(quiet.session.open, false);
  assert.equal(quiet.session.error, undefined);
  const disconnected: WorkerRecord = {
    id: "w1",
    hostname: "box.example",
    address: "10.0.0.9:40000",
    state: "disconnected",
    capabilities: INTRO.capabilities,
    version: "0.1.0",
    connectedAt: START,
    lastSeenAt: START,
    disconnectedAt: START + 4 * PING_MS,
  };
  assert.deepEqual(h.worker("w1"), disconnected);
  assert.deepEqual((await h.store.getWorker("w1"))?.value, disconnected);
  const { disconnectedAt: _, ...connected } = disconnected;
  assert.deepEqual(h.worker("w2"), {
    ...connected,
    id: "w2",
    state: "connected",
    lastSeenAt: START + 4 * PING_MS,
  });
  assert.ok(chatty.session.open);

  await h.advance(PING_MS);
  h.manager.heard(chatty.session);
  assert.equal(kinds(quiet).length, 5, "a closed session is not pinged");
  assert.deepEqual(kinds(chatty), ["welcome", "ping", "ping", "ping", "ping", "ping"]);
  assert.equal(h.worker("w2")?.state, "connected");
  // New tasks go to the worker that is still there.
  const [task] = await h.manager.schedule([ECHO]);
  assert.equal(task.workerId, "w2");
});

Deno.test("an idle worker is asked for a pong only as often as silence_timeout needs", async () => {
  /** The pings sent in `rounds` rounds, answered only where a pong is asked for. */
  const answered = async (h: Harness, w: Recorded, rounds: number) => {
    const asked: boolean[] = [];
    for (let i = 0; i < rounds; i++) {
      const seen = w.messages.length;
      await h.advance(PING_MS);
      for (const m of w.messages.slice(seen)) {
        if (m.msg?.case !== "ping") continue;
        asked.push(!m.msg.value.noPong);
        if (!m.msg.value.noPong) h.manager.heard(w.session);
      }
    }
    return asked;
  };
  {
    // The defaults' proportion, five ping intervals: every other round asks.
    await using h = await Harness.start(undefined, undefined, { silenceTimeoutMs: 5 * PING_MS });
    const w1 = await h.connect("w1");
    const asked = await answered(h, w1, 20);
    assert.deepEqual(asked.slice(0, 6), [false, true, false, true, false, true]);
    assert.equal(asked.length, 20, "pinged every round all the same");
    assert.ok(w1.session.open, "answering what was asked keeps it connected");
    assert.equal(h.worker("w1")?.state, "connected");

    // One that stops answering is still given up after silence_timeout, not before.
    const quiet = await h.connect("w2");
    await h.advance(5 * PING_MS);
    assert.ok(quiet.session.open);
    await h.advance(PING_MS);
    assert.equal(quiet.session.open, false);
  }
  {
    // With no room to spare (the harness's three intervals), every ping asks.
    await using h = await Harness.start();
    const w1 = await h.connect("w1");
    assert.deepEqual(await answered(h, w1, 6), [true, true, true, true, true, true]);
    assert.ok(w1.session.open);
  }
});

Deno.test("a second session with the same worker id replaces the first", async () => {
  await using h = await Harness.start();
  const first = await h.connect("w1");
  await h.advance(100);
  const second = await h.connect("w1");
  assert.equal(first.session.open, false);
  assert.ok(second.session.open);
  assert.equal(h.manager.listWorkers().length, 1);

  const [task] = await h.manager.schedule([ECHO]);
  await h.settle();
  assert.deepEqual(kinds(first), ["welcome"]);
  assert.deepEqual(runs(second).map((r) => r.taskId), [task.id]);

  // The old stream's handler ends later: that must not disconnect the worker.
  await h.manager.closeSession(first.session, "stream ended");
  const connected = { ...h.worker("w1")! };
  assert.equal(connected.state, "connected");
  assert.equal(connected.connectedAt, START + 100);
  assert.equal((await h.store.getWorker("w1"))?.value.state, "connected");
  await h.manager.acknowledge(second.session, task.id, 1);
  assert.equal((await h.task(task.id)).state, "scheduled");

  await h.manager.closeSession(second.session, "stream ended");
  assert.equal(h.worker("w1")?.state, "disconnected");
  assert.equal((await h.store.getWorker("w1"))?.value.disconnectedAt, START + 100);
});

Deno.test("a restarted manager keeps tasks, workers and acknowledgement deadlines", async () => {
  const store = createMemoryStore();
  const fake = createClock(START);
  let before: TaskRecord[];
  let t1: TaskRecord, t2: TaskRecord;
  {
    await using first = await Harness.start(store, fake);
    const w1 = await first.connect("w1");
    const w2 = await first.connect("w2");
    [t1, t2] = await first.manager.schedule([ECHO, ECHO]);
    await first.manager.acknowledge(w2.session, t2.id, 1);
    await first.advance(PING_MS);
    first.manager.heard(w1.session);
    first.manager.heard(w2.session);
    await first.advance(PING_MS / 2);
    before = await first.manager.listTasks({});
    // Disposing stops the manager as a restart would: no stream ends cleanly.
  }
  const restartedAt = START + 1_500;
  assert.equal(fake.now, restartedAt);

  await using h = await Harness.start(store.reopen(), fake);
  // w2 comes back at once, still running t2; w1 does not come back.
  const w2 = await h.connect("w2", { running: [{ taskId: t2.id, attempt: 1 }], unreported: [] });
  assert.deepEqual(await h.manager.listTasks({}), before);
  assert.deepEqual(before.map((t) => t.state), ["pending", "scheduled"]);
  const storedWorkers = (await store.listWorkers()).map((v) => v.value);
  assert.deepEqual(h.manager.listWorkers(), [
    { worker: storedWorkers[0], runningTasks: 1, used: { cpu: 0, memoryBytes: 0, slots: 1 } },
    { worker: storedWorkers[1], runningTasks: 1, used: { cpu: 0, memoryBytes: 0, slots: 1 } },
  ]);
  assert.deepEqual(storedWorkers.map((w) => [w.id, w.state]), [
    ["w1", "connected"],
    ["w2", "connected"],
  ]);

  // t1's deadline runs from its stored assignment time, not from the restart.
  await h.advance(START + ACK_MS - restartedAt - 1);
  assert.equal((await h.task(t1.id)).state, "pending");
  await h.advance(1);
  assert.deepEqual(
    await h.task(t1.id),
    ackTimedOut(t1.id, START + ACK_MS),
  );

  // w1 never reconnects and is disconnected silence_timeout after the restart.
  const graceEnds = restartedAt + SILENCE_MS;
  while (fake.now + PING_MS < graceEnds) {
    await h.advance(PING_MS);
    h.manager.heard(w2.session);
  }
  assert.deepEqual(
    h.manager.listWorkers().map((w) => [w.worker.id, w.worker.state]),
    [["w1", "connected"], ["w2", "connected"]],
  );
  await h.advance(graceEnds - fake.now);
  h.manager.heard(w2.session);
  assert.deepEqual(h.worker("w1"), {
    ...storedWorkers[0],
    state: "disconnected",
    disconnectedAt: graceEnds,
  });
  assert.equal((await store.getWorker("w1"))?.value.state, "disconnected");
  assert.equal(h.worker("w2")?.state, "connected");
  assert.equal((await h.task(t2.id)).state, "scheduled");
});

Deno.test("an acknowledgement deadline that passed while no manager ran fires once a worker is heard", async () => {
  const store = createMemoryStore();
  const fake = createClock(START);
  let task: TaskRecord;
  {
    await using first = await Harness.start(store, fake);
    await first.connect("w1");
    [task] = await first.manager.schedule([ECHO]);
  }
  fake.tick(10 * ACK_MS);
  await using h = await Harness.start(store.reopen(), fake);
  await h.settle();
  // No worker is heard yet: the manager suspects itself and gives nothing up.
  assert.equal((await h.task(task.id)).state, "pending");
  await h.connect("w2");
  await h.advance(ACK_MS);
  assert.deepEqual(
    await h.task(task.id),
    ackTimedOut(task.id, START + 11 * ACK_MS),
  );
});

Deno.test("schedule refuses bad input, naming the entry, and stores nothing", async () => {
  await using h = await Harness.start();
  const w1 = await h.connect("w1");
  await assert.rejects(h.manager.schedule([]), {
    name: "InvalidArgumentError",
    message: "no tasks given",
  });
  await assert.rejects(h.manager.schedule([ECHO, { cmd: " ", params: [] }]), {
    name: "InvalidArgumentError",
    message: "task 2: cmd is empty",
  });
  await assert.rejects(
    h.manager.schedule([ECHO, ECHO, { cmd: "printf", params: ["a\0b"] }]),
    (error: Error) => {
      assert.ok(error instanceof InvalidArgumentError);
      assert.equal(
        error.message,
        'task 3: "a\\u0000b" contains a NUL byte, which no command can take',
      );
      return true;
    },
  );
  await assert.rejects(
    h.manager.schedule([{ cmd: "a\0", params: [] }]),
    /^InvalidArgumentError: task 1: /,
  );
  await h.settle();
  assert.deepEqual(await h.store.listTasks(), []);
  assert.deepEqual(kinds(w1), ["welcome"]);
  // The refused batches did not move the round-robin either.
  await h.connect("w2");
  const [task] = await h.manager.schedule([ECHO]);
  assert.equal(task.workerId, "w1");
});

Deno.test("schedule fails cleanly while the store is down and works once it is back", async () => {
  await using h = await Harness.start();
  const w1 = await h.connect("w1");
  h.store.unavailable = true;
  await assert.rejects(h.manager.schedule([ECHO, ECHO]), StoreUnavailableError);
  await assert.rejects(h.manager.listTasks({}), StoreUnavailableError);
  h.store.unavailable = false;
  await h.settle();
  assert.deepEqual(await h.store.listTasks(), []);
  assert.deepEqual(kinds(w1), ["welcome"], "nothing was sent for the failed batch");
  assert.equal(h.manager.listWorkers()[0].runningTasks, 0);

  const [task] = await h.manager.schedule([ECHO]);
  await h.settle();
  assert.deepEqual(runs(w1).map((r) => r.taskId), [task.id]);
  await h.manager.acknowledge(w1.session, task.id, 1);
  assert.equal((await h.task(task.id)).state, "scheduled");
  assert.deepEqual((await h.store.listTasks()).map((v) => v.value.id), [task.id]);
});

Deno.test("a worker lost while the store is down is stored as disconnected later", async () => {
  await using h = await Harness.start();
  const w1 = await h.connect("w1");
  await h.advance(3 * PING_MS);
  h.store.unavailable = true;
  await h.advance(PING_MS);
  assert.equal(w1.session.open, false);
  assert.equal(h.worker("w1")?.state, "disconnected", "the manager knows at once");
  h.store.unavailable = false;
  assert.equal((await h.store.getWorker("w1"))?.value.state, "connected");
  await h.advance(PING_MS);
  assert.deepEqual((await h.store.getWorker("w1"))?.value, h.worker("w1"));
  assert.equal(h.worker("w1")?.disconnectedAt, START + 4 * PING_MS);
});

Deno.test("getTask and report refuse unknown ids and missing fields", async () => {
  await using h = await Harness.start();
  await assert.rejects(h.manager.getTask("nope"), (error: Error) => {
    assert.ok(error instanceof NotFoundError);
    assert.equal(error.message, 'task "nope" not found');
    return true;
  });
  await assert.rejects(h.manager.getTask(""), InvalidArgumentError);
  await assert.rejects(h.manager.report(exited("nope", "w1", 0)), NotFoundError);
  await assert.rejects(h.manager.report(exited("nope", "w1", 0, 0)), {
    name: "InvalidArgumentError",
    message: "worker_id, task_id and attempt (1 or more) are required",
  });
});

function cancels(recorded: Recorded) {
  return recorded.messages.flatMap((m) => m.msg?.case === "cancel" ? [m.msg.value] : []);
}

Deno.test("cancel: a running task is asked to stop, and is dead once its worker says so", async () => {
  await using h = await Harness.start();
  const w1 = await h.connect("w1");
  const [task] = await h.manager.schedule([ECHO]);
  await h.manager.acknowledge(w1.session, task.id, 1);
  await h.advance(10);

  const [afterCancel] = await h.manager.cancel([task.id]);
  assert.equal(afterCancel.state, "scheduled", "still running until the worker stops it");
  assert.equal(afterCancel.cancelRequestedAt, START + 10);
  assert.deepEqual(cancels(w1), [{ taskId: task.id, attempt: 1 }]);
  await h.manager.cancel([task.id]);
  assert.equal(cancels(w1).length, 2, "asking again asks the worker again");
  assert.equal((await h.task(task.id)).cancelRequestedAt, START + 10, "first request kept");

  await h.manager.report({
    ...exited(task.id, "w1", 143),
    outcome: { kind: "exited", exitCode: 143, signal: "SIGTERM", stoppedFor: "cancelled" },
  });
  const final = await h.task(task.id);
  assert.equal(final.state, "dead");
  assert.equal(final.deadReason, "cancelled");
  assert.equal(final.signal, "SIGTERM");
});

Deno.test("cancel: a task whose worker is gone is dead at once", async () => {
  await using h = await Harness.start();
  const w1 = await h.connect("w1");
  const [task] = await h.manager.schedule([ECHO]);
  await h.manager.closeSession(w1.session, "test");
  const [cancelled] = await h.manager.cancel([task.id]);
  assert.equal(cancelled.state, "dead");
  assert.equal(cancelled.deadReason, "cancelled");
  assert.deepEqual(await h.task(task.id), cancelled);
});

Deno.test("cancel: an unknown id changes nothing; a finished task is returned as it is", async () => {
  await using h = await Harness.start();
  const w1 = await h.connect("w1");
  const [running, finished] = await h.manager.schedule([ECHO, ECHO]);
  await h.manager.report(exited(finished.id, "w1", 0));
  await assert.rejects(h.manager.cancel([running.id, "nope"]), (e: Error) => {
    assert.ok(e instanceof NotFoundError);
    assert.equal(e.message, 'task "nope" not found');
    return true;
  });
  assert.equal((await h.task(running.id)).cancelRequestedAt, undefined);
  assert.deepEqual(cancels(w1), []);
  const [done] = await h.manager.cancel([finished.id]);
  assert.equal(done.state, "done");
  await assert.rejects(h.manager.cancel([]), InvalidArgumentError);
});

Deno.test("a deadline the worker enforced ends the task dead, keeping what it printed", async () => {
  await using h = await Harness.start();
  const w1 = await h.connect("w1");
  const [task] = await h.manager.schedule([{ cmd: "sleep", params: ["60"], timeoutMs: 1000 }]);
  await h.manager.acknowledge(w1.session, task.id, 1);
  await h.manager.report({
    ...exited(task.id, "w1", 137),
    outcome: { kind: "exited", exitCode: 137, signal: "SIGKILL", stoppedFor: "deadline exceeded" },
  });
  const final = await h.task(task.id);
  assert.deepEqual(
    [final.state, final.deadReason, final.exitCode, final.signal, final.stdout],
    ["dead", "deadline exceeded", 137, "SIGKILL", "out\n"],
  );
  assert.equal(final.timeoutMs, 1000);
});

Deno.test("bad env, cwd and timeouts are refused naming the value", async () => {
  await using h = await Harness.start();
  await h.connect("w1");
  const cases: [object, RegExp][] = [
    [{ env: { "": "x" } }, /task 1: env key "" is not a variable name/],
    [{ env: { "A=B": "x" } }, /task 1: env key "A=B" is not a variable name/],
    [{ cwd: "tmp" }, /task 1: cwd "tmp" is not an absolute path/],
    [{ timeoutMs: -5 }, /task 1: timeout -5ms is negative/],
    [{ killTimeoutMs: -1 }, /task 1: kill_timeout -1ms is negative/],
    [{ env: { A: "x\0y" } }, /task 1: "x\\u0000y" contains a NUL byte/],
    [{ env: { "A\0": "x" } }, /task 1: "A\\u0000" contains a NUL byte/],
    [{ cwd: "/t\0" }, /task 1: "\/t\\u0000" contains a NUL byte/],
  ];
  for (const [extra, expected] of cases) {
    await assert.rejects(h.manager.schedule([{ ...ECHO, ...extra }]), (e: Error) => {
      assert.ok(e instanceof InvalidArgumentError, String(e));
      assert.match(e.message, expected);
      return true;
    });
  }
  assert.deepEqual(await h.store.listTasks(), []);
});

Deno.test("logs come from the connected worker over its stream", async () => {
  await using h = await Harness.start();
  const w1 = await h.connect("w1");
  const [task] = await h.manager.schedule([ECHO]);
  const abort = new AbortController();
  const reading = (async () => {
    const got: string[] = [];
    const options = { follow: true, stderr: false, tailLines: 0 };
    for await (const data of h.manager.logs(task.id, options, abort.signal)) {
      got.push(new TextDecoder().decode(data));
    }
    return got;
  })();
  await h.settle();
  const request = w1.messages.flatMap((m) => m.msg?.case === "logRequest" ? [m.msg.value] : [])[0];
  assert.deepEqual({ ...request, requestId: 0n }, {
    requestId: 0n,
    taskId: task.id,
    attempt: 1,
    follow: true,
    stderr: false,
    tailLines: 0,
  });
  const chunk = (data: string, eof = false) =>
    create(LogChunkSchema, {
      requestId: request.requestId,
      data: new TextEncoder().encode(data),
      eof,
    });
  h.manager.deliverLogs(w1.session, chunk("one\n"));
  h.manager.deliverLogs(w1.session, chunk("two\n", true));
  assert.deepEqual(await reading, ["one\n", "two\n"]);
});

Deno.test("a follow goes on to the next attempt when a queued one is given back", async () => {
  await using h = await Harness.start();
  const { w1, tasks: [, queued] } = await queueingWorker(h, 1, [ECHO, ECHO]);
  const abort = new AbortController();
  const reading = (async () => {
    let text = "";
    const options = { follow: true, stderr: false, tailLines: 0 };
    for await (const data of h.manager.logs(queued.id, options, abort.signal)) {
      text += new TextDecoder().decode(data);
    }
    return text;
  })();
  await h.settle();
  const requests = () =>
    w1.messages.flatMap((m) => m.msg?.case === "logRequest" ? [m.msg.value] : []);
  const [first] = requests();
  assert.equal(first.attempt, 1);
  h.manager.deliverLogs(
    w1.session,
    create(LogChunkSchema, { requestId: first.requestId, eof: true, givenBack: true }),
  );
  await h.advance(100);
  assert.equal(requests().length, 1, "not before the give-back is stored");
  await h.manager.report(notStarted(queued.id, "w1", "moved to a slot free elsewhere"));
  await h.advance(100);
  const second = requests()[1];
  assert.equal(second?.attempt, 2, "the next attempt's logs are asked for");
  h.manager.deliverLogs(
    w1.session,
    create(LogChunkSchema, {
      requestId: second.requestId,
      data: new TextEncoder().encode("ran\n"),
      eof: true,
    }),
  );
  assert.equal(await reading, "ran\n");
});

Deno.test("logs of a task whose worker is gone are the stored tail", async () => {
  await using h = await Harness.start();
  const w1 = await h.connect("w1");
  const [task] = await h.manager.schedule([ECHO]);
  await h.manager.report({
    ...exited(task.id, "w1", 0),
    output: { stdout: "a\nb\nc\n", stderr: "e\n", stdoutTruncated: false, stderrTruncated: false },
  });
  await h.manager.closeSession(w1.session, "test");
  const read = async (stderr: boolean, tailLines: number) => {
    let text = "";
    const options = { follow: true, stderr, tailLines };
    for await (const data of h.manager.logs(task.id, options, new AbortController().signal)) {
      text += new TextDecoder().decode(data);
    }
    return text;
  };
  assert.equal(await read(false, 0), "a\nb\nc\n");
  assert.equal(await read(false, 2), "b\nc\n");
  assert.equal(await read(true, 0), "e\n");
});

Deno.test("a report's answer goes with the worker's next message, or at its ping round", async () => {
  await using h = await Harness.start();
  const w1 = await h.connect("w1");
  const answer = (taskId: string): Outgoing => ({
    msg: { case: "reportAnswer", value: { taskId, attempt: 1, code: 0, message: "" } },
  });
  h.manager.sendSoon(w1.session, answer("a"));
  h.manager.sendSoon(w1.session, answer("b"));
  await h.settle();
  assert.deepEqual(kinds(w1), ["welcome"], "held");
  const [task] = await h.manager.schedule([ECHO]);
  await h.settle();
  assert.deepEqual(kinds(w1), ["welcome", "run", "reportAnswer", "reportAnswer"], "run first");
  assert.equal(runs(w1)[0].taskId, task.id);

  h.manager.sendSoon(w1.session, answer("c"));
  await h.advance(PING_MS);
  assert.deepEqual(kinds(w1).slice(4), ["ping", "reportAnswer"], "at the round, with its ping");
});

Deno.test("a round sends what is held instead of a ping to a worker that reported", async () => {
  await using h = await Harness.start(undefined, undefined, { silenceTimeoutMs: 4 * PING_MS });
  const w1 = await h.connect("w1");
  await h.advance(PING_MS);
  h.manager.heard(w1.session); // the worker's report
  h.manager.sendSoon(w1.session, {
    msg: { case: "reportAnswer", value: { taskId: "a", attempt: 1, code: 0, message: "" } },
  });
  await h.advance(PING_MS);
  assert.deepEqual(kinds(w1), ["welcome", "ping", "reportAnswer"]);
});

Deno.test("with a ping interval too long to keep the 2s bound, answers are not held", async () => {
  await using h = await Harness.start(undefined, undefined, {
    pingIntervalMs: 30_000,
    silenceTimeoutMs: 90_000,
  });
  const w1 = await h.connect("w1");
  h.manager.sendSoon(w1.session, {
    msg: { case: "reportAnswer", value: { taskId: "a", attempt: 1, code: 0, message: "" } },
  });
  await h.settle();
  assert.deepEqual(kinds(w1), ["welcome", "reportAnswer"]);
});

Deno.test("a session that talked both ways since its last round is not pinged", async () => {
  // Skipping needs a silence_timeout above three ping intervals.
  await using h = await Harness.start(undefined, undefined, { silenceTimeoutMs: 4 * PING_MS });
  const busy = await h.connect("w1");
  const idle = await h.connect("w2");
  await h.advance(PING_MS); // not heard since the welcome: both pinged
  const [task] = await h.manager.schedule([ECHO]);
  assert.equal(task.workerId, "w1");
  h.manager.heard(busy.session);
  h.manager.heard(idle.session); // heard, but sent nothing but a ping
  await h.advance(PING_MS);
  assert.deepEqual(kinds(busy), ["welcome", "ping", "run"], "the run and an answer do for a ping");
  assert.deepEqual(kinds(idle), ["welcome", "ping", "ping"]);
  await h.advance(PING_MS);
  assert.deepEqual(kinds(busy), ["welcome", "ping", "run", "ping"], "quiet since: pinged again");
  for (let i = 0; i < 3; i++) {
    h.manager.heard(idle.session);
    await h.advance(PING_MS);
  }
  assert.equal(kinds(idle).filter((k) => k === "ping").length, 6, "pongs alone do not count");
  assert.equal(busy.session.open, false, "unheard for longer than silence_timeout: closed");
});

/** Advances time in ping steps, keeping the given sessions heard. */
async function keepHearing(h: Harness, ms: number, ...alive: Recorded[]): Promise<void> {
  for (let left = ms; left > 0; left -= PING_MS) {
    await h.advance(Math.min(PING_MS, left));
    for (const r of alive) h.manager.heard(r.session);
  }
}

Deno.test("disconnected is not lost: tasks stay scheduled until lost_timeout", async () => {
  await using h = await Harness.start();
  const w1 = await h.connect("w1");
  const w2 = await h.connect("w2");
  const [task] = await h.manager.schedule([ECHO]);
  await h.manager.acknowledge(w1.session, task.id, 1);
  await keepHearing(h, SILENCE_MS + PING_MS, w2); // w1 falls silent
  assert.equal(h.worker("w1")?.state, "disconnected");
  const disconnectedAt = h.worker("w1")!.disconnectedAt!;
  assert.equal((await h.task(task.id)).state, "scheduled");
  await keepHearing(h, disconnectedAt + LOST_MS - h.fake.now - PING_MS, w2);
  assert.equal((await h.task(task.id)).state, "scheduled", "not yet");
  await keepHearing(h, 2 * PING_MS, w2);
  const lost = await h.task(task.id);
  assert.equal(lost.state, "dead");
  assert.equal(lost.deadReason, "lost");
  assert.match(lost.attempts![0].outcome, /lost: worker w1 disconnected for more than 10s/);
});

Deno.test("a lost task with retries is placed again elsewhere, never on two at once", async () => {
  await using h = await Harness.start();
  const w1 = await h.connect("w1");
  const w2 = await h.connect("w2");
  const [task] = await h.manager.schedule([{ ...ECHO, retries: 2, retryBackoffMs: 500 }]);
  await h.manager.acknowledge(w1.session, task.id, 1);
  await keepHearing(h, SILENCE_MS + PING_MS + LOST_MS + PING_MS, w2);
  const retried = await h.task(task.id);
  assert.equal(retried.state, "pending", "waiting out its backoff, or already placed");
  await keepHearing(h, 1000, w2);
  const placed = await h.task(task.id);
  assert.deepEqual([placed.workerId, placed.attempt], ["w2", 2]);
  assert.deepEqual(runs(w2).map((r) => [r.taskId, r.attempt]), [[task.id, 2]]);
  // The first attempt's late result is refused: it cannot overwrite the second attempt.
  await assert.rejects(h.manager.report(exited(task.id, "w1", 0, 1)), FailedPreconditionError);
  await h.manager.report(exited(task.id, "w2", 0, 2));
  const done = await h.task(task.id);
  assert.equal(done.state, "done");
  assert.deepEqual(done.attempts!.map((a) => [a.attempt, a.workerId, a.outcome.split(":")[0]]), [
    [1, "w1", "lost"],
    [2, "w2", "exit code 0"],
  ]);
});

Deno.test("when every worker is silent, nothing is given up; deadlines restart after", async () => {
  await using h = await Harness.start();
  const w1 = await h.connect("w1");
  await h.connect("w2");
  const [task] = await h.manager.schedule([ECHO]);
  await h.manager.acknowledge(w1.session, task.id, 1);
  await keepHearing(h, SILENCE_MS + LOST_MS + 5 * PING_MS); // everyone silent
  assert.equal(h.worker("w1")?.state, "disconnected");
  assert.equal(h.worker("w2")?.state, "disconnected");
  assert.equal((await h.task(task.id)).state, "scheduled", "the manager suspects itself");
  const back = await h.connect("w2");
  await keepHearing(h, LOST_MS - PING_MS, back);
  assert.equal((await h.task(task.id)).state, "scheduled", "a fresh lost_timeout from then");
  await keepHearing(h, 3 * PING_MS, back);
  assert.equal((await h.task(task.id)).deadReason, "lost");
});

Deno.test("a worker that comes back reconciles: unknown attempts lost, stale ones stopped", async () => {
  await using h = await Harness.start();
  const w1 = await h.connect("w1");
  const [known, unknown, reported, unacked] = await h.manager.schedule([ECHO, ECHO, ECHO, ECHO]);
  for (const t of [known, unknown, reported]) await h.manager.acknowledge(w1.session, t.id, 1);
  await h.manager.closeSession(w1.session, "cut");
  const again = await h.connect("w1", {
    running: [
      { taskId: known.id, attempt: 1 },
      { taskId: unacked.id, attempt: 1 },
      { taskId: "someone-elses", attempt: 4 },
    ],
    unreported: [{ taskId: reported.id, attempt: 1 }],
  });
  assert.equal((await h.task(known.id)).state, "scheduled");
  assert.equal((await h.task(unacked.id)).state, "scheduled", "its lost ack is made good");
  assert.equal((await h.task(reported.id)).state, "scheduled", "its result is on its way");
  const lost = await h.task(unknown.id);
  assert.deepEqual([lost.state, lost.deadReason], ["dead", "lost"]);
  assert.deepEqual(kinds(again).slice(0, 2), ["welcome", "cancel"]);
  assert.deepEqual(cancels(again), [{ taskId: "someone-elses", attempt: 4 }]);
});

Deno.test("a worker that restarted reports what it lost; the task is retried or dead", async () => {
  await using h = await Harness.start();
  const w1 = await h.connect("w1");
  const [once, twice] = await h.manager.schedule([ECHO, { ...ECHO, retries: 1 }]);
  for (const t of [once, twice]) await h.manager.acknowledge(w1.session, t.id, 1);
  const abandoned = (taskId: string): TaskReport => ({
    workerId: "w1",
    taskId,
    attempt: 1,
    outcome: { kind: "abandoned", error: "its process was killed" },
    output: { stdout: "partial\n", stderr: "", stdoutTruncated: false, stderrTruncated: false },
  });
  await h.manager.report(abandoned(once.id));
  const dead = await h.task(once.id);
  assert.deepEqual([dead.state, dead.deadReason, dead.stdout], [
    "dead",
    "worker restarted: its process was killed",
    "partial\n",
  ]);
  await h.manager.report(abandoned(twice.id));
  assert.equal((await h.task(twice.id)).state, "pending");
  await h.manager.report(abandoned(once.id)); // the same report again: accepted, no change
});

const GiB = 1024 ** 3;

function offering(
  capacity: { cpu: number; memoryBytes: number; slots: number; queue?: number },
  labels: Record<string, string> = {},
): WorkerIntroduction {
  return { ...INTRO, capabilities: { ...INTRO.capabilities, capacity, labels } };
}

Deno.test("slots limit concurrency; waiting tasks go by priority, then age", async () => {
  await using h = await Harness.start();
  const w1 = await h.connect("w1", undefined, offering({ cpu: 4, memoryBytes: 8 * GiB, slots: 1 }));
  const [a] = await h.manager.schedule([{ ...ECHO, params: ["a"] }]);
  await h.advance(10);
  const [b] = await h.manager.schedule([{ ...ECHO, params: ["b"] }]);
  await h.advance(10);
  const [c] = await h.manager.schedule([{ ...ECHO, params: ["c"], priority: 5 }]);
  await h.settle();
  assert.deepEqual(runs(w1).map((r) => r.taskId), [a.id]);
  assert.equal((await h.task(b.id)).placement, "0/1 workers fit: 1 has no free slot");
  // Queued behind b, with every slot taken: not tried, and told why.
  assert.equal((await h.manager.getTask(c.id)).placement, "every worker's slots are taken");
  const finish = async (id: string) => {
    await h.manager.acknowledge(w1.session, id, 1);
    await h.manager.report(exited(id, "w1", 0));
    await h.settle();
  };
  await finish(a.id);
  assert.deepEqual(runs(w1).map((r) => r.taskId), [a.id, c.id], "higher priority first");
  await finish(c.id);
  assert.deepEqual(runs(w1).map((r) => r.taskId), [a.id, c.id, b.id]);
});

/** One slot and `queue` more: what a queueing worker offers. */
const queueing = (queue: number) => offering({ cpu: 4, memoryBytes: 8 * GiB, slots: 1, queue });

/**
 * Worker w1 with one slot and `queue` more, holding `specs` placed and acknowledged: the first
 * runs, the others wait in its queue.
 */
async function queueingWorker(h: Harness, queue: number, specs: TaskSpec[]) {
  const w1 = await h.connect("w1", undefined, queueing(queue));
  const tasks = await h.manager.schedule(specs);
  await h.settle();
  for (const [i, t] of tasks.entries()) await h.manager.acknowledge(w1.session, t.id, 1, i > 0);
  return { w1, tasks };
}

Deno.test("a worker's queue takes tasks beyond its slots, after idle slots elsewhere", async () => {
  await using h = await Harness.start();
  const w1 = await h.connect("w1", undefined, queueing(2));
  const [a, b, c, d] = await h.manager.schedule([ECHO, ECHO, ECHO, ECHO]);
  await h.settle();
  assert.deepEqual(runs(w1).map((r) => r.taskId), [a.id, b.id, c.id], "one slot, two queued");
  assert.equal((await h.task(d.id)).placement, "0/1 workers fit: 1 has no free slot");
  const [view] = h.manager.listWorkers();
  assert.equal(view.runningTasks, 3);

  // A second worker's idle slot wins over w1's queue.
  const w2 = await h.connect("w2", undefined, offering({ cpu: 4, memoryBytes: 8 * GiB, slots: 1 }));
  await h.settle();
  assert.deepEqual(runs(w2).map((r) => r.taskId), [d.id]);
});

Deno.test("the manager knows which tasks wait in a worker's queue, from its word", async () => {
  const store = createMemoryStore();
  const fake = createClock(START);
  let running: TaskRecord, queued: TaskRecord;
  {
    await using first = await Harness.start(store, fake);
    const { w1, tasks } = await queueingWorker(first, 2, [ECHO, ECHO, ECHO]);
    [running, queued] = tasks;
    const waits = async (t: TaskRecord) =>
      first.manager.waitsInWorkerQueue(await first.manager.getTask(t.id));
    assert.deepEqual(await Promise.all(tasks.map(waits)), [false, true, true]);
    await first.manager.acknowledge(w1.session, tasks[2].id, 1); // It started.
    assert.equal(await waits(tasks[2]), false);
    await first.manager.report(exited(tasks[2].id, "w1", 0));
    assert.equal(await waits(tasks[2]), false, "done");
  }
  // A new manager learns it from the worker's Hello.
  await using second = await Harness.start(store, fake);
  await second.connect("w1", {
    running: [{ taskId: running.id, attempt: 1 }, { taskId: queued.id, attempt: 1 }],
    unreported: [],
    queued: [{ taskId: queued.id, attempt: 1 }],
  }, INTRO);
  const waits = async (t: TaskRecord) =>
    second.manager.waitsInWorkerQueue(await second.manager.getTask(t.id));
  assert.equal(await waits(running), false);
  assert.equal(await waits(queued), true);
});

Deno.test("a task given back unstarted is placed again and keeps its retries", async () => {
  await using h = await Harness.start();
  const { w1, tasks: [a, b] } = await queueingWorker(h, 1, [ECHO, ECHO]);
  await h.manager.report(notStarted(b.id, "w1", "the worker stopped"));
  await h.settle();
  const again = await h.task(b.id);
  assert.equal(again.state, "pending");
  assert.equal(again.attempt, 2, "placed again at once, on the room it gave back");
  assert.deepEqual(again.attempts?.map((x) => x.outcome), ["not started: the worker stopped"]);
  assert.deepEqual(runs(w1).map((r) => `${r.taskId}#${r.attempt}`), [
    `${a.id}#1`,
    `${b.id}#1`,
    `${b.id}#2`,
  ]);
  // A task without retries is not dead for an attempt that never ran.
  await h.manager.acknowledge(w1.session, b.id, 2);
  await h.manager.report(exited(b.id, "w1", 0, 2));
  assert.equal((await h.task(b.id)).state, "done");
});

Deno.test("a task given back after a long wait in a queue has its whole schedule timeout", async () => {
  await using h = await Harness.start();
  const { w1, tasks: [, b] } = await queueingWorker(h, 1, [ECHO, ECHO]);
  // Time passes with w1 heard from, and a still running, so b waits in w1's queue.
  const wait = async (ms: number) => {
    for (let t = 0; t < ms; t += PING_MS) {
      h.manager.heard(w1.session);
      await h.advance(PING_MS);
    }
  };
  await wait(2 * SCHEDULE_MS);
  await h.manager.drainWorker("w1"); // So that b waits unplaced once given back.
  await h.manager.report(notStarted(b.id, "w1", "the worker stopped"));
  await wait(SCHEDULE_MS / 2);
  // (The manager's view: the store has no diagnosis of a task given back.)
  assert.equal((await h.manager.getTask(b.id)).state, "pending", "its wait began at the give-back");
  await wait(SCHEDULE_MS);
  const dead = await h.task(b.id);
  assert.equal(dead.state, "dead");
  assert.match(dead.deadReason ?? "", /^not placed within 20s: /);
});

function unqueues(recorded: Recorded) {
  return recorded.messages.flatMap((m) => m.msg?.case === "unqueue" ? [m.msg.value] : []);
}

Deno.test("a task left in a queue for a ping interval moves to a slot idle elsewhere", async () => {
  await using h = await Harness.start();
  const { w1, tasks: [long, waiting] } = await queueingWorker(h, 1, [ECHO, ECHO]);
  const w2 = await h.connect("w2", undefined, queueing(1));
  await h.advance(PING_MS / 2);
  assert.deepEqual(unqueues(w1), [], "not before it has waited a ping interval");
  assert.deepEqual(runs(w2), [], "nothing waits at the manager for w2's slot");

  await h.advance(PING_MS);
  assert.deepEqual(
    unqueues(w1),
    [{ taskId: waiting.id, attempt: 1, reason: "moved to a slot free elsewhere" }],
    "the one sent last",
  );
  await h.advance(PING_MS);
  assert.equal(unqueues(w1).length, 1, "asked once");
  await h.manager.report(notStarted(waiting.id, "w1", "moved to a slot free elsewhere"));
  await h.settle();
  assert.deepEqual(runs(w2).map((r) => `${r.taskId}#${r.attempt}`), [`${waiting.id}#2`]);
  assert.deepEqual(runs(w1).map((r) => r.taskId), [long.id, waiting.id]);

  // Neither worker holds more than its slots now: nothing more to move.
  await h.manager.acknowledge(w2.session, waiting.id, 2);
  await h.advance(2 * PING_MS);
  assert.equal(unqueues(w1).length + unqueues(w2).length, 1);
});

Deno.test("a task of higher priority takes the place of a queued one of lower priority", async () => {
  await using h = await Harness.start();
  const { w1, tasks: [running, low, middle] } = await queueingWorker(h, 2, [
    ECHO,
    { ...ECHO, priority: 1 },
    { ...ECHO, priority: 5 },
  ]);
  const [same] = await h.manager.schedule([{ ...ECHO, priority: 1 }]);
  await h.advance(PING_MS);
  assert.deepEqual(unqueues(w1), [], "a task of the same priority waits its turn");

  const [urgent] = await h.manager.schedule([{ ...ECHO, priority: 9 }]);
  await h.advance(PING_MS);
  const reason = "a task of higher priority took its place";
  assert.deepEqual(unqueues(w1), [{ taskId: low.id, attempt: 1, reason }], "the lowest queued");
  await h.advance(PING_MS);
  assert.equal(unqueues(w1).length, 1, "asked once");
  await h.manager.report(notStarted(low.id, "w1", reason));
  await h.settle();
  assert.deepEqual(
    runs(w1).map((r) => r.taskId),
    [running.id, low.id, middle.id, urgent.id],
    "the room went to the urgent task",
  );
  assert.equal(runs(w1).at(-1)?.priority, 9, "its worker starts it first of its queue");
  const back = await h.manager.getTask(low.id);
  assert.equal(back.state, "pending");
  assert.deepEqual(back.attempts?.map((a) => a.outcome), [`not started: ${reason}`]);
  assert.equal((await h.manager.getTask(same.id)).workerId, undefined, "still waiting");
});

Deno.test("a draining worker is asked back the queued tasks that could run elsewhere", async () => {
  await using h = await Harness.start();
  const { w1, tasks: [, queued] } = await queueingWorker(h, 2, [
    ECHO,
    ECHO,
    { ...ECHO, pinWorkerId: "w1" },
  ]);
  await h.manager.drainWorker("w1");
  await h.advance(PING_MS);
  assert.deepEqual(unqueues(w1), [], "no other worker in service: they stay");

  const w2 = await h.connect("w2", undefined, queueing(2));
  await h.advance(PING_MS);
  const reason = "its worker is draining";
  assert.deepEqual(
    unqueues(w1).map((u) => [u.taskId, u.reason]),
    [[queued.id, reason]],
    "the queued one that fits w2: not the running one, nor the one pinned to w1",
  );
  await h.advance(PING_MS);
  assert.equal(unqueues(w1).length, 1, "asked once");
  await h.manager.report(notStarted(queued.id, "w1", reason));
  await h.settle();
  assert.deepEqual(runs(w2).map((r) => `${r.taskId}#${r.attempt}`), [`${queued.id}#2`]);
  assert.deepEqual(
    (await h.task(queued.id)).attempts?.map((a) => a.outcome),
    ["not started: its worker is draining"],
  );
});

/** Records the tasks of each updateTasks call, as `id:state@worker`. */
function recordWrites(store: MemoryStore): string[][] {
  const writes: string[][] = [];
  const update = store.updateTasks.bind(store);
  store.updateTasks = (updates) => {
    writes.push(updates.map(({ task }) => `${task.id}:${task.state}@${task.workerId ?? ""}`));
    return update(updates);
  };
  return writes;
}

Deno.test("a reported end lets the next task in, in the same store write", async () => {
  await using h = await Harness.start();
  const [a, b] = await h.manager.schedule([ECHO, ECHO]);
  const w1 = await h.connect("w1", undefined, offering({ cpu: 4, memoryBytes: 8 * GiB, slots: 1 }));
  await h.settle();
  assert.deepEqual(runs(w1).map((r) => r.taskId), [a.id]);
  const writes = recordWrites(h.store);
  await h.manager.acknowledge(w1.session, a.id, 1);
  await h.manager.report(exited(a.id, "w1", 0));
  await h.settle();
  assert.deepEqual(runs(w1).map((r) => r.taskId), [a.id, b.id]);
  assert.deepEqual(writes, [[`${b.id}:pending@w1`, `${a.id}:done@w1`]]);
});

Deno.test("a stale report frees no room", async () => {
  await using h = await Harness.start();
  const [a, b] = await h.manager.schedule([ECHO, ECHO]);
  const w1 = await h.connect("w1", undefined, offering({ cpu: 4, memoryBytes: 8 * GiB, slots: 1 }));
  await h.settle();
  await assert.rejects(h.manager.report(exited(a.id, "w1", 0, 2)));
  await h.settle();
  assert.deepEqual(runs(w1).map((r) => r.taskId), [a.id], "a still holds the only slot");
  assert.equal((await h.task(b.id)).workerId, undefined);
});

Deno.test("a slow assignment write does not hold up placing other tasks", async () => {
  // One update per write: each assignment is its own write, which need not wait for another.
  const store: MemoryStore = Object.assign(createMemoryStore(), { updatesPerWrite: 1 });
  await using h = await Harness.start(store);
  const [a, b] = await h.manager.schedule([ECHO, ECHO]);
  const update = h.store.updateTasks.bind(h.store);
  let release!: () => void;
  const released = new Promise<void>((resolve) => release = resolve);
  h.store.updateTasks = async (updates) => {
    h.store.updateTasks = update;
    await released;
    return update(updates);
  };
  const one = offering({ cpu: 4, memoryBytes: 8 * GiB, slots: 1 });
  const w1 = await h.connect("w1", undefined, one);
  await h.settle();
  const w2 = await h.connect("w2", undefined, one);
  await h.settle();
  assert.deepEqual(runs(w1), [], "a's assignment is not stored yet");
  assert.deepEqual(runs(w2).map((r) => r.taskId), [b.id]);
  release();
  await h.settle();
  assert.deepEqual(runs(w1).map((r) => r.taskId), [a.id], "a is placed once, on w1");
  assert.deepEqual(runs(w2).map((r) => r.taskId), [b.id]);
});

Deno.test("a batch placed while another is being stored does not take its room", async () => {
  await using h = await Harness.start();
  const w1 = await h.connect("w1", undefined, offering({ cpu: 4, memoryBytes: 8 * GiB, slots: 1 }));
  const create = h.store.createTasks.bind(h.store);
  let release!: () => void;
  const released = new Promise<void>((resolve) => release = resolve);
  h.store.createTasks = async (tasks) => {
    h.store.createTasks = create;
    await released;
    return create(tasks);
  };
  const first = h.manager.schedule([{ ...ECHO, params: ["first"] }]);
  await h.settle();
  const [second] = await h.manager.schedule([{ ...ECHO, params: ["second"] }]);
  release();
  const [placed] = await first;
  assert.equal(placed.workerId, "w1");
  assert.equal(second.workerId, undefined, "the only slot is the first batch's");
  assert.equal(second.placement, "0/1 workers fit: 1 has no free slot");
  await h.settle();
  assert.deepEqual(runs(w1).map((r) => r.taskId), [placed.id]);
});

Deno.test("a batch that cannot be stored gives back the room it was placed in", async () => {
  await using h = await Harness.start();
  const w1 = await h.connect("w1", undefined, offering({ cpu: 4, memoryBytes: 8 * GiB, slots: 1 }));
  const create = h.store.createTasks.bind(h.store);
  h.store.createTasks = () => {
    h.store.createTasks = create;
    return Promise.reject(new Error("etcd is down"));
  };
  await assert.rejects(h.manager.schedule([ECHO]), { message: "etcd is down" });
  const [task] = await h.manager.schedule([ECHO]);
  assert.equal(task.workerId, "w1");
  await h.settle();
  assert.deepEqual(runs(w1).map((r) => r.taskId), [task.id]);
});

Deno.test("labels choose the worker; a pinned task goes to its worker only", async () => {
  await using h = await Harness.start();
  const cap = { cpu: 4, memoryBytes: 8 * GiB, slots: 4 };
  const gpu = await h.connect("gpu", undefined, offering(cap, { gpu: "true", zone: "a" }));
  const plain = await h.connect("plain", undefined, offering(cap, { zone: "b" }));
  const tasks = await h.manager.schedule([
    { ...ECHO, labels: [{ key: "gpu", op: "=", value: "true" }] },
    { ...ECHO, labels: [{ key: "zone", op: "!=", value: "a" }] },
    { ...ECHO, labels: [{ key: "gpu", op: "exists" }] },
    { ...ECHO, pinWorkerId: "plain" },
  ]);
  assert.deepEqual(tasks.map((t) => t.workerId), ["gpu", "plain", "gpu", "plain"]);
  await h.settle();
  assert.equal(runs(gpu).length, 2);
  assert.equal(runs(plain).length, 2);
});

Deno.test("a task no worker could ever run is refused, unless it asks to queue", async () => {
  await using h = await Harness.start();
  await h.connect("w1", undefined, offering({ cpu: 2, memoryBytes: GiB, slots: 2 }));
  await assert.rejects(h.manager.schedule([ECHO, { ...ECHO, memoryBytes: 2 * GiB }]), {
    name: "InvalidArgumentError",
    message:
      "task 2 can never be placed: 0/1 workers fit: 1 offers 1GiB memory; queue it to wait for such a worker",
  });
  assert.deepEqual(await h.store.listTasks(), [], "nothing of the batch is stored");
  const [queued] = await h.manager.schedule([{ ...ECHO, cpu: 8, queue: true }]);
  assert.equal(queued.state, "pending");
  assert.equal(queued.placement, "0/1 workers fit: 1 lacks cpu");
});

Deno.test("drain: no new tasks, running ones stay; undrain; a deadline cancels", async () => {
  await using h = await Harness.start();
  const w1 = await h.connect("w1");
  const [running] = await h.manager.schedule([ECHO]);
  await h.manager.acknowledge(w1.session, running.id, 1);
  const drained = await h.manager.drainWorker("w1");
  assert.equal(drained.worker.draining, true);
  assert.equal((await h.store.getWorker("w1"))?.value.draining, true, "stored");
  const [waiting] = await h.manager.schedule([ECHO]);
  assert.equal(waiting.placement, "0/1 workers fit: 1 is draining");
  assert.equal((await h.task(running.id)).state, "scheduled", "running work is left alone");

  await h.manager.undrainWorker("w1");
  await h.settle();
  assert.equal((await h.task(waiting.id)).workerId, "w1");
  await h.manager.acknowledge(w1.session, waiting.id, 1);

  await h.manager.drainWorker("w1", 5000);
  await keepHearing(h, 4999, w1);
  assert.deepEqual(cancels(w1), []);
  await keepHearing(h, 2, w1);
  assert.deepEqual(cancels(w1).map((c) => c.taskId).sort(), [running.id, waiting.id].sort());
  await assert.rejects(h.manager.drainWorker("nope"), {
    name: "NotFoundError",
    message: 'worker "nope" not found',
  });
});

Deno.test("remove: only a disconnected worker with no unfinished task; it may come back anew", async () => {
  await using h = await Harness.start();
  const w1 = await h.connect("w1");
  await assert.rejects(h.manager.removeWorker("w1"), {
    name: "FailedPreconditionError",
    message: /^worker "w1" is connected; only a disconnected worker can be removed/,
  });
  const [task] = await h.manager.schedule([ECHO]);
  await h.manager.acknowledge(w1.session, task.id, 1);
  await h.manager.closeSession(w1.session, "cut");
  await assert.rejects(h.manager.removeWorker("w1"), {
    name: "FailedPreconditionError",
    message: /^worker "w1" still holds 1 unfinished task; they wait for it until lost_timeout/,
  });
  assert.ok(h.worker("w1"), "a refused removal leaves the worker");

  await h.manager.report(exited(task.id, "w1", 0));
  await h.manager.removeWorker("w1");
  assert.equal(h.worker("w1"), undefined, "not listed");
  assert.equal(await h.store.getWorker("w1"), undefined, "not stored");
  await assert.rejects(h.manager.removeWorker("w1"), {
    name: "NotFoundError",
    message: 'worker "w1" not found',
  });
  // Its finished task keeps naming it.
  assert.equal((await h.task(task.id)).workerId, "w1");

  await h.connect("w1");
  assert.equal(h.worker("w1")?.state, "connected", "known anew");
  assert.equal((await h.store.getWorker("w1"))?.value.state, "connected");
});

Deno.test("removeTask: a finished task goes from the store and from memory; others stay", async () => {
  await using h = await Harness.start();
  const w1 = await h.connect("w1");
  const [done, running] = await h.manager.schedule([ECHO, ECHO]);
  await h.manager.acknowledge(w1.session, done.id, 1);
  await h.manager.acknowledge(w1.session, running.id, 1);
  await h.manager.report(exited(done.id, "w1", 0));
  assert.equal((await h.task(done.id)).state, "done", "in memory, recently finished");

  await assert.rejects(h.manager.removeTask(running.id), {
    name: "FailedPreconditionError",
    message: `task "${running.id}" is scheduled: only a finished task (done or dead) can be ` +
      "removed; cancel it first",
  });
  await h.manager.removeTask(done.id);
  assert.equal(await h.store.getTask(done.id), undefined, "not stored");
  await assert.rejects(h.manager.getTask(done.id), { name: "NotFoundError" });
  await assert.rejects(h.manager.removeTask(done.id), {
    name: "NotFoundError",
    message: `task "${done.id}" not found`,
  });
  assert.equal((await h.task(running.id)).state, "scheduled");
  assert.deepEqual((await h.store.listTasks()).map((t) => t.value.id), [running.id]);
});

Deno.test("a drain outlives the worker's reconnect", async () => {
  await using h = await Harness.start();
  const w1 = await h.connect("w1");
  await h.manager.drainWorker("w1");
  await h.manager.closeSession(w1.session, "cut");
  await h.connect("w1");
  assert.equal(h.worker("w1")?.draining, true);
});

Deno.test("an acknowledgement the store cannot take yet is kept, stored later, and not timed out", async () => {
  await using h = await Harness.start();
  const w1 = await h.connect("w1");
  const [task] = await h.manager.schedule([ECHO]);
  h.store.unavailable = true;
  await h.manager.acknowledge(w1.session, task.id, 1);
  await keepHearing(h, ACK_MS + PING_MS, w1); // the deadline passes while the store is down
  h.store.unavailable = false;
  await keepHearing(h, PING_MS, w1);
  assert.equal((await h.task(task.id)).state, "scheduled");
});

Deno.test("a late acknowledgement of a given-up attempt stops that attempt", async () => {
  await using h = await Harness.start();
  const w1 = await h.connect("w1");
  const [task] = await h.manager.schedule([ECHO]);
  await keepHearing(h, ACK_MS, w1);
  assert.equal((await h.task(task.id)).state, "dead");
  await h.manager.acknowledge(w1.session, task.id, 1);
  await h.settle();
  assert.deepEqual(cancels(w1), [{ taskId: task.id, attempt: 1 }]);
});

Deno.test("a task someone asked to cancel is not retried when it fails", async () => {
  await using h = await Harness.start();
  const w1 = await h.connect("w1");
  const [task] = await h.manager.schedule([{ ...ECHO, retries: 3, retryOnFailure: true }]);
  await h.manager.acknowledge(w1.session, task.id, 1);
  await h.manager.cancel([task.id]);
  await h.manager.report(exited(task.id, "w1", 1));
  const final = await h.task(task.id);
  assert.deepEqual([final.state, final.exitCode], ["done", 1]);
});

Deno.test("following the logs of a waiting task waits for it to be placed", async () => {
  await using h = await Harness.start();
  const [task] = await h.manager.schedule([ECHO]);
  const abort = new AbortController();
  const chunks: string[] = [];
  const reading = (async () => {
    const options = { follow: true, stderr: false, tailLines: 0 };
    for await (const data of h.manager.logs(task.id, options, abort.signal)) {
      chunks.push(new TextDecoder().decode(data));
    }
  })();
  await h.advance(3 * PING_MS);
  const w1 = await h.connect("w1");
  await h.advance(PING_MS);
  const request = w1.messages.flatMap((m) => m.msg?.case === "logRequest" ? [m.msg.value] : [])[0];
  assert.equal(request?.taskId, task.id, "the worker is asked once the task is placed");
  h.manager.deliverLogs(
    w1.session,
    create(LogChunkSchema, {
      requestId: request.requestId,
      data: new TextEncoder().encode("hi\n"),
      eof: true,
    }),
  );
  await reading;
  assert.deepEqual(chunks, ["hi\n"]);
});
