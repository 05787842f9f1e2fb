/**
 * The worker's stream to the manager (WorkerService.Connect) as a plain gRPC call, framed by
 * hand, as the manager serves it (manager/worker_stream.ts), on our own HTTP/2 client
 * (shared/h2_client.ts, which the etcd client uses too). Through connect-node's client
 * each message passed a pipeline of async iterables, a large share of a short task's cost at
 * the worker, and on Deno that client kept about 600 bytes per received message alive: with a
 * ping every 2 s, tens of megabytes a day for a worker that never stops. node:http2 after it
 * still cost the worker about a fifth of its CPU per short task (its streams, events and
 * timers for every message), and under Deno 2.9 its nghttp2 can abort the whole process on a
 * GOAWAY (denoland/deno#36788), which a manager that stops sends. The call is the one
 * connect-node makes (gRPC, protobuf, uncompressed, no deadline), so any manager serves it.
 */
import { fromBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { AsyncQueue } from "../shared/async_queue.ts";
import {
  ConnectRequestSchema,
  type ConnectResponse,
  ConnectResponseSchema,
  WorkerService,
} from "../shared/gen/goschedule/v1/goschedule_pb.ts";
import { EnvelopeReader, grpcStatus } from "../shared/grpc_frames.ts";
import { type H2Answer, H2Connection } from "../shared/h2_client.ts";
import type { ClientTls } from "../shared/tls.ts";
import { frameRequest } from "./request_frames.ts";

type Outgoing = MessageInitShape<typeof ConnectRequestSchema>;

const PATH = `/${WorkerService.typeName}/${WorkerService.method.connect.name}`;

/**
 * How long an acknowledgement or a pong may wait for company (see H2Options.coalesceMs). A
 * worker busy with short tasks sends three messages per task: the task's acknowledgement on
 * arrival, another when it leaves the queue, and its report. Written one by one, each cost a
 * socket write here and a wake-up and a read at the manager. Held, the acknowledgements go
 * with the next report: about one write per task. Reports, hellos and log chunks go at once,
 * so no one waits longer for a result.
 */
const COALESCE_MS = 2;

/** Messages nobody waits on: they may wait COALESCE_MS for a report to go with. */
function mayWait(message: Outgoing): boolean {
  const kind = message.msg?.case;
  return kind === "ack" || kind === "pong";
}

/**
 * Opens the stream at `baseUrl` (http:// for h2c, https:// for TLS), sends what `outgoing`
 * yields, and yields the manager's messages. Ends when the manager ends the stream with an OK
 * status; throws a ConnectError for any other end: the manager's status, a connection that
 * fails or drops (Unavailable), or `signal` (Canceled).
 */
export async function* openManagerStream(
  baseUrl: string,
  outgoing: AsyncIterable<Outgoing>,
  signal: AbortSignal,
  tls?: ClientTls,
): AsyncGenerator<ConnectResponse> {
  signal.throwIfAborted();
  let connection: H2Connection;
  try {
    connection = await H2Connection.open(new URL(baseUrl), signal, {
      coalesceMs: COALESCE_MS,
      tls,
    });
  } catch (e) {
    if (signal.aborted) throw new ConnectError("the stream was cancelled", Code.Canceled);
    throw new ConnectError((e as Error).message, Code.Unavailable);
  }
  const incoming = new AsyncQueue<ConnectResponse>();
  let failure: ConnectError | undefined;
  const fail = (error: ConnectError) => {
    failure ??= error;
    incoming.close();
  };
  // Ours, so that a message we cannot decode cancels the call like an abort does.
  const cancel = new AbortController();
  const onAbort = () => cancel.abort();
  signal.addEventListener("abort", onAbort);
  const reader = new EnvelopeReader();
  const call = connection.call(PATH, [
    ["content-type", "application/grpc+proto"],
    ["te", "trailers"],
  ], (chunk) => {
    if (failure) return;
    try {
      for (const bytes of reader.push(chunk)) {
        incoming.push(fromBinary(ConnectResponseSchema, bytes));
      }
    } catch (e) {
      fail(
        e instanceof ConnectError
          ? e
          : new ConnectError(`cannot decode a message: ${(e as Error).message}`, Code.Internal),
      );
      cancel.abort();
    }
  }, cancel.signal);
  call.answer.then(
    (answer) => {
      const error = statusError(answer);
      if (error) fail(error);
      else incoming.close();
    },
    (e: Error) =>
      fail(
        signal.aborted
          ? new ConnectError("the stream was cancelled", Code.Canceled)
          : new ConnectError(e.message, Code.Unavailable),
      ),
  );

  // Ends once `outgoing` does: its owner closes it when the stream is over. Backpressure:
  // while the connection is behind, the next message waits in `outgoing`, where its owner
  // sees it (log followers skip output rather than pile it up).
  void (async () => {
    for await (const message of outgoing) {
      if (failure || incoming.closed) return;
      await call.send(frameRequest(message), { lazy: mayWait(message) });
    }
    call.end();
  })().catch((e) => fail(new ConnectError((e as Error).message, Code.Internal)));

  try {
    for await (const message of incoming) yield message;
    if (failure) throw failure;
  } finally {
    signal.removeEventListener("abort", onAbort);
    cancel.abort();
    connection.close();
  }
}

/** The call's end as an error, or undefined for gRPC's OK. */
function statusError(answer: H2Answer): ConnectError | undefined {
  const { status, message } = grpcStatus(answer);
  if (status === undefined) {
    return new ConnectError(
      `the stream ended without a status (HTTP ${answer.status})`,
      Code.Unavailable,
    );
  }
  if (status === "0") return undefined;
  return new ConnectError(message, Number(status) as Code);
}
