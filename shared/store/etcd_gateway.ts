/**
 * A minimal etcd v3 KV client over etcd's JSON gateway (`POST /v3/kv/range`, `/v3/kv/txn`)
 * with plain HTTP/1.1 fetch.
 *
 * Why not the etcd3 package: it speaks gRPC through @grpc/grpc-js over node:http2, and under
 * Deno 2.9 a GOAWAY from etcd (which a stopping etcd sends) can abort the whole process inside
 * nghttp2 (denoland/deno#36788; seen here in the etcd-outage fault test), where no JavaScript
 * can catch it. The gateway is part of every etcd 3.4+, speaks the same requests (bytes as
 * base64, 64-bit numbers as strings), and keeps the manager alive through etcd restarts.
 */
import { Buffer } from "node:buffer";

export interface KeyValue {
  key: Buffer;
  value: Buffer;
  create_revision: string;
  mod_revision: string;
  version: string;
}

export interface Compare {
  key: Buffer;
  target: "Version" | "Create" | "Mod" | "Value";
  result: "Equal" | "Greater" | "Less" | "NotEqual";
  create_revision?: number | string;
  mod_revision?: number | string;
  version?: number | string;
  value?: Buffer;
}

export interface RangeRequest {
  key: Buffer;
  range_end?: Buffer;
  limit?: number;
  revision?: number | string;
  keys_only?: boolean;
  count_only?: boolean;
}

export interface RequestOp {
  request_range?: RangeRequest;
  request_put?: { key: Buffer; value: Buffer; prev_kv?: boolean };
  request_delete_range?: { key: Buffer; range_end?: Buffer };
  request_txn?: TxnRequest;
}

export interface TxnRequest {
  compare?: Compare[];
  success?: RequestOp[];
  failure?: RequestOp[];
}

export interface Header {
  revision: string;
}

export interface RangeResponse {
  header: Header;
  kvs: KeyValue[];
  count: string;
  more: boolean;
}

export interface ResponseOp {
  response_range: RangeResponse;
  response_put: { header: Header; prev_kv: KeyValue };
  response_delete_range: { header: Header; deleted: string };
  response_txn: TxnResponse;
}

export interface TxnResponse {
  header: Header;
  succeeded: boolean;
  responses: ResponseOp[];
}

/** etcd could not be reached or did not answer in time; the caller may retry later. */
export class EtcdUnavailableError extends Error {
  override name = "EtcdUnavailableError";
}

/** etcd answered and refused the request. */
export class EtcdRequestError extends Error {
  override name = "EtcdRequestError";
}

/** When a call must have its answer, in epoch milliseconds. */
export interface CallOptions {
  deadline: number;
}

export interface EtcdGateway {
  range(request: RangeRequest, call: CallOptions): Promise<RangeResponse>;
  txn(request: TxnRequest, call: CallOptions): Promise<TxnResponse>;
  close(): void;
}

/** gRPC codes etcd returns when it is (for now) unable to serve. */
const UNAVAILABLE_CODES = new Set([4, /* deadline exceeded */ 14 /* unavailable */]);

/**
 * A client of the given endpoints. A request that cannot reach one endpoint tries the next
 * within its deadline; a write whose fate is unknown may so be sent twice, and its compare
 * then fails, which the store reports as a conflict.
 */
export function createEtcdGateway(endpoints: string[]): EtcdGateway {
  const client = Deno.createHttpClient({});
  const bases = endpoints.map((e) =>
    (/^https?:\/\//.test(e) ? e : `http://${e}`).replace(/\/+$/, "")
  );
  let preferred = 0;
  let closed = false;

  async function call(path: string, body: unknown, deadline: number): Promise<unknown> {
    if (closed) throw new EtcdRequestError("the etcd client is closed");
    // Made only when needed: an Error captures a stack, and this runs for every request.
    let lastError: Error | undefined;
    for (let tried = 0; tried < bases.length; tried++) {
      const index = (preferred + tried) % bases.length;
      const remaining = deadline - Date.now();
      if (remaining <= 0) break;
      // Not AbortSignal.timeout: its timer outlives the answer and, when it fires seconds
      // later, builds an exception nobody reads, for every request.
      const abort = new AbortController();
      const timer = setTimeout(() => abort.abort(), remaining);
      let response: Response;
      let text: string;
      try {
        response = await fetch(`${bases[index]}${path}`, {
          method: "POST",
          body: requestJson(body),
          headers: { "content-type": "application/json" },
          signal: abort.signal,
          client,
        });
        text = await response.text().catch(() => "");
      } catch (e) {
        lastError = new EtcdUnavailableError(
          abort.signal.aborted ? `no answer within the deadline` : describeNetworkError(e),
          { cause: e },
        );
        continue;
      } finally {
        clearTimeout(timer);
      }
      if (response.ok) {
        preferred = index;
        return JSON.parse(text);
      }
      const problem = parseProblem(text);
      const message = problem.message || `HTTP ${response.status}`;
      if (UNAVAILABLE_CODES.has(problem.code) || response.status >= 502) {
        lastError = new EtcdUnavailableError(message);
        continue;
      }
      throw new EtcdRequestError(message);
    }
    throw lastError ?? new EtcdUnavailableError("no answer within the deadline");
  }

  return {
    async range(request, options) {
      return normalizeRange(await call("/v3/kv/range", request, options.deadline));
    },
    async txn(request, options) {
      return normalizeTxn(await call("/v3/kv/txn", request, options.deadline));
    },
    close() {
      if (closed) return;
      closed = true;
      client.close();
    },
  };
}

/** The JSON text of a request: bytes as base64, compare enums in the gateway's spelling. */
function requestJson(request: unknown): string {
  // Not a JSON.stringify replacer: it would see a Buffer only after the Buffer's own toJSON
  // has listed every byte as a number.
  return JSON.stringify(toJson(request));
}

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
      out[key] = (key === "target" || key === "result") && typeof v === "string"
        ? v.replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase()
        : toJson(v);
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

function describeNetworkError(e: unknown): string {
  const message = (e as Error).message ?? String(e);
  if (/ECONNREFUSED|Connection refused/i.test(message)) return "connection refused";
  return message;
}
