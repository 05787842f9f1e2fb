/**
 * etcd's KV calls over gRPC (`/etcdserverpb.KV/Range` and `/Txn`), the default protocol,
 * on one HTTP/2 connection per endpoint (h2_client.ts, which says why neither fetch nor
 * node:http2), reopened when it breaks or etcd sends GOAWAY.
 */
import {
  endpointBases,
  EndpointRotation,
  type EtcdKv,
  EtcdRequestError,
  EtcdUnavailableError,
  UNAVAILABLE_CODES,
} from "./etcd_kv.ts";
import {
  decodeRangeResponse,
  decodeTxnResponse,
  encodeCompactionRequest,
  encodeRangeRequest,
  encodeTxnRequest,
} from "./etcd_proto.ts";
import { type H2Answer, H2Connection, H2ConnectionError, H2StreamError } from "../h2_client.ts";
import { FRAME_HEADER, frameInPlace, type GrpcStatus, grpcStatus } from "../grpc_frames.ts";

const HEADERS: [string, string][] = [["content-type", "application/grpc"], ["te", "trailers"]];

/** A client of the given endpoints' gRPC services. */
export function createEtcdGrpc(endpoints: string[]): EtcdKv {
  const rotation = new EndpointRotation(endpointBases(endpoints));
  const connections = new Map<string, Promise<H2Connection>>();

  /** The endpoint's connection, opened (again) when there is none that takes requests. */
  async function connection(base: string, signal: AbortSignal): Promise<H2Connection> {
    let open = connections.get(base);
    if (open) {
      const current = await open.catch(() => undefined);
      if (current?.usable) return current;
      if (connections.get(base) === open) connections.delete(base);
      open = connections.get(base);
    }
    if (!open) {
      open = H2Connection.open(new URL(base), signal);
      connections.set(base, open);
      open.catch(() => {
        if (connections.get(base) === open) connections.delete(base);
      });
    }
    return await abortable(open, signal);
  }

  /** `framed`: the request message after FRAME_HEADER free bytes (see frameInPlace). */
  function call(method: string, framed: Uint8Array, deadline: number): Promise<Uint8Array> {
    const body = frameInPlace(framed);
    const path = `/etcdserverpb.KV/${method}`;
    return rotation.call(deadline, async (base, signal) => {
      let answer: H2Answer;
      try {
        const h2 = await connection(base, signal);
        answer = await h2.request(path, HEADERS, body, signal);
      } catch (e) {
        if (signal.aborted) throw new EtcdUnavailableError("no answer within the deadline");
        if (e instanceof H2ConnectionError || e instanceof H2StreamError) {
          throw new EtcdUnavailableError(e.message, { cause: e });
        }
        throw e; // Could not connect: the rotation says how.
      }
      return checkAnswer(answer, method);
    });
  }

  return {
    async range(request, options) {
      return decodeRangeResponse(
        await call("Range", encodeRangeRequest(request, FRAME_HEADER), options.deadline),
      );
    },
    async txn(request, options) {
      return decodeTxnResponse(
        await call("Txn", encodeTxnRequest(request, FRAME_HEADER), options.deadline),
      );
    },
    async compact(revision, options) {
      // The answer holds only a header, which nothing here needs.
      await call("Compact", encodeCompactionRequest(revision, FRAME_HEADER), options.deadline);
    },
    close() {
      if (!rotation.close()) return;
      for (const open of connections.values()) open.then((h2) => h2.close(), () => {});
      connections.clear();
    },
  };
}

/** The answer's message, or etcd's error: the status is in the trailers, or in the headers. */
export function checkAnswer(answer: H2Answer, method: string): Uint8Array {
  const status = grpcStatus(answer);
  if (answer.status !== 200 || status.status !== "0") {
    throw callError(answer, status);
  }
  return unframe(answer.body, method);
}

function abortable<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    return Promise.reject(new EtcdUnavailableError("no answer within the deadline"));
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new EtcdUnavailableError("no answer within the deadline"));
    signal.addEventListener("abort", onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/** The one message of a unary answer. */
export function unframe(body: Uint8Array, method: string): Uint8Array {
  if (body.length < 5) {
    // Status OK and no message: not what etcd does; the call's fate is unknown.
    throw new EtcdUnavailableError(`etcd ended the ${method} call without an answer`);
  }
  const view = new DataView(body.buffer, body.byteOffset, body.length);
  const length = view.getUint32(1);
  if (body[0] !== 0 || body.length !== 5 + length) {
    throw new EtcdRequestError(
      `etcd answered ${method} with ${body.length} bytes that are not one uncompressed message`,
    );
  }
  return body.subarray(5);
}

function callError(answer: H2Answer, { status, message: sent }: GrpcStatus): Error {
  if (status === undefined) {
    const message = answer.status === 200
      ? "etcd ended the call without a status"
      : `HTTP ${answer.status} from etcd's gRPC port`;
    return answer.status === 200 || answer.status >= 502
      ? new EtcdUnavailableError(message)
      : new EtcdRequestError(message);
  }
  const code = Number(status);
  const message = sent || `gRPC status ${code}`;
  return UNAVAILABLE_CODES.has(code)
    ? new EtcdUnavailableError(message)
    : new EtcdRequestError(message);
}
