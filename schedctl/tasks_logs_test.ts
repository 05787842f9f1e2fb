import assert from "node:assert/strict";
import { concatBytes } from "../shared/bytes.ts";
import { TaskState } from "../shared/gen/goschedule/v1/goschedule_pb.ts";
import { createFakeManager, makeTask, runCli, startCli } from "./test_util.ts";

const encoder = new TextEncoder();

Deno.test("tasks logs writes the bytes exactly as received: invalid UTF-8, controls, long lines", async () => {
  const chunks = [
    encoder.encode("plain line\n"),
    new Uint8Array([0xff, 0xfe, 0x00, 0xc3]), // invalid UTF-8, and a character cut in two ...
    new Uint8Array([0xa9, 0x0a]), // ... whose second byte comes in the next chunk
    encoder.encode("\x1b[31mred\x1b[0m\r\n"),
    encoder.encode("x".repeat(200_000)),
  ];
  const fake = createFakeManager({
    tasks: [makeTask({ id: "t-1", state: TaskState.DONE, exitCode: 0 })],
  });
  fake.logs.set("t-1", { stdout: chunks, stderr: [encoder.encode("not this\n")] });
  const r = await startCli(["tasks", "logs", "t-1"], { transport: fake.transport }).result;
  assert.equal(r.code, 0);
  assert.equal(r.stderr, "");
  assert.deepEqual(r.stdoutBytes, concatBytes(chunks));
  const { id, follow, stderr, tailLines } = fake.calls[0].request as {
    id: string;
    follow: boolean;
    stderr: boolean;
    tailLines: number;
  };
  assert.deepEqual({ id, follow, stderr, tailLines }, {
    id: "t-1",
    follow: false,
    stderr: false,
    tailLines: 0,
  });
});

Deno.test("tasks logs --stderr --tail N -f map to the request", async () => {
  const fake = createFakeManager({
    tasks: [makeTask({ id: "t-1", state: TaskState.DONE, exitCode: 0 })],
  });
  fake.logs.set("t-1", { stdout: [], stderr: [encoder.encode("1\n2\n3\n4\n")] });
  const r = await runCli(["tasks", "logs", "--stderr", "--tail", "2", "-f", "t-1"], {
    transport: fake.transport,
  });
  assert.deepEqual(r, { code: 0, stdout: "3\n4\n", stderr: "" });
  const { follow, stderr, tailLines } = fake.calls[0].request as {
    follow: boolean;
    stderr: boolean;
    tailLines: number;
  };
  assert.deepEqual({ follow, stderr, tailLines }, { follow: true, stderr: true, tailLines: 2 });
  const long = await runCli(["tasks", "logs", "--follow", "--tail=1", "t-1"], {
    transport: fake.transport,
  });
  assert.equal(long.code, 0);
  assert.equal((fake.calls[1].request as { tailLines: number }).tailLines, 1);
});

Deno.test("tasks logs -f writes as the task prints and returns when the task ends", async () => {
  const fake = createFakeManager({
    tasks: [makeTask({ id: "t-1", state: TaskState.SCHEDULED, workerId: "w-1" })],
  });
  fake.print("t-1", "stdout", "before\n");
  let ended = false;
  const cli = startCli(["tasks", "logs", "-f", "t-1"], { transport: fake.transport });
  void cli.result.then(() => ended = true);
  await fake.until(() => fake.openStreams.get("t-1 stdout") === 1);
  fake.print("t-1", "stdout", "line 1\n");
  await fake.until(() => true);
  await new Promise((resolve) => setTimeout(resolve, 10));
  assert.equal(new TextDecoder().decode(concatBytes(cli.output.stdout)), "before\nline 1\n");
  assert.equal(ended, false, "still following while the task runs");
  fake.print("t-1", "stdout", "line 2\n");
  fake.update("t-1", { state: TaskState.DONE, exitCode: 0 });
  const r = await cli.result;
  assert.deepEqual([r.code, r.stdout, r.stderr], [0, "before\nline 1\nline 2\n", ""]);
});

Deno.test("tasks logs of an unknown id: not found naming it, exit 1", async () => {
  const fake = createFakeManager();
  const r = await runCli(["tasks", "logs", "nope"], { transport: fake.transport });
  assert.deepEqual(r, { code: 1, stdout: "", stderr: `schedctl: task "nope" not found\n` });
});

Deno.test("tasks logs usage mistakes exit 2 and send nothing", async () => {
  const cases: Array<[string[], string]> = [
    [["tasks", "logs"], "tasks logs: missing the task ID; see 'schedctl tasks help'"],
    [["tasks", "logs", ""], "tasks logs: the task ID is empty; see 'schedctl tasks help'"],
    [
      ["tasks", "logs", "a", "b"],
      `tasks logs: unexpected argument "b" (one ID at a time); see 'schedctl tasks help'`,
    ],
    [
      ["tasks", "logs", "--tail", "0", "a"],
      `tasks logs: --tail "0" is not a whole number above 0; see 'schedctl tasks help'`,
    ],
    [
      ["tasks", "logs", "--tail", "-3", "a"],
      `tasks logs: --tail "-3" is not a whole number above 0; see 'schedctl tasks help'`,
    ],
    [
      ["tasks", "logs", "--tail", "4294967296", "a"],
      `tasks logs: --tail "4294967296" is not a whole number above 0; see 'schedctl tasks help'`,
    ],
    [
      ["-o", "json", "tasks", "logs", "a"],
      "tasks logs: -o json does not apply: the output is the task's bytes, as it wrote them",
    ],
  ];
  for (const [argv, message] of cases) {
    const fake = createFakeManager({ tasks: [makeTask({ id: "a" })] });
    const r = await runCli(argv, { transport: fake.transport });
    assert.deepEqual(r, { code: 2, stdout: "", stderr: `schedctl: ${message}\n` }, argv.join(" "));
    assert.deepEqual(fake.calls, []);
  }
});
