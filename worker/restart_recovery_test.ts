/**
 * Start-up after a SIGKILL: real processes, started as the executor starts them (their own
 * session and process group, the task's environment) and recorded as a previous life of the
 * worker records them.
 */
import assert from "node:assert/strict";
import { Code, ConnectError } from "@connectrpc/connect";
import { silentLogger } from "../shared/log.ts";
import { taskEnvironment } from "./executor.ts";
import { LogStore } from "./log_store.ts";
import { readProcStat } from "./proc.ts";
import { ReportOutbox, type TaskReport } from "./report_outbox.ts";
import {
  ABANDONED_ENDED,
  ABANDONED_KILLED,
  ABANDONED_UNSEEN,
  recoverPreviousLife,
  type RecoveryOptions,
  type RecoverySummary,
} from "./restart_recovery.ts";
import { NOT_STARTED_RESTARTED, QueuedRecords, recoverQueued } from "./queued_records.ts";
import { RunningRecords } from "./running_records.ts";
import { dropMarker } from "./stream_log.ts";
import { groupMembers, killGroup, readJournal } from "./test_util.ts";

interface StateDir {
  dir: string;
  /** The previous life's records and outbox; recover() starts the next life's from the files. */
  records: RunningRecords;
  outbox: ReportOutbox;
  logs: LogStore;
  /** Spawns `sh -c script` as the executor does, for task `taskId` attempt `attempt` (1). */
  spawn(taskId: string, script: string, attempt?: number): Deno.ChildProcess;
  /**
   * Ends the previous life (as SIGKILL would: nothing more written) and runs the next's start;
   * `first` runs before the running records' recovery, with the next life's outbox loaded.
   */
  recover(
    more?: Partial<RecoveryOptions>,
    first?: (outbox: ReportOutbox) => Promise<void>,
  ): Promise<RecoverySummary>;
  /** The report kept in the outbox for the attempt, as it would be sent. */
  report(taskId: string, attempt?: number): Promise<TaskReport>;
  /** The keys of the running records a further life would find. */
  recordsOnDisk(): Promise<string[]>;
}

/** One life of the worker: its records and outbox over the state_dir's files. */
function life(dir: string) {
  return {
    records: new RunningRecords({ stateDir: dir, log: silentLogger }),
    outbox: new ReportOutbox({
      stateDir: dir,
      log: silentLogger,
      maxRetryDelayMs: 1000,
      // No manager yet: the reports stay in the outbox, where the test reads them.
      send: () => Promise.reject(new ConnectError("not connected", Code.Unavailable)),
    }),
  };
}

/** A state_dir in a temp folder; every process spawned is killed and reaped at the end. */
async function withStateDir(fn: (s: StateDir) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  const children: Deno.ChildProcess[] = [];
  const lives = [life(dir)];
  const logs = new LogStore({
    dir: `${dir}/logs`,
    limit: 1 << 20,
    retentionMs: 3_600_000,
    log: silentLogger,
  });
  const state: StateDir = {
    dir,
    ...lives[0],
    logs,
    spawn(taskId, script, attempt = 1) {
      const child = new Deno.Command("sh", {
        args: ["-c", script],
        clearEnv: true,
        env: taskEnvironment({ taskId, attempt }, "w-test", "/"),
        stdin: "null",
        stdout: "null",
        stderr: "null",
        detached: true,
      }).spawn();
      children.push(child);
      return child;
    },
    async recover(more = {}, first) {
      const previous = lives[lives.length - 1];
      previous.records.close();
      await previous.outbox.close();
      const next = life(dir);
      lives.push(next);
      await next.outbox.load();
      await first?.(next.outbox);
      await next.records.start();
      return recoverPreviousLife({ ...next, logs, outputLimit: 1024, log: silentLogger, ...more });
    },
    async report(taskId, attempt = 1) {
      const { outbox } = lives[lives.length - 1];
      assert.ok(outbox.has(taskId, attempt), `a report of ${taskId} in the outbox`);
      const report = (await readJournal(outbox.path)).get(`${taskId}.${attempt}`);
      assert.ok(report, `a report of ${taskId} in ${outbox.path}`);
      return report as TaskReport;
    },
    async recordsOnDisk() {
      return [...(await readJournal(`${dir}/running.jsonl`)).keys()];
    },
  };
  try {
    await Deno.mkdir(`${dir}/logs`);
    await lives[0].records.start();
    await lives[0].outbox.load();
    await fn(state);
  } finally {
    for (const child of children) killGroup(child.pid);
    await Promise.all(children.map((c) => c.status));
    for (const { records, outbox } of lives) {
      records.close();
      await outbox.close();
    }
    await Deno.remove(dir, { recursive: true });
  }
}

/** Waits (on a loaded machine a shell takes a while to start its children) for a group's size. */
async function untilGroupHas(pgid: number, members: number, what: string): Promise<void> {
  for (let i = 0; i < 500 && (await groupMembers(pgid)).length < members; i++) {
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.ok((await groupMembers(pgid)).length >= members, what);
}

/** Records a just-spawned process as the previous life's agent did. */
function record(s: StateDir, taskId: string, pid: number, killTimeoutMs = 10_000) {
  return s.records.add({ taskId, attempt: 1, pid, startedAt: 1_700_000_000_000, killTimeoutMs });
}

Deno.test("a restarted worker kills the process groups its previous life left running", async () => {
  await withStateDir(async (s) => {
    // One that stops on SIGTERM, with a child in its group; one that ignores SIGTERM and asks
    // for a long kill timeout (capped at start-up).
    const polite = s.spawn("t-1", "sleep 100 & wait");
    const stubborn = s.spawn("t-2", "trap '' TERM; sleep 100 & while :; do sleep 0.05; done");
    await record(s, "t-1", polite.pid);
    await record(s, "t-2", stubborn.pid, 60_000);
    // What the previous life's log files held: more than output_limit of stdout, cut once.
    const big = "x".repeat(2000) + "END\n";
    await Deno.writeTextFile(`${s.dir}/logs/t-1.1.stdout`, dropMarker(5000) + "a".repeat(20));
    await Deno.writeTextFile(`${s.dir}/logs/t-1.1.stderr`, "oops\n");
    await Deno.writeTextFile(`${s.dir}/logs/t-2.1.stdout`, big);
    await Deno.writeTextFile(`${s.dir}/logs/t-2.1.stdout.tmp`, "a rewrite cut short");
    // Each shell has started its background sleep, so t-2's trap is set before any SIGTERM.
    await untilGroupHas(polite.pid, 2, "t-1 runs, with its child");
    await untilGroupHas(stubborn.pid, 2, "t-2 ignores SIGTERM and runs its child");

    const began = Date.now();
    const summary = await s.recover({ maxKillWaitMs: 300 });
    assert.ok(Date.now() - began < 5000, "start-up waited no longer than the cap");
    assert.deepEqual(summary, { killed: 2, ended: 0, reported: 0 });
    assert.deepEqual(await groupMembers(polite.pid), [], "nothing left of t-1");
    assert.deepEqual(await groupMembers(stubborn.pid), [], "nothing left of t-2");
    assert.equal((await polite.status).signal, "SIGTERM");
    assert.equal((await stubborn.status).signal, "SIGKILL");

    const t1 = await s.report("t-1");
    assert.deepEqual(t1.result.outcome, { kind: "abandoned", reason: ABANDONED_KILLED });
    assert.deepEqual(t1.result.output, {
      stdout: "a".repeat(20),
      stderr: "oops\n",
      stdoutTruncated: true,
      stderrTruncated: false,
    });
    assert.equal(t1.result.startedAt, 1_700_000_000_000);
    assert.ok(Math.abs(t1.result.finishedAt - Date.now()) < 10_000);
    const t2 = await s.report("t-2");
    assert.deepEqual(t2.result.outcome, { kind: "abandoned", reason: ABANDONED_KILLED });
    assert.equal(t2.result.output.stdout, big.slice(-1024));
    assert.equal(t2.result.output.stdoutTruncated, true);
    assert.equal(t2.result.output.stderr, "");

    assert.deepEqual(await s.recordsOnDisk(), []);
    // The logs stay readable, as any ended attempt's.
    const read: string[] = [];
    await s.logs.attach("t-2", 1, "stdout", true, {
      snapshot: (data) => read.push(new TextDecoder().decode(data)),
      data: () => assert.fail("an ended attempt's log has no live output"),
      end: () => read.push("<end>"),
    });
    assert.deepEqual(read, [big, "<end>"]);
    await assert.rejects(Deno.stat(`${s.dir}/logs/t-2.1.stdout.tmp`), Deno.errors.NotFound);
  });
});

Deno.test("a group whose leader ended is found by its members' environment and killed", async () => {
  await withStateDir(async (s) => {
    const leader = s.spawn("t-1", "sleep 100 & sleep 0.3");
    await record(s, "t-1", leader.pid);
    await leader.status;
    assert.equal((await groupMembers(leader.pid)).length, 1, "the child lives on");
    const summary = await s.recover({ maxKillWaitMs: 300 });
    assert.deepEqual(summary, { killed: 1, ended: 0, reported: 0 });
    assert.deepEqual(await groupMembers(leader.pid), []);
    assert.equal((await s.report("t-1")).result.outcome.kind, "abandoned");
  });
});

Deno.test("an attempt recorded before its spawn is found by its processes' environment", async () => {
  await withStateDir(async (s) => {
    // The previous life died after the spawn, before it wrote the pid.
    const ours = s.spawn("t-1", "sleep 100 & wait");
    s.records.begin({ taskId: "t-1", attempt: 1, startedAt: 1, killTimeoutMs: 100 });
    // Not this attempt: another attempt of the same task, and another task.
    const laterAttempt = s.spawn("t-1", "exec sleep 100", 2);
    const otherTask = s.spawn("t-2", "exec sleep 100");
    await untilGroupHas(ours.pid, 2, "t-1 runs, with its child");
    const summary = await s.recover({ maxKillWaitMs: 300 });
    assert.deepEqual(summary, { killed: 1, ended: 0, reported: 0 });
    assert.deepEqual(await groupMembers(ours.pid), [], "nothing left of t-1 attempt 1");
    assert.equal((await ours.status).signal, "SIGTERM");
    assert.deepEqual(await groupMembers(laterAttempt.pid), [laterAttempt.pid]);
    assert.deepEqual(await groupMembers(otherTask.pid), [otherTask.pid]);
    assert.deepEqual((await s.report("t-1")).result.outcome, {
      kind: "abandoned",
      reason: ABANDONED_KILLED,
    });
    assert.deepEqual(await s.recordsOnDisk(), []);
  });
});

Deno.test("an attempt recorded before its spawn, with no process left, is reported", async () => {
  await withStateDir(async (s) => {
    s.records.begin({ taskId: "t-1", attempt: 1, startedAt: 1, killTimeoutMs: 100 });
    const summary = await s.recover();
    assert.deepEqual(summary, { killed: 0, ended: 1, reported: 0 });
    assert.deepEqual((await s.report("t-1")).result.outcome, {
      kind: "abandoned",
      reason: ABANDONED_UNSEEN,
    });
    assert.deepEqual(await s.recordsOnDisk(), []);
  });
});

Deno.test("an attempt both queued and begun is given back unstarted, once, when the queue goes first", async () => {
  await withStateDir(async (s) => {
    // The previous life died between writing the running record and removing the queued one:
    // before the spawn.
    const queued = new QueuedRecords({ stateDir: s.dir, log: silentLogger });
    await queued.start();
    queued.add("t-1", 1, 1);
    queued.close();
    s.records.begin({ taskId: "t-1", attempt: 1, startedAt: 1, killTimeoutMs: 100 });
    let givenBack = 0;
    const summary = await s.recover({}, async (outbox) => {
      const next = new QueuedRecords({ stateDir: s.dir, log: silentLogger });
      await next.start();
      try {
        givenBack = recoverQueued(next, outbox, 2);
      } finally {
        next.close();
      }
    });
    assert.equal(givenBack, 1);
    assert.deepEqual(summary, { killed: 0, ended: 0, reported: 1 });
    assert.deepEqual((await s.report("t-1")).result.outcome, {
      kind: "not_started",
      reason: NOT_STARTED_RESTARTED,
    });
    assert.deepEqual(await s.recordsOnDisk(), []);
  });
});

Deno.test("a recorded pid now used by another process is left alone", async () => {
  await withStateDir(async (s) => {
    const other = s.spawn("t-other", "exec sleep 100");
    const stat = await readProcStat(other.pid);
    assert.ok(stat);
    // Our process had this pid once, but started earlier: the pid was reused since.
    await s.records.write({
      task_id: "t-1",
      attempt: 1,
      pid: other.pid,
      start_time: stat.startTime - 1,
      boot_id: null,
      kill_timeout_ms: 100,
      started_at: 1,
    });
    const summary = await s.recover();
    assert.deepEqual(summary, { killed: 0, ended: 1, reported: 0 });
    assert.deepEqual(await groupMembers(other.pid), [other.pid], "the other process still runs");
    assert.deepEqual((await s.report("t-1")).result.outcome, {
      kind: "abandoned",
      reason: ABANDONED_ENDED,
    });
    assert.deepEqual(await s.recordsOnDisk(), []);
  });
});

Deno.test("a leader started within the record's range of start times is ours, else not", async () => {
  await withStateDir(async (s) => {
    const ours = s.spawn("t-1", "exec sleep 100");
    const other = s.spawn("t-2", "exec sleep 100");
    const startOf = async (pid: number) => (await readProcStat(pid))!.startTime;
    const [t1, t2] = [await startOf(ours.pid), await startOf(other.pid)];
    const base = { attempt: 1, startedAt: 1, killTimeoutMs: 100 };
    await s.records.add({
      ...base,
      taskId: "t-1",
      pid: ours.pid,
      startTime: { earliest: t1 - 2, latest: t1 + 1 },
    });
    // Our process had this pid once, and was started before this one: the pid was reused.
    await s.records.add({
      ...base,
      taskId: "t-2",
      pid: other.pid,
      startTime: { earliest: t2 - 3, latest: t2 - 1 },
    });
    const summary = await s.recover();
    assert.deepEqual(summary, { killed: 1, ended: 1, reported: 0 });
    assert.deepEqual(await groupMembers(ours.pid), []);
    assert.deepEqual(await groupMembers(other.pid), [other.pid], "the other process still runs");
  });
});

Deno.test("a recorded process that is gone gives an already-ended report", async () => {
  await withStateDir(async (s) => {
    const gone = s.spawn("t-1", "sleep 0.2");
    await record(s, "t-1", gone.pid);
    await gone.status;
    await Deno.writeTextFile(`${s.dir}/logs/t-1.1.stdout`, "last words\n");
    // And one from another boot of the machine: whatever has its pid and start time now is
    // not ours.
    const other = s.spawn("t-2", "exec sleep 100");
    await s.records.write({
      task_id: "t-2",
      attempt: 1,
      pid: other.pid,
      start_time: (await readProcStat(other.pid))!.startTime,
      boot_id: "00000000-0000-0000-0000-000000000000",
      kill_timeout_ms: 100,
      started_at: 1,
    });
    const summary = await s.recover();
    assert.deepEqual(summary, { killed: 0, ended: 2, reported: 0 });
    const t1 = await s.report("t-1");
    assert.deepEqual(t1.result.outcome, { kind: "abandoned", reason: ABANDONED_ENDED });
    assert.equal(t1.result.output.stdout, "last words\n");
    assert.equal((await s.report("t-2")).result.outcome.kind, "abandoned");
    assert.deepEqual(await groupMembers(other.pid), [other.pid], "the other process still runs");
    assert.deepEqual(await s.recordsOnDisk(), []);
  });
});

Deno.test("a record whose report the previous life kept only goes away", async () => {
  await withStateDir(async (s) => {
    const report: TaskReport = {
      taskId: "t-1",
      attempt: 1,
      result: {
        outcome: { kind: "exited", exitCode: 0 },
        output: { stdout: "ok\n", stderr: "", stdoutTruncated: false, stderrTruncated: false },
        startedAt: 1,
        finishedAt: 2,
      },
    };
    await s.outbox.add(report);
    const child = s.spawn("t-1", "exit 0");
    await record(s, "t-1", child.pid);
    await child.status;
    // What a machine crash could leave: a cut line; and, from a worker before the journal,
    // files that hold no record.
    await Deno.writeTextFile(`${s.dir}/running.jsonl`, `{"put":"t-8.1","val`, { append: true });
    await Deno.mkdir(`${s.dir}/running`);
    await Deno.writeTextFile(`${s.dir}/running/junk.json`, "{not json");
    await Deno.writeTextFile(`${s.dir}/running/t-9.1.json.tmp`, "{half");
    const summary = await s.recover();
    assert.deepEqual(summary, { killed: 0, ended: 0, reported: 1 });
    assert.deepEqual(await s.report("t-1"), report);
    assert.deepEqual(await s.recordsOnDisk(), []);
    await assert.rejects(Deno.stat(`${s.dir}/running`), Deno.errors.NotFound);
  });
});
