/**
 * Carries a task's logs from its worker to an operator. Workers may be behind NAT, so the
 * manager asks over the worker's own stream (LogRequest) and the worker answers on it
 * (LogChunk); each reader is one request id. A reader that goes away cancels its request; a
 * worker that goes away ends its readers with an error.
 */
import { AsyncQueue } from "../shared/async_queue.ts";
import type { LogChunk } from "../shared/gen/goschedule/v1/goschedule_pb.ts";
import type { WorkerSession } from "./worker_session.ts";

export interface LogQuery {
  taskId: string;
  attempt: number;
  follow: boolean;
  stderr: boolean;
  tailLines: number;
}

/** The worker answered that it has no logs for the attempt (they expired, or it never ran). */
export class LogsUnavailableError extends Error {
  override name = "LogsUnavailableError";
}

/** The attempt followed was given back unstarted by its worker; a later one may run. */
export class AttemptGivenBackError extends Error {
  override name = "AttemptGivenBackError";
}

/** The worker's stream ended while its logs were being read. */
export class LogSourceLostError extends Error {
  override name = "LogSourceLostError";
}

interface Reader {
  session: WorkerSession;
  chunks: AsyncQueue<Uint8Array>;
  error?: Error;
}

export class LogRelay {
  readonly #readers = new Map<bigint, Reader>();
  #nextId = 0n;

  /** Streams the attempt's output from the worker until it says eof or `signal` aborts. */
  async *read(
    session: WorkerSession,
    query: LogQuery,
    signal: AbortSignal,
  ): AsyncGenerator<Uint8Array> {
    const requestId = ++this.#nextId;
    const reader: Reader = { session, chunks: new AsyncQueue<Uint8Array>() };
    this.#readers.set(requestId, reader);
    const onAbort = () => reader.chunks.close();
    signal.addEventListener("abort", onAbort);
    try {
      const sent = session.send({
        msg: { case: "logRequest", value: { requestId, ...query } },
      });
      if (!sent) throw new LogSourceLostError(`worker ${session.workerId} is not connected`);
      for await (const data of reader.chunks) yield data;
      if (reader.error) throw reader.error;
    } finally {
      signal.removeEventListener("abort", onAbort);
      // Still registered means the worker did not finish the request: tell it to stop.
      if (this.#readers.delete(requestId)) {
        session.send({ msg: { case: "logCancel", value: { requestId } } });
      }
    }
  }

  /** A chunk from a worker's stream; chunks for unknown or foreign requests are dropped. */
  deliver(session: WorkerSession, chunk: LogChunk): void {
    const reader = this.#readers.get(chunk.requestId);
    if (!reader || reader.session !== session) return;
    if (chunk.data.length > 0) reader.chunks.push(chunk.data);
    if (chunk.error) reader.error = new LogsUnavailableError(chunk.error);
    else if (chunk.givenBack) {
      reader.error = new AttemptGivenBackError(
        `attempt given back unstarted by worker ${session.workerId}`,
      );
    }
    if (chunk.eof || chunk.error) {
      this.#readers.delete(chunk.requestId);
      reader.chunks.close();
    }
  }

  /** The session ended: its readers end with an error. */
  sessionClosed(session: WorkerSession): void {
    for (const [id, reader] of this.#readers) {
      if (reader.session !== session) continue;
      this.#readers.delete(id);
      reader.error = new LogSourceLostError(
        `worker ${session.workerId} disconnected while its logs were being read`,
      );
      reader.chunks.close();
    }
  }
}
