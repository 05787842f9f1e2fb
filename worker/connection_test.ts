/**
 * The worker's stream against an in-memory manager (createRouterTransport): tasks are
 * acknowledged and run with their spec, log requests are answered on the same stream, a
 * cancel stops the process and is reported as such, every stream starts with a Hello that
 * lists what runs and what is not reported yet, and a stream that drops leaves the tasks alone.
 */
import assert from "node:assert/strict";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import {
  type ConnectRequest,
  type ConnectResponseSchema,
  type Hello,
  type SetTaskRequest,
  Termination,
  WorkerService,
} from "../shared/gen/goschedule/v1/goschedule_pb.ts";
import { silentLogger } from "../shared/log.ts";
import { Agent } from "./agent.ts";
import { hello, runConnectionLoop, runRequest } from "./connection.ts";
import { createProcessExecutor } from "./executor.ts";
import { LogStore } from "./log_store.ts";
import { ReportOutbox, type TaskReport } from "./report_outbox.ts";
import { setTaskRequest } from "./set_task.ts";
import { eventually, groupMembers, killGroup } from "./test_util.ts";

type ToWorker = MessageInitShape<typeof ConnectResponseSchema>;

Deno.test("a RunTask's durations become milliseconds, unset ones stay unset", () => {
  const base = { $typeName: "goschedule.v1.RunTask" as const, taskId: "t", attempt: 1 };
  const spec = runRequest({
    ...base,
    cmd: "sh",
    params: ["-c", "x"],
    env: { A: "1" },
    cwd: "/tmp",
    timeout: durationFromMs(30_000),
    killTimeout: durationFromMs(1_500),
    priority: -2,
  });
  assert.deepEqual(spec, {
    taskId: "t",
    attempt: 1,
    cmd: "sh",
    params: ["-c", "x"],
    env: { A: "1" },
    cwd: "/tmp",
    timeoutMs: 30_000,
    killTimeoutMs: 1_500,
    priority: -2,
  });
  const bare = runRequest({ ...base, cmd: "true", params: [], env: {}, cwd: "", priority: 0 });
  assert.equal(bare.timeoutMs, undefined);
  assert.equal(bare.killTimeoutMs, undefined);
  assert.equal(bare.priority, undefined);
});

/** One stream as the in-memory manager sees it. */
interface FakeStream {
  fromWorker: ConnectRequest[];
  toWorker: ToWorker[];
  wake: () => void;
  cut: boolean;
}

/**
 * A manager in memory: records every stream and SetTask, sends what the test queues on the
 * newest stream, cuts a stream when told, and answers SetTask as `onSetTask` says.
 */
class FakeManager {
  readonly streams: FakeStream[] = [];
  readonly setTasks: SetTaskRequest[] = [];
  onSetTask: (request: SetTaskRequest) => void = () => {};
  readonly transport = createRouterTransport(({ service }) => {
    service(WorkerService, {
      connect: (requests) => this.#connect(requests),
      setTask: (request) => {
        this.setTasks.push(request);
        this.onSetTask(request);
        return {};
      },
    });
  });

  get current(): FakeStream {
    return this.streams.at(-1)!;
  }

  send(message: ToWorker): void {
    this.current.toWorker.push(message);
    this.current.wake();
  }

  /** Ends the newest stream with an error, as a dropped connection would. */
  cut(): void {
    this.current.cut = true;
    this.current.wake();
  }

  /** The Hello of stream `n`, once it came. */
  async hello(n: number): Promise<Hello> {
    await eventually(() => this.streams[n]?.fromWorker[0]?.msg.case === "hello", `hello ${n}`);
    const msg = this.streams[n].fromWorker[0].msg;
    assert.equal(msg.case, "hello");
    return msg.value;
  }

  close(): void {
    for (const stream of this.streams) {
      stream.cut = true;
      stream.wake();
    }
  }

  async *#connect(requests: AsyncIterable<ConnectRequest>) {
    const stream: FakeStream = { fromWorker: [], toWorker: [], wake: () => {}, cut: false };
    this.streams.push(stream);
    void (async () => {
      for await (const request of requests) stream.fromWorker.push(request);
    })().catch(() => {});
    for (;;) {
      while (stream.toWorker.length > 0) yield stream.toWorker.shift()!;
      if (stream.cut) throw new ConnectError("the stream was cut", Code.Unavailable);
      await new Promise<void>((resolve) => stream.wake = resolve);
    }
  }
}

interface Worker {
  manager: FakeManager;
  agent: Agent;
  outbox: ReportOutbox;
  logs: LogStore;
  dir: string;
  /** Reports as delivered to the manager (the SetTask calls that it accepted or refused). */
  reports: TaskReport[];
}

/**
 * Runs a worker (real processes) against a FakeManager until `fn` ends, then stops and removes
 * everything. `before` may fill state_dir before the worker loads it.
 */
async function withWorker(
  fn: (w: Worker) => Promise<void>,
  before?: (dir: string, manager: FakeManager) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir();
  const manager = new FakeManager();
  const reports: TaskReport[] = [];
  const client = createClient(WorkerService, manager.transport);
  const outbox = new ReportOutbox({
    stateDir: dir,
    log: silentLogger,
    maxRetryDelayMs: 200,
    send: async (report) => {
      reports.push(report);
      await client.setTask(setTaskRequest("w-1", report));
    },
  });
  const logs = new LogStore({
    dir: `${dir}/logs`,
    limit: 1 << 20,
    retentionMs: 3_600_000,
    log: silentLogger,
  });
  const agent = new Agent({
    executor: createProcessExecutor({ outputLimit: 1024, workerId: "w-1" }),
    outbox,
    logs,
    log: silentLogger,
  });
  const stop = new AbortController();
  let loop: Promise<void> | undefined;
  try {
    await before?.(dir, manager);
    await outbox.load();
    await logs.start();
    loop = runConnectionLoop({
      client,
      managerUrl: "memory",
      intro: {
        workerId: "w-1",
        hostname: "test",
        capabilities: {
          cpuCores: 1,
          memoryBytes: 1n,
          os: "linux",
          arch: "x86_64",
          capacity: { cpu: 0.5, memoryBytes: 512n * 1024n * 1024n, slots: 2, queue: 1 },
          labels: { zone: "a", gpu: "true" },
        },
        version: "test",
      },
      agent,
      outbox,
      logs,
      log: silentLogger,
      reconnectMaxDelayMs: 200,
    }, stop.signal);
    await fn({ manager, agent, outbox, logs, dir, reports });
  } finally {
    stop.abort();
    manager.close();
    await loop;
    await agent.stopAll();
    await outbox.close();
    await logs.close();
    await Deno.remove(dir, { recursive: true });
  }
}

const refs = (list: { taskId: string; attempt: number }[]) =>
  list.map((r) => `${r.taskId}#${r.attempt}`).sort();

/** The pid (= process group) a task started with `echo $$` printed first. */
async function pidOf(dir: string, taskId: string, attempt = 1): Promise<number> {
  const path = `${dir}/logs/${taskId}.${attempt}.stdout`;
  let first = "";
  await eventually(async () => {
    first = (await Deno.readTextFile(path).catch(() => "")).split("\n")[0];
    return /^\d+$/.test(first);
  }, `the pid of ${taskId}`);
  return Number(first);
}

const welcome: ToWorker = { msg: { case: "welcome", value: { pingIntervalMs: 60_000 } } };

Deno.test("the hello carries the worker's capacity and labels", async () => {
  await withWorker(async ({ manager }) => {
    const hello = await manager.hello(0);
    const capabilities = hello.capabilities!;
    assert.equal(capabilities.capacity?.cpu, 0.5);
    assert.equal(capabilities.capacity?.memoryBytes, 512n * 1024n * 1024n);
    assert.equal(capabilities.capacity?.slots, 2);
    assert.deepEqual(capabilities.labels, { zone: "a", gpu: "true" });
    assert.equal(capabilities.cpuCores, 1);
  });
});

Deno.test("a ping is answered with a pong unless the manager says it needs none", async () => {
  await withWorker(async ({ manager }) => {
    await manager.hello(0);
    manager.send(welcome);
    manager.send({ msg: { case: "ping", value: { seq: 1n, noPong: true } } });
    manager.send({ msg: { case: "ping", value: { seq: 2n } } });
    const pongs = () =>
      manager.current.fromWorker.flatMap((r) => r.msg.case === "pong" ? [r.msg.value.seq] : []);
    await eventually(() => pongs().length > 0, "a pong");
    // The worker handles messages in order: once the second ping's pong is in, the first
    // ping's would be too.
    assert.deepEqual(pongs(), [2n]);
  });
});

Deno.test("a manager heard from keeps its stream; one quiet for three pings loses it", async () => {
  await withWorker(async ({ manager }) => {
    await manager.hello(0);
    // Three pings of 400 ms: the worker gives up on a stream after 1.2 s without a message.
    manager.send({ msg: { case: "welcome", value: { pingIntervalMs: 400 } } });
    const start = performance.now();
    for (let i = 1n; i <= 8n; i++) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      manager.send({ msg: { case: "ping", value: { seq: i, noPong: true } } });
    }
    assert.equal(manager.streams.length, 1, "2 s of pings every 250 ms keep the one stream");
    const quietFrom = performance.now();
    await manager.hello(1);
    const quietFor = performance.now() - quietFrom;
    assert.ok(quietFor >= 1_100, `the stream was given up only after the limit (${quietFor} ms)`);
    assert.ok(performance.now() - start >= 3_000);
  });
});

Deno.test("over its stream the worker runs, serves logs of, and cancels a task", async () => {
  await withWorker(async ({ manager, reports, dir }) => {
    const fromWorker = () => manager.current.fromWorker;
    const chunksOf = (id: bigint) =>
      fromWorker().flatMap((r) =>
        r.msg.case === "logChunk" && r.msg.value.requestId === id ? [r.msg.value] : []
      );
    const textOf = (id: bigint) =>
      chunksOf(id).map((c) => new TextDecoder().decode(c.data)).join("");

    await manager.hello(0);
    manager.send(welcome);
    manager.send({
      msg: {
        case: "run",
        value: {
          taskId: "t-1",
          attempt: 1,
          cmd: "sh",
          params: ["-c", 'echo "$GREETING from $(pwd)"; sleep 100 & sleep 100'],
          env: { GREETING: "hi" },
          cwd: "/tmp",
          killTimeout: durationFromMs(2_000),
        },
      },
    });
    await eventually(() => fromWorker().some((r) => r.msg.case === "ack"), "the ack");
    await eventually(async () => {
      try {
        return (await Deno.readTextFile(`${dir}/logs/t-1.1.stdout`)) !== "";
      } catch {
        return false;
      }
    }, "the first line in the log");

    manager.send({
      msg: { case: "logRequest", value: { requestId: 1n, taskId: "t-1", attempt: 1 } },
    });
    manager.send({
      msg: {
        case: "logRequest",
        value: { requestId: 2n, taskId: "t-1", attempt: 1, follow: true },
      },
    });
    manager.send({
      msg: { case: "logRequest", value: { requestId: 3n, taskId: "t-2", attempt: 1 } },
    });
    await eventually(() => chunksOf(1n).some((c) => c.eof), "eof of the plain read");
    assert.equal(textOf(1n), "hi from /tmp\n");
    await eventually(() => chunksOf(3n).length === 1, "the unknown attempt's answer");
    assert.equal(chunksOf(3n)[0].error, "no logs for task t-2 attempt 1 on this worker");
    await eventually(() => textOf(2n) === "hi from /tmp\n", "the follow's content");
    assert.ok(!chunksOf(2n).some((c) => c.eof), "the follow stays open while the task runs");

    manager.send({ msg: { case: "cancel", value: { taskId: "t-1", attempt: 1 } } });
    await eventually(() => chunksOf(2n).some((c) => c.eof), "eof of the follow");
    await eventually(() => reports.length === 1, "the report");
    assert.equal(reports[0].result.termination, "cancelled");
    assert.deepEqual(reports[0].result.outcome, {
      kind: "exited",
      exitCode: 143,
      signal: "SIGTERM",
    });
  });
});

Deno.test("every stream's hello lists the attempts running and those not reported yet", async () => {
  let accept = false;
  await withWorker(
    async ({ manager, outbox, dir }) => {
      const first = await manager.hello(0);
      assert.equal(first.workerId, "w-1");
      assert.deepEqual(refs(first.running), []);
      assert.deepEqual(refs(first.unreported), ["t-old#3"]);

      manager.send(welcome);
      for (const [taskId, script] of [["t-1", "echo $$; sleep 100"], ["t-2", "exit 4"]]) {
        manager.send({
          msg: { case: "run", value: { taskId, attempt: 1, cmd: "sh", params: ["-c", script] } },
        });
      }
      await eventually(() => outbox.has("t-2", 1), "t-2's report in the outbox");
      const pid = await pidOf(dir, "t-1");
      try {
        manager.cut();
        const second = await manager.hello(1);
        assert.deepEqual(refs(second.running), ["t-1#1"]);
        assert.deepEqual(refs(second.unreported), ["t-2#1", "t-old#3"]);
        assert.ok((await groupMembers(pid)).includes(pid), "t-1 still runs");

        // Reports the manager accepted leave the outbox and the next hello.
        accept = true;
        manager.send(welcome);
        await eventually(() => outbox.size === 0, "the reports delivered");
        manager.cut();
        const third = await manager.hello(2);
        assert.deepEqual(refs(third.running), ["t-1#1"]);
        assert.deepEqual(refs(third.unreported), []);
      } finally {
        killGroup(pid);
      }
    },
    async (dir, manager) => {
      // The manager takes no report until the test says so: they stay in the outbox.
      manager.onSetTask = () => {
        if (!accept) throw new ConnectError("the store is down", Code.Unavailable);
      };
      // A result the previous life could not deliver.
      const report: TaskReport = {
        taskId: "t-old",
        attempt: 3,
        result: {
          outcome: { kind: "exited", exitCode: 0 },
          output: { stdout: "", stderr: "", stdoutTruncated: false, stderrTruncated: false },
          startedAt: 1,
          finishedAt: 2,
        },
      };
      const previous = new ReportOutbox({
        stateDir: dir,
        log: silentLogger,
        maxRetryDelayMs: 200,
        send: () => Promise.reject(new ConnectError("no manager", Code.Unavailable)),
      });
      await previous.load();
      previous.add(report);
      await previous.close();
    },
  );
});

Deno.test("a dropped stream leaves a running task alone; its result comes after the reconnect", async () => {
  await withWorker(async ({ manager, reports, dir }) => {
    await manager.hello(0);
    manager.send(welcome);
    manager.send({
      msg: {
        case: "run",
        value: {
          taskId: "t-1",
          attempt: 1,
          cmd: "sh",
          // Runs until the test creates the file `go`, then says so and exits 7.
          params: [
            "-c",
            `echo $$; while [ ! -e ${dir}/go ]; do sleep 0.02; done; echo done; exit 7`,
          ],
        },
      },
    });
    const pid = await pidOf(dir, "t-1");
    try {
      // The manager cannot take the report while the worker is away.
      manager.onSetTask = () => {
        throw new ConnectError("no such stream", Code.Unavailable);
      };
      manager.cut();
      await manager.hello(1);
      manager.cut();
      const hello = await manager.hello(2);
      assert.deepEqual(refs(hello.running), ["t-1#1"]);
      assert.ok((await groupMembers(pid)).includes(pid), "t-1 still runs");

      await Deno.writeTextFile(`${dir}/go`, "");
      await eventually(() => reports.length > 0, "a first try to report");
      manager.onSetTask = () => {};
      manager.send(welcome);
      await eventually(() => manager.setTasks.length > 0 && reports.length > 1, "the delivery");
      const delivered = manager.setTasks.at(-1)!;
      assert.equal(delivered.taskId, "t-1");
      assert.equal(delivered.outcome.case, "exited");
      assert.equal(delivered.outcome.value?.exitCode, 7);
      assert.equal(delivered.stdout, `${pid}\ndone\n`);
      assert.equal(delivered.termination, Termination.UNSPECIFIED);
      assert.ok(delivered.startedAt && delivered.finishedAt, "the times are filled");
    } finally {
      killGroup(pid);
    }
  });
});

Deno.test("a stale attempt the manager cancels is stopped, reported and, refused, dropped", async () => {
  await withWorker(async ({ manager, outbox, agent, reports, dir }) => {
    // The task was retried elsewhere while this worker was away: its report is stale.
    manager.onSetTask = () => {
      throw new ConnectError(
        "task t-1 attempt 1 is no longer this worker's",
        Code.FailedPrecondition,
      );
    };
    await manager.hello(0);
    manager.send(welcome);
    manager.send({
      msg: {
        case: "run",
        value: { taskId: "t-1", attempt: 1, cmd: "sh", params: ["-c", "echo $$; sleep 100"] },
      },
    });
    const pid = await pidOf(dir, "t-1");
    try {
      manager.cut();
      const hello = await manager.hello(1);
      assert.deepEqual(refs(hello.running), ["t-1#1"]);
      manager.send(welcome);
      manager.send({ msg: { case: "cancel", value: { taskId: "t-1", attempt: 1 } } });
      await eventually(() => manager.setTasks.length === 1, "the report");
      assert.equal(manager.setTasks[0].termination, Termination.CANCELLED);
      assert.equal(reports[0].result.termination, "cancelled");
      assert.deepEqual(await groupMembers(pid), [], "the process is gone");
      await eventually(() => outbox.size === 0 && agent.running === 0, "the report dropped");
      manager.cut();
      const after = await manager.hello(2);
      assert.deepEqual(refs(after.running), []);
      assert.deepEqual(refs(after.unreported), []);
    } finally {
      killGroup(pid);
    }
  });
});

Deno.test("a hello lists an attempt whose report is already kept as unreported only", () => {
  const intro = {
    workerId: "w-1",
    hostname: "h",
    capabilities: {
      cpuCores: 1,
      memoryBytes: 1n,
      os: "linux",
      arch: "x86_64",
      capacity: { cpu: 1, memoryBytes: 1n, slots: 1, queue: 0 },
      labels: {},
    },
    version: "v",
  };
  const agent = {
    runningAttempts: () => [
      { taskId: "t-1", attempt: 1 },
      { taskId: "t-2", attempt: 1 },
      { taskId: "t-4", attempt: 1 },
    ],
    queuedAttempts: () => [{ taskId: "t-4", attempt: 1 }],
  } as unknown as Agent;
  const outbox = {
    unreported: () => [{ taskId: "t-2", attempt: 1 }, { taskId: "t-3", attempt: 2 }],
  } as unknown as ReportOutbox;
  const message = hello({ intro, agent, outbox });
  assert.equal(message.workerId, "w-1");
  assert.deepEqual(message.running, [{ taskId: "t-1", attempt: 1 }, { taskId: "t-4", attempt: 1 }]);
  assert.deepEqual(message.queued, [{ taskId: "t-4", attempt: 1 }], "of those, the queued");
  assert.deepEqual(message.unreported, [{ taskId: "t-2", attempt: 1 }, {
    taskId: "t-3",
    attempt: 2,
  }]);
});
