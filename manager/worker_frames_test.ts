import assert from "node:assert/strict";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import {
  ConnectResponseSchema,
  PingSchema,
  ReportAnswerSchema,
  RunTaskSchema,
} from "../shared/gen/goschedule/v1/goschedule_pb.ts";
import { grpcFrame } from "../shared/grpc_frames.ts";
import { frameResponse } from "./worker_frames.ts";
import type { Outgoing } from "./worker_session.ts";

const run = (value: Extract<Outgoing["msg"], { case: "run" }>["value"]): Outgoing => ({
  msg: { case: "run", value },
});

const CASES: [string, Outgoing][] = [
  ["a bare run", run({ taskId: "t-1", attempt: 1, cmd: "/bin/true", params: [] })],
  ["attempt 0 and no command", run({ taskId: "t-1", attempt: 0, cmd: "", params: [] })],
  [
    "a run with everything",
    run({
      taskId: "t-0123456789abcdef",
      attempt: 4_000_000_000,
      cmd: "sh",
      params: ["-c", "echo $A", "", "ünïcödé ✓ 𝄞"],
      env: { A: "1", EMPTY: "", "É": "ß".repeat(300) },
      cwd: "/tmp",
      timeout: durationFromMs(90_061_500),
      killTimeout: durationFromMs(0),
      priority: 7,
    }),
  ],
  ["a negative priority", run({ taskId: "t", attempt: 1, cmd: "x", priority: -3 })],
  ["a negative duration", run({ taskId: "t", attempt: 1, cmd: "x", timeout: durationFromMs(-1) })],
  [
    "a long parameter (a two-byte length inside the message)",
    run({ taskId: "t", attempt: 1, cmd: "x", params: ["p".repeat(20_000)] }),
  ],
  [
    "a report's answer",
    { msg: { case: "reportAnswer", value: { taskId: "t-1", attempt: 2, code: 0, message: "" } } },
  ],
  [
    "a refusal",
    {
      msg: {
        case: "reportAnswer",
        value: { taskId: "t-1", attempt: 2, code: 9, message: "attempt 2 is not current" },
      },
    },
  ],
  ["a ping", { msg: { case: "ping", value: { seq: 1n } } }],
  ["a ping needing no pong", { msg: { case: "ping", value: { seq: 2n ** 63n, noPong: true } } }],
  ["the first ping round's", { msg: { case: "ping", value: { seq: 0n } } }],
  ["a welcome (through protobuf-es)", {
    msg: { case: "welcome", value: { pingIntervalMs: 2000, acceptsReports: true } },
  }],
];

Deno.test("run, answer and ping frames are byte for byte protobuf-es's", () => {
  for (const [name, message] of CASES) {
    assert.deepEqual(
      [...frameResponse(message)],
      [...grpcFrame(ConnectResponseSchema, message)],
      name,
    );
  }
});

Deno.test("the hand-framed messages have the fields the encoder knows, and no more", () => {
  // A field added to one of these messages must be added to worker_frames.ts too.
  const numbers = (fields: { number: number }[]) => fields.map((f) => f.number);
  assert.deepEqual(numbers(RunTaskSchema.fields), [1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.deepEqual(numbers(ReportAnswerSchema.fields), [1, 2, 3, 4]);
  assert.deepEqual(numbers(PingSchema.fields), [1, 2]);
  const oneof = Object.fromEntries(
    ConnectResponseSchema.fields.map((f) => [f.localName, f.number]),
  );
  assert.equal(oneof.ping, 2);
  assert.equal(oneof.run, 3);
  assert.equal(oneof.reportAnswer, 7);
});

Deno.test("frames made one after another keep their own bytes", () => {
  // Small frames share buffers: enough of them to fill several, all kept, then checked.
  const messages = Array.from({ length: 2_000 }, (_, i) =>
    i % 10 === 9
      ? CASES[4][1] // now and then a large one, which gets a buffer of its own
      : run({ taskId: `t-${i}`, attempt: i, cmd: "/bin/echo", params: ["x".repeat(i % 300)] }));
  const frames = messages.map(frameResponse);
  frames.forEach((framed, i) => {
    assert.deepEqual([...framed], [...grpcFrame(ConnectResponseSchema, messages[i])], `frame ${i}`);
  });
});
