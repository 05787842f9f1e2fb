import assert from "node:assert/strict";
import { Code, ConnectError } from "@connectrpc/connect";
import { silentLogger } from "../shared/log.ts";
import { NOT_STARTED_RESTARTED, QueuedRecords, recoverQueued } from "./queued_records.ts";
import { ReportOutbox, type TaskReport } from "./report_outbox.ts";
import { readJournal, withTempDir } from "./test_util.ts";

const withStateDir = (fn: (dir: string) => Promise<void>) => withTempDir("goschedule-queued-", fn);

/** Opens the records of `dir` for one life of the worker. */
async function life<T>(dir: string, fn: (records: QueuedRecords) => T | Promise<T>): Promise<T> {
  const records = new QueuedRecords({ stateDir: dir, log: silentLogger });
  await records.start();
  try {
    return await fn(records);
  } finally {
    records.close();
  }
}

/** An outbox that never reaches a manager: what it holds stays in it. */
async function withOutbox(dir: string, fn: (outbox: ReportOutbox) => Promise<void>) {
  const outbox = new ReportOutbox({
    stateDir: dir,
    log: silentLogger,
    maxRetryDelayMs: 60_000,
    send: () => Promise.reject(new ConnectError("no manager here", Code.Unavailable)),
  });
  await outbox.load();
  try {
    await fn(outbox);
  } finally {
    await outbox.close();
  }
}

const keys = (records: QueuedRecords) =>
  records.records().map((r) => `${r.task_id}.${r.attempt}`).sort();

Deno.test("a new life finds the queued attempts the last one did not remove", async () => {
  await withStateDir(async (dir) => {
    await life(dir, (records) => {
      records.add("t-1", 1, 1000);
      records.add("t-2", 1, 1001);
      records.add("t-2", 2, 1002);
      records.remove("t-2", 1);
    });
    assert.deepEqual(await life(dir, keys), ["t-1.1", "t-2.2"]);
    assert.deepEqual(
      await life(dir, (records) => records.records().find((r) => r.task_id === "t-1")),
      { task_id: "t-1", attempt: 1, queued_at: 1000 },
    );
  });
});

Deno.test("recovery gives each queued attempt back unstarted and forgets it", async () => {
  await withStateDir(async (dir) => {
    await life(dir, (records) => {
      records.add("t-1", 1, 1000);
      records.add("t-2", 3, 1000);
    });
    await withOutbox(dir, async (outbox) => {
      const given = await life(dir, (records) => recoverQueued(records, outbox, 5000));
      assert.equal(given, 2);
      assert.deepEqual(
        outbox.unreported().map((r) => `${r.taskId}.${r.attempt}`).sort(),
        ["t-1.1", "t-2.3"],
      );
    });
    const kept = await readJournal(`${dir}/outbox.jsonl`);
    assert.deepEqual((kept.get("t-2.3") as TaskReport).result.outcome, {
      kind: "not_started",
      reason: NOT_STARTED_RESTARTED,
    });
    assert.deepEqual(await life(dir, keys), [], "a second restart gives nothing back again");
  });
});

Deno.test("recovery leaves alone an attempt whose report is in the outbox already", async () => {
  await withStateDir(async (dir) => {
    await life(dir, (records) => records.add("t-1", 1, 1000));
    await withOutbox(dir, async (outbox) => {
      // The give-back of a cancel, written just before the worker died.
      outbox.add({
        taskId: "t-1",
        attempt: 1,
        result: {
          outcome: { kind: "not_started", reason: "cancelled while queued" },
          output: { stdout: "", stderr: "", stdoutTruncated: false, stderrTruncated: false },
          startedAt: 1,
          finishedAt: 1,
          termination: "cancelled",
        },
      });
      const given = await life(dir, (records) => recoverQueued(records, outbox, 5000));
      assert.equal(given, 0);
      assert.equal(outbox.size, 1, "the cancel's report, not a second one");
    });
    assert.deepEqual(await life(dir, keys), []);
  });
});
