/**
 * The Connect handlers, tested in memory through createRouterTransport: requests are decoded,
 * the manager is called, and its errors reach the client as Connect codes with plain messages.
 */
import assert from "node:assert/strict";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, createClient, createRouterTransport } from "@connectrpc/connect";
import { createClock } from "@sinonjs/fake-timers";
import { AsyncQueue } from "../shared/async_queue.ts";
import {
  type ConnectRequestSchema,
  OperatorService,
  TaskState,
  WorkerService,
  WorkerState,
} from "../shared/gen/goschedule/v1/goschedule_pb.ts";
import type { Logger } from "../shared/log.ts";
import { task } from "../shared/store/conformance.ts";
import { createMemoryStore, type MemoryStore } from "../shared/store/memory_store.ts";
import { Manager } from "./manager.ts";
import { createOperatorService } from "./operator_service.ts";
import { createWorkerService } from "./worker_service.ts";
import { clockOf } from "../shared/fake_clock.ts";
import { rejectsWithCode } from "../shared/connect_test_util.ts";
import { hello } from "./test_util.ts";

const START = Date.UTC(2025, 0, 1, 12);

type Request = MessageInitShape<typeof ConnectRequestSchema>;

/** A logger that keeps what it is given, to show where causes go. */
function recordingLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const log = (level: string) => (message: string, fields?: Record<string, unknown>) =>
    lines.push(`${level} ${message} ${JSON.stringify(fields ?? {})}`);
  return { lines, debug: log("debug"), info: log("info"), warn: log("warn"), error: log("error") };
}

/** Both services over one in-memory transport, on a started manager with fake time. */
class Services implements AsyncDisposable {
  readonly store: MemoryStore = createMemoryStore();
  readonly fake = createClock(START);
  readonly log = recordingLogger();
  readonly manager: Manager;
  readonly operator;
  readonly worker;
  readonly #streams: AsyncQueue<Request>[] = [];

  constructor() {
    let n = 0;
    this.manager = new Manager({
      store: this.store,
      log: this.log,
      pingIntervalMs: 1_000,
      silenceTimeoutMs: 3_000,
      ackTimeoutMs: 2_000,
      scheduler: "round-robin",
      clock: clockOf(this.fake),
      random: () => (n++ * 0.6180339887) % 1,
    });
    const transport = createRouterTransport((router) => {
      router.service(OperatorService, createOperatorService(this.manager, this.log));
      router.service(WorkerService, createWorkerService(this.manager, this.log, 3_000));
    });
    this.operator = createClient(OperatorService, transport);
    this.worker = createClient(WorkerService, transport);
  }

  static async start(): Promise<Services> {
    const services = new Services();
    await services.manager.start();
    return services;
  }

  /** Opens a worker stream; push requests into the returned queue, close it to end. */
  openStream() {
    const requests = new AsyncQueue<Request>();
    this.#streams.push(requests);
    const responses = this.worker.connect(requests)[Symbol.asyncIterator]();
    return { requests, responses };
  }

  async [Symbol.asyncDispose](): Promise<void> {
    for (const requests of this.#streams) requests.close();
    this.manager.stop();
    // Let the handlers' finally blocks run before the sanitizers look.
    await this.fake.tickAsync(0);
  }
}

Deno.test("ListTasks pages by page_size and next_page_token", async () => {
  await using s = await Services.start();
  await s.store.createTasks([
    task("t1"),
    task("t2", "done", { exitCode: 0 }),
    task("t3"),
    task("t4", "dead", { deadReason: "cancelled" }),
    task("t5"),
  ]);
  const ids = (r: { tasks: { id: string }[] }) => r.tasks.map((t) => t.id);

  const first = await s.operator.listTasks({ pageSize: 2 });
  assert.deepEqual([ids(first), first.nextPageToken], [["t1", "t2"], "t2"]);
  const second = await s.operator.listTasks({ pageSize: 2, pageToken: first.nextPageToken });
  assert.deepEqual([ids(second), second.nextPageToken], [["t3", "t4"], "t4"]);
  const last = await s.operator.listTasks({ pageSize: 2, pageToken: second.nextPageToken });
  assert.deepEqual([ids(last), last.nextPageToken], [["t5"], ""]);

  // A page that ends exactly at the last task says there is no more.
  const exact = await s.operator.listTasks({ pageSize: 5 });
  assert.deepEqual([ids(exact), exact.nextPageToken], [["t1", "t2", "t3", "t4", "t5"], ""]);
  // No page_size: the default page.
  assert.equal((await s.operator.listTasks({})).tasks.length, 5);
  assert.equal((await s.operator.listTasks({ pageSize: 1000 })).tasks.length, 5);

  const done = await s.operator.listTasks({ state: TaskState.DONE });
  assert.deepEqual(ids(done), ["t2"]);
  assert.equal(done.tasks[0].state, TaskState.DONE);
  assert.equal(done.tasks[0].exitCode, 0);
  const pendingPage = await s.operator.listTasks({ state: TaskState.PENDING, pageSize: 2 });
  assert.deepEqual([ids(pendingPage), pendingPage.nextPageToken], [["t1", "t3"], "t3"]);
  const pendingRest = await s.operator.listTasks({
    state: TaskState.PENDING,
    pageSize: 2,
    pageToken: "t3",
  });
  assert.deepEqual([ids(pendingRest), pendingRest.nextPageToken], [["t5"], ""]);
});

Deno.test("ListTasks refuses a page_size over 1000 and an unknown state", async () => {
  await using s = await Services.start();
  await rejectsWithCode(
    s.operator.listTasks({ pageSize: 1001 }),
    Code.InvalidArgument,
    "page_size 1001 is more than the maximum of 1000",
  );
  await rejectsWithCode(
    s.operator.listTasks({ state: 42 as TaskState }),
    Code.InvalidArgument,
    "unknown task state 42",
  );
});

Deno.test("GetTask returns a task, or NotFound naming the id", async () => {
  await using s = await Services.start();
  await s.store.createTasks([
    task("t1", "done", { exitCode: 2, workerId: "w1", attempt: 1, stdout: "hi\n" }),
  ]);
  const { task: got } = await s.operator.getTask({ id: "t1" });
  assert.equal(got?.id, "t1");
  assert.equal(got?.state, TaskState.DONE);
  assert.equal(got?.exitCode, 2);
  assert.equal(got?.workerId, "w1");
  assert.equal(got?.stdout, "hi\n");
  assert.deepEqual(got?.params, ["hello", "t1"]);

  await rejectsWithCode(s.operator.getTask({ id: "X" }), Code.NotFound, 'task "X" not found');
  await rejectsWithCode(s.operator.getTask({ id: "" }), Code.InvalidArgument, /id is required/);
});

Deno.test("GetTask with a wait answers once the task's end is stored, or when the wait is over", async () => {
  await using s = await Services.start();
  const { requests, responses } = s.openStream();
  requests.push(hello("w1"));
  await responses.next();
  const { tasks: [placed] } = await s.operator.scheduleTasks({ tasks: [{ cmd: "true" }] });
  assert.equal((await responses.next()).value.msg.case, "run");

  let answered = false;
  const waiting = s.operator.getTask({ id: placed.id, wait: { seconds: 30n } }).finally(() =>
    answered = true
  );
  // Less than ack_timeout and silence_timeout: the attempt is still on.
  await s.fake.tickAsync(1_000);
  assert.equal(answered, false, "still running: no answer yet");
  await s.worker.setTask({
    workerId: "w1",
    taskId: placed.id,
    attempt: 1,
    outcome: { case: "exited", value: { exitCode: 0 } },
  });
  await s.fake.tickAsync(0);
  assert.equal(answered, true, "answered as soon as the end is stored");
  assert.equal((await waiting).task?.state, TaskState.DONE);

  const { tasks: [queued] } = await s.operator.scheduleTasks({ tasks: [{ cmd: "true" }] });
  let timedOutYet = false;
  const timedOut = s.operator.getTask({ id: queued.id, wait: { nanos: 500_000_000 } }).finally(
    () => timedOutYet = true,
  );
  await s.fake.tickAsync(499);
  assert.equal(timedOutYet, false);
  await s.fake.tickAsync(1);
  assert.equal(timedOutYet, true, "answered when the wait is over");
  assert.equal((await timedOut).task?.state, TaskState.PENDING, "with the task as it is");

  await rejectsWithCode(
    s.operator.getTask({ id: queued.id, wait: { seconds: 61n } }),
    Code.InvalidArgument,
    "wait 1m1s is not between 0 and the maximum of 1m",
  );
  await rejectsWithCode(
    s.operator.getTask({ id: queued.id, wait: { seconds: -2n } }),
    Code.InvalidArgument,
    "wait -2000ms is not between 0 and the maximum of 1m",
  );
});

Deno.test("ScheduleTasks stores tasks, or refuses bad input with InvalidArgument", async () => {
  await using s = await Services.start();
  await rejectsWithCode(
    s.operator.scheduleTasks({ tasks: [] }),
    Code.InvalidArgument,
    "no tasks given",
  );
  await rejectsWithCode(
    s.operator.scheduleTasks({ tasks: [{ cmd: "echo" }, { cmd: "" }] }),
    Code.InvalidArgument,
    "task 2: cmd is empty",
  );
  await rejectsWithCode(
    s.operator.scheduleTasks({ tasks: [{ cmd: "echo", params: ["\0"] }] }),
    Code.InvalidArgument,
    /^task 1: .* contains a NUL byte/,
  );
  assert.deepEqual(await s.store.listTasks(), []);

  const { tasks } = await s.operator.scheduleTasks({ tasks: [{ cmd: "echo", params: ["x"] }] });
  assert.equal(tasks.length, 1);
  assert.equal(tasks[0].state, TaskState.PENDING);
  assert.equal(tasks[0].placement, "no worker is connected");
  assert.deepEqual(tasks[0].params, ["x"]);
  assert.deepEqual((await s.store.listTasks()).map((v) => v.value.id), [tasks[0].id]);
});

Deno.test("a store outage is Unavailable, with the cause in the log only", async () => {
  await using s = await Services.start();
  await s.store.createTasks([task("t1", "done")]);
  s.store.unavailable = true;
  const message = "the manager's store is unavailable; try again";
  await rejectsWithCode(s.operator.listTasks({}), Code.Unavailable, message);
  await rejectsWithCode(s.operator.getTask({ id: "t1" }), Code.Unavailable, message);
  const error = await rejectsWithCode(
    s.operator.scheduleTasks({ tasks: [{ cmd: "echo" }] }),
    Code.Unavailable,
    message,
  );
  assert.doesNotMatch(error.message, /memory|simulated|outage/i);
  assert.equal(error.cause, undefined);
  assert.equal(
    s.log.lines.filter((l) => l.startsWith("warn store unavailable") && l.includes("simulated"))
      .length,
    3,
  );

  s.store.unavailable = false;
  assert.deepEqual(await s.store.listTasks({ state: "pending" }), []);
  assert.equal((await s.operator.listTasks({})).tasks.length, 1);
});

Deno.test("Connect: the first message must be a hello with a valid worker id", async () => {
  await using s = await Services.start();
  const notHello = s.openStream();
  notHello.requests.push({ msg: { case: "pong", value: { seq: 1n } } });
  await rejectsWithCode(
    notHello.responses.next(),
    Code.InvalidArgument,
    "the first message must be a hello",
  );

  const badId = s.openStream();
  badId.requests.push(hello("no spaces"));
  await rejectsWithCode(
    badId.responses.next(),
    Code.InvalidArgument,
    /^invalid worker id "no spaces"/,
  );
  assert.deepEqual((await s.operator.listWorkers({})).workers, []);
});

Deno.test("Connect: welcome first, then runs; acks are applied; the end disconnects", async () => {
  await using s = await Services.start();
  const { requests, responses } = s.openStream();
  requests.push(hello("w1"));
  const welcome = await responses.next();
  assert.equal(welcome.done, false);
  assert.equal(welcome.value.msg.case, "welcome");
  assert.equal(welcome.value.msg.value.pingIntervalMs, 1_000);
  const [w1] = (await s.operator.listWorkers({})).workers;
  assert.equal(w1.id, "w1");
  assert.equal(w1.state, WorkerState.CONNECTED);
  assert.equal(w1.address, "", "the router transport sets no peer address");
  assert.equal(w1.capabilities?.memoryBytes, 1n << 30n);

  const { tasks: [scheduled] } = await s.operator.scheduleTasks({
    tasks: [{ cmd: "echo", params: ["hi"] }],
  });
  const run = await responses.next();
  assert.equal(run.value.msg.case, "run");
  const { taskId, attempt, cmd, params } = run.value.msg.value;
  assert.deepEqual({ taskId, attempt, cmd, params }, {
    taskId: scheduled.id,
    attempt: 1,
    cmd: "echo",
    params: ["hi"],
  });

  // The handler reads messages in order, so once the stream has ended the ack is stored.
  requests.push({ msg: { case: "pong", value: { seq: 1n } } });
  requests.push({ msg: { case: "ack", value: { taskId: scheduled.id, attempt: 1 } } });
  requests.close();
  assert.equal((await responses.next()).done, true);
  assert.equal((await s.operator.getTask({ id: scheduled.id })).task?.state, TaskState.SCHEDULED);
  assert.equal((await s.operator.listWorkers({})).workers[0].state, WorkerState.DISCONNECTED);

  // A result is accepted after the stream is gone (it is a unary call).
  await s.worker.setTask({
    workerId: "w1",
    taskId: scheduled.id,
    attempt: 1,
    outcome: { case: "exited", value: { exitCode: 0 } },
    stdout: "hi\n",
  });
  const { task: done } = await s.operator.getTask({ id: scheduled.id });
  assert.equal(done?.state, TaskState.DONE);
  assert.equal(done?.exitCode, 0);
  assert.equal(done?.stdout, "hi\n");
});

Deno.test("Connect: a second hello ends the stream with InvalidArgument", async () => {
  await using s = await Services.start();
  const { requests, responses } = s.openStream();
  requests.push(hello("w1"));
  assert.equal((await responses.next()).value.msg.case, "welcome");
  requests.push(hello("w1"));
  await rejectsWithCode(
    responses.next(),
    Code.InvalidArgument,
    "hello may only be the first message",
  );
  assert.equal((await s.operator.listWorkers({})).workers[0].state, WorkerState.DISCONNECTED);
});

Deno.test("SetTask needs an outcome and refuses stale reports", async () => {
  await using s = await Services.start();
  await s.store.createTasks([task("t1", "scheduled", { workerId: "w1", attempt: 1 })]);
  await rejectsWithCode(
    s.worker.setTask({ workerId: "w1", taskId: "t1", attempt: 1 }),
    Code.InvalidArgument,
    "outcome is required: exited, start_error, abandoned or not_started",
  );
  await rejectsWithCode(
    s.worker.setTask({
      workerId: "w2",
      taskId: "t1",
      attempt: 1,
      outcome: { case: "exited", value: { exitCode: 0 } },
    }),
    Code.FailedPrecondition,
    /^task t1 attempt 1 on worker w2 is stale/,
  );
  await rejectsWithCode(
    s.worker.setTask({
      workerId: "w1",
      taskId: "nope",
      attempt: 1,
      outcome: { case: "startError", value: "ENOENT" },
    }),
    Code.NotFound,
    'task "nope" not found',
  );
  assert.equal((await s.store.getTask("t1"))?.value.state, "scheduled");

  await s.worker.setTask({
    workerId: "w1",
    taskId: "t1",
    attempt: 1,
    outcome: { case: "startError", value: "ENOENT" },
  });
  const { task: dead } = await s.operator.getTask({ id: "t1" });
  assert.equal(dead?.state, TaskState.DEAD);
  assert.equal(dead?.deadReason, "cannot start: ENOENT");
});

Deno.test("Connect: reports on the stream are stored and answered, refusals with their code", async () => {
  await using s = await Services.start();
  await s.store.createTasks([
    task("t1", "scheduled", { workerId: "w1", attempt: 1 }),
    task("t2", "scheduled", { workerId: "w2", attempt: 1 }),
  ]);
  const { requests, responses } = s.openStream();
  requests.push(hello("w1"));
  const welcome = await responses.next();
  assert.equal(welcome.value.msg.case, "welcome");
  assert.equal(welcome.value.msg.value.acceptsReports, true);

  const answer = async () => {
    // Answers wait for the session's ping round (or its next message), at most an interval.
    await s.fake.tickAsync(1_000);
    for (;;) {
      const next = await responses.next();
      assert.equal(next.done, false, "the stream ended before the answer");
      if (next.value.msg.case === "reportAnswer") {
        const { taskId, attempt, code, message } = next.value.msg.value;
        return { taskId, attempt, code, message };
      }
    }
  };
  requests.push({
    msg: {
      case: "report",
      // The stream's worker counts, not the message's worker_id.
      value: { workerId: "w2", taskId: "t1", attempt: 1, outcome: { case: "exited", value: {} } },
    },
  });
  assert.deepEqual(await answer(), { taskId: "t1", attempt: 1, code: 0, message: "" });
  assert.equal((await s.store.getTask("t1"))?.value.state, "done");

  requests.push({
    msg: {
      case: "report",
      value: { taskId: "t2", attempt: 1, outcome: { case: "exited", value: {} } },
    },
  });
  const stale = await answer();
  assert.equal(Code[stale.code], Code[Code.FailedPrecondition]);
  assert.match(stale.message, /^task t2 attempt 1 on worker w1 is stale/);
  requests.push({ msg: { case: "report", value: { taskId: "t2", attempt: 1 } } });
  assert.deepEqual(await answer(), {
    taskId: "t2",
    attempt: 1,
    code: Code.InvalidArgument,
    message: "outcome is required: exited, start_error, abandoned or not_started",
  });
  assert.equal((await s.store.getTask("t2"))?.value.state, "scheduled");
});
