/**
 * The worker's stream to the manager (WorkerService.Connect) as a plain gRPC call on
 * node:http2, framed by hand, as the manager serves it (manager/worker_stream.ts). Through
 * connect-node's client each message passed a pipeline of async iterables, a large share of a
 * short task's cost at the worker, and on Deno that client kept about 600 bytes per received
 * message alive: with a ping every 2 s, tens of megabytes a day for a worker that never stops.
 * The call is the one connect-node makes (gRPC, protobuf, uncompressed, no deadline), so any
 * manager serves it.
 */
import * as http2 from "node:http2";
import { fromBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { AsyncQueue } from "../shared/async_queue.ts";
import {
  ConnectRequestSchema,
  type ConnectResponse,
  ConnectResponseSchema,
  WorkerService,
} from "../shared/gen/goschedule/v1/goschedule_pb.ts";
import { EnvelopeReader, grpcFrame } from "../shared/grpc_frames.ts";

type Outgoing = MessageInitShape<typeof ConnectRequestSchema>;

const PATH = `/${WorkerService.typeName}/${WorkerService.method.connect.name}`;

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
): AsyncGenerator<ConnectResponse> {
  signal.throwIfAborted();
  const incoming = new AsyncQueue<ConnectResponse>();
  let failure: ConnectError | undefined;
  let status: string | undefined;
  const fail = (error: ConnectError) => {
    failure ??= error;
    incoming.close();
  };

  const session = http2.connect(baseUrl);
  session.on("error", (e) => fail(new ConnectError(e.message, Code.Unavailable)));
  const stream = session.request({
    ":method": "POST",
    ":path": PATH,
    "content-type": "application/grpc+proto",
    te: "trailers",
  });
  const reader = new EnvelopeReader();
  stream.on("data", (chunk: Uint8Array) => {
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
      stream.close(http2.constants.NGHTTP2_CANCEL);
    }
  });
  const onHeaders = (headers: http2.IncomingHttpHeaders) => {
    const code = headers["grpc-status"];
    if (code === undefined) return;
    status = String(code);
    if (status !== "0") {
      const message = decodeURIComponent(String(headers["grpc-message"] ?? ""));
      fail(new ConnectError(message, Number(status) as Code));
    }
  };
  stream.on("response", onHeaders);
  stream.on("trailers", onHeaders);
  // A connection that fails cancels the pending stream first; its cause is what to say.
  stream.on("error", (e) => {
    const cause = (e as Error & { cause?: unknown }).cause;
    fail(new ConnectError(cause instanceof Error ? cause.message : e.message, Code.Unavailable));
  });
  // The manager's side is over (its trailers came with the end): so is the call, even while
  // our side is still open.
  stream.on("end", () => {
    if (status !== undefined) incoming.close();
  });
  stream.on("close", () => {
    if (status === undefined) {
      fail(new ConnectError("the stream ended without a status", Code.Unavailable));
    }
    incoming.close();
  });
  const onAbort = () => {
    fail(new ConnectError("the stream was cancelled", Code.Canceled));
    stream.close(http2.constants.NGHTTP2_CANCEL);
  };
  signal.addEventListener("abort", onAbort);

  // Ends once `outgoing` does: its owner closes it when the stream is over.
  void (async () => {
    for await (const message of outgoing) {
      if (stream.destroyed || stream.writableEnded) return;
      // Backpressure: while the connection is behind, the next message waits in `outgoing`,
      // where its owner sees it (log followers skip output rather than pile it up).
      if (!stream.write(grpcFrame(ConnectRequestSchema, message))) await drained(stream);
    }
    if (!stream.destroyed && !stream.writableEnded) stream.end();
  })().catch((e) => fail(new ConnectError((e as Error).message, Code.Internal)));

  try {
    for await (const message of incoming) yield message;
    if (failure) throw failure;
  } finally {
    signal.removeEventListener("abort", onAbort);
    if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_CANCEL);
    session.destroy();
  }
}

/** Resolves once the stream can take more, or is gone. */
function drained(stream: http2.ClientHttp2Stream): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      stream.off("drain", done);
      stream.off("close", done);
      resolve();
    };
    stream.on("drain", done);
    stream.on("close", done);
  });
}
