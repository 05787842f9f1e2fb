/**
 * The manager's most frequent messages to workers, a run, a report's answer and a ping,
 * encoded and framed without protobuf-es's reflection: a run and its answer took about 15 µs
 * that way and take about 3.5 here, a few percent of the manager's CPU per task when it places
 * thousands a second. The bytes are the ones protobuf-es writes (worker_frames_test.ts
 * compares them, and fails when one of these messages gains a field); any other message goes
 * through protobuf-es.
 */
import { grpcFrame } from "../shared/grpc_frames.ts";
import { ConnectResponseSchema } from "../shared/gen/goschedule/v1/goschedule_pb.ts";
import type { Outgoing } from "./worker_session.ts";

/** ConnectResponse's oneof fields, and the fields of the messages in it encoded here. */
const RESPONSE = { ping: 2, run: 3, reportAnswer: 7 } as const;

/** A Duration as a RunTask holds it (google.protobuf.Duration's init shape). */
interface DurationInit {
  seconds?: bigint;
  nanos?: number;
}

/** The message framed as gRPC frames it: a flag byte, a 4-byte length, the message. */
export function frameResponse(message: Outgoing): Uint8Array {
  const msg = message.msg;
  const w = new ProtoWriter();
  w.skip(5); // the frame header, written into the copy once the length is known
  switch (msg?.case) {
    case "run": {
      const run = msg.value;
      w.message(RESPONSE.run, (m) => {
        m.string(1, run.taskId);
        m.uint(2, run.attempt);
        m.string(3, run.cmd);
        for (const param of run.params ?? []) m.string(4, param, true);
        for (const [key, value] of Object.entries(run.env ?? {})) {
          m.message(5, (entry) => {
            // protobuf-es writes both halves of a map entry, empty or not.
            entry.string(1, key, true);
            entry.string(2, value, true);
          });
        }
        m.string(6, run.cwd);
        duration(m, 7, run.timeout);
        duration(m, 8, run.killTimeout);
      });
      break;
    }
    case "reportAnswer": {
      const answer = msg.value;
      w.message(RESPONSE.reportAnswer, (m) => {
        m.string(1, answer.taskId);
        m.uint(2, answer.attempt);
        m.uint(3, answer.code);
        m.string(4, answer.message);
      });
      break;
    }
    case "ping": {
      const ping = msg.value;
      w.message(RESPONSE.ping, (m) => {
        m.uint(1, ping.seq);
        if (ping.noPong) m.uint(2, 1);
      });
      break;
    }
    default:
      return grpcFrame(ConnectResponseSchema, message);
  }
  const framed = w.finish();
  framed[0] = 0; // not compressed
  new DataView(framed.buffer).setUint32(1, framed.length - 5);
  return framed;
}

function duration(w: ProtoWriter, field: number, value: DurationInit | undefined): void {
  if (value === undefined) return;
  w.message(field, (d) => {
    d.int(1, value.seconds ?? 0n);
    d.int(2, value.nanos ?? 0);
  });
}

const utf8 = new TextEncoder();

/**
 * Where messages are encoded before they are copied out, one at a time (encoding is
 * synchronous): allocating an ArrayBuffer per message cost more than encoding it.
 */
let scratch = new Uint8Array(1024);
const MAX_SCRATCH = 64 * 1024;

/** Protobuf's wire format, into one growing buffer; nested messages are moved into place. */
class ProtoWriter {
  #buf = scratch;
  #at = 0;

  skip(n: number): void {
    this.#room(n);
    this.#at += n;
  }

  #room(n: number): void {
    if (this.#at + n <= this.#buf.length) return;
    const grown = new Uint8Array(Math.max(this.#buf.length * 2, this.#at + n));
    grown.set(this.#buf.subarray(0, this.#at));
    this.#buf = grown;
  }

  #varint(value: number): void {
    this.#room(5);
    while (value > 0x7f) {
      this.#buf[this.#at++] = (value & 0x7f) | 0x80;
      value >>>= 7;
    }
    this.#buf[this.#at++] = value;
  }

  /** An unsigned field of up to 64 bits; zero is left out, as proto3 does. */
  uint(field: number, value: number | bigint | undefined): void {
    if (!value) return;
    this.#varint(field << 3);
    if (typeof value === "number" && value <= 0xffffffff) {
      this.#varint(value >>> 0);
      return;
    }
    let v = BigInt.asUintN(64, BigInt(value));
    this.#room(10);
    while (v > 0x7fn) {
      this.#buf[this.#at++] = Number(v & 0x7fn) | 0x80;
      v >>= 7n;
    }
    this.#buf[this.#at++] = Number(v);
  }

  /** A signed field (int32, int64): negative values take ten bytes, as two's complement. */
  int(field: number, value: number | bigint): void {
    if (typeof value === "number" && value >= 0) this.uint(field, value);
    else this.uint(field, BigInt.asUintN(64, BigInt(value)));
  }

  /** A string field; an empty one is left out unless `always` (a repeated or map entry). */
  string(field: number, value: string | undefined, always = false): void {
    if (!value && !always) return;
    const text = value ?? "";
    this.#varint((field << 3) | 2);
    // Room for the longest UTF-8 (three bytes per UTF-16 unit) behind a five-byte length.
    this.#room(5 + text.length * 3);
    if (this.#ascii(text)) return;
    const lengthAt = this.#at;
    const { written } = utf8.encodeInto(text, this.#buf.subarray(lengthAt + 5));
    this.#varint(written);
    // The text went in behind room for the longest length; it moves down to the length's end.
    this.#buf.copyWithin(this.#at, lengthAt + 5, lengthAt + 5 + written);
    this.#at += written;
  }

  /**
   * Writes the text's length and bytes if it is all ASCII (ids, commands, paths mostly are),
   * byte by byte: TextEncoder is a call into the runtime, dear for a short text. Says whether
   * it did; if not, it wrote nothing.
   */
  #ascii(text: string): boolean {
    const buf = this.#buf;
    const lengthAt = this.#at;
    const bodyAt = lengthAt + varintSize(text.length);
    for (let i = 0; i < text.length; i++) {
      const code = text.charCodeAt(i);
      if (code > 0x7f) return false;
      buf[bodyAt + i] = code;
    }
    this.#varint(text.length);
    this.#at = bodyAt + text.length;
    return true;
  }

  /** A nested message, written by `fill`; it is written even when empty, as protobuf-es does. */
  message(field: number, fill: (w: ProtoWriter) => void): void {
    this.#varint((field << 3) | 2);
    const start = this.#at;
    fill(this);
    const length = this.#at - start;
    // The length goes before the body: move the body up by the length's size.
    const lengthBytes = varintSize(length);
    this.#room(lengthBytes);
    this.#buf.copyWithin(start + lengthBytes, start, this.#at);
    const end = this.#at + lengthBytes;
    this.#at = start;
    this.#varint(length);
    this.#at = end;
  }

  /** A copy of what was written: the scratch buffer is the next message's. */
  finish(): Uint8Array {
    const out = this.#buf.slice(0, this.#at);
    // A buffer grown for a large message is kept for the next one only up to a size.
    if (this.#buf !== scratch && this.#buf.length <= MAX_SCRATCH) scratch = this.#buf;
    return out;
  }
}

function varintSize(value: number): number {
  let size = 1;
  while (value > 0x7f) {
    value >>>= 7;
    size++;
  }
  return size;
}
