/**
 * `--wait` of `tasks add` and `tasks schedule`: waiting for tasks to end, with their output
 * (one task) or a progress line (a batch), Ctrl-C handling, and the exit code.
 *
 * One task: its stdout and stderr are followed with two TaskLogs streams and written
 * unchanged to schedctl's stdout and stderr; when both end, GetTask gives the final state.
 * A stream that breaks (the manager restarts, the worker goes away) is not retried, since
 * that would repeat output: schedctl says so and polls GetTask until the task is final.
 * A task that is retried goes back to pending and is placed again as a new attempt: the
 * streams of the old attempt end (or break) with it, schedctl says how the attempt ended,
 * polls until the next attempt is placed, and streams that attempt's output from its start
 * (the manager's TaskLogs reads the current attempt, so nothing is written twice).
 *
 * A batch: GetTask on each unfinished task (or, for many, ListTasks of the pending and
 * scheduled states) every poll interval, and a progress line on stderr.
 *
 * The manager being unreachable while waiting is not the end: schedctl says so once and
 * keeps polling until it answers or the operator presses Ctrl-C.
 */
import { toJson } from "@bufbuild/protobuf";
import { durationFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { type Task, TaskSchema, TaskState } from "../shared/gen/goschedule/v1/goschedule_pb.ts";
import { type CommandContext, JSON_OPTIONS, printJson } from "./command.ts";
import { formatDuration } from "../shared/duration.ts";
import { visible } from "./format.ts";
import { sleep } from "../shared/sleep.ts";
import { SIGNAL_NUMBERS } from "../shared/signals.ts";

/** The exit code when the operator detached (Ctrl-C): 128 + SIGINT, as a shell reports it. */
export const EXIT_DETACHED = 130;

/** Up to this many unfinished tasks are polled one by one with GetTask; more with ListTasks. */
export const GET_EACH_LIMIT = 50;
/** GetTask calls in flight at once while polling a batch. */
const POLL_CONCURRENCY = 8;

/** True once a task is done or dead: it will not change any more. */
export function isFinal(task: Task): boolean {
  return task.state === TaskState.DONE || task.state === TaskState.DEAD;
}

/** True for a task that ended well: done, exit code 0, no signal. */
export function succeeded(task: Task): boolean {
  return task.state === TaskState.DONE && task.signal === "" && task.exitCode === 0;
}

/**
 * The exit code `--wait` exits with for a final task:
 * - done: its exit code; when a signal ended it, 128 + the signal's number (SIGKILL 137);
 * - dead: 128 + the signal's number when its process was ended by one (a deadline, a
 *   cancel), else its exit code when the process ran and exited non-zero, else 1. A dead
 *   task never gives 0.
 */
export function waitExitCode(task: Task): number {
  const signal = task.signal === "" ? undefined : SIGNAL_NUMBERS[task.signal as Deno.Signal];
  if (signal !== undefined) return 128 + signal;
  const code = task.exitCode;
  const ranAndFailed = code !== undefined && code > 0 && code <= 255;
  if (task.state === TaskState.DONE) {
    if (task.signal !== "") return ranAndFailed ? code : 1; // a signal this schedctl cannot number
    return code !== undefined && code >= 0 && code <= 255 ? code : 1;
  }
  return ranAndFailed ? code : 1;
}

/** How a final task ended, for a line of text: "exit code 3", "ended by SIGKILL", "dead: why". */
export function describeEnd(task: Task): string {
  if (task.state === TaskState.DEAD) {
    const reason = task.deadReason === "" ? "no reason given" : visible(task.deadReason);
    return task.signal === "" ? reason : `${reason} (its process was ended by ${task.signal})`;
  }
  if (task.signal !== "") return `ended by ${visible(task.signal)}`;
  return task.exitCode === undefined ? "no exit code" : `exit code ${task.exitCode}`;
}

/** The line --wait prints on stderr when a task did not simply exit: why it ended. */
function finalNote(task: Task): string | undefined {
  if (task.state === TaskState.DEAD) return `task ${task.id} is dead: ${describeEnd(task)}`;
  if (task.signal !== "") return `task ${task.id} was ${describeEnd(task)}`;
  return undefined;
}

/** Options of waitForTasks. */
export interface WaitOptions {
  /** Ctrl-C detaches at once instead of asking whether to cancel. */
  detachOnInterrupt: boolean;
}

/** Errors after which waiting goes on: the manager is restarting, or the network is down. */
function isTransient(e: unknown): boolean {
  return e instanceof ConnectError &&
    [Code.Unavailable, Code.DeadlineExceeded, Code.Aborted].includes(e.code);
}

/**
 * Ctrl-C while waiting: asks whether to cancel (when there is a terminal to ask on, and
 * --detach-on-interrupt is not given), or detaches. While the question is open, the output
 * and the end of the wait are held (`gate`), so nothing is written over the prompt.
 */
class InterruptHandler {
  /** Aborted when the operator detaches; everything the wait does listens to it. */
  readonly abort = new AbortController();
  readonly detached: Promise<void>;
  #detach!: () => void;
  #held: PromiseWithResolvers<void> | undefined;
  #answerNo: (() => void) | undefined;
  #cancelled = false;
  #unsubscribe: () => void;

  constructor(
    private readonly context: CommandContext,
    private readonly options: WaitOptions & {
      question: () => string;
      cancel: () => Promise<string>;
      /** Called before the question; true when it ended a line (a progress line). */
      beforeNote: () => boolean;
    },
  ) {
    this.detached = new Promise((resolve) => this.#detach = resolve);
    this.#unsubscribe = context.interrupts.subscribe(() => this.#onInterrupt());
  }

  /** Resolves when nothing holds the output: at once, unless a question is open. */
  gate(): Promise<void> {
    return this.#held?.promise ?? Promise.resolve();
  }

  close(): void {
    this.#unsubscribe();
  }

  #onInterrupt(): void {
    if (this.#answerNo !== undefined) {
      // Ctrl-C again while asked: no.
      this.#answerNo();
      return;
    }
    if (this.#held !== undefined) return;
    if (this.options.detachOnInterrupt || !this.context.stdinIsTerminal || this.#cancelled) {
      this.#detachNow();
      return;
    }
    void this.#ask();
  }

  #detachNow(): void {
    this.abort.abort();
    this.#detach();
  }

  async #ask(): Promise<void> {
    this.#held = Promise.withResolvers();
    try {
      // On a terminal, "^C" was echoed: start the question on the next line.
      if (!this.options.beforeNote() && this.context.stderrIsTerminal) this.context.stderr("\n");
      const no = new Promise<null>((resolve) => this.#answerNo = () => resolve(null));
      let answer: string | null;
      try {
        answer = await Promise.race([this.context.prompt(this.options.question()), no]);
      } catch {
        answer = null;
      }
      this.#answerNo = undefined;
      if (answer === null || !/^\s*y(es)?\s*$/i.test(answer)) {
        if (answer === null && this.context.stderrIsTerminal) this.context.stderr("\n");
        this.#detachNow();
        return;
      }
      try {
        const note = await this.options.cancel();
        this.#cancelled = true;
        this.context.stderr(`schedctl: ${note}; waiting for the end (Ctrl-C again detaches)\n`);
      } catch (e) {
        this.context.stderr(`schedctl: could not cancel: ${this.context.explain(e)}\n`);
      }
    } finally {
      this.#answerNo = undefined;
      const held = this.#held;
      this.#held = undefined;
      held?.resolve();
    }
  }
}

/** A task waiting for a retry is looked at again this long after its retry is due. */
const RETRY_LOOK_MARGIN_MS = 100;
/**
 * After the output streams of a task with retries ended, while the manager has not recorded
 * the end of the attempt yet (the worker's report follows the end of its output), the task
 * is looked at this often, for at most QUICK_LOOKS_FOR_MS.
 */
const QUICK_LOOK_MS = 100;
const QUICK_LOOKS_FOR_MS = 2_000;

/**
 * How long to wait before the next look at a task of `followOne`: the poll interval, or less
 * when the next attempt is near, so that a short attempt is not missed between two looks:
 * - the task waits for a retry due sooner: until it is due (`retry_at` is the manager's
 *   clock; a skewed local clock only changes how often schedctl asks, within the interval);
 * - the streams of a task with retries just ended but its attempt is still on: QUICK_LOOK_MS,
 *   until `quickUntil` (performance.now()).
 */
function nextLookIn(
  context: CommandContext,
  task: Task | undefined,
  followed: Task,
  quickUntil: number,
): number {
  const interval = context.pollIntervalMs;
  if (task === undefined) return interval;
  if (task.workerId === "" && task.retryAt !== undefined) {
    const due = timestampMs(task.retryAt) - context.now();
    return Math.min(interval, Math.max(0, due) + RETRY_LOOK_MARGIN_MS);
  }
  if (performance.now() < quickUntil && !attemptChanged(followed, task)) {
    return Math.min(interval, QUICK_LOOK_MS);
  }
  return interval;
}

/**
 * Paces the looks of a wait. A look that does not ask the manager to wait comes a whole
 * interval after the one before. One that does comes at once, unless the last one was
 * answered before its wait was over (by a manager older than `wait`, or one stopping): then
 * only when that wait would have ended, so that looking never spins.
 */
class LookPacer {
  #notBefore = 0;

  /** Sleeps before a look that asks the manager to wait `waitMs` (0: none). */
  async pause(waitMs: number, intervalMs: number, signal: AbortSignal): Promise<void> {
    const ms = waitMs > 0 ? this.#notBefore - performance.now() : intervalMs;
    if (ms > 0) await sleep(ms, signal);
    this.#notBefore = performance.now() + waitMs;
  }
}

/**
 * Polls GetTask until `stop` says so for the task it got: the first look at once, the next
 * ones after `lookIn(the last task seen)`, by default the poll interval. Each later look
 * asks the manager to wait that long for the task's end, so an end is seen as soon as it is
 * stored. Transient failures are reported once per outage and retried every poll interval.
 * Returns the task `stop` accepted, or undefined when aborted.
 */
async function pollUntil(
  context: CommandContext,
  id: string,
  handler: InterruptHandler,
  stop: (task: Task) => boolean,
  lookIn: (last: Task | undefined) => number = () => context.pollIntervalMs,
): Promise<Task | undefined> {
  const signal = handler.abort.signal;
  let failing = false;
  let last: Task | undefined;
  const pacer = new LookPacer();
  for (let poll = 0; !signal.aborted; poll++) {
    let waitMs = 0;
    if (poll > 0) {
      const interval = lookIn(failing ? undefined : last);
      waitMs = failing ? 0 : interval;
      await pacer.pause(waitMs, interval, signal);
    }
    if (signal.aborted) break;
    let task: Task | undefined;
    try {
      ({ task } = await context.client.getTask(
        waitMs > 0 ? { id, wait: durationFromMs(waitMs) } : { id },
        { signal },
      ));
      if (task === undefined) throw new Error(`the manager answered without the task ${id}`);
      failing = false;
    } catch (e) {
      if (signal.aborted) break;
      if (!isTransient(e)) throw e;
      if (!failing) {
        context.stderr(
          `schedctl: ${context.explain(e)}; still waiting for task ${id}, asking again every ` +
            `${formatDuration(context.pollIntervalMs)}\n`,
        );
      }
      failing = true;
      continue;
    }
    last = task;
    // `stop` may write a note: not over an open question.
    await handler.gate();
    if (signal.aborted) break;
    if (stop(task)) return task;
  }
  return undefined;
}

/**
 * True when `now` is on another attempt than the one `followed` was on, so that the
 * output of `followed`'s attempt is over: an attempt ended since (the manager recorded
 * it), or `followed` had not been placed yet and `now` has.
 */
function attemptChanged(followed: Task, now: Task): boolean {
  return now.attempts.length > followed.attempts.length ||
    (followed.workerId === "" && now.workerId !== "" && now.attempt > followed.attempt);
}

/** True when the task is placed on an attempt other than the one `followed` was on. */
function onAnotherAttempt(followed: Task, now: Task): boolean {
  return !isFinal(now) && now.workerId !== "" && attemptChanged(followed, now);
}

/**
 * Whether a stream of a task with retries failed because its attempt had ended (e.g. the
 * stream of a new attempt opened when that attempt was already over): one GetTask; false
 * when it cannot tell.
 */
async function attemptEnded(
  context: CommandContext,
  followed: Task,
  signal: AbortSignal,
): Promise<boolean> {
  try {
    const { task } = await context.client.getTask({ id: followed.id }, { signal });
    return task !== undefined && attemptChanged(followed, task);
  } catch {
    return false;
  }
}

/**
 * Follows one output stream of a task's current attempt into schedctl's stdout or stderr.
 * A stream that breaks is said once, unless the attempt ended with it (a task with retries:
 * the wait then says how the attempt ended).
 */
async function followOutput(
  context: CommandContext,
  followed: Task,
  which: "stdout" | "stderr",
  handler: InterruptHandler,
): Promise<void> {
  const signal = handler.abort.signal;
  const id = followed.id;
  const write = which === "stdout" ? context.writeStdout : context.writeStderr;
  try {
    const stream = context.client.taskLogs({ id, follow: true, stderr: which === "stderr" }, {
      signal,
    });
    for await (const { data } of stream) {
      await handler.gate();
      if (signal.aborted) return;
      if (data.length > 0) write(data);
    }
  } catch (e) {
    if (signal.aborted) return;
    const retries = followed.retries > 0;
    if (retries && await attemptEnded(context, followed, signal)) return;
    if (signal.aborted) return;
    await handler.gate();
    context.stderr(
      `schedctl: the ${which} stream of task ${id} broke (${context.explain(e)}); ` +
        `waiting for the ${retries ? "attempt" : "task"} to end without it\n`,
    );
  }
}

/**
 * The notes `--wait` prints about a task's attempts: "attempt 1 ended (lost: ...); waiting
 * for attempt 2", once per attempt that ended with a retry to follow, and whether its output
 * was shown (an attempt that began and ended between two looks was not). How the last
 * attempt of a final task ended is the final note's to say.
 */
class AttemptNotes {
  #said: number;
  readonly #streamed = new Set<number>();

  constructor(private readonly context: CommandContext, created: Task) {
    this.#said = Math.max(0, ...created.attempts.map((a) => a.attempt));
  }

  /** The output streams of `followed`'s attempt were opened. */
  streaming(followed: Task): void {
    // Opened before the task was placed, they follow the attempt it is placed as.
    this.#streamed.add(followed.workerId === "" ? followed.attempt + 1 : followed.attempt);
  }

  seen(task: Task): void {
    const last = task.attempts.at(-1);
    for (const a of task.attempts) {
      if (a.attempt <= this.#said) continue;
      this.#said = a.attempt;
      if (isFinal(task) && a === last) continue;
      const outcome = a.outcome === "" ? "no outcome given" : visible(a.outcome);
      const unseen = this.#streamed.has(a.attempt) ? "" : " before its output could be shown";
      this.context.stderr(
        `schedctl: attempt ${a.attempt} ended (${outcome})${unseen}; ` +
          `waiting for attempt ${a.attempt + 1}\n`,
      );
    }
  }
}

/**
 * Waits for one task; returns the final task, or undefined when detached. Table output: the
 * output of its current attempt is streamed; when the task is retried, the wait says how the
 * attempt ended and streams the next attempt's output, from its start, once it is placed.
 * (The manager streams a task's current attempt, so a stream opened for the next attempt
 * holds only that attempt's output: nothing is written twice.)
 */
async function followOne(
  context: CommandContext,
  created: Task,
  handler: InterruptHandler,
): Promise<Task | undefined> {
  const streaming = context.output === "table";
  const notes = new AttemptNotes(context, created);
  let followed = created;
  for (;;) {
    if (streaming) {
      notes.streaming(followed);
      await Promise.all([
        followOutput(context, followed, "stdout", handler),
        followOutput(context, followed, "stderr", handler),
      ]);
    }
    const from = followed;
    const quickUntil = streaming && from.retries > 0 ? performance.now() + QUICK_LOOKS_FOR_MS : 0;
    const task = await pollUntil(
      context,
      created.id,
      handler,
      (t) => {
        if (streaming) notes.seen(t);
        return isFinal(t) || (streaming && onAnotherAttempt(from, t));
      },
      (last) => streaming ? nextLookIn(context, last, from, quickUntil) : context.pollIntervalMs,
    );
    if (task === undefined || handler.abort.signal.aborted) return undefined;
    if (isFinal(task)) return task;
    followed = task;
  }
}

/** The batch progress line: "3 pending, 2 scheduled, 10 done, 1 dead". */
export function progressLine(tasks: Iterable<Task>): string {
  const counts = { pending: 0, scheduled: 0, done: 0, dead: 0 };
  for (const t of tasks) {
    if (t.state === TaskState.PENDING) counts.pending++;
    else if (t.state === TaskState.SCHEDULED) counts.scheduled++;
    else if (t.state === TaskState.DONE) counts.done++;
    else if (t.state === TaskState.DEAD) counts.dead++;
  }
  return `${counts.pending} pending, ${counts.scheduled} scheduled, ${counts.done} done, ` +
    `${counts.dead} dead`;
}

/**
 * The progress line on stderr: on a terminal, rewritten in place (and ended before any other
 * note); elsewhere, a new line at each change.
 */
class Progress {
  #last = "";
  #open = false;
  constructor(private readonly context: CommandContext) {}

  show(line: string): void {
    if (line === this.#last) return;
    this.#last = line;
    if (this.context.stderrIsTerminal) {
      this.context.stderr(`\r\x1b[2K${line}`);
      this.#open = true;
    } else {
      this.context.stderr(`${line}\n`);
    }
  }

  /**
   * Ends the line on a terminal, so that what follows starts on its own line; true when
   * there was a line to end.
   */
  end(): boolean {
    const open = this.#open;
    if (open) this.context.stderr("\n");
    this.#open = false;
    // Show the line again after the note, on a terminal.
    if (this.context.stderrIsTerminal) this.#last = "";
    return open;
  }
}

async function mapLimit<T>(items: T[], limit: number, f: (item: T) => Promise<void>) {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await f(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/**
 * Updates the unfinished tasks of a batch from the manager; with `waitMs`, each GetTask asks
 * the manager to wait that long for its task's end.
 */
async function refresh(
  context: CommandContext,
  tasks: Map<string, Task>,
  signal: AbortSignal,
  waitMs = 0,
): Promise<void> {
  const unfinished = [...tasks.values()].filter((t) => !isFinal(t)).map((t) => t.id);
  let toGet = unfinished;
  if (unfinished.length > GET_EACH_LIMIT) {
    // Many tasks: list the unfinished tasks of the cluster, and ask for the rest one by one
    // (they ended, or moved between the two lists).
    const active = new Map<string, Task>();
    for (const state of [TaskState.PENDING, TaskState.SCHEDULED]) {
      let pageToken = "";
      do {
        const page = await context.client.listTasks({ state, pageSize: 1000, pageToken }, {
          signal,
        });
        for (const t of page.tasks) if (tasks.has(t.id)) active.set(t.id, t);
        if (page.nextPageToken === pageToken) break;
        pageToken = page.nextPageToken;
      } while (pageToken !== "");
    }
    for (const t of active.values()) tasks.set(t.id, t);
    toGet = unfinished.filter((id) => !active.has(id));
  }
  await mapLimit(toGet, POLL_CONCURRENCY, async (id) => {
    const { task } = await context.client.getTask(
      waitMs > 0 ? { id, wait: durationFromMs(waitMs) } : { id },
      { signal },
    );
    if (task !== undefined) tasks.set(id, task);
  });
}

/** Polls a batch until every task is final; returns undefined when aborted. */
async function pollBatch(
  context: CommandContext,
  tasks: Map<string, Task>,
  handler: InterruptHandler,
  progress: Progress,
): Promise<Map<string, Task> | undefined> {
  const signal = handler.abort.signal;
  let failing = false;
  const pacer = new LookPacer();
  for (;;) {
    await handler.gate();
    if (signal.aborted) return undefined;
    progress.show(progressLine(tasks.values()));
    const unfinished = [...tasks.values()].filter((t) => !isFinal(t)).length;
    if (unfinished === 0) return tasks;
    // Few enough to ask about all at once: each request waits up to the interval for its
    // task's end, so the round ends as soon as the last one has ended.
    const waitMs = !failing && unfinished <= POLL_CONCURRENCY ? context.pollIntervalMs : 0;
    await pacer.pause(waitMs, context.pollIntervalMs, signal);
    if (signal.aborted) return undefined;
    try {
      await refresh(context, tasks, signal, waitMs);
      failing = false;
    } catch (e) {
      if (signal.aborted) return undefined;
      if (!isTransient(e)) throw e;
      if (!failing) {
        progress.end();
        context.stderr(
          `schedctl: ${context.explain(e)}; still waiting, asking again every ` +
            `${formatDuration(context.pollIntervalMs)}\n`,
        );
      }
      failing = true;
    }
  }
}

/** "the unfinished task", "the 3 unfinished tasks". */
function tasksCount(n: number): string {
  return n === 1 ? "the unfinished task" : `the ${n} unfinished tasks`;
}

/**
 * Waits for tasks that were just scheduled and returns the exit code. One task: its output
 * is streamed (table output) and the exit code is the task's (see waitExitCode). Several: a
 * progress line, then the tasks that failed or died; 0 when every task is done with exit
 * code 0, else 1. Ctrl-C: see InterruptHandler; a detach exits 130.
 *
 * With -o json nothing is streamed; the final Task (`asArray`: an array of the Tasks) is
 * printed at the end, or the last known state on detach.
 */
export async function waitForTasks(
  context: CommandContext,
  created: Task[],
  options: WaitOptions & { asArray: boolean },
): Promise<number> {
  const tasks = new Map(created.map((t) => [t.id, t]));
  const single = created.length === 1;
  const progress = new Progress(context);
  const unfinished = () => [...tasks.values()].filter((t) => !isFinal(t)).map((t) => t.id);
  const handler = new InterruptHandler(context, {
    ...options,
    beforeNote: () => progress.end(),
    question: () =>
      single
        ? `Cancel task ${created[0].id}? [y/N] `
        : `Cancel ${tasksCount(unfinished().length)}? [y/N] `,
    cancel: async () => {
      const ids = single ? [created[0].id] : unfinished();
      const { tasks: after } = await context.client.cancelTasks({ ids });
      for (const t of after) if (tasks.has(t.id)) tasks.set(t.id, t);
      return single ? `cancelling task ${created[0].id}` : `cancelling ${tasksCount(ids.length)}`;
    },
  });
  const printJsonResult = () => {
    const list = [...tasks.values()].map((t) => toJson(TaskSchema, t, JSON_OPTIONS));
    printJson(context, options.asArray ? list : list[0]);
  };
  const work = single
    ? followOne(context, created[0], handler).then((t) => {
      if (t !== undefined) tasks.set(t.id, t);
      return t === undefined ? undefined : tasks;
    })
    : pollBatch(context, tasks, handler, progress);
  try {
    const result = await Promise.race([work, handler.detached.then(() => undefined)]);
    if (result === undefined) {
      progress.end();
      if (context.output === "json") printJsonResult();
      const left = unfinished();
      context.stderr(
        single
          ? `schedctl: detached: the task keeps running; wait for it again with: ` +
            `schedctl tasks wait ${created[0].id}\n`
          : `schedctl: detached: ${tasksCount(left.length)} ${
            left.length === 1 ? "keeps" : "keep"
          } running; wait for them again with: schedctl tasks wait ID...\n`,
      );
      return EXIT_DETACHED;
    }
    progress.end();
    if (context.output === "json") printJsonResult();
    if (single) {
      const task = tasks.get(created[0].id)!;
      const note = finalNote(task);
      if (note !== undefined) context.stderr(`schedctl: ${note}\n`);
      return waitExitCode(task);
    }
    const failed = [...tasks.values()].filter((t) => !succeeded(t));
    for (const t of failed) {
      context.stderr(
        t.state === TaskState.DEAD
          ? `schedctl: ${t.id} is dead: ${describeEnd(t)}\n`
          : `schedctl: ${t.id} failed: ${describeEnd(t)}\n`,
      );
    }
    if (failed.length === 0) return 0;
    context.stderr(`schedctl: ${failed.length} of ${tasks.size} tasks failed or died\n`);
    return 1;
  } finally {
    handler.close();
    handler.abort.abort();
    await work.catch(() => {});
  }
}
