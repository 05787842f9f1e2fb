/**
 * etcd's KV calls over gRPC (`/etcdserverpb.KV/Range` and `/Txn`), the default protocol.
 *
 * Carried by Deno's fetch over HTTP/2 (prior knowledge for `http://` endpoints, ALPN for
 * `https://`), not by the etcd3 package or any node:http2 client: under Deno 2.9 a GOAWAY from
 * etcd (which a stopping etcd sends) can abort the whole process inside node:http2's nghttp2
 * (denoland/deno#36788; seen here in the etcd-outage fault test), where no JavaScript can
 * catch it. fetch's HTTP/2 is another implementation (hyper's), which ends such a connection
 * with an error the call reports.
 *
 * fetch does not hand over HTTP trailers, where gRPC puts a call's status. etcd answers a
 * failed unary call with its status in the response headers instead (gRPC's "trailers only"
 * form, as every gRPC server does when no message was sent), and a successful one with
 * exactly one message: so a whole message is success, a status in the headers is etcd's
 * error, and anything else is a broken call.
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
  encodeRangeRequest,
  encodeTxnRequest,
} from "./etcd_proto.ts";

const HEADERS = { "content-type": "application/grpc", te: "trailers" };

/** A client of the given endpoints' gRPC services. */
export function createEtcdGrpc(endpoints: string[]): EtcdKv {
  const client = Deno.createHttpClient({ http1: false, http2: true });
  const rotation = new EndpointRotation(endpointBases(endpoints));

  function call(method: string, message: Uint8Array, deadline: number): Promise<Uint8Array> {
    const body = frame(message);
    const path = `/etcdserverpb.KV/${method}`;
    return rotation.call(deadline, async (base, signal) => {
      const response = await fetch(`${base}${path}`, {
        method: "POST",
        body,
        headers: HEADERS,
        signal,
        client,
      });
      const status = response.headers.get("grpc-status");
      if (response.status !== 200 || (status !== null && status !== "0")) {
        await response.body?.cancel().catch(() => {});
        throw callError(response, status);
      }
      return unframe(new Uint8Array(await response.arrayBuffer()), method);
    });
  }

  return {
    async range(request, options) {
      return decodeRangeResponse(
        await call("Range", encodeRangeRequest(request), options.deadline),
      );
    },
    async txn(request, options) {
      return decodeTxnResponse(await call("Txn", encodeTxnRequest(request), options.deadline));
    },
    close() {
      if (rotation.close()) client.close();
    },
  };
}

/** A gRPC message frame: not compressed, the length (big-endian), the message. */
export function frame(message: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(5 + message.length);
  new DataView(out.buffer).setUint32(1, message.length);
  out.set(message, 5);
  return out;
}

/** The one message of a unary answer. */
export function unframe(body: Uint8Array, method: string): Uint8Array {
  if (body.length < 5) {
    // No message and no status in the headers: the status came in trailers fetch does not
    // show, or the connection broke. Either way the call's fate is unknown.
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

function callError(response: Response, status: string | null): Error {
  if (status === null) {
    const message = `HTTP ${response.status} from etcd's gRPC port`;
    return response.status >= 502
      ? new EtcdUnavailableError(message)
      : new EtcdRequestError(message);
  }
  const code = Number(status);
  const raw = response.headers.get("grpc-message") ?? "";
  let message = raw;
  try {
    message = decodeURIComponent(raw); // gRPC percent-encodes its messages.
  } catch {
    // Not percent-encoded after all: as sent.
  }
  message ||= `gRPC status ${code}`;
  return UNAVAILABLE_CODES.has(code)
    ? new EtcdUnavailableError(message)
    : new EtcdRequestError(message);
}
