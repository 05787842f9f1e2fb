/**
 * One connected worker's stream, as the manager holds it: what to send it (a queue the RPC
 * handler drains) and when it was last heard from, on the manager's clock.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import { AsyncQueue } from "../shared/async_queue.ts";
import type { ConnectResponseSchema } from "../shared/gen/goschedule/v1/goschedule_pb.ts";

export type Outgoing = MessageInitShape<typeof ConnectResponseSchema>;

export class WorkerSession {
  readonly outgoing = new AsyncQueue<Outgoing>();
  lastSeenAt: number;
  /** Set when the stream must end with an error (a malformed message, say). */
  error: Error | undefined;

  constructor(readonly workerId: string, readonly address: string, now: number) {
    this.lastSeenAt = now;
  }

  get open(): boolean {
    return !this.outgoing.closed;
  }

  send(message: Outgoing): boolean {
    return this.outgoing.push(message);
  }

  /** Ends the stream; with an error, the worker sees that error. */
  close(error?: Error): void {
    if (error && !this.error) this.error = error;
    this.outgoing.close();
  }
}
