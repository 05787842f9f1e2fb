/**
 * The etcd v3 KV requests and responses the store uses, in etcd's own field names, and what
 * both clients (gRPC, etcd_grpc.ts; the JSON gateway, etcd_gateway.ts) share: the errors and
 * the way a call tries each endpoint within its deadline.
 */
import { Buffer } from "node:buffer";

/**
 * Bytes of a request: a string stands for its UTF-8 bytes. The store's keys are text, and a
 * text key is written straight into the request, where a Buffer of its own per key was
 * several allocations per task written.
 */
export type Bytes = Uint8Array | string;

export interface KeyValue {
  key: Buffer;
  value: Buffer;
  create_revision: string;
  mod_revision: string;
  version: string;
}

export interface Compare {
  key: Bytes;
  target: "Version" | "Create" | "Mod" | "Value";
  result: "Equal" | "Greater" | "Less" | "NotEqual";
  create_revision?: number | string;
  mod_revision?: number | string;
  version?: number | string;
  value?: Buffer;
}

export interface RangeRequest {
  key: Bytes;
  range_end?: Bytes;
  limit?: number;
  revision?: number | string;
  keys_only?: boolean;
  count_only?: boolean;
}

export interface RequestOp {
  request_range?: RangeRequest;
  request_put?: { key: Bytes; value: Bytes; prev_kv?: boolean };
  request_delete_range?: { key: Bytes; range_end?: Bytes };
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

/** The etcd KV calls the store makes, whichever protocol carries them. */
export interface EtcdKv {
  range(request: RangeRequest, call: CallOptions): Promise<RangeResponse>;
  txn(request: TxnRequest, call: CallOptions): Promise<TxnResponse>;
  /**
   * Drops every version older than `revision` that is no longer a key's latest: etcd keeps
   * them all until told, and its database fills up with them. etcd refuses a revision at or
   * below one already compacted (see isCompactedError).
   */
  compact(revision: string, call: CallOptions): Promise<void>;
  close(): void;
}

/** etcd's refusal of a revision whose history is gone already (by an earlier compaction). */
export function isCompactedError(error: unknown): boolean {
  return error instanceof EtcdRequestError &&
    /required revision has been compacted/.test(error.message);
}

/**
 * etcd's refusal of a write while its space quota is exceeded (its NOSPACE alarm is raised):
 * reads still work.
 */
export function isNoSpaceError(error: unknown): boolean {
  return error instanceof EtcdRequestError && /database space exceeded/.test(error.message);
}

/** gRPC codes etcd returns when it is (for now) unable to serve. */
export const UNAVAILABLE_CODES = new Set([4, /* deadline exceeded */ 14 /* unavailable */]);

/** Endpoint URLs as bases for request paths: `http://` added when absent, no trailing `/`. */
export function endpointBases(endpoints: string[]): string[] {
  return endpoints.map((e) => (/^https?:\/\//.test(e) ? e : `http://${e}`).replace(/\/+$/, ""));
}

/**
 * Sends one request to the endpoints in turn, starting with the last one that answered,
 * until one answers or the deadline passes. `send` throws EtcdUnavailableError to move on to
 * the next endpoint and anything else to stop. A write whose fate is unknown may so be sent
 * twice; its compare then fails, which the store reports as a conflict.
 */
export class EndpointRotation {
  #preferred = 0;
  #closed = false;

  constructor(readonly bases: string[]) {}

  close(): boolean {
    const was = this.#closed;
    this.#closed = true;
    return !was;
  }

  async call<T>(
    deadline: number,
    send: (base: string, signal: AbortSignal) => Promise<T>,
  ): Promise<T> {
    if (this.#closed) throw new EtcdRequestError("the etcd client is closed");
    // Made only when needed: an Error captures a stack, and this runs for every request.
    let lastError: Error | undefined;
    for (let tried = 0; tried < this.bases.length; tried++) {
      const index = (this.#preferred + tried) % this.bases.length;
      const remaining = deadline - Date.now();
      if (remaining <= 0) break;
      // Not AbortSignal.timeout: its timer outlives the answer and, when it fires seconds
      // later, builds an exception nobody reads, for every request.
      const abort = new AbortController();
      const timer = setTimeout(() => abort.abort(), remaining);
      try {
        const answer = await send(this.bases[index], abort.signal);
        this.#preferred = index;
        return answer;
      } catch (e) {
        if (e instanceof EtcdUnavailableError) {
          lastError = e;
          continue;
        }
        if (e instanceof EtcdRequestError) throw e;
        lastError = new EtcdUnavailableError(
          abort.signal.aborted ? `no answer within the deadline` : describeNetworkError(e),
          { cause: e },
        );
      } finally {
        clearTimeout(timer);
      }
    }
    throw lastError ?? new EtcdUnavailableError("no answer within the deadline");
  }
}

function describeNetworkError(e: unknown): string {
  const message = (e as Error).message ?? String(e);
  if (/ECONNREFUSED|Connection refused/i.test(message)) return "connection refused";
  return message;
}
