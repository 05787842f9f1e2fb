/**
 * etcd's KV messages in protobuf's binary form, for the few messages the store sends and
 * reads (field numbers from etcd's rpc.proto and kv.proto, API v3.4). Written out by hand
 * rather than generated: they are a dozen fields, etcd's proto files carry gogoproto and
 * HTTP annotations that do not build here, and a transaction of a hundred operations is
 * encoded and decoded for every batch of task writes, where generic reflection would cost.
 *
 * Responses are read lazily: a transaction's answer has an entry per operation, and the
 * store reads only the few it needs.
 */
import { Buffer } from "node:buffer";
import type {
  Bytes,
  Compare,
  Header,
  KeyValue,
  RangeRequest,
  RangeResponse,
  RequestOp,
  ResponseOp,
  TxnRequest,
  TxnResponse,
} from "./etcd_kv.ts";
import { ProtoReader as Reader } from "../proto_reader.ts";
import { BYTES, ProtoWriter as Writer, VARINT } from "../proto_writer.ts";

const COMPARE_RESULT = { Equal: 0, Greater: 1, Less: 2, NotEqual: 3 } as const;
const COMPARE_TARGET = { Version: 0, Create: 1, Mod: 2, Value: 3 } as const;

function int64(w: Writer, field: number, value: number | string | undefined): void {
  if (value === undefined) return;
  const n = typeof value === "string" ? BigInt(value) : value;
  if (n === 0 || n === 0n) return; // proto3 leaves out zeros.
  w.tag(field, VARINT);
  w.varint(n);
}

function bool(w: Writer, field: number, value: boolean | undefined): void {
  if (!value) return;
  w.tag(field, VARINT);
  w.varint(1);
}

function bytes(w: Writer, field: number, value: Bytes | undefined): void {
  if (value === undefined || value.length === 0) return;
  if (typeof value === "string") w.string(field, value);
  else w.bytes(field, value);
}

function writeRange(w: Writer, r: RangeRequest): void {
  bytes(w, 1, r.key);
  bytes(w, 2, r.range_end);
  int64(w, 3, r.limit);
  int64(w, 4, r.revision);
  bool(w, 8, r.keys_only);
  bool(w, 9, r.count_only);
}

function writeCompare(w: Writer, c: Compare): void {
  const result = COMPARE_RESULT[c.result];
  const target = COMPARE_TARGET[c.target];
  if (result) {
    w.tag(1, VARINT);
    w.varint(result);
  }
  if (target) {
    w.tag(2, VARINT);
    w.varint(target);
  }
  bytes(w, 3, c.key);
  // The compared value is one field of a oneof: written even when zero, or etcd would see no
  // value at all (for Value, an unset field would not compare equal to an empty one).
  const oneof = (field: number, value: number | string) => {
    w.tag(field, VARINT);
    w.varint(typeof value === "string" ? BigInt(value) : value);
  };
  if (c.target === "Version") oneof(4, c.version ?? 0);
  else if (c.target === "Create") oneof(5, c.create_revision ?? 0);
  else if (c.target === "Mod") oneof(6, c.mod_revision ?? 0);
  else w.bytes(7, c.value ?? new Uint8Array(0));
}

function writeOp(w: Writer, op: RequestOp): void {
  if (op.request_range) {
    const range = op.request_range;
    w.message(1, (m) => writeRange(m, range));
  } else if (op.request_put) {
    const put = op.request_put;
    w.message(2, (m) => {
      bytes(m, 1, put.key);
      bytes(m, 2, put.value);
      bool(m, 4, put.prev_kv);
    });
  } else if (op.request_delete_range) {
    const del = op.request_delete_range;
    w.message(3, (m) => {
      bytes(m, 1, del.key);
      bytes(m, 2, del.range_end);
    });
  } else if (op.request_txn) {
    const txn = op.request_txn;
    w.message(4, (m) => writeTxn(m, txn));
  } else {
    throw new Error("An etcd transaction operation must be a range, put, delete or txn");
  }
}

function writeTxn(w: Writer, txn: TxnRequest): void {
  for (const c of txn.compare ?? []) w.message(1, (m) => writeCompare(m, c));
  for (const op of txn.success ?? []) w.message(2, (m) => writeOp(m, op));
  for (const op of txn.failure ?? []) w.message(3, (m) => writeOp(m, op));
}

export function encodeRangeRequest(request: RangeRequest, headroom = 0): Uint8Array<ArrayBuffer> {
  const w = new Writer(headroom);
  writeRange(w, request);
  return w.finish();
}

export function encodeTxnRequest(request: TxnRequest, headroom = 0): Uint8Array<ArrayBuffer> {
  const w = new Writer(headroom);
  writeTxn(w, request);
  return w.finish();
}

/** CompactionRequest; `physical` stays false: etcd answers once the compaction is decided. */
export function encodeCompactionRequest(revision: string, headroom = 0): Uint8Array<ArrayBuffer> {
  const w = new Writer(headroom);
  int64(w, 1, revision);
  return w.finish();
}

/** A reader over etcd's answer, or part of it; errors say etcd sent it. */
function reader(buf: Uint8Array, start?: number, end?: number): Reader {
  return new Reader(buf, "etcd", start, end);
}

/** A bytes field as a Buffer viewing the message, as the store reads keys and values. */
function bytesOf(r: Reader): Buffer {
  const view = r.bytes();
  return Buffer.from(view.buffer, view.byteOffset, view.length);
}

const EMPTY = Buffer.alloc(0);

function readHeader(r: Reader): Header {
  let revision = "0";
  for (let t = r.tag(); t; t = r.tag()) {
    if (t[0] === 3 && t[1] === VARINT) revision = r.varintString();
    else r.skip(t[1]);
  }
  return { revision };
}

function readKv(r: Reader): KeyValue {
  const kv: KeyValue = {
    key: EMPTY,
    value: EMPTY,
    create_revision: "0",
    mod_revision: "0",
    version: "0",
  };
  for (let t = r.tag(); t; t = r.tag()) {
    const [field, wire] = t;
    if (field === 1 && wire === BYTES) kv.key = bytesOf(r);
    else if (field === 2 && wire === VARINT) kv.create_revision = r.varintString();
    else if (field === 3 && wire === VARINT) kv.mod_revision = r.varintString();
    else if (field === 4 && wire === VARINT) kv.version = r.varintString();
    else if (field === 5 && wire === BYTES) kv.value = bytesOf(r);
    else r.skip(wire);
  }
  return kv;
}

function readRange(r: Reader): RangeResponse {
  const out: RangeResponse = { header: { revision: "0" }, kvs: [], count: "0", more: false };
  for (let t = r.tag(); t; t = r.tag()) {
    const [field, wire] = t;
    if (field === 1 && wire === BYTES) out.header = readHeader(r.nested());
    else if (field === 2 && wire === BYTES) out.kvs.push(readKv(r.nested()));
    else if (field === 3 && wire === VARINT) out.more = r.varint() !== 0;
    else if (field === 4 && wire === VARINT) out.count = r.varintString();
    else r.skip(wire);
  }
  return out;
}

function readTxn(r: Reader): TxnResponse {
  const out: TxnResponse = { header: { revision: "0" }, succeeded: false, responses: [] };
  for (let t = r.tag(); t; t = r.tag()) {
    const [field, wire] = t;
    if (field === 1 && wire === BYTES) out.header = readHeader(r.nested());
    else if (field === 2 && wire === VARINT) out.succeeded = r.varint() !== 0;
    else if (field === 3 && wire === BYTES) out.responses.push(new ResponseOpView(r.nested()));
    else r.skip(wire);
  }
  return out;
}

/** One operation's answer, decoded when read. */
class ResponseOpView implements ResponseOp {
  readonly #op: Reader;

  constructor(op: Reader) {
    this.#op = op;
  }

  /** The oneof's field `field`, as a reader, or an empty message when it holds another. */
  #field(field: number): Reader {
    const r = reader(this.#op.buf, this.#op.pos, this.#op.end);
    for (let t = r.tag(); t; t = r.tag()) {
      if (t[0] === field && t[1] === BYTES) return r.nested();
      r.skip(t[1]);
    }
    return reader(EMPTY);
  }

  get response_range(): RangeResponse {
    return readRange(this.#field(1));
  }

  get response_put(): ResponseOp["response_put"] {
    const r = this.#field(2);
    let header: Header = { revision: "0" };
    let prev: KeyValue | undefined;
    for (let t = r.tag(); t; t = r.tag()) {
      if (t[0] === 1 && t[1] === BYTES) header = readHeader(r.nested());
      else if (t[0] === 2 && t[1] === BYTES) prev = readKv(r.nested());
      else r.skip(t[1]);
    }
    return { header, prev_kv: prev ?? readKv(reader(EMPTY)) };
  }

  get response_delete_range(): ResponseOp["response_delete_range"] {
    const r = this.#field(3);
    let header: Header = { revision: "0" };
    let deleted = "0";
    for (let t = r.tag(); t; t = r.tag()) {
      if (t[0] === 1 && t[1] === BYTES) header = readHeader(r.nested());
      else if (t[0] === 2 && t[1] === VARINT) deleted = r.varintString();
      else r.skip(t[1]);
    }
    return { header, deleted };
  }

  get response_txn(): TxnResponse {
    return readTxn(this.#field(4));
  }
}

export function decodeRangeResponse(message: Uint8Array): RangeResponse {
  return readRange(reader(message));
}

export function decodeTxnResponse(message: Uint8Array): TxnResponse {
  return readTxn(reader(message));
}
