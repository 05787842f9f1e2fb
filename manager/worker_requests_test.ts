import assert from "node:assert/strict";
import { create, fromBinary, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  ConnectRequestSchema,
  ExitedSchema,
  PongSchema,
  SetTaskRequestSchema,
  TaskAckSchema,
} from "../shared/gen/goschedule/v1/goschedule_pb.ts";
import { decodeWorkerRequest, readCommonRequest } from "./worker_requests.ts";

type Request = MessageInitShape<typeof ConnectRequestSchema>;
const encode = (m: Request) => toBinary(ConnectRequestSchema, create(ConnectRequestSchema, m));
const report = (value: MessageInitShape<typeof SetTaskRequestSchema>): Request => ({
  msg: { case: "report", value },
});

const COMMON: [string, Request][] = [
  ["a pong", { msg: { case: "pong", value: { seq: 7n } } }],
  ["the first pong", { msg: { case: "pong", value: { seq: 0n } } }],
  ["a late pong", { msg: { case: "pong", value: { seq: 2n ** 40n } } }],
  ["an ack", { msg: { case: "ack", value: { taskId: "01m8g2ywvjvkw7vp", attempt: 1 } } }],
  ["an ack of attempt 0", { msg: { case: "ack", value: { taskId: "t", attempt: 0 } } }],
  ["an ack of a queued attempt", {
    msg: { case: "ack", value: { taskId: "t", attempt: 3, queued: true } },
  }],
  ["an ack of a large attempt", {
    msg: { case: "ack", value: { taskId: "t", attempt: 4_000_000_000 } },
  }],
  ["an empty report", report({})],
  [
    "a report as workers send it",
    report({
      workerId: "w1",
      taskId: "01m8g2ywvjvkw7vp",
      attempt: 2,
      outcome: { case: "exited", value: { exitCode: 0 } },
      stdout: "hello\n",
      startedAt: timestampFromMs(1_795_836_198_001),
      finishedAt: timestampFromMs(1_795_836_198_123),
    }),
  ],
  [
    "a report with everything",
    report({
      workerId: "wörker-✓",
      taskId: "t-1",
      attempt: 9,
      outcome: { case: "exited", value: { exitCode: 137, signal: "SIGKILL" } },
      stdout: "ünïcödé 𝄞 ".repeat(40),
      stderr: "e".repeat(70_000),
      stdoutTruncated: true,
      stderrTruncated: true,
      startedAt: timestampFromMs(1_500),
      finishedAt: timestampFromMs(0),
      termination: 2,
    }),
  ],
  [
    "a start failure",
    report({
      taskId: "t",
      attempt: 1,
      outcome: { case: "startError", value: '"nosuch": no such file or directory' },
    }),
  ],
  [
    "an abandoned attempt",
    report({
      taskId: "t",
      attempt: 1,
      outcome: { case: "abandoned", value: "the worker restarted" },
    }),
  ],
  [
    "an exit without a code (an empty nested message)",
    report({
      taskId: "t",
      outcome: { case: "exited", value: {} },
    }),
  ],
  ["a text of 64 bytes and one of 65", report({ stdout: "a".repeat(64), stderr: "b".repeat(65) })],
  ["a text that starts with U+FEFF", report({ stdout: "\ufeffbom", stderr: "\ufeff" })],
];

Deno.test("pongs, acks and reports read by hand are what protobuf-es reads", () => {
  for (const [name, message] of COMMON) {
    const bytes = encode(message);
    const mine = readCommonRequest(bytes);
    assert.ok(mine, `${name}: read by hand`);
    assert.deepEqual(mine, fromBinary(ConnectRequestSchema, bytes), name);
    assert.deepEqual(decodeWorkerRequest(bytes), mine, name);
  }
});

Deno.test("anything else is left to protobuf-es, with its result or its error", () => {
  const withUnknown = (m: Request, field: number) => {
    const bytes = encode(m);
    // Appends an unknown varint field to the nested message (its length grows by two).
    const out = new Uint8Array([...bytes, field << 3, 1]);
    out[1] += 2;
    return out;
  };
  const cases: [string, Uint8Array][] = [
    ["nothing at all", new Uint8Array(0)],
    ["a hello", encode({ msg: { case: "hello", value: { workerId: "w1", hostname: "h" } } })],
    ["a log chunk", encode({ msg: { case: "logChunk", value: { requestId: 3n, eof: true } } })],
    [
      "a negative exit code",
      encode(report({ outcome: { case: "exited", value: { exitCode: -1 } } })),
    ],
    ["a pong beyond 2^49", encode({ msg: { case: "pong", value: { seq: 2n ** 63n } } })],
    ["a timestamp before 1970", encode(report({ startedAt: timestampFromMs(-1_000) }))],
    [
      "an unknown field in an ack",
      withUnknown({ msg: { case: "ack", value: { taskId: "t" } } }, 9),
    ],
    ["an unknown field in a report", withUnknown(report({ taskId: "t" }), 15)],
    [
      "two messages merged",
      new Uint8Array([
        ...encode({ msg: { case: "ack", value: { taskId: "a" } } }),
        ...encode({ msg: { case: "ack", value: { attempt: 2 } } }),
      ]),
    ],
    ["an outcome given twice", new Uint8Array([0x2a, 0x06, 0x2a, 0x01, 0x78, 0x6a, 0x01, 0x79])],
  ];
  for (const [name, bytes] of cases) {
    assert.equal(readCommonRequest(bytes), undefined, `${name}: not read by hand`);
    assert.deepEqual(decodeWorkerRequest(bytes), fromBinary(ConnectRequestSchema, bytes), name);
  }
  const notUtf8 = new Uint8Array([0x1a, 0x04, 0x0a, 0x02, 0xff, 0x41]); // an ack's id "\xffA"
  for (const bad of [new Uint8Array([0x1a, 0x05, 0x0a]), new Uint8Array([0x00]), notUtf8]) {
    assert.equal(readCommonRequest(bad), undefined);
    const expected = (() => {
      try {
        fromBinary(ConnectRequestSchema, bad);
      } catch (e) {
        return (e as Error).message;
      }
      assert.fail("protobuf-es reads it");
    })();
    assert.throws(() => decodeWorkerRequest(bad), { message: expected });
  }
});

Deno.test("the messages read by hand have the fields the reader knows, and no more", () => {
  // A field added to one of these messages must be added to worker_requests.ts, which reads
  // them, and to worker/request_frames.ts, which writes them, too.
  const numbers = (fields: { number: number }[]) =>
    fields.map((f) => f.number).sort((a, b) => a - b);
  assert.deepEqual(numbers(PongSchema.fields), [1]);
  assert.deepEqual(numbers(TaskAckSchema.fields), [1, 2, 3]);
  assert.deepEqual(numbers(ExitedSchema.fields), [1, 2]);
  assert.deepEqual(numbers(SetTaskRequestSchema.fields), [
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    8,
    9,
    10,
    11,
    12,
    13,
    14,
  ]);
  const oneof = Object.fromEntries(ConnectRequestSchema.fields.map((f) => [f.localName, f.number]));
  assert.equal(oneof.pong, 2);
  assert.equal(oneof.ack, 3);
  assert.equal(oneof.report, 5);
});
