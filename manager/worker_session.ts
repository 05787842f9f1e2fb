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
  /** Writes the messages in order, together (one write on the wire where it can). */
  write(...messages: Outgoing[]): void;
  /** Ends the stream, with the session's error if it has one. */
  close(error: Error | undefined): void;
  /** Drops the stream's connection at once, with no goodbye (see WorkerSession.drop). */
  drop?(): void;
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
  /** Messages that may wait (see hold), and since when the first of them has waited. */
  #held: Outgoing[] = [];
  #heldSince = 0;
  /** Whether a message other than a ping went out, and one came in, since the last round. */
  #sentSinceRound = false;
  #heardSinceRound = false;

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

  /**
   * Sends the message now, and any held ones after it: the worker acts on the message (a run,
   * say) before it deals with the answers.
   */
  send(message: Outgoing): boolean {
    if (message.msg?.case !== "ping") this.#sentSinceRound = true;
    return this.#write([message, ...this.#takeHeld()]);
  }

  /**
   * Keeps a message that can wait to go out with the next one sent to this worker, or at the
   * session's next ping round (see sendHeld): a message written alone costs the manager a
   * socket write, and a worker busy with short tasks is sent something often anyway.
   */
  hold(message: Outgoing, now: number): void {
    if (this.#held.length === 0) this.#heldSince = now;
    this.#held.push(message);
  }

  get heldCount(): number {
    return this.#held.length;
  }

  /** When the oldest held message was held (meaningless when none is). */
  get heldSince(): number {
    return this.#heldSince;
  }

  /** Sends the held messages, if any, together; says whether there were any. */
  sendHeld(): boolean {
    const held = this.#takeHeld();
    if (held.length === 0) return false;
    this.#sentSinceRound = true;
    this.#write(held);
    return true;
  }

  #takeHeld(): Outgoing[] {
    const held = this.#held;
    if (held.length > 0) this.#held = [];
    return held;
  }

  #write(messages: Outgoing[]): boolean {
    if (!this.#sink) {
      let queued = true;
      for (const m of messages) queued = this.outgoing.push(m);
      return queued;
    }
    if (this.outgoing.closed) return false;
    this.#sink.write(...messages);
    return true;
  }

  /** The worker was heard from. */
  heard(now: number): void {
    this.lastSeenAt = now;
    this.#heardSinceRound = true;
  }

  /**
   * Starts a new ping round for this session; says whether, since the last one, the stream
   * carried messages both ways (other than a ping; `sendingNow` counts what is about to go),
   * which tells both ends what a ping would.
   */
  nextRound(sendingNow = false): boolean {
    const busy = (this.#sentSinceRound || sendingNow) && this.#heardSinceRound;
    this.#sentSinceRound = this.#heardSinceRound = false;
    return busy;
  }

  /** Ends the stream; with an error, the worker sees that error. */
  close(error?: Error): void {
    if (error && !this.error) this.error = error;
    if (this.#end()) this.#sink?.close(this.error);
  }

  /**
   * Ends the stream by dropping its connection, with no goodbye: for a worker gone silent,
   * which cannot read one. A stream ended gracefully while its worker is away (stopped, cut
   * off) is what Deno's nghttp2 can abort the whole manager on when the worker comes back
   * and closes its side (the assertion of denoland/deno#36788, seen in the all-silent fault
   * test); a dropped connection leaves no stream to trip over.
   */
  drop(): void {
    if (!this.#end()) return;
    if (this.#sink?.drop) this.#sink.drop();
    else this.#sink?.close(this.error);
  }

  /** Marks the session closed; false when it already was. */
  #end(): boolean {
    if (this.outgoing.closed) return false;
    this.outgoing.close();
    this.onClose?.();
    return true;
  }
}
