/**
 * The worker's stream against an in-memory manager (createRouterTransport): tasks are
 * acknowledged and run with their spec, log requests are answered on the same stream, and a
 * cancel stops the process and is reported as such.
 */
import assert from "node:assert/strict";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { createClient, createRouterTransport } from "@connectrpc/connect";
import {
  type ConnectRequest,
  type ConnectResponseSchema,
  WorkerService,
} from "../shared/gen/goschedule/v1/goschedule_pb.ts";
import { silentLogger } from "../shared/log.ts";
import { Agent } from "./agent.ts";
import { runConnectionLoop, runRequest } from "./connection.ts";
import { createProcessExecutor } from "./executor.ts";
import { LogStore } from "./log_store.ts";
import { ReportOutbox, type TaskReport } from "./report_outbox.ts";
import { eventually } from "./test_util.ts";

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
  });
  const bare = runRequest({ ...base, cmd: "true", params: [], env: {}, cwd: "" });
  assert.equal(bare.timeoutMs, undefined);
  assert.equal(bare.killTimeoutMs, undefined);
});

Deno.test("over its stream the worker runs, serves logs of, and cancels a task", async () => {
  const dir = await Deno.makeTempDir();
  const reports: TaskReport[] = [];
  const outbox = new ReportOutbox({
    dir: `${dir}/outbox`,
    log: silentLogger,
    maxRetryDelayMs: 1000,
    send: (report) => {
      reports.push(report);
      return Promise.resolve();
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
  const fromWorker: ConnectRequest[] = [];
  const toWorker: ToWorker[] = [];
  let wake = () => {};
  const transport = createRouterTransport(({ service }) => {
    service(WorkerService, {
      async *connect(requests) {
        // Collects what the worker sends; yields what the test queues.
        void (async () => {
          for await (const request of requests) fromWorker.push(request);
        })().catch(() => {});
        for (;;) {
          while (toWorker.length > 0) yield toWorker.shift()!;
          await new Promise<void>((resolve) => wake = resolve);
        }
      },
      setTask: () => ({}),
    });
  });
  const send = (message: ToWorker) => {
    toWorker.push(message);
    wake();
  };
  const chunksOf = (id: bigint) =>
    fromWorker.flatMap((r) =>
      r.msg.case === "logChunk" && r.msg.value.requestId === id ? [r.msg.value] : []
    );
  const textOf = (id: bigint) => chunksOf(id).map((c) => new TextDecoder().decode(c.data)).join("");

  const stop = new AbortController();
  await outbox.load();
  await logs.start();
  const loop = runConnectionLoop({
    client: createClient(WorkerService, transport),
    managerUrl: "memory",
    intro: {
      workerId: "w-1",
      hostname: "test",
      capabilities: { cpuCores: 1, memoryBytes: 1n, os: "linux", arch: "x86_64" },
      version: "test",
    },
    agent,
    logs,
    log: silentLogger,
    reconnectMaxDelayMs: 1000,
  }, stop.signal);
  try {
    await eventually(() => fromWorker[0]?.msg.case === "hello", "the hello");
    send({ msg: { case: "welcome", value: { pingIntervalMs: 60_000 } } });
    send({
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
    await eventually(() => fromWorker.some((r) => r.msg.case === "ack"), "the ack");
    await eventually(async () => {
      try {
        return (await Deno.readTextFile(`${dir}/logs/t-1.1.stdout`)) !== "";
      } catch {
        return false;
      }
    }, "the first line in the log");

    send({ msg: { case: "logRequest", value: { requestId: 1n, taskId: "t-1", attempt: 1 } } });
    send({
      msg: {
        case: "logRequest",
        value: { requestId: 2n, taskId: "t-1", attempt: 1, follow: true },
      },
    });
    send({ msg: { case: "logRequest", value: { requestId: 3n, taskId: "t-2", attempt: 1 } } });
    await eventually(() => chunksOf(1n).some((c) => c.eof), "eof of the plain read");
    assert.equal(textOf(1n), "hi from /tmp\n");
    await eventually(() => chunksOf(3n).length === 1, "the unknown attempt's answer");
    assert.equal(chunksOf(3n)[0].error, "no logs for task t-2 attempt 1 on this worker");
    await eventually(() => textOf(2n) === "hi from /tmp\n", "the follow's content");
    assert.ok(!chunksOf(2n).some((c) => c.eof), "the follow stays open while the task runs");

    send({ msg: { case: "cancel", value: { taskId: "t-1", attempt: 1 } } });
    await eventually(() => chunksOf(2n).some((c) => c.eof), "eof of the follow");
    await eventually(() => reports.length === 1, "the report");
    assert.equal(reports[0].result.termination, "cancelled");
    assert.deepEqual(reports[0].result.outcome, {
      kind: "exited",
      exitCode: 143,
      signal: "SIGTERM",
    });
  } finally {
    stop.abort();
    wake();
    await loop;
    await agent.stopAll();
    await outbox.close();
    await logs.close();
    await Deno.remove(dir, { recursive: true });
  }
});
