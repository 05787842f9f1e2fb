import assert from "node:assert/strict";
import { type Clock as FakeClock, createClock } from "@sinonjs/fake-timers";
import {
  BASE_PATH,
  createProcessExecutor,
  DEFAULT_KILL_TIMEOUT_MS,
  PIPE_CLOSE_GRACE_MS,
  type ProcessExecutorOptions,
  type ProcessSpec,
} from "./executor.ts";
import { delay, eventually, groupMembers, killGroup, RecordingSink } from "./test_util.ts";
import { clockOf } from "../shared/fake_clock.ts";

const spec = (cmd: string, params: string[], more: Partial<ProcessSpec> = {}): ProcessSpec => ({
  taskId: "t-1",
  attempt: 1,
  cmd,
  params,
  ...more,
});

const executor = (options: Partial<ProcessExecutorOptions> = {}) =>
  createProcessExecutor({ outputLimit: 1024, workerId: "w-test", home: "/home/test", ...options });

const run = (cmd: string, params: string[], more: Partial<ProcessSpec> = {}, outputLimit = 1024) =>
  executor({ outputLimit }).start(spec(cmd, params, more)).result;

/**
 * Starts `sh -c script` whose first line of output is its pid (= its process group); resolves
 * once the output holds `ready` too.
 */
async function startShell(
  script: string,
  more: Partial<ProcessSpec> = {},
  fake?: FakeClock,
  ready = "\n",
) {
  const stdout = new RecordingSink();
  const running = executor(fake ? { clock: clockOf(fake) } : {}).start(
    spec("sh", ["-c", `echo $$; ${script}`], more),
    { stdout },
  );
  await stdout.waitFor(ready);
  const pgid = Number(stdout.text().split("\n")[0]);
  assert.ok(pgid > 1, `pid line: ${stdout.text()}`);
  return { running, pgid, stdout };
}

Deno.test("executor runs the command directly and keeps its output", async () => {
  const result = await run("sh", ["-c", "echo out; echo err >&2; exit 3"]);
  assert.deepEqual(result.outcome, { kind: "exited", exitCode: 3 });
  assert.equal(result.output.stdout, "out\n");
  assert.equal(result.output.stderr, "err\n");
  assert.equal(result.termination, undefined);
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

Deno.test("a script whose interpreter is missing cannot start; a task's own 127 is its exit", async () => {
  const script = await Deno.makeTempFile({ suffix: ".sh" });
  try {
    await Deno.writeTextFile(script, "#!/no/such/interpreter\necho hi\n");
    await Deno.chmod(script, 0o755);
    const result = await run(script, []);
    assert.deepEqual(result.outcome, {
      kind: "start_failed",
      error: `"${script}": no such file or directory`,
    });
    const own = await run("sh", ["-c", "echo 'not found' >&2; exit 127"]);
    assert.deepEqual(own.outcome, { kind: "exited", exitCode: 127 });
    assert.equal(own.output.stderr, "not found\n");
  } finally {
    await Deno.remove(script);
  }
});

Deno.test("executor keeps only the tail of a large output and marks the cut", async () => {
  const result = await run("sh", ["-c", "head -c 100000 /dev/zero | tr '\\0' x; echo END"]);
  assert.equal(result.output.stdout.length, 1024);
  assert.ok(result.output.stdout.endsWith("xEND\n"));
  assert.equal(result.output.stdoutTruncated, true);
});

Deno.test("a task gets the minimal base environment, its env on top, nothing of the worker's", async () => {
  Deno.env.set("GO_SCHEDULE_TEST_WORKER_SECRET", "leaked");
  try {
    const result = await run("env", [], { taskId: "t-42", attempt: 3, env: { GREETING: "hi" } });
    const lines = result.output.stdout.trim().split("\n").sort();
    assert.deepEqual(lines, [
      "GO_SCHEDULE_ATTEMPT=3",
      "GO_SCHEDULE_TASK_ID=t-42",
      "GO_SCHEDULE_WORKER_ID=w-test",
      "GREETING=hi",
      "HOME=/home/test",
      "LANG=C.UTF-8",
      `PATH=${BASE_PATH}`,
    ]);
  } finally {
    Deno.env.delete("GO_SCHEDULE_TEST_WORKER_SECRET");
  }
});

Deno.test("a task's env may override PATH (used to find the command) but not its own ids", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/hello-tool`, "#!/bin/sh\necho tool $GO_SCHEDULE_TASK_ID\n");
    await Deno.chmod(`${dir}/hello-tool`, 0o755);
    const result = await run("hello-tool", [], {
      env: { PATH: `${dir}:/usr/bin:/bin`, GO_SCHEDULE_TASK_ID: "forged", HOME: "/elsewhere" },
    });
    assert.equal(result.output.stdout, "tool t-1\n");
    const home = await run("sh", ["-c", 'echo "$HOME"'], { env: { HOME: "/elsewhere" } });
    assert.equal(home.output.stdout, "/elsewhere\n");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("HOME defaults to the worker's own HOME", async () => {
  const result = await createProcessExecutor({ outputLimit: 1024, workerId: "w" })
    .start(spec("sh", ["-c", 'echo "$HOME"'])).result;
  assert.equal(result.output.stdout, `${Deno.env.get("HOME") || "/"}\n`);
});

Deno.test("a task runs in its cwd, or in / without one", async () => {
  const dir = await Deno.realPath(await Deno.makeTempDir());
  try {
    const inDir = await run("pwd", [], { cwd: dir });
    assert.equal(inDir.output.stdout, `${dir}\n`);
    const inRoot = await run("pwd", [], { cwd: "" });
    assert.equal(inRoot.output.stdout, "/\n");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a bad cwd is a start failure that says what is wrong with it", async () => {
  const file = await Deno.makeTempFile();
  try {
    const cases: [string, string][] = [
      ["/no/such/dir-here", 'no such working directory "/no/such/dir-here"'],
      [file, `working directory "${file}" is not a directory`],
      [`${file}/below`, `no such working directory "${file}/below"`],
      ["relative/dir", 'working directory "relative/dir" is not an absolute path'],
    ];
    for (const [cwd, error] of cases) {
      const result = await run("true", [], { cwd });
      assert.deepEqual(result.outcome, { kind: "start_failed", error }, cwd);
    }
    // A missing command in a good cwd is still reported as a missing command.
    const missing = await run("no-such-command-here", [], { cwd: "/tmp" });
    assert.deepEqual(missing.outcome, {
      kind: "start_failed",
      error: '"no-such-command-here": no such file or directory',
    });
  } finally {
    await Deno.remove(file);
  }
});

Deno.test("output reaches the sinks byte for byte, binary data and long lines included", async () => {
  const stdout = new RecordingSink();
  const stderr = new RecordingSink();
  const result = await executor().start(
    spec("sh", [
      "-c",
      "printf '\\000\\001\\377\\376\\r\\n'; head -c 300000 /dev/zero | tr '\\0' y; echo e >&2",
    ]),
    { stdout, stderr },
  ).result;
  assert.deepEqual(result.outcome, { kind: "exited", exitCode: 0 });
  const bytes = stdout.bytes();
  assert.deepEqual([...bytes.subarray(0, 6)], [0, 1, 0xff, 0xfe, 0x0d, 0x0a]);
  assert.equal(bytes.length, 6 + 300000);
  assert.ok(bytes.subarray(6).every((b) => b === 0x79));
  assert.equal(stderr.text(), "e\n");
});

Deno.test("a timeout stops the task with SIGTERM and reports deadline exceeded", async () => {
  const fake = createClock(0);
  const { running, pgid } = await startShell("exec sleep 60", { timeoutMs: 30_000 }, fake);
  try {
    fake.tick(29_999);
    await delay(50);
    assert.deepEqual(await groupMembers(pgid), [pgid], "still running before the deadline");
    fake.tick(1);
    const result = await running.result;
    assert.deepEqual(result.outcome, { kind: "exited", exitCode: 143, signal: "SIGTERM" });
    assert.equal(result.termination, "deadline_exceeded");
    assert.equal(result.finishedAt - result.startedAt, 30_000);
  } finally {
    killGroup(pgid);
  }
});

Deno.test("a task that ignores SIGTERM gets SIGKILL after its kill timeout", async () => {
  const fake = createClock(0);
  const { running, pgid } = await startShell(
    'trap "" TERM; echo ready; sleep 60',
    { timeoutMs: 1_000, killTimeoutMs: 3_000 },
    fake,
    "ready",
  );
  try {
    fake.tick(1_000);
    await delay(100);
    assert.equal((await groupMembers(pgid)).length, 2, "sh and sleep ignore SIGTERM");
    fake.tick(2_999);
    await delay(50);
    assert.equal((await groupMembers(pgid)).length, 2, "no SIGKILL before the grace is over");
    fake.tick(1);
    const result = await running.result;
    assert.deepEqual(result.outcome, { kind: "exited", exitCode: 137, signal: "SIGKILL" });
    assert.equal(result.termination, "deadline_exceeded");
    // SIGKILL is delivered asynchronously; the sleep is gone a moment after sh.
    await eventually(async () => (await groupMembers(pgid)).length === 0, "the group gone");
  } finally {
    killGroup(pgid);
  }
});

Deno.test("the kill timeout is 10 s when the task sets none", async () => {
  const fake = createClock(0);
  const { running, pgid } = await startShell(
    'trap "" TERM; echo ready; sleep 60',
    {},
    fake,
    "ready",
  );
  try {
    running.stop("cancelled");
    fake.tick(DEFAULT_KILL_TIMEOUT_MS - 1);
    await delay(100);
    assert.equal((await groupMembers(pgid)).length, 2);
    fake.tick(1);
    const result = await running.result;
    assert.equal(result.outcome.kind === "exited" && result.outcome.signal, "SIGKILL");
    assert.equal(result.termination, "cancelled");
  } finally {
    killGroup(pgid);
  }
});

Deno.test("stopping a task stops its whole process group", async () => {
  const { running, pgid } = await startShell("sleep 100 & sleep 100");
  try {
    await eventually(async () => (await groupMembers(pgid)).length === 3, "sh and two sleeps");
    running.stop("cancelled");
    running.stop("worker_stopping"); // The first reason stays.
    const result = await running.result;
    assert.deepEqual(result.outcome, { kind: "exited", exitCode: 143, signal: "SIGTERM" });
    assert.equal(result.termination, "cancelled");
    await eventually(async () => (await groupMembers(pgid)).length === 0, "both sleeps gone");
  } finally {
    killGroup(pgid);
  }
});

Deno.test("what a task leaves running in the background is killed when it ends", async () => {
  const { running, pgid } = await startShell("sleep 100 & echo started");
  try {
    // The background sleep holds the output pipes: without the group kill this would hang.
    const result = await running.result;
    assert.deepEqual(result.outcome, { kind: "exited", exitCode: 0 });
    assert.equal(result.termination, undefined);
    assert.match(result.output.stdout, /started\n$/);
    await eventually(async () => (await groupMembers(pgid)).length === 0, "the sleep gone");
  } finally {
    killGroup(pgid);
  }
});

Deno.test("a process that left the group cannot keep the task from ending", async () => {
  const fake = createClock(0);
  const { running, pgid, stdout } = await startShell(
    "setsid sleep 30 & echo escaped $!; sleep 0.3",
    {},
    fake,
  );
  let settled = false;
  running.result.finally(() => settled = true);
  let escaped: number | undefined;
  try {
    await stdout.waitFor("escaped ");
    await eventually(() => /escaped \d+\n/.test(stdout.text()), "the escaped pid");
    escaped = Number(/escaped (\d+)/.exec(stdout.text())![1]);
    await eventually(async () => (await groupMembers(pgid)).length === 0, "the group gone");
    await delay(100);
    assert.equal(settled, false, "the escaped sleep holds the pipes");
    // The grace starts once the main process has ended; tick until the result is in.
    await eventually(() => {
      fake.tick(PIPE_CLOSE_GRACE_MS);
      return settled;
    }, "the result");
    const result = await running.result;
    assert.deepEqual(result.outcome, { kind: "exited", exitCode: 0 });
  } finally {
    killGroup(pgid);
    if (escaped) killGroup(escaped);
  }
});

Deno.test("a stop after the process ended changes nothing", async () => {
  const running = executor().start(spec("true", []));
  const result = await running.result;
  running.stop("cancelled");
  assert.equal(result.termination, undefined);
});
