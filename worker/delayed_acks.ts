/**
 * Acknowledgements of runs, sent a moment late. A task that ends within the delay is not
 * acknowledged at all: its report tells the manager as much, which takes it as the
 * acknowledgement. For short tasks that is one message fewer each way, and the manager's
 * handling of it.
 */
import { type Clock, systemClock } from "../shared/clock.ts";
import { attemptKey } from "./agent.ts";

/**
 * Short against the manager's ack_timeout (seconds), long against a short task (a few ms).
 */
export const ACK_DELAY_MS = 20;

interface Due {
  taskId: string;
  attempt: number;
  at: number;
}

export class DelayedAcks {
  readonly #send: (taskId: string, attempt: number) => void;
  readonly #clock: Clock;
  readonly #delayMs: number;
  /** In the order they came, which is the order they are due. */
  readonly #due = new Map<string, Due>();
  #timer: unknown;

  constructor(
    send: (taskId: string, attempt: number) => void,
    options: { clock?: Clock; delayMs?: number } = {},
  ) {
    this.#send = send;
    this.#clock = options.clock ?? systemClock;
    this.#delayMs = options.delayMs ?? ACK_DELAY_MS;
  }

  /** A run arrived: its acknowledgement goes out after the delay, unless dropped first. */
  add(taskId: string, attempt: number): void {
    this.#due.set(attemptKey(taskId, attempt), {
      taskId,
      attempt,
      at: this.#clock.now() + this.#delayMs,
    });
    this.#arm();
  }

  /** The attempt's report is being sent: the report acknowledges it. */
  drop(taskId: string, attempt: number): void {
    this.#due.delete(attemptKey(taskId, attempt));
  }

  /** The stream ended: nothing more is sent (the next stream's hello lists what runs). */
  close(): void {
    this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#due.clear();
  }

  #arm(): void {
    if (this.#timer !== undefined) return;
    const first = this.#due.values().next();
    if (first.done) return;
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      this.#sendDue();
    }, Math.max(0, first.value.at - this.#clock.now()));
  }

  #sendDue(): void {
    const now = this.#clock.now();
    for (const [k, due] of this.#due) {
      if (due.at > now) break;
      this.#due.delete(k);
      this.#send(due.taskId, due.attempt);
    }
    this.#arm();
  }
}
