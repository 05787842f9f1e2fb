/**
 * etcd's KV calls over its JSON gateway (`POST /v3/kv/range`, `/v3/kv/txn`) with plain
 * HTTP/1.1 fetch: the fallback (`etcd.protocol: json`) for where etcd's gRPC port cannot be
 * reached over HTTP/2, such as through an HTTP/1.1-only proxy. It costs etcd about three times
 * the CPU of gRPC per task written (the gateway decodes JSON and calls etcd's gRPC server over a
 * loopback connection), so gRPC (etcd_grpc.ts) is the default.
 */
import { Buffer } from "node:buffer";
import {
  endpointBases,
  EndpointRotation,
  type EtcdKv,
  EtcdRequestError,
  EtcdUnavailableError,
  type Header,
  type KeyValue,
  type RangeResponse,
  type ResponseOp,
  type TxnResponse,
  UNAVAILABLE_CODES,
} from "./etcd_kv.ts";

/** A client of the given endpoints through their JSON gateways. */
export function createEtcdGateway(endpoints: string[]): EtcdKv {
  const client = Deno.createHttpClient({});
  const rotation = new EndpointRotation(endpointBases(endpoints));

  function call(path: string, body: unknown, deadline: number): Promise<unknown> {
    const json = requestJson(body);
    return rotation.call(deadline, async (base, signal) => {
      const response = await fetch(`${base}${path}`, {
        method: "POST",
        body: json,
        headers: { "content-type": "application/json" },
        signal,
        client,
      });
      const text = await response.text().catch(() => "");
      if (response.ok) {
        try {
          return JSON.parse(text);
        } catch {
          throw new EtcdRequestError(`etcd answered ${path} with something other than JSON`);
        }
      }
      const problem = parseProblem(text);
      const message = problem.message || `HTTP ${response.status}`;
      if (UNAVAILABLE_CODES.has(problem.code) || response.status >= 502) {
        throw new EtcdUnavailableError(message);
      }
      throw new EtcdRequestError(message);
    });
  }

  return {
    async range(request, options) {
      return normalizeRange(await call("/v3/kv/range", request, options.deadline));
    },
    async txn(request, options) {
      return normalizeTxn(await call("/v3/kv/txn", request, options.deadline));
    },
    async compact(revision, options) {
      await call("/v3/kv/compaction", { revision }, options.deadline);
    },
    close() {
      if (rotation.close()) client.close();
    },
  };
}

/** The JSON text of a request: bytes as base64, compare enums in the gateway's spelling. */
function requestJson(request: unknown): string {
  // Not a JSON.stringify replacer: it would see a Buffer only after the Buffer's own toJSON
  // has listed every byte as a number.
  return JSON.stringify(toJson(request));
}

/** The request fields that are bytes, which the gateway takes in base64. */
const BYTES_FIELDS = new Set(["key", "range_end", "value"]);

function toJson(value: unknown): unknown {
  if (value instanceof Uint8Array) {
    return (value instanceof Buffer
      ? value
      : Buffer.from(value.buffer, value.byteOffset, value.length)).toString("base64");
  }
  if (Array.isArray(value)) return value.map(toJson);
  if (value && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const key in value) {
      const v = (value as Record<string, unknown>)[key];
      if (v === undefined) continue;
      out[key] = typeof v !== "string"
        ? toJson(v)
        : key === "target" || key === "result"
        ? v.replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase()
        : BYTES_FIELDS.has(key)
        ? Buffer.from(v).toString("base64") // a text key or value (etcd_kv.ts's Bytes)
        : v;
    }
    return out;
  }
  return value;
}

type Json = Record<string, unknown>;

function normalizeHeader(header: unknown): Header {
  return { revision: String((header as Json | undefined)?.revision ?? "0") };
}

function normalizeKv(kv: unknown): KeyValue {
  const raw = (kv ?? {}) as Json;
  return {
    key: Buffer.from(String(raw.key ?? ""), "base64"),
    value: Buffer.from(String(raw.value ?? ""), "base64"),
    create_revision: String(raw.create_revision ?? "0"),
    mod_revision: String(raw.mod_revision ?? "0"),
    version: String(raw.version ?? "0"),
  };
}

function normalizeRange(raw: unknown): RangeResponse {
  const r = (raw ?? {}) as Json;
  return {
    header: normalizeHeader(r.header),
    kvs: ((r.kvs as unknown[] | undefined) ?? []).map(normalizeKv),
    count: String(r.count ?? "0"),
    more: r.more === true,
  };
}

function normalizeTxn(raw: unknown): TxnResponse {
  const r = (raw ?? {}) as Json;
  return {
    header: normalizeHeader(r.header),
    succeeded: r.succeeded === true,
    responses: ((r.responses as Json[] | undefined) ?? []).map((op) => new ResponseOpView(op)),
  };
}

/**
 * One operation's response, read when asked: a transaction of many writes is answered with
 * an entry per write, and turning each into every kind of response was a busy manager's
 * garbage.
 */
class ResponseOpView implements ResponseOp {
  readonly #op: Json;

  constructor(op: Json) {
    this.#op = op;
  }

  get response_range(): RangeResponse {
    return normalizeRange(this.#op.response_range);
  }

  get response_put(): ResponseOp["response_put"] {
    const put = this.#op.response_put as Json | undefined;
    return { header: normalizeHeader(put?.header), prev_kv: normalizeKv(put?.prev_kv) };
  }

  get response_delete_range(): ResponseOp["response_delete_range"] {
    const del = this.#op.response_delete_range as Json | undefined;
    return { header: normalizeHeader(del?.header), deleted: String(del?.deleted ?? "0") };
  }

  get response_txn(): TxnResponse {
    return normalizeTxn(this.#op.response_txn);
  }
}

function parseProblem(text: string): { code: number; message: string } {
  try {
    const body = JSON.parse(text) as { code?: number; message?: string; error?: string };
    return { code: body.code ?? -1, message: body.message ?? body.error ?? "" };
  } catch {
    return { code: -1, message: text.trim().slice(0, 200) };
  }
}
