/**
 * What the calls served straight on node:http2 (the worker stream, the operator's unary
 * calls) share: which requests they may take, and how a gRPC answer starts and ends.
 */
import type * as http2 from "node:http2";
import type { ConnectError } from "@connectrpc/connect";

/** Serves a request itself and says true, or leaves it to the next handler and says false. */
export type DirectHandler = (
  req: http2.Http2ServerRequest,
  res: http2.Http2ServerResponse,
  peerAddress: string,
) => boolean;

/**
 * A gRPC request with protobuf and an uncompressed body: what the direct handlers read.
 * Anything else (Connect, gRPC-Web, JSON, compression) is left to Connect.
 */
export function isPlainGrpc(req: http2.Http2ServerRequest): boolean {
  const type = req.headers["content-type"];
  if (type !== "application/grpc" && type !== "application/grpc+proto") return false;
  const encoding = req.headers["grpc-encoding"];
  return encoding === undefined || encoding === "identity";
}

/** Starts a gRPC answer, once. */
export function writeGrpcHead(res: http2.Http2ServerResponse): void {
  if (!res.headersSent) res.writeHead(200, { "content-type": "application/grpc+proto" });
}

/** The trailers that end a gRPC answer: its status, and the error's message if any. */
export function grpcStatusTrailers(error?: ConnectError): Record<string, string> {
  return error
    ? { "grpc-status": String(error.code), "grpc-message": encodeURIComponent(error.rawMessage) }
    : { "grpc-status": "0" };
}
