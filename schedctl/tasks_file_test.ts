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
    `tasks.yaml: task 1: unknown key "parms" (a task has cmd, params, env, cwd, timeout and kill_timeout)`,
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
