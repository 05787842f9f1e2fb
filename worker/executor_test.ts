import assert from "node:assert/strict";
import { createProcessExecutor } from "./executor.ts";

const run = (cmd: string, params: string[], outputLimit = 1024) =>
  createProcessExecutor({ outputLimit }).run({ cmd, params }, new AbortController().signal);

Deno.test("executor runs the command directly and keeps its output", async () => {
  const result = await run("sh", ["-c", "echo out; echo err >&2; exit 3"]);
  assert.deepEqual(result.outcome, { kind: "exited", exitCode: 3 });
  assert.equal(result.output.stdout, "out\n");
  assert.equal(result.output.stderr, "err\n");
});

Deno.test("executor passes params verbatim, no shell in between", async () => {
  const result = await run("echo", ["$HOME", "a b", "*"]);
  assert.equal(result.output.stdout, "$HOME a b *\n");
});

Deno.test("executor reports the signal that ended the process", async () => {
  const result = await run("sh", ["-c", "kill -9 $$"]);
  assert.deepEqual(result.outcome, { kind: "exited", exitCode: 137, signal: "SIGKILL" });
});

Deno.test("executor says why a command cannot start", async () => {
  const missing = await run("no-such-command-here", []);
  assert.deepEqual(missing.outcome, {
    kind: "start_failed",
    error: '"no-such-command-here": no such file or directory',
  });
  const file = await Deno.makeTempFile();
  try {
    const notExecutable = await run(file, []);
    assert.deepEqual(notExecutable.outcome, {
      kind: "start_failed",
      error: `"${file}": permission denied`,
    });
  } finally {
    await Deno.remove(file);
  }
});

Deno.test("executor keeps only the tail of a large output and marks the cut", async () => {
  const result = await run("sh", ["-c", "head -c 100000 /dev/zero | tr '\\0' x; echo END"], 1024);
  assert.equal(result.output.stdout.length, 1024);
  assert.ok(result.output.stdout.endsWith("xEND\n"));
  assert.equal(result.output.stdoutTruncated, true);
});

Deno.test("aborting kills the process", async () => {
  const controller = new AbortController();
  const running = createProcessExecutor({ outputLimit: 1024 }).run(
    { cmd: "sleep", params: ["30"] },
    controller.signal,
  );
  setTimeout(() => controller.abort(), 50);
  const result = await running;
  assert.equal(result.outcome.kind, "exited");
  if (result.outcome.kind === "exited") assert.equal(result.outcome.signal, "SIGTERM");
});
