import assert from "node:assert/strict";
import { Code, ConnectError } from "@connectrpc/connect";
import { silentLogger } from "../shared/log.ts";
import type { ProcessResult } from "./executor.ts";
import { ReportOutbox, type TaskReport } from "./report_outbox.ts";
import { readJournal, withTempDir } from "./test_util.ts";

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

const withStateDir = (fn: (dir: string) => Promise<void>) => withTempDir("goschedule-outbox-", fn);

function newOutbox(stateDir: string, send: (r: TaskReport) => Promise<void>, log = silentLogger) {
  return new ReportOutbox({ stateDir, send, log, maxRetryDelayMs: 60_000 });
}

async function withOutbox(
  send: (r: TaskReport) => Promise<void>,
  fn: (outbox: ReportOutbox) => Promise<void>,
): Promise<void> {
  await withStateDir(async (dir) => {
    const outbox = newOutbox(dir, send);
    try {
      await outbox.load();
      await fn(outbox);
    } finally {
      await outbox.close();
    }
  });
}

/** The keys of the reports on disk, as the next life of the worker would find them. */
async function onDisk(outbox: ReportOutbox): Promise<string[]> {
  return [...(await readJournal(outbox.path)).keys()].sort();
}

const unavailable = () => Promise.reject(new ConnectError("manager gone", Code.Unavailable));

async function until(what: string, condition: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !condition(); i++) await new Promise((r) => setTimeout(r, 2));
  assert.ok(condition(), what);
}

Deno.test("the outbox sends queued reports together, not one store write after another", async () => {
  const { calls, send } = heldSend();
  await withOutbox(send, async (outbox) => {
    outbox.add(report("a"));
    await until("the first report is sent", () => calls.length === 1);
    // While "a" is out, two more finish: they go out together, without waiting for "a".
    outbox.add(report("b"));
    outbox.add(report("c"));
    calls[0].settle();
    await until("b and c are out at once", () => calls.length === 3);
    assert.deepEqual(calls.map((c) => c.report.taskId), ["a", "b", "c"]);
    assert.deepEqual(await onDisk(outbox), ["b.1", "c.1"], "only a was delivered");
    calls[1].settle();
    calls[2].settle();
    assert.equal(await outbox.drain(5_000), 0);
    assert.deepEqual(await onDisk(outbox), []);
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
  await withOutbox(send, async (outbox) => {
    outbox.add(report("a"));
    outbox.add(report("b"));
    await until("both are out", () => calls.length === 2);
    calls[0].settle(new ConnectError("manager gone", Code.Unavailable));
    calls[1].settle();
    await until("b is delivered", () => outbox.size === 1);
    assert.deepEqual(outbox.unreported(), [{ taskId: "a", attempt: 1 }]);
    assert.deepEqual(await onDisk(outbox), ["a.1"]);
    outbox.flush(); // What a reconnect does, rather than waiting out the backoff.
    await until("a is sent again", () => calls.length === 3);
    assert.equal(calls[2].report.taskId, "a");
    calls[2].settle();
    assert.equal(await outbox.drain(5_000), 0);
    assert.deepEqual(await onDisk(outbox), []);
  });
});

Deno.test("a report the manager refuses for good is dropped, from disk too", async () => {
  const { calls, send } = heldSend();
  await withOutbox(send, async (outbox) => {
    outbox.add(report("a"));
    await until("a is out", () => calls.length === 1);
    calls[0].settle(new ConnectError("attempt is stale", Code.FailedPrecondition));
    assert.equal(await outbox.drain(5_000), 0);
    assert.deepEqual(await onDisk(outbox), []);
    assert.equal(calls.length, 1);
  });
});

Deno.test("the reports a worker could not deliver are loaded and sent by its next life", async () => {
  await withStateDir(async (dir) => {
    const first = newOutbox(dir, unavailable);
    try {
      await first.load();
      first.add(report("a"));
      first.add(report("b"));
      first.add({ ...report("a"), attempt: 2 });
    } finally {
      await first.close();
    }
    const { calls, send } = heldSend();
    const next = newOutbox(dir, send);
    try {
      assert.equal(await next.load(), 3);
      assert.deepEqual(next.unreported(), [
        { taskId: "a", attempt: 1 },
        { taskId: "b", attempt: 1 },
        { taskId: "a", attempt: 2 },
      ]);
      await until("all three are sent", () => calls.length === 3);
      assert.deepEqual(calls[0].report, report("a"));
      for (const call of calls) call.settle();
      assert.equal(await next.drain(5_000), 0);
    } finally {
      await next.close();
    }
    assert.deepEqual([...(await readJournal(`${dir}/outbox.jsonl`)).keys()], []);
  });
});

Deno.test("an upgraded worker moves the reports of state_dir/outbox/ into the journal", async () => {
  await withStateDir(async (dir) => {
    await Deno.mkdir(`${dir}/outbox`);
    const write = (name: string, text: string) => Deno.writeTextFile(`${dir}/outbox/${name}`, text);
    await write("a.1.json", JSON.stringify(report("a")));
    await write("b.3.json", JSON.stringify({ ...report("b"), attempt: 3 }));
    await write("c.1.json.tmp", JSON.stringify(report("c")).slice(0, 30));
    await write("junk.json", "{not json");
    const warned: string[] = [];
    const log = { ...silentLogger, warn: (message: string) => warned.push(message) };

    // The first start after the upgrade has no manager yet.
    const first = newOutbox(dir, unavailable, log);
    try {
      assert.equal(await first.load(), 2);
      assert.ok(first.has("a", 1) && first.has("b", 3));
    } finally {
      await first.close();
    }
    assert.deepEqual(warned, ["ignoring an unreadable file of the old state_dir layout"]);
    const left = [];
    for await (const entry of Deno.readDir(`${dir}/outbox`)) left.push(entry.name);
    assert.deepEqual(left, ["junk.json"], "moved reports and the cut write are gone");

    // The next finds them in the journal, and delivers them.
    const { calls, send } = heldSend();
    const next = newOutbox(dir, send);
    try {
      assert.equal(await next.load(), 2);
      await until("both are sent", () => calls.length === 2);
      assert.deepEqual(calls.map((c) => c.report), [report("a"), { ...report("b"), attempt: 3 }]);
      for (const call of calls) call.settle();
      assert.equal(await next.drain(5_000), 0);
    } finally {
      await next.close();
    }
  });
});

Deno.test("state_dir/outbox/ is removed once every report in it was moved", async () => {
  await withStateDir(async (dir) => {
    await Deno.mkdir(`${dir}/outbox`);
    await Deno.writeTextFile(`${dir}/outbox/a.1.json`, JSON.stringify(report("a")));
    const outbox = newOutbox(dir, unavailable);
    try {
      assert.equal(await outbox.load(), 1);
    } finally {
      await outbox.close();
    }
    await assert.rejects(Deno.stat(`${dir}/outbox`), Deno.errors.NotFound);
    assert.deepEqual([...(await readJournal(`${dir}/outbox.jsonl`)).keys()], ["a.1"]);
  });
});
