/**
 * The manager's most frequent messages to workers, a run, a report's answer and a ping,
 * encoded and framed by hand (shared/proto_writer.ts) rather than by protobuf-es's reflection:
 * a run and its answer took about 15 µs that way and take about 3.5 here, a few percent of the
 * manager's CPU per task when it places thousands a second. The bytes are the ones protobuf-es
 * writes (worker_frames_test.ts compares them, and fails when one of these messages gains a
 * field); any other message goes through protobuf-es.
 */
import { FRAME_HEADER, frameInPlace, grpcFrame } from "../shared/grpc_frames.ts";
import { ProtoWriter } from "../shared/proto_writer.ts";
import { ConnectResponseSchema } from "../shared/gen/goschedule/v1/goschedule_pb.ts";
import type { Outgoing } from "./worker_session.ts";

/** ConnectResponse's oneof fields, and the fields of the messages in it encoded here. */
const RESPONSE = { ping: 2, run: 3, reportAnswer: 7 } as const;

/** The message framed as gRPC frames it: a flag byte, a 4-byte length, the message. */
export function frameResponse(message: Outgoing): Uint8Array {
  const msg = message.msg;
  // Room for the frame header, written once the length is known.
  const w = new ProtoWriter(FRAME_HEADER);
  switch (msg?.case) {
    case "run": {
      const run = msg.value;
      w.message(RESPONSE.run, (m) => {
        m.string(1, run.taskId);
        m.int(2, run.attempt);
        m.string(3, run.cmd);
        for (const param of run.params ?? []) m.string(4, param, true);
        m.stringMap(5, run.env);
        m.string(6, run.cwd);
        m.secondsAndNanos(7, run.timeout);
        m.secondsAndNanos(8, run.killTimeout);
        m.int(9, run.priority);
      });
      break;
    }
    case "reportAnswer": {
      const answer = msg.value;
      w.message(RESPONSE.reportAnswer, (m) => {
        m.string(1, answer.taskId);
        m.int(2, answer.attempt);
        m.int(3, answer.code);
        m.string(4, answer.message);
      });
      break;
    }
    case "ping": {
      const ping = msg.value;
      w.message(RESPONSE.ping, (m) => {
        m.int(1, ping.seq);
        if (ping.noPong) m.int(2, 1);
      });
      break;
    }
    default:
      return grpcFrame(ConnectResponseSchema, message);
  }
  return frameInPlace(w.finish());
}
