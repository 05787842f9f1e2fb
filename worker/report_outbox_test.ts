import assert from "node:assert/strict";
import { Code, ConnectError } from "@connectrpc/connect";
import { silentLogger } from "../shared/log.ts";
import type { ProcessResult } from "./executor.ts";
import { ReportOutbox, type TaskReport } from "./report_outbox.ts";

const RESULT: ProcessResult = {
  outcome: { kind: "exited", exitCode: 0 },
  output: { stdout: "", stderr: "", stdoutTruncated: false, stderrTruncated: false },
  startedAt: 1,
  finishedAt: 2,
};

function report(taskId: string): TaskReport {
  return { taskId, attempt: 1, result: RESULT };
}

/** A send whose calls wait until the test settles them. */
function heldSend() {
  const calls: { report: TaskReport; settle: (error?: Error) => void }[] = [];
  const send = (r: TaskReport) =>
    new Promise<void>((resolve, reject) => {
      calls.push({ report: r, settle: (error) => error ? reject(error) : resolve() });
    });
  return { calls, send };
}

async function withOutbox(
  send: (r: TaskReport) => Promise<void>,
  fn: (outbox: ReportOutbox, dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "goschedule-outbox-" });
  const outbox = new ReportOutbox({ dir, send, log: silentLogger, maxRetryDelayMs: 60_000 });
  try {
    await outbox.load();
    await fn(outbox, dir);
  } finally {
    await outbox.close();
    await Deno.remove(dir, { recursive: true });
  }
}

async function files(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) names.push(entry.name);
  return names.sort();
}

async function until(what: string, condition: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !condition(); i++) await new Promise((r) => setTimeout(r, 2));
  assert.ok(condition(), what);
}

Deno.test("the outbox sends queued reports together, not one store write after another", async () => {
  const { calls, send } = heldSend();
  await withOutbox(send, async (outbox, dir) => {
    outbox.add(report("a"));
    await until("the first report is sent", () => calls.length === 1);
    // While "a" is out, two more finish: they go out together, without waiting for "a".
    outbox.add(report("b"));
    outbox.add(report("c"));
    calls[0].settle();
    await until("b and c are out at once", () => calls.length === 3);
    assert.deepEqual(calls.map((c) => c.report.taskId), ["a", "b", "c"]);
    assert.deepEqual(await files(dir), ["b.1.json", "c.1.json"], "only a was delivered");
    calls[1].settle();
    calls[2].settle();
    assert.equal(await outbox.drain(5_000), 0);
    assert.deepEqual(await files(dir), []);
  });
});

Deno.test("a report goes out without waiting for the answers to earlier ones, 32 at most", async () => {
  const { calls, send } = heldSend();
  await withOutbox(send, async (outbox) => {
    outbox.add(report("a"));
    outbox.add(report("b"));
    await until("a and b are out", () => calls.length === 2);
    // The manager may hold answers back for a while (to send them with its next message).
    outbox.add(report("c"));
    await until("c is out while a and b wait for their answers", () => calls.length === 3);
    for (let i = 0; i < 40; i++) outbox.add(report(`x${i}`));
    await until("32 out at once", () => calls.length === 32);
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(calls.length, 32, "no more than 32 in flight");
    calls[0].settle();
    await until("an answer frees a lane", () => calls.length === 33);
    for (let i = 1; i < calls.length; i++) calls[i].settle();
    await until("all out", () => calls.length === 43);
    for (const call of calls.slice(33)) call.settle();
    assert.equal(await outbox.drain(5_000), 0);
  });
});

Deno.test("a report that fails to go out stays on disk and is sent again", async () => {
  const { calls, send } = heldSend();
  await withOutbox(send, async (outbox, dir) => {
    outbox.add(report("a"));
    outbox.add(report("b"));
    await until("both are out", () => calls.length === 2);
    calls[0].settle(new ConnectError("manager gone", Code.Unavailable));
    calls[1].settle();
    await until("b is delivered", () => outbox.size === 1);
    assert.deepEqual(outbox.unreported(), [{ taskId: "a", attempt: 1 }]);
    assert.deepEqual(await files(dir), ["a.1.json"]);
    outbox.flush(); // What a reconnect does, rather than waiting out the backoff.
    await until("a is sent again", () => calls.length === 3);
    assert.equal(calls[2].report.taskId, "a");
    calls[2].settle();
    assert.equal(await outbox.drain(5_000), 0);
    assert.deepEqual(await files(dir), []);
  });
});

Deno.test("a report the manager refuses for good is dropped, file and all", async () => {
  const { calls, send } = heldSend();
  await withOutbox(send, async (outbox, dir) => {
    outbox.add(report("a"));
    await until("a is out", () => calls.length === 1);
    calls[0].settle(new ConnectError("attempt is stale", Code.FailedPrecondition));
    assert.equal(await outbox.drain(5_000), 0);
    assert.deepEqual(await files(dir), []);
    assert.equal(calls.length, 1);
  });
});
