/**
 * One connected worker's stream, as the manager holds it: what to send it and when it was
 * last heard from, on the manager's clock. What is sent goes either into a queue that a
 * Connect handler drains, or straight to a sink that writes it on the wire.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import { AsyncQueue } from "../shared/async_queue.ts";
import type { ConnectResponseSchema } from "../shared/gen/goschedule/v1/goschedule_pb.ts";

export type Outgoing = MessageInitShape<typeof ConnectResponseSchema>;

/** Where a session's messages go when they need not wait in a queue. */
export interface SessionSink {
  write(message: Outgoing): void;
  /** Ends the stream, with the session's error if it has one. */
  close(error: Error | undefined): void;
}

export class WorkerSession {
  /** What is sent, for a handler to drain; unused (and empty) when the session has a sink. */
  readonly outgoing = new AsyncQueue<Outgoing>();
  readonly #sink: SessionSink | undefined;
  lastSeenAt: number;
  /** Which slice of the ping interval this session is pinged in. */
  pingPhase = 0;
  /** Set when the stream must end with an error (a malformed message, say). */
  error: Error | undefined;
  /** Called once when the session closes (the registry's cue that placement must look again). */
  onClose: (() => void) | undefined;

  constructor(
    readonly workerId: string,
    readonly address: string,
    now: number,
    sink?: SessionSink,
  ) {
    this.lastSeenAt = now;
    this.#sink = sink;
  }

  get open(): boolean {
    return !this.outgoing.closed;
  }

  send(message: Outgoing): boolean {
    if (!this.#sink) return this.outgoing.push(message);
    if (this.outgoing.closed) return false;
    this.#sink.write(message);
    return true;
  }

  /** Ends the stream; with an error, the worker sees that error. */
  close(error?: Error): void {
    if (error && !this.error) this.error = error;
    if (this.outgoing.closed) return;
    this.outgoing.close();
    this.onClose?.();
    this.#sink?.close(this.error);
  }
}
