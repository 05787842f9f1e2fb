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
import { ProtoReader, ProtoReadError } from "../shared/proto_reader.ts";
import { BYTES, VARINT } from "../shared/proto_writer.ts";

/** ConnectRequest's fields (the `msg` oneof) that are read here. */
const REQUEST = { pong: 2, ack: 3, report: 5 } as const;

export function decodeWorkerRequest(bytes: Uint8Array): ConnectRequest {
  return readCommonRequest(bytes) ?? fromBinary(ConnectRequestSchema, bytes);
}

/**
 * Thrown inside the reader: this message is protobuf-es's to read. (So is a malformed one, a
 * ProtoReadError: protobuf-es gives its own error.)
 */
const NOT_HERE = Symbol("not here");

/** The message if it is one read here, else undefined (exported for tests). */
export function readCommonRequest(bytes: Uint8Array): ConnectRequest | undefined {
  try {
    const r = new ProtoReader(bytes, "a worker");
    const [field, wire] = r.tag() ?? [];
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
    if (e === NOT_HERE || e instanceof ProtoReadError) return undefined;
    throw e;
  }
}

function readPong(r: ProtoReader) {
  let seq = 0n;
  for (let t = r.tag(); t; t = r.tag()) {
    if (t[0] === 1 && t[1] === VARINT) seq = BigInt(safe(r));
    else throw NOT_HERE;
  }
  return { $typeName: "goschedule.v1.Pong" as const, seq };
}

function readAck(r: ProtoReader) {
  let taskId = "";
  let attempt = 0;
  let queued = false;
  for (let t = r.tag(); t; t = r.tag()) {
    if (t[0] === 1 && t[1] === BYTES) taskId = r.string();
    else if (t[0] === 2 && t[1] === VARINT) attempt = uint32(r);
    else if (t[0] === 3 && t[1] === VARINT) queued = uint32(r) !== 0;
    else throw NOT_HERE;
  }
  return { $typeName: "goschedule.v1.TaskAck" as const, taskId, attempt, queued };
}

function readReport(r: ProtoReader): SetTaskRequest {
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
  for (let t = r.tag(); t; t = r.tag()) {
    const [field, wire] = t;
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
        case 14:
          report.outcome = { case: "notStarted", value: r.string() };
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
          report.attempt = uint32(r);
          break;
        case 8:
          report.stdoutTruncated = r.varint() !== 0;
          break;
        case 9:
          report.stderrTruncated = r.varint() !== 0;
          break;
        case 12:
          report.termination = int32(r);
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

function readExited(r: ProtoReader) {
  let exitCode = 0;
  let signal = "";
  for (let t = r.tag(); t; t = r.tag()) {
    if (t[0] === 1 && t[1] === VARINT) exitCode = int32(r);
    else if (t[0] === 2 && t[1] === BYTES) signal = r.string();
    else throw NOT_HERE;
  }
  return { $typeName: "goschedule.v1.Exited" as const, exitCode, signal };
}

function readTimestamp(r: ProtoReader): Timestamp {
  let seconds = 0n;
  let nanos = 0;
  for (let t = r.tag(); t; t = r.tag()) {
    if (t[0] === 1 && t[1] === VARINT) seconds = BigInt(safe(r));
    else if (t[0] === 2 && t[1] === VARINT) nanos = int32(r);
    else throw NOT_HERE;
  }
  return { $typeName: "google.protobuf.Timestamp", seconds, nanos };
}

/**
 * Only numbers plainly in range are read here: a negative one (ten bytes on the wire), or one
 * past its type or past 2^53, is protobuf-es's.
 */
function safe(r: ProtoReader): number {
  const value = r.varint();
  if (value > Number.MAX_SAFE_INTEGER) throw NOT_HERE;
  return value;
}

function uint32(r: ProtoReader): number {
  const value = r.varint();
  if (value > 0xffffffff) throw NOT_HERE;
  return value;
}

function int32(r: ProtoReader): number {
  const value = r.varint();
  if (value > 0x7fffffff) throw NOT_HERE;
  return value;
}
