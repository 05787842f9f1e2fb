import assert from "node:assert/strict";
import { InputError } from "./errors.ts";
import { parseTasksFile } from "./tasks_file.ts";

function refusal(text: string): string {
  try {
    parseTasksFile(text, "tasks.yaml");
  } catch (e) {
    assert.ok(e instanceof InputError, `not an InputError: ${e}`);
    return e.message;
  }
  assert.fail(`accepted:\n${text}`);
}

Deno.test("parseTasksFile reads cmd and params, params defaulting to none", () => {
  const specs = parseTasksFile(
    `tasks:
  - cmd: sleep
    params: ["30"]
  - cmd: ls
    params: [-la, /tmp]
  - {cmd: date}
`,
    "tasks.yaml",
  );
  assert.deepEqual(specs, [
    { cmd: "sleep", params: ["30"] },
    { cmd: "ls", params: ["-la", "/tmp"] },
    { cmd: "date", params: [] },
  ]);
});

Deno.test("parseTasksFile takes scalars exactly as written, never as reformatted numbers", () => {
  const specs = parseTasksFile(
    `tasks:\n  - cmd: echo\n    params: [30, 007, 1.50, 1e3, 0x10, true, null, ~, "", 'a b']\n`,
    "tasks.yaml",
  );
  assert.deepEqual(specs[0].params, [
    "30",
    "007",
    "1.50",
    "1e3",
    "0x10",
    "true",
    "null",
    "~",
    "",
    "a b",
  ]);
});

Deno.test("parseTasksFile refuses a file that is not YAML", () => {
  assert.equal(
    refusal("tasks: [\n"),
    "tasks.yaml: not valid YAML: Flow sequence in block collection must be sufficiently indented and end with a ] at line 2, column 1",
  );
  assert.match(
    refusal("tasks: []\ntasks: []\n"),
    /^tasks\.yaml: not valid YAML: Map keys must be unique/,
  );
});

Deno.test("parseTasksFile refuses a file without a tasks list", () => {
  const example = `e.g. tasks: [{cmd: sleep, params: ["30"]}]`;
  assert.equal(refusal(""), `tasks.yaml: no tasks: the file is empty; ${example}`);
  assert.equal(
    refusal("# only a comment\n"),
    `tasks.yaml: no tasks: the file is empty; ${example}`,
  );
  assert.equal(
    refusal("- cmd: ls\n"),
    `tasks.yaml: expected a mapping with a "tasks" list at the top, not a list; ${example}`,
  );
  assert.equal(
    refusal("just text\n"),
    `tasks.yaml: expected a mapping with a "tasks" list at the top, not text; ${example}`,
  );
  assert.equal(
    refusal("{}\n"),
    `tasks.yaml: tasks is required: expected a list of tasks, ${example}`,
  );
  assert.equal(
    refusal("tasks:\n  cmd: ls\n"),
    `tasks.yaml: tasks must be a list of tasks, not a mapping, ${example}`,
  );
  assert.equal(refusal("tasks: []\n"), "tasks.yaml: tasks is empty: nothing to schedule");
  assert.equal(
    refusal("taks:\n  - cmd: ls\n"),
    `tasks.yaml: unknown key "taks" (the file has one key: tasks)`,
  );
});

Deno.test("parseTasksFile names the entry without a cmd, or with an empty one", () => {
  const file = `tasks:
  - cmd: sleep
    params: ["1"]
  - cmd: sleep
    params: ["2"]
  - params: ["3"]
`;
  assert.equal(refusal(file), "tasks.yaml: task 3: cmd is required");
  assert.equal(refusal(`tasks:\n  - cmd: ""\n`), "tasks.yaml: task 1: cmd is empty");
  assert.equal(refusal(`tasks:\n  - cmd:\n`), "tasks.yaml: task 1: cmd is empty");
  assert.equal(
    refusal(`tasks:\n  - cmd: [ls]\n`),
    "tasks.yaml: task 1: cmd must be text, not a list",
  );
});

Deno.test("parseTasksFile names the entry whose params are not a list of texts", () => {
  assert.equal(
    refusal(`tasks:\n  - cmd: ls\n    params: -la\n`),
    `tasks.yaml: task 1: params must be a list of texts, not text, e.g. params: ["-la", "/tmp"]`,
  );
  assert.equal(
    refusal(`tasks:\n  - cmd: ls\n    params: {a: b}\n`),
    `tasks.yaml: task 1: params must be a list of texts, not a mapping, e.g. params: ["-la", "/tmp"]`,
  );
  assert.equal(
    refusal(`tasks:\n  - cmd: ls\n  - cmd: ls\n    params: [-la, [a, b], {c: d}]\n`),
    "tasks.yaml: task 2: params item 2 must be text, not a list\n" +
      "tasks.yaml: task 2: params item 3 must be text, not a mapping",
  );
});

Deno.test("parseTasksFile names the entry with an unknown key, and an entry that is not a mapping", () => {
  assert.equal(
    refusal(`tasks:\n  - cmd: ls\n    parms: [-la]\n`),
    `tasks.yaml: task 1: unknown key "parms" (a task has cmd, params, env, cwd, timeout, kill_timeout, retries, retry_backoff, retry_on_failure, cpu, memory, labels, worker, priority, schedule_timeout and queue)`,
  );
  assert.equal(
    refusal(`tasks:\n  - cmd: ls\n  - ls -la\n`),
    "tasks.yaml: task 2: expected a mapping with cmd and params, not text",
  );
});

Deno.test("parseTasksFile reports every bad entry, up to ten, and counts the rest", () => {
  const entries = Array.from({ length: 13 }, () => "  - params: []\n").join("");
  const lines = refusal(`tasks:\n${entries}`).split("\n");
  assert.equal(lines.length, 11);
  assert.equal(lines[0], "tasks.yaml: task 1: cmd is required");
  assert.equal(lines[9], "tasks.yaml: task 10: cmd is required");
  assert.equal(lines[10], "tasks.yaml: ... and 3 more problems");
});

Deno.test("parseTasksFile reads env, cwd, timeout and kill_timeout as written", () => {
  const [spec, plain] = parseTasksFile(
    `tasks:
  - cmd: sh
    params: [-c, 'echo $GREETING']
    env:
      GREETING: hi there
      N: 007
      EMPTY:
      URL: "http://x/?a=b"
    cwd: /srv/app
    timeout: 1m30s
    kill_timeout: 0s
  - cmd: date
`,
    "tasks.yaml",
  );
  assert.deepEqual(spec.env, { GREETING: "hi there", N: "007", EMPTY: "", URL: "http://x/?a=b" });
  assert.equal(spec.cwd, "/srv/app");
  assert.deepEqual([spec.timeout?.seconds, spec.timeout?.nanos], [90n, 0]);
  assert.deepEqual([spec.killTimeout?.seconds, spec.killTimeout?.nanos], [0n, 0]);
  assert.deepEqual(plain, { cmd: "date", params: [] }, "fields not given stay unset");
});

Deno.test("parseTasksFile names each bad env, cwd and timeout with its entry", () => {
  const duration = "use a number with a unit (ms, s, m, h), e.g. 500ms, 5s, 2m";
  assert.equal(
    refusal(`tasks:
  - cmd: a
    env: [A=1]
  - cmd: b
    env: {A: [1], "": x}
    cwd: tmp
  - cmd: c
    timeout: -5s
    kill_timeout: soon
  - cmd: d
    timeout: 0s
    cwd: {x: 1}
`),
    [
      `tasks.yaml: task 1: env must be a mapping of names to texts, not a list, e.g. env: {GREETING: hi}`,
      `tasks.yaml: task 2: env A must be text, not a list`,
      `tasks.yaml: task 2: env: the name is empty`,
      `tasks.yaml: task 2: cwd: "tmp" is not an absolute path: it must start with /`,
      `tasks.yaml: task 3: timeout: invalid duration "-5s" (durations cannot be negative): ${duration}`,
      `tasks.yaml: task 3: kill_timeout: invalid duration "soon": ${duration}`,
      `tasks.yaml: task 4: cwd must be text, not a mapping`,
      `tasks.yaml: task 4: timeout: "0s" must be longer than 0 (leave it out for no deadline)`,
    ].join("\n"),
  );
});

Deno.test("parseTasksFile reads retries, retry_backoff and retry_on_failure as written", () => {
  const [full, zero, off, plain] = parseTasksFile(
    `tasks:
  - cmd: make
    retries: 3
    retry_backoff: 1m30s
    retry_on_failure: true
  - cmd: make
    retries: 000
    retry_backoff: 0s
    retry_on_failure: TRUE
  - cmd: make
    retries: "100"
    retry_on_failure: False
  - cmd: date
    retry_on_failure: false
`,
    "tasks.yaml",
  );
  assert.equal(full.retries, 3);
  assert.deepEqual([full.retryBackoff?.seconds, full.retryBackoff?.nanos], [90n, 0]);
  assert.equal(full.retryOnFailure, true);
  assert.deepEqual([zero.retries, zero.retryBackoff?.seconds, zero.retryOnFailure], [0, 0n, true]);
  assert.deepEqual([off.retries, off.retryBackoff, off.retryOnFailure], [100, undefined, false]);
  assert.deepEqual(
    plain,
    { cmd: "date", params: [], retryOnFailure: false },
    "retry_on_failure: false needs no retries",
  );
});

Deno.test("parseTasksFile names each bad retry setting with its entry", () => {
  const duration = "use a number with a unit (ms, s, m, h), e.g. 500ms, 5s, 2m";
  const whole = "is not a whole number from 0 to 100, e.g. 3";
  assert.equal(
    refusal(`tasks:
  - cmd: a
    retries: -1
  - cmd: b
    retries: 101
  - cmd: c
    retries: three
    retry_backoff: -1s
    retry_on_failure: yes
  - cmd: d
    retries: [1]
    retry_backoff: {a: 1}
    retry_on_failure: [true]
  - cmd: e
    retries:
  - cmd: f
    retries: 1.5
    retry_backoff: soon
  - cmd: g
    retry_backoff: 2s
  - cmd: h
    retry_on_failure: true
  - cmd: i
    retry_backoff: 2s
    retry_on_failure: true
`),
    [
      `tasks.yaml: task 1: retries: "-1" ${whole}`,
      `tasks.yaml: task 2: retries: "101" is more than the maximum of 100 (the manager refuses more)`,
      `tasks.yaml: task 3: retries: "three" ${whole}`,
      `tasks.yaml: task 3: retry_backoff: invalid duration "-1s" (durations cannot be negative): ${duration}`,
      `tasks.yaml: task 3: retry_on_failure: "yes" is not true or false`,
      `tasks.yaml: task 4: retries must be text, not a list`,
      `tasks.yaml: task 4: retry_backoff must be text, not a mapping`,
      `tasks.yaml: task 4: retry_on_failure must be text, not a list`,
      `tasks.yaml: task 5: retries: "" ${whole}`,
      `tasks.yaml: task 6: retries: "1.5" ${whole}`,
      `tasks.yaml: ... and 4 more problems`,
    ].join("\n"),
  );
  assert.equal(
    refusal(`tasks:
  - cmd: f
    retries: 1.5
    retry_backoff: soon
  - cmd: g
    retry_backoff: 2s
  - cmd: h
    retry_on_failure: true
  - cmd: i
    retry_backoff: 2s
    retry_on_failure: true
`),
    [
      `tasks.yaml: task 1: retries: "1.5" ${whole}`,
      `tasks.yaml: task 1: retry_backoff: invalid duration "soon": ${duration}`,
      `tasks.yaml: task 2: retry_backoff only applies with retries (how many times to retry), e.g. retries: 3`,
      `tasks.yaml: task 3: retry_on_failure only applies with retries (how many times to retry), e.g. retries: 3`,
      `tasks.yaml: task 4: retry_backoff and retry_on_failure only apply with retries (how many times to retry), e.g. retries: 3`,
    ].join("\n"),
  );
});
