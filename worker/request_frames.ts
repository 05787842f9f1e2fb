/**
 * The worker's most frequent messages to the manager, a task's ack, its report and a pong,
 * encoded and framed by hand (shared/proto_writer.ts) rather than by protobuf-es's reflection,
 * as the manager frames its runs (manager/worker_frames.ts): reflection was about a tenth of a
 * worker's CPU per short task. The bytes are the ones protobuf-es writes
 * (request_frames_test.ts compares them; manager/worker_requests_test.ts fails when one of
 * these messages gains a field); any other message goes through protobuf-es.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import { ConnectRequestSchema } from "../shared/gen/goschedule/v1/goschedule_pb.ts";
import { FRAME_HEADER, frameInPlace, grpcFrame } from "../shared/grpc_frames.ts";
import { ProtoWriter } from "../shared/proto_writer.ts";

type Outgoing = MessageInitShape<typeof ConnectRequestSchema>;

/** ConnectRequest's oneof fields encoded here. */
const REQUEST = { pong: 2, ack: 3, report: 5 } as const;

/** The oneof of SetTaskRequest's outcome, by field number. */
const OUTCOME = { exited: 4, startError: 5, abandoned: 13, notStarted: 14 } as const;

/** The message framed as gRPC frames it: a flag byte, a 4-byte length, the message. */
export function frameRequest(message: Outgoing): Uint8Array {
  const msg = message.msg;
  // Room for the frame header, written once the length is known.
  const w = new ProtoWriter(FRAME_HEADER);
  switch (msg?.case) {
    case "ack": {
      const ack = msg.value;
      w.message(REQUEST.ack, (m) => {
        m.string(1, ack.taskId);
        m.int(2, ack.attempt);
        if (ack.queued) m.int(3, 1);
      });
      break;
    }
    case "pong":
      w.message(REQUEST.pong, (m) => m.int(1, msg.value.seq));
      break;
    case "report": {
      const r = msg.value;
      w.message(REQUEST.report, (m) => {
        m.string(1, r.workerId);
        m.string(2, r.taskId);
        m.int(3, r.attempt);
        const outcome = r.outcome;
        if (outcome?.case === "exited") {
          m.message(OUTCOME.exited, (e) => {
            e.int(1, outcome.value.exitCode);
            e.string(2, outcome.value.signal);
          });
        } else if (outcome?.case === "startError") {
          m.string(OUTCOME.startError, outcome.value, true);
        }
        m.string(6, r.stdout);
        m.string(7, r.stderr);
        m.int(8, r.stdoutTruncated ? 1 : 0);
        m.int(9, r.stderrTruncated ? 1 : 0);
        m.secondsAndNanos(10, r.startedAt);
        m.secondsAndNanos(11, r.finishedAt);
        m.int(12, r.termination);
        // Last: protobuf-es writes fields by number, not where the oneof declares them.
        if (outcome?.case === "abandoned") m.string(OUTCOME.abandoned, outcome.value, true);
        if (outcome?.case === "notStarted") m.string(OUTCOME.notStarted, outcome.value, true);
      });
      break;
    }
    default:
      return grpcFrame(ConnectRequestSchema, message);
  }
  return frameInPlace(w.finish());
}
