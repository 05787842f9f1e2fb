import assert from "node:assert/strict";
import type { TaskSpec } from "../shared/gen/goschedule/v1/goschedule_pb.ts";
import { createFakeManager, runCli } from "./test_util.ts";

function sentSpec(fake: ReturnType<typeof createFakeManager>): TaskSpec {
  return (fake.calls[0].request as { tasks: TaskSpec[] }).tasks[0];
}

Deno.test("tasks add sends --env, --cwd, --timeout and --kill-timeout with the task", async () => {
  const fake = createFakeManager();
  const r = await runCli([
    "tasks",
    "add",
    "--env",
    "GREETING=hi",
    "--env=URL=http://x/?a=b",
    "--env",
    "EMPTY=",
    "--env",
    "GREETING=hello",
    "--cwd",
    "/tmp",
    "--timeout",
    "1m30s",
    "--kill-timeout=500ms",
    "--",
    "sh",
    "-c",
    "echo $GREETING; pwd",
  ], { transport: fake.transport });
  assert.deepEqual(r, { code: 0, stdout: "t-0001\n", stderr: "" });
  const spec = sentSpec(fake);
  assert.equal(spec.cmd, "sh");
  assert.deepEqual(spec.params, ["-c", "echo $GREETING; pwd"]);
  assert.deepEqual(spec.env, { GREETING: "hello", URL: "http://x/?a=b", EMPTY: "" });
  assert.equal(spec.cwd, "/tmp");
  assert.deepEqual([spec.timeout?.seconds, spec.timeout?.nanos], [90n, 0]);
  assert.deepEqual([spec.killTimeout?.seconds, spec.killTimeout?.nanos], [0n, 500_000_000]);
});

Deno.test("tasks add without the new options leaves them unset", async () => {
  const fake = createFakeManager();
  const r = await runCli(["tasks", "add", "date"], { transport: fake.transport });
  assert.equal(r.code, 0);
  const spec = sentSpec(fake);
  assert.deepEqual(spec.env, {});
  assert.equal(spec.cwd, "");
  assert.equal(spec.timeout, undefined);
  assert.equal(spec.killTimeout, undefined);
});

Deno.test("tasks add: options after CMD belong to the task", async () => {
  const fake = createFakeManager();
  const r = await runCli(["tasks", "add", "--cwd", "/", "env", "--env", "A=1", "--wait"], {
    transport: fake.transport,
  });
  assert.deepEqual(r, { code: 0, stdout: "t-0001\n", stderr: "" }, "--wait after CMD is not ours");
  const spec = sentSpec(fake);
  assert.deepEqual([spec.cmd, spec.params, spec.env], ["env", ["--env", "A=1", "--wait"], {}]);
});

Deno.test("bad --env, --cwd and timeouts are refused naming the value, exit 2, nothing sent", async () => {
  const duration = "use a number with a unit (ms, s, m, h), e.g. 500ms, 5s, 2m";
  const cases: Array<[string[], string]> = [
    [["--env", "FOO"], `tasks add: --env: "FOO" is not KEY=VALUE`],
    [["--env", "=x"], `tasks add: --env: "=x" has an empty name before "="`],
    [["--env", "A=1", "--env", "B"], `tasks add: --env: "B" is not KEY=VALUE`],
    [["--env", "A=a\0b"], `tasks add: --env: the value of A contains a NUL byte`],
    [["--env"], `tasks add: --env: "date" is not KEY=VALUE`],
    [["--cwd", "tmp"], `tasks add: --cwd: "tmp" is not an absolute path: it must start with /`],
    [["--cwd", ""], `tasks add: --cwd: "" is not an absolute path: it must start with /`],
    [["--cwd", "/a", "--cwd", "/b"], `tasks add: option --cwd is given twice`],
    [
      ["--timeout", "-5s"],
      `tasks add: --timeout: invalid duration "-5s" (durations cannot be negative): ${duration}`,
    ],
    [["--timeout", "soon"], `tasks add: --timeout: invalid duration "soon": ${duration}`],
    [["--timeout", "30"], `tasks add: --timeout: invalid duration "30": ${duration}`],
    [
      ["--timeout", "0s"],
      `tasks add: --timeout: "0s" must be longer than 0 (leave it out for no deadline)`,
    ],
    [
      ["--kill-timeout", "-1s"],
      `tasks add: --kill-timeout: invalid duration "-1s" (durations cannot be negative): ${duration}`,
    ],
    [
      ["--detach-on-interrupt"],
      `tasks add: --detach-on-interrupt only applies with --wait`,
    ],
    [
      ["--wait=yes"],
      `tasks add: option --wait takes no value`,
    ],
  ];
  for (const [options, message] of cases) {
    const fake = createFakeManager();
    // "date" is the CMD, except after --env without a value, whose value it becomes.
    const argv = ["tasks", "add", ...options, "date"];
    const r = await runCli(argv, { transport: fake.transport });
    assert.deepEqual(
      r,
      { code: 2, stdout: "", stderr: `schedctl: ${message}; see 'schedctl tasks help'\n` },
      argv.join(" "),
    );
    assert.deepEqual(fake.calls, [], "nothing sent");
  }
});

Deno.test("tasks add with an option missing its value at the end says so", async () => {
  const fake = createFakeManager();
  const r = await runCli(["tasks", "add", "--timeout"], { transport: fake.transport });
  assert.deepEqual(r, {
    code: 2,
    stdout: "",
    stderr:
      "schedctl: tasks add: option --timeout needs a duration, e.g. 30s; see 'schedctl tasks help'\n",
  });
  assert.deepEqual(fake.calls, []);
});

Deno.test("tasks schedule refuses --detach-on-interrupt without --wait", async () => {
  const fake = createFakeManager();
  const r = await runCli(["tasks", "schedule", "--detach-on-interrupt", "-f", "-"], {
    transport: fake.transport,
    stdin: "tasks: [{cmd: date}]\n",
  });
  assert.deepEqual(r, {
    code: 2,
    stdout: "",
    stderr:
      "schedctl: tasks schedule: --detach-on-interrupt only applies with --wait; see 'schedctl tasks help'\n",
  });
  assert.deepEqual(fake.calls, []);
});

Deno.test("tasks schedule sends env, cwd, timeout and kill_timeout from the file", async () => {
  const fake = createFakeManager();
  const r = await runCli(["tasks", "schedule", "-f", "-"], {
    transport: fake.transport,
    stdin: `tasks:
  - cmd: sh
    params: [-c, 'echo $GREETING; pwd']
    env: {GREETING: hi, N: 007}
    cwd: /tmp
    timeout: 30s
    kill_timeout: 2s
  - cmd: date
`,
  });
  assert.deepEqual(r, { code: 0, stdout: "t-0001\nt-0002\n", stderr: "" });
  const [first, second] = (fake.calls[0].request as { tasks: TaskSpec[] }).tasks;
  assert.deepEqual(first.env, { GREETING: "hi", N: "007" });
  assert.equal(first.cwd, "/tmp");
  assert.equal(first.timeout?.seconds, 30n);
  assert.equal(first.killTimeout?.seconds, 2n);
  assert.deepEqual([second.env, second.cwd, second.timeout], [{}, "", undefined]);
});

Deno.test("tasks add sends --retries, --retry-backoff and --retry-on-failure", async () => {
  const fake = createFakeManager();
  const r = await runCli(
    ["tasks", "add", "--retries", "3", "--retry-backoff=500ms", "--retry-on-failure", "make"],
    { transport: fake.transport },
  );
  assert.deepEqual(r, { code: 0, stdout: "t-0001\n", stderr: "" });
  const spec = sentSpec(fake);
  assert.equal(spec.retries, 3);
  assert.deepEqual([spec.retryBackoff?.seconds, spec.retryBackoff?.nanos], [0n, 500_000_000]);
  assert.equal(spec.retryOnFailure, true);
  assert.equal(fake.tasks[0].retries, 3, "the created task has them too");

  const edges = createFakeManager();
  for (const argv of [["--retries", "0"], ["--retries", "100", "--retry-backoff", "0s"]]) {
    const ok = await runCli(["tasks", "add", ...argv, "date"], { transport: edges.transport });
    assert.equal(ok.code, 0, `${argv.join(" ")}: ${ok.stderr}`);
  }
  const [zero, hundred] = edges.calls.map((c) => (c.request as { tasks: TaskSpec[] }).tasks[0]);
  assert.deepEqual([zero.retries, zero.retryBackoff, zero.retryOnFailure], [0, undefined, false]);
  assert.deepEqual([hundred.retries, hundred.retryBackoff?.seconds], [100, 0n]);
});

Deno.test("tasks add without retry options leaves them unset", async () => {
  const fake = createFakeManager();
  await runCli(["tasks", "add", "date"], { transport: fake.transport });
  const spec = sentSpec(fake);
  assert.deepEqual([spec.retries, spec.retryBackoff, spec.retryOnFailure], [0, undefined, false]);
});

Deno.test("bad retry options are refused naming the value, exit 2, nothing sent", async () => {
  const duration = "use a number with a unit (ms, s, m, h), e.g. 500ms, 5s, 2m";
  const whole = "is not a whole number from 0 to 100, e.g. 3";
  const cases: Array<[string[], string]> = [
    [["--retries", "-1"], `tasks add: --retries: "-1" ${whole}`],
    [["--retries", "1.5"], `tasks add: --retries: "1.5" ${whole}`],
    [["--retries", "three"], `tasks add: --retries: "three" ${whole}`],
    [["--retries", ""], `tasks add: --retries: "" ${whole}`],
    [
      ["--retries", "101"],
      `tasks add: --retries: "101" is more than the maximum of 100 (the manager refuses more)`,
    ],
    [["--retries", "1", "--retries", "2"], `tasks add: option --retries is given twice`],
    [
      ["--retries", "1", "--retry-backoff", "-1s"],
      `tasks add: --retry-backoff: invalid duration "-1s" (durations cannot be negative): ${duration}`,
    ],
    [
      ["--retries", "1", "--retry-backoff", "5"],
      `tasks add: --retry-backoff: invalid duration "5": ${duration}`,
    ],
    [
      ["--retry-backoff", "2s"],
      `tasks add: --retry-backoff only applies with --retries (how many times to retry), e.g. --retries 3`,
    ],
    [
      ["--retry-on-failure"],
      `tasks add: --retry-on-failure only applies with --retries (how many times to retry), e.g. --retries 3`,
    ],
    [
      ["--retry-on-failure", "--retry-backoff", "2s"],
      `tasks add: --retry-backoff and --retry-on-failure only apply with --retries (how many times to retry), e.g. --retries 3`,
    ],
    [
      ["--retries", "1", "--retry-on-failure=yes"],
      `tasks add: option --retry-on-failure takes no value`,
    ],
  ];
  for (const [options, message] of cases) {
    const fake = createFakeManager();
    const argv = ["tasks", "add", ...options, "date"];
    const r = await runCli(argv, { transport: fake.transport });
    assert.deepEqual(
      r,
      { code: 2, stdout: "", stderr: `schedctl: ${message}; see 'schedctl tasks help'\n` },
      argv.join(" "),
    );
    assert.deepEqual(fake.calls, [], "nothing sent");
  }
});

Deno.test("tasks add --retries without its value at the end says what it needs", async () => {
  const fake = createFakeManager();
  const r = await runCli(["tasks", "add", "--retries"], { transport: fake.transport });
  assert.deepEqual(r, {
    code: 2,
    stdout: "",
    stderr:
      "schedctl: tasks add: option --retries needs a number from 0 to 100; see 'schedctl tasks help'\n",
  });
});

Deno.test("tasks schedule sends retries, retry_backoff and retry_on_failure from the file", async () => {
  const fake = createFakeManager();
  const r = await runCli(["tasks", "schedule", "-f", "-"], {
    transport: fake.transport,
    stdin: `tasks:
  - cmd: make
    retries: 2
    retry_backoff: 1m
    retry_on_failure: true
  - cmd: date
`,
  });
  assert.deepEqual(r, { code: 0, stdout: "t-0001\nt-0002\n", stderr: "" });
  const [first, second] = (fake.calls[0].request as { tasks: TaskSpec[] }).tasks;
  assert.deepEqual([first.retries, first.retryBackoff?.seconds, first.retryOnFailure], [
    2,
    60n,
    true,
  ]);
  assert.deepEqual([second.retries, second.retryBackoff, second.retryOnFailure], [
    0,
    undefined,
    false,
  ]);
});
