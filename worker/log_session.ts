/**
 * Serves the manager's log requests on one stream. Each request gets the stream's content (or
 * its last lines) as chunks of at most 64 KiB and, when it follows a running attempt, the new
 * output as the task writes it, then a chunk with eof once the output is complete. Request ids
 * belong to the stream: when it drops, `close` ends every follow (the manager's side of the
 * stream is gone, so there is nobody to send an eof to).
 */
import type { Logger } from "../shared/log.ts";
import type { LogStore } from "./log_store.ts";
import type { LogReader } from "./stream_log.ts";

/** What the manager asks for (the fields of the LogRequest message). */
export interface LogQuery {
  requestId: bigint;
  taskId: string;
  attempt: number;
  follow: boolean;
  /** stderr instead of stdout. */
  stderr: boolean;
  /** Only the last lines of what was written so far; 0 for all. */
  tailLines: number;
}

/** One LogChunk message. */
export interface LogChunkOut {
  requestId: bigint;
  data: Uint8Array;
  eof: boolean;
  error: string;
  /** With eof: the attempt was given back unstarted (see LogReader.givenBack). */
  givenBack?: boolean;
}

export interface LogSessionOptions {
  store: LogStore;
  /** Sends a chunk on the stream this session belongs to. */
  send: (chunk: LogChunkOut) => void;
  /**
   * Bytes of log data queued on the stream and not yet taken by it. While this is above
   * MAX_BACKLOG_BYTES, followers skip live output (the skip is marked in the data), so that a
   * slow link cannot make a chatty task fill the worker's memory. Without it, nothing is skipped.
   */
  backlog?: () => number;
  log: Logger;
}

export const MAX_CHUNK_BYTES = 64 * 1024;
export const MAX_BACKLOG_BYTES = 16 * 1024 * 1024;

interface ActiveRequest {
  /** Set once the reader is attached; detaches it from the log. */
  detach?: () => void;
  ended: boolean;
}

export class LogSession {
  readonly #options: LogSessionOptions;
  readonly #active = new Map<bigint, ActiveRequest>();
  #closed = false;

  constructor(options: LogSessionOptions) {
    this.#options = options;
  }

  /** Starts serving a request; its chunks follow on the stream. */
  request(query: LogQuery): void {
    if (this.#closed) return;
    this.cancel(query.requestId);
    const active: ActiveRequest = { ended: false };
    this.#active.set(query.requestId, active);
    void this.#serve(query, active).catch((e) => {
      this.#options.log.warn("cannot read a task's log", { task: query.taskId, cause: e });
      this.#finish(query.requestId, active, "cannot read the log on this worker");
    });
  }

  /** The reader went away: no more chunks for this request. */
  cancel(requestId: bigint): void {
    const active = this.#active.get(requestId);
    if (!active) return;
    active.ended = true;
    active.detach?.();
    this.#active.delete(requestId);
  }

  /** The stream is gone: every request ends without a word. */
  close(): void {
    this.#closed = true;
    for (const id of [...this.#active.keys()]) this.cancel(id);
  }

  get activeRequests(): number {
    return this.#active.size;
  }

  async #serve(query: LogQuery, active: ActiveRequest): Promise<void> {
    const id = query.requestId;
    let skipped = 0;
    const reader: LogReader = {
      snapshot: (data) => {
        if (!active.ended) this.#sendData(id, lastLines(data, query.tailLines));
      },
      data: (chunk) => {
        if (active.ended) return;
        if ((this.#options.backlog?.() ?? 0) > MAX_BACKLOG_BYTES) {
          skipped += chunk.length;
          return;
        }
        if (skipped > 0) {
          this.#sendData(id, new TextEncoder().encode(skipMarker(skipped)));
          skipped = 0;
        }
        this.#sendData(id, chunk);
      },
      end: () => {
        if (skipped > 0) this.#sendData(id, new TextEncoder().encode(skipMarker(skipped)));
        this.#finish(id, active);
      },
      givenBack: () => this.#finish(id, active, "", true),
    };
    const detach = await this.#options.store.attach(
      query.taskId,
      query.attempt,
      query.stderr ? "stderr" : "stdout",
      query.follow,
      reader,
    );
    if (detach === undefined) {
      this.#finish(
        id,
        active,
        `no logs for task ${query.taskId} attempt ${query.attempt} on this worker`,
      );
      return;
    }
    // Cancelled (or the stream dropped) while attaching.
    if (active.ended) detach();
    else active.detach = detach;
  }

  #sendData(requestId: bigint, data: Uint8Array): void {
    for (let offset = 0; offset < data.length; offset += MAX_CHUNK_BYTES) {
      this.#options.send({
        requestId,
        data: data.subarray(offset, offset + MAX_CHUNK_BYTES),
        eof: false,
        error: "",
      });
    }
  }

  /** The last chunk of a request: eof, with the error when there is one. */
  #finish(requestId: bigint, active: ActiveRequest, error = "", givenBack = false): void {
    if (active.ended) return;
    active.ended = true;
    if (this.#active.get(requestId) === active) this.#active.delete(requestId);
    this.#options.send({
      requestId,
      data: new Uint8Array(0),
      eof: true,
      error,
      ...(givenBack ? { givenBack } : {}),
    });
  }
}

/** Marks output a slow follower did not get, on a line of its own. */
function skipMarker(bytes: number): string {
  return `\n[go-schedule: ${bytes} bytes skipped: the reader fell behind]\n`;
}

/** The last `n` lines of `data` (all of it when n is 0 or it has fewer lines). */
export function lastLines(data: Uint8Array, n: number): Uint8Array {
  if (n <= 0) return data;
  let i = data.length - 1;
  // A final newline ends the last line; it does not start another one.
  if (i >= 0 && data[i] === 0x0a) i--;
  let found = 0;
  for (; i >= 0; i--) {
    if (data[i] === 0x0a && ++found === n) return data.subarray(i + 1);
  }
  return data;
}
