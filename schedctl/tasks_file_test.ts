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
    `tasks.yaml: task 1: unknown key "parms" (a task has cmd and params)`,
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
