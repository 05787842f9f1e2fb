/**
 * OperatorService's unary calls over gRPC, served straight on the node:http2 request rather
 * than through Connect's handler. Connect's per-call pipeline (async iterables, fetch-style
 * header objects, envelopes joined and split) cost the manager about 0.8 ms of CPU per call
 * on our machines, twice what the call itself costs; a client that waits on GetTask or lists
 * tasks pays it on every call. Here the one request message is decoded, the same handler
 * (operator_service.ts) runs with a handler context Connect's own function makes, and the
 * answer is written at once.
 *
 * Only the plain case is served here: gRPC with protobuf and an uncompressed request, with or
 * without a grpc-timeout. Anything else (Connect or gRPC-Web, compression, a malformed
 * timeout, TaskLogs' stream) is left to Connect, which serves the same handlers.
 */
import type * as http2 from "node:http2";
import { fromBinary } from "@bufbuild/protobuf";
import type { DescMethodUnary } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createContextValues,
  createHandlerContext,
  type HandlerContext,
  type ServiceImpl,
} from "@connectrpc/connect";
import { OperatorService } from "../shared/gen/goschedule/v1/goschedule_pb.ts";
import { EnvelopeReader } from "../shared/grpc_frames.ts";
import { frameOperatorAnswer } from "./task_frames.ts";
import { peerAddressKey } from "./worker_service.ts";
import {
  type DirectHandler,
  grpcStatusTrailers,
  isPlainGrpc,
  writeGrpcHead,
} from "./direct_grpc.ts";

/**
 * A request larger than this is refused (a ScheduleTasks of 10,000 tasks with large specs
 * stays well below it); Connect's path has no limit, but it holds the whole request too.
 */
export const MAX_REQUEST_BYTES = 128 * 1024 * 1024;

// deno-lint-ignore no-explicit-any
type AnyUnary = DescMethodUnary<any, any>;
type UnaryHandler = (request: unknown, context: HandlerContext) => unknown;

/**
 * The reasons signals are aborted with: an abort without one makes a DOMException, whose
 * stack trace showed in profiles at one per call.
 */
const CALL_OVER = new ConnectError("the call is over", Code.Canceled);
const CLIENT_GONE = new ConnectError("the client went away", Code.Canceled);

/** grpc-timeout's units, in milliseconds. */
const TIMEOUT_UNITS: Readonly<Record<string, number>> = {
  H: 3_600_000,
  M: 60_000,
  S: 1_000,
  m: 1,
  u: 0.001,
  n: 0.000_001,
};

export function createGrpcOperatorUnary(
  impl: ServiceImpl<typeof OperatorService>,
): DirectHandler {
  const prefix = `/${OperatorService.typeName}/`;
  const routes = new Map<string, { method: AnyUnary; handler: UnaryHandler }>();
  for (const method of OperatorService.methods) {
    if (method.methodKind !== "unary") continue;
    const handler = (impl as Record<string, unknown>)[method.localName];
    if (typeof handler === "function") {
      routes.set(prefix + method.name, {
        method: method as AnyUnary,
        handler: handler as UnaryHandler,
      });
    }
  }
  return (req, res, peerAddress) => {
    if (req.method !== "POST") return false;
    const route = routes.get(req.url);
    if (!route || !isPlainGrpc(req)) return false;
    const timeout = req.headers["grpc-timeout"];
    const timeoutMs = timeout === undefined ? undefined : parseTimeout(timeout);
    if (timeoutMs === null) return false;
    serve(route.method, route.handler, req, res, peerAddress, timeoutMs);
    return true;
  };
}

/** A grpc-timeout value in milliseconds, or null when it is not one (Connect says why). */
function parseTimeout(value: string | string[]): number | null {
  const match = typeof value === "string" ? /^(\d{1,8})([HMSmun])$/.exec(value) : null;
  return match ? Number(match[1]) * TIMEOUT_UNITS[match[2]] : null;
}

function serve(
  method: AnyUnary,
  handler: UnaryHandler,
  req: http2.Http2ServerRequest,
  res: http2.Http2ServerResponse,
  peerAddress: string,
  timeoutMs: number | undefined,
): void {
  const reader = new EnvelopeReader(MAX_REQUEST_BYTES);
  const messages: Uint8Array[] = [];
  const gone = new AbortController();
  let failed: ConnectError | undefined;
  let answered = false;

  const answer = (body: Uint8Array | undefined, error?: ConnectError) => {
    if (answered) return;
    answered = true;
    if (res.writableEnded || res.destroyed) return;
    try {
      writeGrpcHead(res);
      res.addTrailers(grpcStatusTrailers(error));
      if (body) res.end(body);
      else res.end();
    } catch {
      // The stream closed under us: there is no one to answer.
    }
  };

  req.on("data", (chunk: Uint8Array) => {
    if (failed) return;
    try {
      messages.push(...reader.push(chunk));
    } catch (e) {
      failed = ConnectError.from(e);
    }
  });
  req.on("end", () => {
    if (failed) return answer(undefined, failed);
    if (reader.partial) {
      return answer(
        undefined,
        new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument),
      );
    }
    if (messages.length !== 1) {
      const problem = messages.length === 0
        ? "missing input message"
        : "received extra input message";
      return answer(
        undefined,
        new ConnectError(`protocol error: ${problem} for unary method`, Code.Unimplemented),
      );
    }
    let request: unknown;
    try {
      request = fromBinary(method.input, messages[0]);
    } catch (e) {
      return answer(
        undefined,
        new ConnectError(
          `cannot decode the request: ${(e as Error).message}`,
          Code.InvalidArgument,
        ),
      );
    }
    const context = createHandlerContext({
      service: OperatorService,
      method,
      protocolName: "grpc",
      requestMethod: "POST",
      url: req.url,
      timeoutMs,
      requestSignal: gone.signal,
      contextValues: createContextValues().set(peerAddressKey, peerAddress),
    });
    Promise.resolve()
      .then(() => handler(request, context))
      .then((output) => frameOperatorAnswer(method.output, output as never))
      .then(
        (body) => answer(body),
        (e) =>
          answer(
            undefined,
            e instanceof ConnectError ? e : new ConnectError("internal error", Code.Internal),
          ),
      )
      // Ends the deadline's timer.
      .finally(() => context.abort(CALL_OVER));
  });
  const close = () => {
    if (!answered) gone.abort(CLIENT_GONE);
  };
  req.on("close", close);
  req.on("error", close);
  res.on("close", close);
}
