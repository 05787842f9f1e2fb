import assert from "node:assert/strict";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  ConnectRequestSchema,
  type SetTaskRequestSchema,
  Termination,
} from "../shared/gen/goschedule/v1/goschedule_pb.ts";
import { grpcFrame } from "../shared/grpc_frames.ts";
import { frameRequest } from "./request_frames.ts";

type Outgoing = MessageInitShape<typeof ConnectRequestSchema>;
type Report = MessageInitShape<typeof SetTaskRequestSchema>;

const report = (value: Report): Outgoing => ({ msg: { case: "report", value } });

const CASES: [string, Outgoing][] = [
  ["an ack", { msg: { case: "ack", value: { taskId: "t-1", attempt: 1 } } }],
  ["an ack of attempt 0", { msg: { case: "ack", value: { taskId: "t-1", attempt: 0 } } }],
  ["an ack of a queued attempt", {
    msg: { case: "ack", value: { taskId: "t-1", attempt: 2, queued: true } },
  }],
  ["a pong", { msg: { case: "pong", value: { seq: 7n } } }],
  ["a pong of a large seq", { msg: { case: "pong", value: { seq: 2n ** 63n } } }],
  ["the first pong", { msg: { case: "pong", value: { seq: 0n } } }],
  [
    "a clean exit, nothing printed",
    report({
      workerId: "w1",
      taskId: "t-1",
      attempt: 1,
      outcome: { case: "exited", value: { exitCode: 0, signal: "" } },
      startedAt: timestampFromMs(1_796_000_000_123),
      finishedAt: timestampFromMs(1_796_000_000_456),
    }),
  ],
  [
    "a killed process with output cut short",
    report({
      workerId: "wörker",
      taskId: "t-0123456789abcdef",
      attempt: 4_000_000_000,
      outcome: { case: "exited", value: { exitCode: 137, signal: "SIGKILL" } },
      stdout: "ünïcödé ✓ 𝄞\n".repeat(2000),
      stderr: "err\n",
      stdoutTruncated: true,
      stderrTruncated: true,
      startedAt: timestampFromMs(0),
      finishedAt: timestampFromMs(1),
      termination: Termination.DEADLINE_EXCEEDED,
    }),
  ],
  [
    "an exit code nobody's exit has",
    report({
      workerId: "w1",
      taskId: "t",
      attempt: 2,
      outcome: { case: "exited", value: { exitCode: -1, signal: "" } },
    }),
  ],
  [
    "a start failure",
    report({
      workerId: "w1",
      taskId: "t",
      attempt: 2,
      outcome: { case: "startError", value: '"nope": no such file or directory' },
      startedAt: timestampFromMs(5),
      finishedAt: timestampFromMs(5),
    }),
  ],
  ["an empty start error", report({ taskId: "t", outcome: { case: "startError", value: "" } })],
  [
    "an abandoned attempt",
    report({
      workerId: "w1",
      taskId: "t",
      attempt: 3,
      outcome: { case: "abandoned", value: "the worker restarted" },
      termination: Termination.WORKER_STOPPING,
    }),
  ],
  [
    "an attempt given back unstarted",
    report({
      workerId: "w1",
      taskId: "t",
      attempt: 4,
      outcome: { case: "notStarted", value: "cancelled while queued" },
      termination: Termination.CANCELLED,
    }),
  ],
  ["a hello (through protobuf-es)", {
    msg: { case: "hello", value: { workerId: "w1", hostname: "h" } },
  }],
];

Deno.test("ack, report and pong frames are byte for byte protobuf-es's", () => {
  for (const [name, message] of CASES) {
    assert.deepEqual(
      [...frameRequest(message)],
      [...grpcFrame(ConnectRequestSchema, message)],
      name,
    );
  }
});
