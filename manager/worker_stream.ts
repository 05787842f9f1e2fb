/**
 * The worker stream (WorkerService.Connect) over the gRPC protocol, served straight on the
 * node:http2 request rather than through Connect's handler. A worker stream lives as long as
 * its worker and carries a ping every ping interval, and a pong when asked; through Connect each message
 * passes a pipeline of async iterables and a promise per write, which with thousands of
 * workers was most of the manager's idle time. Here a message is decoded and handed over in
 * the socket's data callback, and one sent is encoded and written at once (a ping, the same
 * message for every session, is encoded once).
 *
 * Only the plain case is served here: gRPC with protobuf, uncompressed, without a deadline,
 * which is how our workers call. Anything else (Connect or gRPC-Web, compression, a
 * grpc-timeout) is left to Connect, which serves the same stream through worker_service.ts.
 */
import type * as http2 from "node:http2";
import { constants } from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import { type ConnectRequest, WorkerService } from "../shared/gen/goschedule/v1/goschedule_pb.ts";
import { EnvelopeReader } from "../shared/grpc_frames.ts";
import type { Logger } from "../shared/log.ts";
import type { WorkerStreams } from "./worker_service.ts";
import type { Outgoing, SessionSink, WorkerSession } from "./worker_session.ts";
import { concatBytes } from "../shared/bytes.ts";
import { frameResponse } from "./worker_frames.ts";
import { decodeWorkerRequest } from "./worker_requests.ts";
import {
  type DirectHandler,
  grpcStatusTrailers,
  isPlainGrpc,
  writeGrpcHead,
} from "./direct_grpc.ts";

const PATH = `/${WorkerService.typeName}/${WorkerService.method.connect.name}`;

export function createGrpcWorkerStream(
  streams: WorkerStreams,
  log: Logger,
  helloTimeoutMs: number,
): DirectHandler {
  return (req, res, peerAddress) => {
    if (req.method !== "POST" || req.url !== PATH || !isPlainGrpc(req)) return false;
    if (req.headers["grpc-timeout"] !== undefined) return false;
    serve(streams, log, helloTimeoutMs, req, res, peerAddress);
    return true;
  };
}

function serve(
  streams: WorkerStreams,
  log: Logger,
  helloTimeoutMs: number,
  req: http2.Http2ServerRequest,
  res: http2.Http2ServerResponse,
  peerAddress: string,
): void {
  let session: WorkerSession | undefined;
  let stage: "hello" | "opening" | "open" = "hello";
  /** Messages that came while the session was being opened. */
  const early: ConnectRequest[] = [];
  let clientEnded = false;
  let responded = false;
  let ended = false;
  const reader = new EnvelopeReader();

  const respond = (error?: Error) => {
    if (responded) return;
    responded = true;
    clearTimeout(helloTimer);
    if (res.writableEnded || res.destroyed) return;
    const status = error === undefined
      ? undefined
      : error instanceof ConnectError
      ? error
      : new ConnectError("internal error", Code.Internal);
    writeGrpcHead(res);
    res.addTrailers(grpcStatusTrailers(status));
    // As Connect does: once the trailers are out, a worker still sending is told to stop.
    stream.once("wantTrailers", () => {
      setImmediate(() => {
        if (stream.state?.remoteClose === 0) stream.close(constants.NGHTTP2_NO_ERROR);
      });
    });
    res.end();
  };

  /** Closes the session with the manager once, when both it exists and the stream is over. */
  const endSession = () => {
    if (ended || session === undefined || session.open) return;
    ended = true;
    streams.end(session).catch((e) => log.warn("cannot close a worker stream", { cause: e }));
  };

  // Messages go to the HTTP/2 stream itself: the compatibility response's checks on every
  // write showed in profiles, and it buffers nothing of its own.
  const stream = res.stream;
  // Known here rather than asked of `res` on every write: its getter showed in profiles.
  let headWritten = false;
  const sink: SessionSink = {
    write(...messages) {
      if (responded) return;
      if (!headWritten) {
        writeGrpcHead(res);
        headWritten = true;
      }
      stream.write(messages.length === 1 ? frame(messages[0]) : concatBytes(messages.map(frame)));
    },
    close(error) {
      respond(error);
      endSession();
    },
    drop() {
      responded = true;
      clearTimeout(helloTimer);
      // The whole connection: a worker has one stream on it (the simulator may put several
      // on one, all of the same silent process).
      stream.session?.destroy();
      endSession();
    },
  };

  const receive = (request: ConnectRequest) => {
    if (!session?.open) return;
    try {
      streams.receive(session, request);
    } catch (e) {
      const error = e instanceof ConnectError ? e : undefined;
      if (error) {
        log.warn("closing a worker stream", { worker: session.workerId, why: error.rawMessage });
      }
      session.close(error);
    }
  };

  const open = (first: ConnectRequest | undefined) => {
    stage = "opening";
    clearTimeout(helloTimer);
    streams.open(first, peerAddress, sink).then((opened) => {
      session = opened;
      stage = "open";
      for (const request of early.splice(0)) receive(request);
      if (clientEnded || responded) opened.close();
      endSession();
    }, (e) => respond(e));
  };

  const helloTimer = setTimeout(() => open(undefined), helloTimeoutMs);

  req.on("data", (chunk: Uint8Array) => {
    if (responded) return;
    let requests: ConnectRequest[];
    try {
      requests = reader.push(chunk).map(decodeWorkerRequest);
    } catch (e) {
      const error = e instanceof ConnectError ? e : new ConnectError(
        `cannot decode a message: ${(e as Error).message}`,
        Code.InvalidArgument,
      );
      if (session) session.close(error);
      else respond(error);
      return;
    }
    for (const request of requests) {
      if (stage === "hello") open(request);
      else if (stage === "opening") early.push(request);
      else receive(request);
    }
  });
  req.on("end", () => {
    // The worker is done sending: as with Connect, that ends the stream.
    clientEnded = true;
    if (stage === "hello") open(undefined);
    else session?.close();
  });
  const gone = () => {
    // Reset or disconnected: nothing more can be written.
    responded = true;
    clearTimeout(helloTimer);
    session?.close();
    endSession();
  };
  req.on("close", gone);
  req.on("error", gone);
  res.on("close", gone);
  res.on("error", gone);
  stream.on("error", gone);
}

/** Framed pings: a round's ping is one message for many sessions, framed once. */
const framedPings = new WeakMap<Outgoing, Uint8Array>();

function frame(message: Outgoing): Uint8Array {
  if (message.msg?.case !== "ping") return frameResponse(message);
  let framed = framedPings.get(message);
  if (!framed) {
    framed = frameResponse(message);
    framedPings.set(message, framed);
  }
  return framed;
}
