import assert from "node:assert/strict";
import { silentLogger } from "../shared/log.ts";
import { Agent } from "./agent.ts";
import {
  createProcessExecutor,
  type Executor,
  type ProcessResult,
  type ProcessSpec,
  type Termination,
} from "./executor.ts";
import { LogStore } from "./log_store.ts";
import { type LogChunkOut, LogSession } from "./log_session.ts";
import { ReportOutbox, type TaskReport } from "./report_outbox.ts";
import { eventually } from "./test_util.ts";

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
}

async function withAgent(executor: Executor, fn: (f: Fixture) => Promise<void>) {
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
  const agent = new Agent({ executor, outbox, logs, log: silentLogger });
  try {
    await outbox.load();
    await logs.start();
    await fn({ agent, reports, logs, logsDir: `${dir}/logs` });
  } finally {
    await agent.stopAll();
    await outbox.drain(1000);
    await outbox.close();
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
