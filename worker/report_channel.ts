/**
 * Reports sent on the worker's stream rather than one SetTask call each: a call per task is a
 * new HTTP/2 stream with its headers and trailers at both ends, which was a large share of a
 * short task's cost at the worker and the manager alike. Each report waits for the manager's
 * ReportAnswer (stored, or refused with SetTask's status code). Without a stream, or when the
 * manager does not take reports on it (an older manager), reports go through SetTask.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type {
  ConnectRequestSchema,
  ReportAnswer,
} from "../shared/gen/goschedule/v1/goschedule_pb.ts";
import type { TaskReport } from "./report_outbox.ts";
import { setTaskRequest } from "./set_task.ts";
import { attemptKey } from "./agent.ts";

type Outgoing = MessageInitShape<typeof ConnectRequestSchema>;

/** How long a report waits for its answer before it counts as not delivered (and is resent). */
export const REPORT_ANSWER_TIMEOUT_MS = 10_000;

interface Waiting {
  answered: Promise<void>;
  resolve: () => void;
  reject: (error: Error) => void;
  timer: ReturnType<typeof setTimeout>;
}

export class ReportChannel {
  readonly #workerId: string;
  readonly #setTask: (report: TaskReport) => Promise<void>;
  readonly #answerTimeoutMs: number;
  #send: ((message: Outgoing) => void) | undefined;
  readonly #waiting = new Map<string, Waiting>();

  /** `setTask` delivers a report by the SetTask call: without a stream that takes them. */
  constructor(
    workerId: string,
    setTask: (report: TaskReport) => Promise<void>,
    answerTimeoutMs = REPORT_ANSWER_TIMEOUT_MS,
  ) {
    this.#workerId = workerId;
    this.#setTask = setTask;
    this.#answerTimeoutMs = answerTimeoutMs;
  }

  /** A stream whose manager takes reports is up: reports go on it from now on. */
  attach(send: (message: Outgoing) => void): void {
    this.#send = send;
  }

  /** The stream is gone: reports still waiting for their answer are not delivered. */
  detach(): void {
    this.#send = undefined;
    for (const [key, waiting] of this.#waiting) {
      clearTimeout(waiting.timer);
      waiting.reject(new ConnectError("the stream to the manager ended", Code.Unavailable));
      this.#waiting.delete(key);
    }
  }

  /** Resolves once the manager stored the report; rejects with the manager's refusal. */
  send(report: TaskReport): Promise<void> {
    const send = this.#send;
    if (!send) return this.#setTask(report);
    const key = attemptKey(report.taskId, report.attempt);
    // The same report again before its answer: the one answer settles both.
    const earlier = this.#waiting.get(key);
    if (earlier) return earlier.answered;
    let resolve!: () => void, reject!: (error: Error) => void;
    const answered = new Promise<void>((res, rej) => [resolve, reject] = [res, rej]);
    const timer = setTimeout(() => {
      this.#waiting.delete(key);
      reject(new ConnectError("no answer from the manager", Code.DeadlineExceeded));
    }, this.#answerTimeoutMs);
    this.#waiting.set(key, { answered, resolve, reject, timer });
    send({ msg: { case: "report", value: setTaskRequest(this.#workerId, report) } });
    return answered;
  }

  /** The manager's answer to a report sent on the stream. */
  answer(answer: Pick<ReportAnswer, "taskId" | "attempt" | "code" | "message">): void {
    const key = attemptKey(answer.taskId, answer.attempt);
    const waiting = this.#waiting.get(key);
    if (!waiting) return; // Answered after it timed out: it is sent again and answered again.
    this.#waiting.delete(key);
    clearTimeout(waiting.timer);
    if (answer.code === 0) waiting.resolve();
    else waiting.reject(new ConnectError(answer.message, answer.code as Code));
  }
}
