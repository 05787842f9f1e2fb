/**
 * What a worker does at start, before it connects, about the attempts its previous life was
 * running when it died (SIGKILL, a crash): it cannot adopt their processes (their output went
 * to pipes that died with it, and no exit status can be had from a process that is not one's
 * child), so it kills what is left of each, SIGTERM then SIGKILL as when a task is stopped,
 * and reports the attempt as abandoned, with the end of its log files as output. The reports
 * are in the outbox before the first Hello, which lists them as unreported, so the manager
 * never takes these attempts for lost.
 */
import type { Logger } from "../shared/log.ts";
import { type Clock, systemClock } from "../shared/clock.ts";
import type { LogStore } from "./log_store.ts";
import { groupMembers, livingProcesses, readBootId, readEnviron, readProcStat } from "./proc.ts";
import type { ReportOutbox } from "./report_outbox.ts";
import type { RunningRecord, RunningRecords } from "./running_records.ts";

export interface RecoveryOptions {
  records: RunningRecords;
  outbox: ReportOutbox;
  /** Where the attempts' log files are; their tails become the reports' output. */
  logs: LogStore;
  /** Bytes of each stream's tail in a report (output_limit). */
  outputLimit: number;
  log: Logger;
  clock?: Clock;
  /** The longest wait between SIGTERM and SIGKILL, whatever a task asked; default 10 s. */
  maxKillWaitMs?: number;
}

export interface RecoverySummary {
  /** Attempts whose processes were still there, and were stopped. */
  killed: number;
  /** Attempts whose processes had ended with the previous life or since. */
  ended: number;
  /** Attempts whose reports the previous life had already put in the outbox. */
  reported: number;
}

/**
 * A task's own kill timeout may be long; a worker that takes minutes to start helps nobody.
 * The records are handled at the same time, so this bounds the whole start-up.
 */
export const MAX_KILL_WAIT_MS = 10_000;
/** How long processes may take to vanish after SIGKILL before we give up waiting. */
const AFTER_KILL_WAIT_MS = 2_000;
const POLL_MS = 50;

/** Why an attempt was abandoned; the manager's dead reason reads "worker restarted: ...". */
export const ABANDONED_KILLED = "its process was killed";
export const ABANDONED_ENDED = "its process had already ended";
/**
 * For an attempt recorded just before its spawn, of which no process is left: it may have
 * ended, or the previous life may have died before the spawn. Either way it counts as a try.
 */
export const ABANDONED_UNSEEN = "no process of it was left (it had ended, or never started)";

/**
 * Stops and reports every attempt of the running records (started, so holding what the previous
 * life left), and removes the records.
 */
export async function recoverPreviousLife(options: RecoveryOptions): Promise<RecoverySummary> {
  const records = await options.records.list();
  const summary: RecoverySummary = { killed: 0, ended: 0, reported: 0 };
  // All at once: start-up waits for the slowest, not for the sum.
  await Promise.all(records.map(async (record) => {
    summary[await recoverOne(options, record)]++;
  }));
  return summary;
}

async function recoverOne(
  options: RecoveryOptions,
  record: RunningRecord,
): Promise<keyof RecoverySummary> {
  const { log, outbox, records } = options;
  const clock = options.clock ?? systemClock;
  const task = { task: record.task_id, attempt: record.attempt, pid: record.pid };
  if (outbox.has(record.task_id, record.attempt)) {
    // The previous life died between keeping the result and removing the record.
    log.debug("a recorded task of the previous life had its result kept; nothing to do", task);
    records.remove(record.task_id, record.attempt);
    return "reported";
  }

  const groups = await findGroups(record);
  if (groups.length > 0) {
    log.info("a task of the worker's previous life is still running; stopping it", task);
    const maxWaitMs = options.maxKillWaitMs ?? MAX_KILL_WAIT_MS;
    await Promise.all(groups.map(async (group) => {
      const signal = await stopGroup(group, record, clock, maxWaitMs);
      const left = signal === "SIGKILL" ? await waitForGroup(group, clock, AFTER_KILL_WAIT_MS) : 0;
      if (left > 0) {
        log.warn("processes of a task of the previous life are still there after SIGKILL", {
          ...task,
          group,
          processes: left,
        });
      } else log.info("stopped a task of the worker's previous life", { ...task, group, signal });
    }));
  } else {
    log.info("a task of the worker's previous life had already ended", task);
  }

  const output = await options.logs.abandonedTails(
    record.task_id,
    record.attempt,
    options.outputLimit,
  );
  outbox.add({
    taskId: record.task_id,
    attempt: record.attempt,
    result: {
      outcome: {
        kind: "abandoned",
        reason: groups.length > 0
          ? ABANDONED_KILLED
          : record.pid === null
          ? ABANDONED_UNSEEN
          : ABANDONED_ENDED,
      },
      output,
      startedAt: record.started_at,
      finishedAt: clock.now(),
    },
  });
  records.remove(record.task_id, record.attempt);
  return groups.length > 0 ? "killed" : "ended";
}

/** The process groups of the record's attempt that have something left in them. */
function findGroups(record: RunningRecord): Promise<number[]> {
  if (record.pid === null) return groupsByEnvironment(record);
  return findGroup(record, record.pid).then((group) => group === undefined ? [] : [group]);
}

/**
 * For a record written before the spawn, with no pid: the groups of the processes that carry
 * the attempt's task id and attempt number in their environment. No other process has both
 * (an attempt runs once), and a worker's own group is never taken.
 */
async function groupsByEnvironment(record: RunningRecord): Promise<number[]> {
  const own = (await readProcStat(Deno.pid))?.pgrp;
  const groups = new Set<number>();
  for (const member of await livingProcesses()) {
    if (member.pgrp <= 1 || member.pgrp === own || groups.has(member.pgrp)) continue;
    if (await runsAttempt(member.pid, record)) groups.add(member.pgrp);
  }
  return [...groups];
}

/** Whether the process's environment names the record's attempt. */
async function runsAttempt(pid: number, record: RunningRecord): Promise<boolean> {
  const env = await readEnviron(pid);
  return env?.get("GO_SCHEDULE_TASK_ID") === record.task_id &&
    env?.get("GO_SCHEDULE_ATTEMPT") === String(record.attempt);
}

/**
 * The process group of the record's attempt when something of it is left, else undefined.
 * A group's id is its leader's pid, and Linux does not hand that number to a new process while
 * any member of the group lives; so a leader that is ours (a start time in the record's range,
 * same boot) means the whole group is ours, and a pid now used by another process means our
 * group is empty.
 */
async function findGroup(record: RunningRecord, pid: number): Promise<number | undefined> {
  // Never signal -1 (every process we may signal) or -0 (our own group).
  if (pid <= 1 || record.start_time === null) return undefined;
  const boot = await readBootId();
  if (record.boot_id !== null && boot !== undefined && record.boot_id !== boot) return undefined;
  const leader = await readProcStat(pid);
  const latest = record.start_time_latest ?? record.start_time;
  if (leader && (leader.startTime < record.start_time || leader.startTime > latest)) {
    return undefined;
  }
  const members = await groupMembers(pid);
  if (members.length === 0) return undefined;
  if (leader) return pid;
  // The leader is gone, its children live on. The number could, in principle, have been
  // freed and reused by a new group since: take the group for ours only when a member runs
  // with this attempt's environment.
  for (const member of members) {
    if (await runsAttempt(member.pid, record)) return pid;
  }
  return undefined;
}

/** SIGTERM, then SIGKILL when the group is not gone within the kill timeout; the last signal. */
async function stopGroup(
  group: number,
  record: RunningRecord,
  clock: Clock,
  maxWaitMs: number,
): Promise<"SIGTERM" | "SIGKILL"> {
  signalGroup(group, "SIGTERM");
  const wait = Math.max(0, Math.min(record.kill_timeout_ms, maxWaitMs));
  if (await waitForGroup(group, clock, wait) === 0) return "SIGTERM";
  signalGroup(group, "SIGKILL");
  return "SIGKILL";
}

/** Polls /proc until the group has no living member or `ms` passed; how many are left. */
async function waitForGroup(group: number, clock: Clock, ms: number): Promise<number> {
  const deadline = clock.now() + ms;
  for (;;) {
    const left = (await groupMembers(group)).length;
    if (left === 0 || clock.now() >= deadline) return left;
    await new Promise<void>((resolve) => clock.setTimeout(resolve, POLL_MS));
  }
}

function signalGroup(group: number, signal: Deno.Signal): void {
  try {
    Deno.kill(-group, signal);
  } catch {
    // Gone already; or not ours to signal, which the wait that follows shows.
  }
}
