/**
 * Protobuf's binary form, written by hand for the messages the manager sends most: etcd's KV
 * requests (shared/store/etcd_proto.ts) and the runs, answers and pings of the worker stream
 * (manager/worker_frames.ts). Generic reflection cost several times more per message, and a
 * transaction carries a few nested messages per task.
 *
 * A message is built in one buffer: a nested message is written where it goes, and its length
 * is put in front once known, moving its bytes up by the length's size (a memmove, cheaper
 * than a writer and a chunk list per nested message were to allocate and collect). Messages
 * are built in a scratch buffer kept between them (encoding is synchronous) and copied out
 * once, at their size: a small one into a slab shared with the messages before it (an
 * ArrayBuffer of its own per message, thousands a second, showed in profiles as allocation
 * and collector time), a large one into a buffer of its own.
 */

export const VARINT = 0;
export const FIXED64 = 1;
export const BYTES = 2;
export const FIXED32 = 5;

let scratch = new Uint8Array(64 * 1024);
/** About an etcd request's largest (1.5 MiB by default), so that even those reuse it. */
const MAX_SCRATCH = 2 * 1024 * 1024;

const utf8 = new TextEncoder();
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/**
 * Slabs are never written twice: a message's bytes stay as they are however long a socket
 * holds them. A message keeps its whole slab alive, so slabs are small, as Node's Buffer
 * pool is.
 */
const SLAB_BYTES = 16 * 1024;
const MAX_SLAB_MESSAGE = 2 * 1024;
let slab = new Uint8Array(SLAB_BYTES);
let slabUsed = 0;

export class ProtoWriter {
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
    // Timestamps' seconds and memory sizes are bigints that fit a number: the number loop
    // below allocates nothing, the bigint one a value per byte.
    if (typeof value === "bigint" && value >= 0n && value <= MAX_SAFE) value = Number(value);
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
      // Negative integers take ten bytes, as 64-bit two's complement.
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

  /** An integer field of any varint kind (int32, uint32, int64, uint64); zero is left out. */
  int(field: number, value: number | bigint | undefined): void {
    if (!value) return;
    this.tag(field, VARINT);
    this.varint(value);
  }

  /** A double field; zero is left out. */
  double(field: number, value: number): void {
    if (value === 0) return;
    this.tag(field, FIXED64);
    this.#room(8);
    new DataView(this.#buf.buffer, this.#at, 8).setFloat64(0, value, true);
    this.#at += 8;
  }

  bytes(field: number, data: Uint8Array): void {
    this.tag(field, BYTES);
    this.varint(data.length);
    this.#room(data.length);
    this.#buf.set(data, this.#at);
    this.#at += data.length;
  }

  /** A string field; an empty one is left out unless `always` (a repeated or map entry). */
  string(field: number, value: string | undefined, always = false): void {
    if (!value && !always) return;
    const text = value ?? "";
    this.tag(field, BYTES);
    // Room for the longest UTF-8 (three bytes per UTF-16 unit) behind a ten-byte length.
    this.#room(10 + text.length * 3);
    if (this.#ascii(text)) return;
    const lengthAt = this.#at;
    const { written } = utf8.encodeInto(text, this.#buf.subarray(lengthAt + 10));
    this.varint(written);
    // The text went in behind room for the longest length; it moves down to the length's end.
    this.#buf.copyWithin(this.#at, lengthAt + 10, lengthAt + 10 + written);
    this.#at += written;
  }

  /** A map<string, string> field: an entry per key, both halves written, as protobuf-es does. */
  stringMap(field: number, map: Record<string, string> | undefined): void {
    for (const key in map) {
      const value = map[key];
      this.message(field, (entry) => {
        entry.string(1, key, true);
        entry.string(2, value, true);
      });
    }
  }

  /**
   * Writes the text's length and bytes if it is all ASCII (ids, commands, paths mostly are),
   * byte by byte: TextEncoder is a call into the runtime, dear for a short text. Says whether
   * it did; if not, it wrote nothing.
   */
  #ascii(text: string): boolean {
    const buf = this.#buf;
    const bodyAt = this.#at + varintSize(text.length);
    for (let i = 0; i < text.length; i++) {
      const code = text.charCodeAt(i);
      if (code > 0x7f) return false;
      buf[bodyAt + i] = code;
    }
    this.varint(text.length);
    this.#at = bodyAt + text.length;
    return true;
  }

  /**
   * A nested message, written by `fill`, then moved up to make room for its length; written
   * even when empty, as protobuf-es does for a set message field.
   */
  message(field: number, fill: (w: ProtoWriter) => void): void {
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

  /**
   * A google.protobuf.Duration or Timestamp field (both are seconds and nanos); left out when
   * unset, written even when zero.
   */
  secondsAndNanos(field: number, value: { seconds?: bigint; nanos?: number } | undefined): void {
    if (value === undefined) return;
    this.message(field, (m) => {
      m.int(1, value.seconds ?? 0n);
      m.int(2, value.nanos ?? 0);
    });
  }

  /**
   * The message (after its headroom) in bytes nobody else writes; they may be a view into a
   * larger buffer (mind `byteOffset`).
   */
  finish(): Uint8Array<ArrayBuffer> {
    const size = this.#at;
    let out: Uint8Array<ArrayBuffer>;
    if (size > MAX_SLAB_MESSAGE) {
      out = this.#buf.slice(0, size);
    } else {
      if (slabUsed + size > SLAB_BYTES) {
        slab = new Uint8Array(SLAB_BYTES);
        slabUsed = 0;
      }
      out = slab.subarray(slabUsed, slabUsed + size);
      out.set(this.#buf.subarray(0, size));
      slabUsed += size;
    }
    // A buffer grown for a big message becomes the scratch, up to a size worth keeping.
    if (this.#buf !== scratch && this.#buf.length <= MAX_SCRATCH) scratch = this.#buf;
    return out;
  }
}

function varintSize(value: number): number {
  let size = 1;
  while (value > 0x7f) {
    value = Math.floor(value / 0x80);
    size++;
  }
  return size;
}
