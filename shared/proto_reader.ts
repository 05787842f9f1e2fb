/**
 * Protobuf's binary form, read field by field by hand: proto_writer.ts's counterpart, for the
 * messages read most (etcd's answers, shared/store/etcd_proto.ts; workers' pongs, acks and
 * reports, manager/worker_requests.ts), where protobuf-es's reflection cost several times
 * more. Nested messages and bytes are views into the message, not copies. A malformed
 * message throws a ProtoReadError that names where it came from.
 */
import { BYTES, FIXED32, FIXED64, VARINT } from "./proto_writer.ts";

export class ProtoReadError extends Error {}

/** As protobuf-es decodes strings: invalid UTF-8 is an error, a leading U+FEFF is text. */
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

export class ProtoReader {
  pos: number;

  /** `source` names the sender in errors: "etcd sent a truncated protobuf message". */
  constructor(
    readonly buf: Uint8Array,
    readonly source: string,
    start = 0,
    readonly end = buf.length,
  ) {
    this.pos = start;
  }

  get done(): boolean {
    return this.pos >= this.end;
  }

  /** The next field's number and wire type, or undefined at the end. */
  tag(): [field: number, wire: number] | undefined {
    if (this.done) return undefined;
    const t = this.varint();
    return [Math.floor(t / 8), t % 8];
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
    throw this.#error("a malformed protobuf varint");
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

  /** A length-delimited field's bounds. */
  span(): [start: number, end: number] {
    const length = this.varint();
    const start = this.pos;
    this.pos += length;
    if (this.pos > this.end) throw this.#error("a truncated protobuf message");
    return [start, this.pos];
  }

  /** A bytes field, as a view into the message. */
  bytes(): Uint8Array {
    const [start, end] = this.span();
    return this.buf.subarray(start, end);
  }

  /** A string field. */
  string(): string {
    const [start, end] = this.span();
    const buf = this.buf;
    // Ids and short texts are ASCII mostly; a runtime call to decode them costs more. (One
    // fromCharCode for all the bytes makes a flat string, which a Map hashes without copying.)
    if (end - start <= 64) {
      let ascii = true;
      for (let i = start; i < end && ascii; i++) ascii = buf[i] < 0x80;
      if (ascii) {
        return String.fromCharCode.apply(null, buf.subarray(start, end) as unknown as number[]);
      }
    }
    try {
      return utf8.decode(buf.subarray(start, end));
    } catch {
      throw this.#error("a protobuf string that is not UTF-8");
    }
  }

  skip(wire: number): void {
    if (wire === VARINT) this.varint();
    else if (wire === BYTES) this.span();
    else if (wire === FIXED64) this.pos += 8;
    else if (wire === FIXED32) this.pos += 4;
    else throw this.#error(`a protobuf field of wire type ${wire}`);
  }

  /** A reader over the nested message that is the next field. */
  nested(): ProtoReader {
    const [start, end] = this.span();
    return new ProtoReader(this.buf, this.source, start, end);
  }

  #byte(): number {
    if (this.pos >= this.end) throw this.#error("a truncated protobuf message");
    return this.buf[this.pos++];
  }

  #error(what: string): ProtoReadError {
    return new ProtoReadError(`${this.source} sent ${what}`);
  }
}
