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

const COMPARE_RESULT = { Equal: 0, Greater: 1, Less: 2, NotEqual: 3 } as const;
const COMPARE_TARGET = { Version: 0, Create: 1, Mod: 2, Value: 3 } as const;

const VARINT = 0;
const FIXED64 = 1;
const BYTES = 2;
const FIXED32 = 5;

/**
 * Builds a message in one buffer: a nested message is written where it goes, and its length is
 * put in front once known, moving its bytes up by the length's size. A transaction has a few
 * nested messages per task, and a writer and a chunk list per nested message, with a view per
 * chunk, were a fifth of what the manager allocated while placing; a memmove is cheaper than
 * their collection. Requests are built in a scratch buffer kept between them (encoding is
 * synchronous) and copied out once, at their size.
 */
class Writer {
  #buf: Uint8Array<ArrayBuffer> = scratch;
  #at = 0;

  /** `headroom` zero bytes are left before the message for whoever sends it (a frame header). */
  constructor(headroom = 0) {
    this.#room(headroom);
    this.#buf.fill(0, 0, headroom);
    this.#at = headroom;
  }

  #room(n: number): void {
    const at = this.#at;
    if (at + n <= this.#buf.length) return;
    const grown = new Uint8Array(Math.max(this.#buf.length * 2, at + n));
    grown.set(this.#buf.subarray(0, at));
    this.#buf = grown;
  }

  varint(value: number | bigint): void {
    this.#room(10);
    const buf = this.#buf;
    let at = this.#at;
    if (typeof value === "number" && value >= 0 && value <= Number.MAX_SAFE_INTEGER) {
      while (value > 0x7f) {
        buf[at++] = (value % 0x80) | 0x80;
        value = Math.floor(value / 0x80);
      }
      buf[at++] = value;
    } else {
      // Negative int64s take ten bytes, as two's complement.
      let v = BigInt.asUintN(64, BigInt(value));
      while (v > 0x7fn) {
        buf[at++] = Number(v & 0x7fn) | 0x80;
        v >>= 7n;
      }
      buf[at++] = Number(v);
    }
    this.#at = at;
  }

  tag(field: number, wire: number): void {
    this.varint(field * 8 + wire);
  }

  bytes(field: number, data: Uint8Array): void {
    this.tag(field, BYTES);
    this.varint(data.length);
    this.#room(data.length);
    this.#buf.set(data, this.#at);
    this.#at += data.length;
  }

  /** A nested message, written by `fill`, then moved up to make room for its length. */
  message(field: number, fill: (w: Writer) => void): void {
    this.tag(field, BYTES);
    const start = this.#at;
    fill(this);
    const length = this.#at - start;
    const lengthBytes = varintSize(length);
    this.#room(lengthBytes);
    this.#buf.copyWithin(start + lengthBytes, start, this.#at);
    const end = this.#at + lengthBytes;
    this.#at = start;
    this.varint(length);
    this.#at = end;
  }

  /** The message (after its headroom), in a buffer of its own. */
  finish(): Uint8Array<ArrayBuffer> {
    const out = this.#buf.slice(0, this.#at);
    // A buffer grown for a big request becomes the scratch, up to a size worth keeping.
    if (this.#buf !== scratch && this.#buf.length <= MAX_SCRATCH) scratch = this.#buf;
    return out;
  }
}

let scratch = new Uint8Array(64 * 1024);
/** About an etcd request's largest (1.5 MiB by default), so that even those reuse it. */
const MAX_SCRATCH = 2 * 1024 * 1024;

function varintSize(value: number): number {
  let size = 1;
  while (value > 0x7f) {
    value = Math.floor(value / 0x80);
    size++;
  }
  return size;
}

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

function bytes(w: Writer, field: number, value: Uint8Array | undefined): void {
  if (value === undefined || value.length === 0) return;
  w.bytes(field, value);
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

/** Reads fields one after another; `bytes` are views into the message, not copies. */
class Reader {
  pos: number;

  constructor(readonly buf: Uint8Array, start = 0, readonly end = buf.length) {
    this.pos = start;
  }

  get done(): boolean {
    return this.pos >= this.end;
  }

  /** A varint as a decimal string: int64s stay exact past 2^53. */
  varintString(): string {
    const start = this.pos;
    const n = this.varint();
    if (n <= Number.MAX_SAFE_INTEGER) return String(n);
    this.pos = start;
    let v = 0n;
    let shift = 0n;
    for (;;) {
      const b = this.#byte();
      v |= BigInt(b & 0x7f) << shift;
      if (b < 0x80) break;
      shift += 7n;
    }
    return BigInt.asIntN(64, v).toString();
  }

  /** A varint as a number (exact below 2^53). */
  varint(): number {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      const b = this.#byte();
      value += (b & 0x7f) * scale;
      if (b < 0x80) return value;
      scale *= 0x80;
    }
    throw new Error("etcd sent a malformed protobuf varint");
  }

  #byte(): number {
    if (this.pos >= this.end) throw new Error("etcd sent a truncated protobuf message");
    return this.buf[this.pos++];
  }

  /** The next field's number and wire type, or undefined at the end. */
  tag(): [field: number, wire: number] | undefined {
    if (this.done) return undefined;
    const t = this.varint();
    return [Math.floor(t / 8), t % 8];
  }

  /** A length-delimited field's bounds. */
  span(): [start: number, end: number] {
    const length = this.varint();
    const start = this.pos;
    this.pos += length;
    if (this.pos > this.end) throw new Error("etcd sent a truncated protobuf message");
    return [start, this.pos];
  }

  bytes(): Buffer {
    const [start, end] = this.span();
    return Buffer.from(this.buf.buffer, this.buf.byteOffset + start, end - start);
  }

  skip(wire: number): void {
    if (wire === VARINT) this.varint();
    else if (wire === BYTES) this.span();
    else if (wire === FIXED64) this.pos += 8;
    else if (wire === FIXED32) this.pos += 4;
    else throw new Error(`etcd sent a protobuf field of wire type ${wire}`);
  }

  /** A reader over the nested message that is the next field. */
  nested(): Reader {
    const [start, end] = this.span();
    return new Reader(this.buf, start, end);
  }
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
    if (field === 1 && wire === BYTES) kv.key = r.bytes();
    else if (field === 2 && wire === VARINT) kv.create_revision = r.varintString();
    else if (field === 3 && wire === VARINT) kv.mod_revision = r.varintString();
    else if (field === 4 && wire === VARINT) kv.version = r.varintString();
    else if (field === 5 && wire === BYTES) kv.value = r.bytes();
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
    const r = new Reader(this.#op.buf, this.#op.pos, this.#op.end);
    for (let t = r.tag(); t; t = r.tag()) {
      if (t[0] === field && t[1] === BYTES) return r.nested();
      r.skip(t[1]);
    }
    return new Reader(EMPTY);
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
    return { header, prev_kv: prev ?? readKv(new Reader(EMPTY)) };
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
  return readRange(new Reader(message));
}

export function decodeTxnResponse(message: Uint8Array): TxnResponse {
  return readTxn(new Reader(message));
}
