/**
 * Reads what workers send most, by hand: pongs, acknowledgements and reports, one of each
 * per task or ping. protobuf-es's generic reader made each message through reflection, about
 * 4% of the manager's CPU while it placed thousands of tasks a second. The messages read here
 * are the same objects protobuf-es makes; anything else, and anything unexpected in these
 * (an unknown field, a repeated nested message, a number beyond the usual range), is left to
 * protobuf-es, which keeps its own behaviour for it, errors included.
 */
import { fromBinary } from "@bufbuild/protobuf";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import {
  type ConnectRequest,
  ConnectRequestSchema,
  type SetTaskRequest,
} from "../shared/gen/goschedule/v1/goschedule_pb.ts";
import { BYTES, VARINT } from "../shared/proto_writer.ts";

/** ConnectRequest's fields (the `msg` oneof) that are read here. */
const REQUEST = { pong: 2, ack: 3, report: 5 } as const;

export function decodeWorkerRequest(bytes: Uint8Array): ConnectRequest {
  return readCommonRequest(bytes) ?? fromBinary(ConnectRequestSchema, bytes);
}

/** Thrown inside the reader: this message is protobuf-es's to read. */
const NOT_HERE = Symbol("not here");

/** The message if it is one read here, else undefined (exported for tests). */
export function readCommonRequest(bytes: Uint8Array): ConnectRequest | undefined {
  try {
    const r = new Reader(bytes, 0, bytes.length);
    const [field, wire] = r.tag();
    if (wire !== BYTES) return undefined;
    const body = r.nested();
    if (!r.done) return undefined; // a second field: a merge, or an unknown one
    let msg: ConnectRequest["msg"];
    if (field === REQUEST.pong) msg = { case: "pong", value: readPong(body) };
    else if (field === REQUEST.ack) msg = { case: "ack", value: readAck(body) };
    else if (field === REQUEST.report) msg = { case: "report", value: readReport(body) };
    else return undefined;
    return { $typeName: "goschedule.v1.ConnectRequest", msg };
  } catch (e) {
    if (e === NOT_HERE) return undefined;
    throw e;
  }
}

function readPong(r: Reader) {
  let seq = 0n;
  while (!r.done) {
    const [field, wire] = r.tag();
    if (field === 1 && wire === VARINT) seq = BigInt(r.varint());
    else throw NOT_HERE;
  }
  return { $typeName: "goschedule.v1.Pong" as const, seq };
}

function readAck(r: Reader) {
  let taskId = "";
  let attempt = 0;
  while (!r.done) {
    const [field, wire] = r.tag();
    if (field === 1 && wire === BYTES) taskId = r.string();
    else if (field === 2 && wire === VARINT) attempt = r.uint32();
    else throw NOT_HERE;
  }
  return { $typeName: "goschedule.v1.TaskAck" as const, taskId, attempt };
}

function readReport(r: Reader): SetTaskRequest {
  const report: SetTaskRequest = {
    $typeName: "goschedule.v1.SetTaskRequest",
    workerId: "",
    taskId: "",
    attempt: 0,
    outcome: { case: undefined },
    stdout: "",
    stderr: "",
    stdoutTruncated: false,
    stderrTruncated: false,
    termination: 0,
  };
  let outcomes = 0;
  while (!r.done) {
    const [field, wire] = r.tag();
    if (wire === BYTES) {
      switch (field) {
        case 1:
          report.workerId = r.string();
          break;
        case 2:
          report.taskId = r.string();
          break;
        case 4:
          report.outcome = { case: "exited", value: readExited(r.nested()) };
          outcomes++;
          break;
        case 5:
          report.outcome = { case: "startError", value: r.string() };
          outcomes++;
          break;
        case 13:
          report.outcome = { case: "abandoned", value: r.string() };
          outcomes++;
          break;
        case 6:
          report.stdout = r.string();
          break;
        case 7:
          report.stderr = r.string();
          break;
        case 10:
          if (report.startedAt) throw NOT_HERE;
          report.startedAt = readTimestamp(r.nested());
          break;
        case 11:
          if (report.finishedAt) throw NOT_HERE;
          report.finishedAt = readTimestamp(r.nested());
          break;
        default:
          throw NOT_HERE;
      }
    } else if (wire === VARINT) {
      switch (field) {
        case 3:
          report.attempt = r.uint32();
          break;
        case 8:
          report.stdoutTruncated = r.varint() !== 0;
          break;
        case 9:
          report.stderrTruncated = r.varint() !== 0;
          break;
        case 12:
          report.termination = r.int32();
          break;
        default:
          throw NOT_HERE;
      }
    } else {
      throw NOT_HERE;
    }
  }
  // The oneof given twice: protobuf merges or replaces, which is protobuf-es's to do.
  if (outcomes > 1) throw NOT_HERE;
  return report;
}

function readExited(r: Reader) {
  let exitCode = 0;
  let signal = "";
  while (!r.done) {
    const [field, wire] = r.tag();
    if (field === 1 && wire === VARINT) exitCode = r.int32();
    else if (field === 2 && wire === BYTES) signal = r.string();
    else throw NOT_HERE;
  }
  return { $typeName: "goschedule.v1.Exited" as const, exitCode, signal };
}

function readTimestamp(r: Reader): Timestamp {
  let seconds = 0n;
  let nanos = 0;
  while (!r.done) {
    const [field, wire] = r.tag();
    if (field === 1 && wire === VARINT) seconds = BigInt(r.varint());
    else if (field === 2 && wire === VARINT) nanos = r.int32();
    else throw NOT_HERE;
  }
  return { $typeName: "google.protobuf.Timestamp", seconds, nanos };
}

/** As protobuf-es decodes: invalid UTF-8 is an error, a leading U+FEFF is text. */
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

function decodeUtf8(bytes: Uint8Array): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw NOT_HERE; // protobuf-es reports it, in its own words
  }
}

/**
 * Fields read one after another. Only what is plainly in range is read here: varints that fit
 * 53 bits and are not negative; anything else ends the reading (NOT_HERE).
 */
class Reader {
  constructor(readonly buf: Uint8Array, public pos: number, readonly end: number) {}

  get done(): boolean {
    return this.pos >= this.end;
  }

  tag(): [field: number, wire: number] {
    const t = this.varint();
    return [Math.floor(t / 8), t % 8];
  }

  varint(): number {
    let value = 0;
    let scale = 1;
    // Seven bytes hold 49 bits: enough for every value sent here, and exact as a number.
    for (let i = 0; i < 7; i++) {
      if (this.pos >= this.end) throw NOT_HERE;
      const b = this.buf[this.pos++];
      value += (b & 0x7f) * scale;
      if (b < 0x80) return value;
      scale *= 0x80;
    }
    throw NOT_HERE;
  }

  uint32(): number {
    const value = this.varint();
    if (value > 0xffffffff) throw NOT_HERE;
    return value;
  }

  /** Non-negative only: a negative int32 is ten bytes on the wire, and rare here. */
  int32(): number {
    const value = this.varint();
    if (value > 0x7fffffff) throw NOT_HERE;
    return value;
  }

  #span(): [start: number, end: number] {
    const length = this.varint();
    const start = this.pos;
    if (start + length > this.end) throw NOT_HERE;
    this.pos = start + length;
    return [start, this.pos];
  }

  nested(): Reader {
    const [start, end] = this.#span();
    return new Reader(this.buf, start, end);
  }

  string(): string {
    const [start, end] = this.#span();
    const buf = this.buf;
    // Ids and short texts are ASCII mostly; a runtime call to decode them costs more. (One
    // fromCharCode for all the bytes makes a flat string, which a Map hashes without copying.)
    if (end - start <= 64) {
      for (let i = start; i < end; i++) {
        if (buf[i] >= 0x80) return decodeUtf8(buf.subarray(start, end));
      }
      return String.fromCharCode.apply(null, buf.subarray(start, end) as unknown as number[]);
    }
    return decodeUtf8(buf.subarray(start, end));
  }
}
