import assert from "node:assert/strict";
import type { TaskRecord } from "./task.ts";
import { newTask, retriesLeft, retryDelayMs, type TaskEvent, transition } from "./task_machine.ts";

const NOW = 1_000_000;
const LATER = NOW + 500;
const output = { stdout: "hi\n", stderr: "", stdoutTruncated: false, stderrTruncated: false };

/** One task in each situation the machine distinguishes. */
const situations: Record<string, TaskRecord> = {
  "pending, unplaced": newTask("t1", { cmd: "echo", params: ["hi"] }, NOW),
  "pending, sent to w1": {
    ...newTask("t1", { cmd: "echo", params: ["hi"] }, NOW),
    workerId: "w1",
    attempt: 1,
    assignedAt: NOW,
  },
  "scheduled on w1": {
    ...newTask("t1", { cmd: "echo", params: ["hi"] }, NOW),
    state: "scheduled",
    workerId: "w1",
    attempt: 1,
    assignedAt: NOW,
    scheduledAt: NOW,
  },
  "done on w1 with 0": {
    ...newTask("t1", { cmd: "echo", params: ["hi"] }, NOW),
    ...output,
    state: "done",
    workerId: "w1",
    attempt: 1,
    exitCode: 0,
    assignedAt: NOW,
    scheduledAt: NOW,
    finishedAt: NOW,
  },
  "dead": {
    ...newTask("t1", { cmd: "echo", params: ["hi"] }, NOW),
    state: "dead",
    workerId: "w1",
    attempt: 1,
    deadReason: "cancelled",
    finishedAt: NOW,
  },
};

const events: Record<string, TaskEvent> = {
  "assign w2": { type: "assign", workerId: "w2" },
  "ack w1#1": { type: "ack", workerId: "w1", attempt: 1 },
  "exited w1#1 0": { type: "exited", workerId: "w1", attempt: 1, exitCode: 0, output },
  "start_failed w1#1": { type: "start_failed", workerId: "w1", attempt: 1, error: "no such file" },
  "ack_timeout #1": { type: "ack_timeout", attempt: 1, timeoutMs: 5000 },
  "unplaceable": { type: "unplaceable", reason: "no worker is connected" },
  "cancel": { type: "cancel" },
  "cancel_requested": { type: "cancel_requested" },
  "lost w1#1": { type: "lost", workerId: "w1", attempt: 1, why: "gone" },
  "abandoned w1#1": { type: "abandoned", workerId: "w1", attempt: 1, error: "killed" },
  "not_started w1#1": { type: "not_started", workerId: "w1", attempt: 1, reason: "stopping" },
  "exited w1#1 after deadline": {
    type: "exited",
    workerId: "w1",
    attempt: 1,
    exitCode: 143,
    signal: "SIGTERM",
    stoppedFor: "deadline exceeded",
    output,
  },
};

/** Expected outcome: the next state, "same" (idempotent repeat), or the refusal code. */
const table: Record<string, Record<string, string>> = {
  "pending, unplaced": {
    "assign w2": "pending",
    "ack w1#1": "stale",
    "exited w1#1 0": "stale",
    "start_failed w1#1": "stale",
    "ack_timeout #1": "stale",
    "unplaceable": "dead",
    "cancel": "dead",
    "cancel_requested": "invalid_state",
    "lost w1#1": "stale",
    "abandoned w1#1": "stale",
    "not_started w1#1": "stale",
    "exited w1#1 after deadline": "stale",
  },
  "pending, sent to w1": {
    "assign w2": "invalid_state",
    "ack w1#1": "scheduled",
    "exited w1#1 0": "done",
    "start_failed w1#1": "dead",
    "ack_timeout #1": "dead",
    "unplaceable": "invalid_state",
    "cancel": "dead",
    "cancel_requested": "pending",
    "lost w1#1": "dead",
    "abandoned w1#1": "dead",
    "not_started w1#1": "pending",
    "exited w1#1 after deadline": "dead",
  },
  "scheduled on w1": {
    "assign w2": "invalid_state",
    "ack w1#1": "same",
    "exited w1#1 0": "done",
    "start_failed w1#1": "dead",
    "ack_timeout #1": "stale",
    "unplaceable": "invalid_state",
    "cancel": "dead",
    "cancel_requested": "scheduled",
    "lost w1#1": "dead",
    "abandoned w1#1": "dead",
    "not_started w1#1": "pending",
    "exited w1#1 after deadline": "dead",
  },
  "done on w1 with 0": {
    "assign w2": "invalid_state",
    "ack w1#1": "same",
    "exited w1#1 0": "same",
    "start_failed w1#1": "invalid_state",
    "ack_timeout #1": "stale",
    "unplaceable": "invalid_state",
    "cancel": "invalid_state",
    "cancel_requested": "invalid_state",
    "lost w1#1": "invalid_state",
    "abandoned w1#1": "invalid_state",
    "not_started w1#1": "invalid_state",
    "exited w1#1 after deadline": "invalid_state",
  },
  "dead": {
    "assign w2": "invalid_state",
    "ack w1#1": "invalid_state",
    "exited w1#1 0": "invalid_state",
    "start_failed w1#1": "invalid_state",
    "ack_timeout #1": "stale",
    "unplaceable": "invalid_state",
    "cancel": "invalid_state",
    "cancel_requested": "invalid_state",
    "lost w1#1": "invalid_state",
    "abandoned w1#1": "invalid_state",
    "not_started w1#1": "invalid_state",
    "exited w1#1 after deadline": "invalid_state",
  },
};

for (const [situation, task] of Object.entries(situations)) {
  for (const [eventName, event] of Object.entries(events)) {
    const expected = table[situation][eventName];
    Deno.test(`transition: ${situation} + ${eventName} -> ${expected}`, () => {
      const before = structuredClone(task);
      const result = transition(task, event, LATER);
      assert.deepEqual(task, before, "the input task is never mutated");
      if (expected === "stale" || expected === "invalid_state") {
        assert.equal(result.ok, false);
        if (!result.ok) {
          assert.equal(result.refusal.code, expected);
          assert.match(result.refusal.message, /t1/);
        }
      } else if (expected === "same") {
        assert.ok(result.ok);
        assert.equal(result.changed, false);
        assert.deepEqual(result.task, task);
      } else {
        assert.ok(result.ok, result.ok ? "" : result.refusal.message);
        assert.equal(result.changed, true);
        assert.equal(result.task.state, expected);
      }
    });
  }
}

Deno.test("assign records the worker, the next attempt and the time", () => {
  const result = transition(situations["pending, unplaced"], events["assign w2"], LATER);
  assert.ok(result.ok);
  assert.equal(result.task.workerId, "w2");
  assert.equal(result.task.attempt, 1);
  assert.equal(result.task.assignedAt, LATER);
});

Deno.test("exit keeps code, signal and output, and fills scheduledAt for an unacked task", () => {
  const result = transition(situations["pending, sent to w1"], {
    type: "exited",
    workerId: "w1",
    attempt: 1,
    exitCode: 137,
    signal: "SIGKILL",
    output: { ...output, stderrTruncated: true },
  }, LATER);
  assert.ok(result.ok);
  assert.equal(result.task.exitCode, 137);
  assert.equal(result.task.signal, "SIGKILL");
  assert.equal(result.task.stdout, "hi\n");
  assert.equal(result.task.stderrTruncated, true);
  assert.equal(result.task.scheduledAt, LATER);
  assert.equal(result.task.finishedAt, LATER);
});

Deno.test("a second, different result for a done task is refused", () => {
  const result = transition(situations["done on w1 with 0"], {
    type: "exited",
    workerId: "w1",
    attempt: 1,
    exitCode: 3,
    output,
  }, LATER);
  assert.equal(result.ok, false);
});

Deno.test("reports from another worker or attempt are stale", () => {
  const task = situations["scheduled on w1"];
  for (
    const event of [
      { type: "exited", workerId: "w2", attempt: 1, exitCode: 0, output },
      { type: "exited", workerId: "w1", attempt: 2, exitCode: 0, output },
      { type: "ack", workerId: "w1", attempt: 0 },
    ] as TaskEvent[]
  ) {
    const result = transition(task, event, LATER);
    assert.equal(result.ok, false);
    if (!result.ok) assert.equal(result.refusal.code, "stale");
  }
});

Deno.test("a process the worker stopped is dead with the reason, and keeps its exit", () => {
  const result = transition(
    situations["scheduled on w1"],
    events["exited w1#1 after deadline"],
    LATER,
  );
  assert.ok(result.ok);
  assert.equal(result.task.state, "dead");
  assert.equal(result.task.deadReason, "deadline exceeded");
  assert.equal(result.task.signal, "SIGTERM");
  assert.equal(result.task.exitCode, 143);
  assert.equal(result.task.stdout, "hi\n");
  const again = transition(result.task, events["exited w1#1 after deadline"], LATER + 1);
  assert.ok(again.ok && !again.changed, "the same report again changes nothing");
});

Deno.test("a cancel request is recorded once and keeps the task running", () => {
  const first = transition(situations["scheduled on w1"], events["cancel_requested"], LATER);
  assert.ok(first.ok);
  assert.equal(first.task.cancelRequestedAt, LATER);
  assert.equal(first.task.state, "scheduled");
  const second = transition(first.task, events["cancel_requested"], LATER + 5);
  assert.ok(second.ok && !second.changed);
  assert.equal(second.task.cancelRequestedAt, LATER);
});

Deno.test("newTask keeps the optional spec fields only when given", () => {
  const plain = newTask("t2", { cmd: "true", params: [] }, NOW);
  assert.equal("env" in plain || "cwd" in plain || "timeoutMs" in plain, false);
  const full = newTask("t3", {
    cmd: "true",
    params: [],
    env: { A: "1" },
    cwd: "/tmp",
    timeoutMs: 1000,
    killTimeoutMs: 0,
  }, NOW);
  assert.deepEqual(
    [full.env, full.cwd, full.timeoutMs, full.killTimeoutMs],
    [{ A: "1" }, "/tmp", 1000, 0],
  );
});

Deno.test("dead reasons say why", () => {
  const timedOut = transition(situations["pending, sent to w1"], events["ack_timeout #1"], LATER);
  assert.ok(timedOut.ok);
  assert.equal(timedOut.task.deadReason, "worker w1 did not acknowledge within 5s");
  const failed = transition(situations["scheduled on w1"], events["start_failed w1#1"], LATER);
  assert.ok(failed.ok);
  assert.equal(failed.task.deadReason, "cannot start: no such file");
  const cancelled = transition(situations["scheduled on w1"], events["cancel"], LATER);
  assert.ok(cancelled.ok);
  assert.equal(cancelled.task.deadReason, "cancelled");
  assert.equal(cancelled.task.finishedAt, LATER);
});

const retrying = (retries: number, extra: Partial<TaskRecord> = {}): TaskRecord => ({
  ...situations["scheduled on w1"],
  retries,
  retryBackoffMs: 1000,
  ...extra,
});

Deno.test("a lost attempt with retries left waits its backoff, then can be placed again", () => {
  const result = transition(retrying(2), events["lost w1#1"], LATER);
  assert.ok(result.ok);
  const task = result.task;
  assert.equal(task.state, "pending");
  assert.equal(task.workerId, undefined);
  assert.equal(task.retryAt, LATER + 1000);
  assert.deepEqual(task.attempts, [{
    attempt: 1,
    workerId: "w1",
    assignedAt: NOW,
    scheduledAt: NOW,
    finishedAt: LATER,
    outcome: "lost: gone",
  }]);
  // The old attempt's late report is stale now.
  const late = transition(task, events["exited w1#1 0"], LATER + 1);
  assert.equal(late.ok, false);
  const placed = transition(task, { type: "assign", workerId: "w2" }, LATER + 1000);
  assert.ok(placed.ok);
  assert.deepEqual(
    [placed.task.attempt, placed.task.workerId, placed.task.retryAt, placed.task.scheduledAt],
    [2, "w2", undefined, undefined],
  );
});

Deno.test("retries run out: the last failure is final", () => {
  const last = retrying(1, { attempt: 2, attempts: [] });
  const result = transition(last, { type: "lost", workerId: "w1", attempt: 2, why: "gone" }, LATER);
  assert.ok(result.ok);
  assert.equal(result.task.state, "dead");
  assert.equal(result.task.deadReason, "lost");
  assert.equal(result.task.attempts?.length, 1);
});

Deno.test("backoff doubles per retry and is capped", () => {
  assert.deepEqual([1, 2, 3, 4].map((n) => retryDelayMs(n, 500)), [500, 1000, 2000, 4000]);
  assert.equal(retryDelayMs(1), 1000, "1s by default");
  assert.equal(retryDelayMs(40, 1000), 600_000);
});

Deno.test("a non-zero exit is retried only when the task says so", () => {
  const failed = { ...events["exited w1#1 0"], exitCode: 2 } as TaskEvent;
  const plain = transition(retrying(3), failed, LATER);
  assert.ok(plain.ok);
  assert.equal(plain.task.state, "done");
  assert.equal(plain.task.exitCode, 2);
  const retried = transition(retrying(3, { retryOnFailure: true }), failed, LATER);
  assert.ok(retried.ok);
  assert.equal(retried.task.state, "pending");
  assert.equal(retried.task.attempts?.[0].outcome, "exit code 2");
  const success = transition(retrying(3, { retryOnFailure: true }), events["exited w1#1 0"], LATER);
  assert.ok(success.ok);
  assert.equal(success.task.state, "done");
});

Deno.test("an ack timeout and a worker restart are retried; a cancel request wins", () => {
  const sent = { ...situations["pending, sent to w1"], retries: 1 };
  const timedOut = transition(sent, events["ack_timeout #1"], LATER);
  assert.ok(timedOut.ok);
  assert.equal(timedOut.task.state, "pending");
  assert.equal(timedOut.task.attempts?.[0].outcome, "ack timeout");
  const restarted = transition(retrying(1), events["abandoned w1#1"], LATER);
  assert.ok(restarted.ok);
  assert.equal(restarted.task.state, "pending");
  const noRetries = transition(situations["scheduled on w1"], events["abandoned w1#1"], LATER);
  assert.ok(noRetries.ok);
  assert.equal(noRetries.task.deadReason, "worker restarted: killed");
  const cancelling = retrying(3, { cancelRequestedAt: NOW });
  const lost = transition(cancelling, events["lost w1#1"], LATER);
  assert.ok(lost.ok);
  assert.equal(lost.task.state, "dead");
  assert.equal(lost.task.deadReason, "cancelled");
});

Deno.test("a worker that was stopped has its task retried when retries are left", () => {
  const stopped = {
    ...events["exited w1#1 after deadline"],
    stoppedFor: "worker stopped",
  } as TaskEvent;
  const result = transition(retrying(1), stopped, LATER);
  assert.ok(result.ok);
  assert.equal(result.task.state, "pending");
  const deadline = transition(retrying(1), events["exited w1#1 after deadline"], LATER);
  assert.ok(deadline.ok);
  assert.equal(deadline.task.state, "dead", "a deadline is not retried");
});

Deno.test("an attempt given back unstarted is placed again at once and uses up no retry", () => {
  const sent: TaskRecord = { ...situations["scheduled on w1"], retries: 1 };
  const back = transition(
    sent,
    { type: "not_started", workerId: "w1", attempt: 1, reason: "worker stopping" },
    LATER,
  );
  assert.ok(back.ok && back.changed);
  assert.equal(back.task.state, "pending");
  assert.equal(back.task.workerId, undefined);
  assert.equal(back.task.retryAt, undefined);
  assert.equal(back.task.unstarted, 1);
  assert.deepEqual(back.task.attempts?.map((a) => a.outcome), ["not started: worker stopping"]);

  const again = transition(back.task, { type: "assign", workerId: "w2" }, LATER);
  assert.ok(again.ok);
  assert.equal(again.task.attempt, 2, "a new attempt number, so the worker does not drop it");
  assert.equal(retriesLeft(again.task), 1, "the retry the task had is still there");
});

Deno.test("an unstarted attempt given back after a cancel request is dead, cancelled", () => {
  const asked: TaskRecord = {
    ...situations["scheduled on w1"],
    cancelRequestedAt: NOW,
  };
  const event: TaskEvent = {
    type: "not_started",
    workerId: "w1",
    attempt: 1,
    reason: "cancelled",
  };
  const ended = transition(asked, event, LATER);
  assert.ok(ended.ok && ended.changed);
  assert.equal(ended.task.state, "dead");
  assert.equal(ended.task.deadReason, "cancelled");
  const repeat = transition(ended.task, event, LATER);
  assert.ok(repeat.ok);
  assert.equal(repeat.changed, false, "the outbox may send the report twice");
});
