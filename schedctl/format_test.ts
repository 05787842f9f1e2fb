import assert from "node:assert/strict";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  LabelConstraint_Op,
  TaskState,
  WorkerState,
} from "../shared/gen/goschedule/v1/goschedule_pb.ts";
import {
  formatAge,
  formatAgo,
  formatBytes,
  formatCommand,
  formatCpu,
  formatExit,
  formatLabelConstraint,
  formatSize,
  formatSizeExact,
  formatTime,
  labelList,
  shellQuoteArg,
  taskStateName,
  visible,
  workerStateName,
  workerStateText,
} from "./format.ts";
import { makeTask, NOW } from "./test_util.ts";

Deno.test("state names are the lowercase words, never the enum names", () => {
  assert.equal(taskStateName(TaskState.PENDING), "pending");
  assert.equal(taskStateName(TaskState.SCHEDULED), "scheduled");
  assert.equal(taskStateName(TaskState.DONE), "done");
  assert.equal(taskStateName(TaskState.DEAD), "dead");
  assert.equal(taskStateName(TaskState.UNSPECIFIED), "unknown(0)");
  assert.equal(taskStateName(9 as TaskState), "unknown(9)");
  assert.equal(workerStateName(WorkerState.CONNECTED), "connected");
  assert.equal(workerStateName(WorkerState.DISCONNECTED), "disconnected");
});

Deno.test("formatAge is coarse and never negative", () => {
  const cases: Array<[number, string]> = [
    [-5_000, "0s"],
    [0, "0s"],
    [1_999, "1s"],
    [59_000, "59s"],
    [60_000, "1m"],
    [150_000, "2m30s"],
    [35 * 60_000, "35m"],
    [3 * 3_600_000 + 20 * 60_000, "3h20m"],
    [30 * 3_600_000, "30h"],
    [5 * 86_400_000, "5d"],
  ];
  for (const [ms, text] of cases) assert.equal(formatAge(ms), text, `${ms}ms`);
});

Deno.test("formatAgo and formatTime show '-' for a missing time", () => {
  assert.equal(formatAgo(undefined, NOW), "-");
  assert.equal(formatTime(undefined, NOW), "-");
  assert.equal(formatAgo(timestampFromMs(NOW - 2_000), NOW), "2s ago");
  assert.equal(
    formatTime(timestampFromMs(NOW - 90_000), NOW),
    "2025-01-02T11:58:30.000Z (1m30s ago)",
  );
});

Deno.test("formatExit prefers the signal, then the exit code, else '-'", () => {
  assert.equal(formatExit(makeTask({ id: "a" })), "-");
  assert.equal(formatExit(makeTask({ id: "a", exitCode: 0 })), "0");
  assert.equal(formatExit(makeTask({ id: "a", exitCode: 3 })), "3");
  assert.equal(formatExit(makeTask({ id: "a", exitCode: 137, signal: "SIGKILL" })), "SIGKILL");
});

Deno.test("shellQuoteArg quotes only what a shell would misread", () => {
  assert.equal(shellQuoteArg("ls"), "ls");
  assert.equal(shellQuoteArg("-la"), "-la");
  assert.equal(shellQuoteArg("/tmp/a_b.c,d=e:f@g%h+i"), "/tmp/a_b.c,d=e:f@g%h+i");
  assert.equal(shellQuoteArg("été"), "été");
  assert.equal(shellQuoteArg(""), "''");
  assert.equal(shellQuoteArg("a b"), "'a b'");
  assert.equal(shellQuoteArg("$HOME"), "'$HOME'");
  assert.equal(shellQuoteArg("it's"), `'it'\\''s'`);
  assert.equal(shellQuoteArg("*"), "'*'");
});

Deno.test("shellQuoteArg writes control characters as $'...' escapes on one line", () => {
  assert.equal(shellQuoteArg("a\nb"), "$'a\\nb'");
  assert.equal(shellQuoteArg("it's\t\\"), "$'it\\'s\\t\\\\'");
  assert.equal(shellQuoteArg("\x1b[0m"), "$'\\x1b[0m'");
  assert.equal(shellQuoteArg("x\u202ey"), "$'x\\U0000202ey'");
});

Deno.test("formatCommand joins the quoted command and params", () => {
  assert.equal(formatCommand("sleep", ["30"]), "sleep 30");
  assert.equal(formatCommand("sh", ["-c", "echo hi; exit 3"]), "sh -c 'echo hi; exit 3'");
  assert.equal(formatCommand("/opt/my app/run", []), "'/opt/my app/run'");
});

Deno.test("visible escapes control characters except the ones kept", () => {
  assert.equal(visible("a\nb\tc\x00\x7f\u0085\u2028"), "a\\nb\\tc\\x00\\x7f\\x85\\u{2028}");
  assert.equal(visible("line 1\n\tline 2\r\n", "\n\t"), "line 1\n\tline 2\\r\n");
  assert.equal(visible("👨‍👩‍👧 ok"), "👨‍👩‍👧 ok");
});

Deno.test("formatBytes counts UTF-8 bytes", () => {
  assert.equal(formatBytes(""), "0 bytes");
  assert.equal(formatBytes("a"), "1 byte");
  assert.equal(formatBytes("été\n"), "6 bytes");
});

Deno.test("formatSize: binary units, one decimal at most", () => {
  const cases: Array<[bigint | number, string]> = [
    [0, "0B"],
    [1023, "1023B"],
    [1024, "1KiB"],
    [1536, "1.5KiB"],
    [512n * 1024n * 1024n, "512MiB"],
    [8n * 1024n ** 3n, "8GiB"],
    [8_345_000_000n, "7.8GiB"],
    [1_000_000_000, "953.7MiB"],
    [3n * 1024n ** 4n, "3TiB"],
    [2n * 1024n ** 5n, "2048TiB"],
  ];
  for (const [bytes, text] of cases) assert.equal(formatSize(bytes), text, String(bytes));
});

Deno.test("formatSizeExact adds the bytes when formatSize rounds", () => {
  assert.equal(formatSizeExact(8n * 1024n ** 3n), "8GiB");
  assert.equal(formatSizeExact(1536), "1.5KiB");
  assert.equal(formatSizeExact(500), "500B");
  assert.equal(formatSizeExact(8_345_000_000n), "7.8GiB (8345000000 bytes)");
  assert.equal(formatSizeExact(1025), "1KiB (1025 bytes)");
});

Deno.test("formatCpu: at most three decimals", () => {
  assert.deepEqual([4, 0.5, 1 / 3, 0.001, 2.25].map(formatCpu), [
    "4",
    "0.5",
    "0.333",
    "0.001",
    "2.25",
  ]);
});

Deno.test("formatLabelConstraint spells each operator as schedctl reads it", () => {
  const { EQUAL, NOT_EQUAL, EXISTS, UNSPECIFIED } = LabelConstraint_Op;
  assert.equal(formatLabelConstraint({ key: "gpu", op: EQUAL, value: "true" }), "gpu=true");
  assert.equal(formatLabelConstraint({ key: "zone", op: NOT_EQUAL, value: "b" }), "zone!=b");
  assert.equal(formatLabelConstraint({ key: "ssd", op: EXISTS, value: "" }), "ssd");
  assert.equal(
    formatLabelConstraint({ key: "x", op: UNSPECIFIED, value: "y" }),
    "x (unknown operator 0) y",
  );
});

Deno.test("workerStateText adds the drain; labelList sorts by key", () => {
  assert.equal(workerStateText({ state: WorkerState.CONNECTED, draining: false }), "connected");
  assert.equal(
    workerStateText({ state: WorkerState.DISCONNECTED, draining: true }),
    "disconnected, draining",
  );
  assert.deepEqual(labelList({ zone: "a", gpu: "true", "a/b": "" }), [
    "a/b=",
    "gpu=true",
    "zone=a",
  ]);
});
