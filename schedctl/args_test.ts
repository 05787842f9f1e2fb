import assert from "node:assert/strict";
import { parseCommandArgs, parseGlobalOptions } from "./args.ts";
import { UsageError } from "./errors.ts";
import { createFakeManager, runCli } from "./test_util.ts";

Deno.test("parseGlobalOptions reads the options before the target and stops there", () => {
  assert.deepEqual(parseGlobalOptions(["-c", "x.yaml", "-v", "-o", "json", "tasks", "ls", "-v"]), {
    configPath: "x.yaml",
    verbose: true,
    output: "json",
    help: false,
    rest: ["tasks", "ls", "-v"],
  });
  assert.deepEqual(parseGlobalOptions(["tasks", "ls"]), {
    verbose: false,
    output: "table",
    help: false,
    rest: ["tasks", "ls"],
  });
});

Deno.test("parseGlobalOptions accepts the long and attached spellings", () => {
  const a = parseGlobalOptions(["--config=a.yaml", "--output", "json", "--verbose", "workers"]);
  assert.equal(a.configPath, "a.yaml");
  assert.equal(a.output, "json");
  assert.equal(a.verbose, true);
  const b = parseGlobalOptions(["-cb.yaml", "-ojson", "workers"]);
  assert.equal(b.configPath, "b.yaml");
  assert.equal(b.output, "json");
  assert.equal(parseGlobalOptions(["--", "-weird"]).rest[0], "-weird");
  assert.equal(parseGlobalOptions(["-h"]).help, true);
  assert.equal(parseGlobalOptions(["--help"]).help, true);
});

Deno.test("parseGlobalOptions names a bad option or value", () => {
  const cases: Array<[string[], string]> = [
    [["-x", "tasks"], `unknown option "-x"; see 'schedctl help'`],
    [["--bogus=1"], `unknown option "--bogus=1"; see 'schedctl help'`],
    [
      ["-o", "yaml", "tasks"],
      `unknown output format "yaml": use table or json; see 'schedctl help'`,
    ],
    [["-c"], `option -c needs a file name; see 'schedctl help'`],
    [["-o"], `option -o needs a format (table or json); see 'schedctl help'`],
    [["--config="], `option --config needs a file name; see 'schedctl help'`],
    [["--verbose=yes"], `option --verbose takes no value; see 'schedctl help'`],
  ];
  for (const [argv, message] of cases) {
    assert.throws(() => parseGlobalOptions(argv), (e) => {
      assert.ok(e instanceof UsageError, argv.join(" "));
      assert.equal(e.message, message);
      return true;
    });
  }
});

Deno.test("parseCommandArgs reads flags, values in both spellings, and positionals", () => {
  const specs = [
    { names: ["--limit"], takesValue: true },
    { names: ["--all"], takesValue: false },
    { names: ["--file", "-f"], takesValue: true },
  ];
  const parsed = parseCommandArgs(
    ["--limit=5", "a", "-f", "-", "--all", "--", "--x"],
    specs,
    "t c",
    "t",
  );
  assert.deepEqual([...parsed.options], [["--limit", "5"], ["--file", "-"], ["--all", true]]);
  assert.deepEqual(parsed.positionals, ["a", "--x"]);
  assert.equal(parsed.help, false);
  assert.equal(parseCommandArgs(["--help"], specs, "t c", "t").help, true);
});

Deno.test("parseCommandArgs names the bad option, and points at the target's help", () => {
  const specs = [{ names: ["--limit"], takesValue: true, valueHint: "a number" }];
  const cases: Array<[string[], string]> = [
    [["--bogus"], `tasks ls: unknown option "--bogus"; see 'schedctl tasks help'`],
    [["--limit"], `tasks ls: option --limit needs a number; see 'schedctl tasks help'`],
    [
      ["--limit", "1", "--limit", "2"],
      `tasks ls: option --limit is given twice; see 'schedctl tasks help'`,
    ],
    [
      ["-o", "json"],
      `tasks ls: -o is a global option and goes before the target: 'schedctl -o json tasks ls ...'; see 'schedctl tasks help'`,
    ],
  ];
  for (const [argv, message] of cases) {
    assert.throws(() => parseCommandArgs(argv, specs, "tasks ls", "tasks"), { message });
  }
});

Deno.test("tasks add passes everything after CMD verbatim, with or without --", async () => {
  const cases: Array<[string[], { cmd: string; params: string[] }]> = [
    [["tasks", "add", "ls", "-la"], { cmd: "ls", params: ["-la"] }],
    [["tasks", "add", "--", "ls", "-la", "--", "-v"], { cmd: "ls", params: ["-la", "--", "-v"] }],
    [["tasks", "add", "--", "-weird"], { cmd: "-weird", params: [] }],
    [["tasks", "add", "grep", "-c", "x", "-o", "json"], {
      cmd: "grep",
      params: ["-c", "x", "-o", "json"],
    }],
    [["tasks", "add", "sh", "-c", "echo 'a b'"], { cmd: "sh", params: ["-c", "echo 'a b'"] }],
  ];
  for (const [argv, spec] of cases) {
    const fake = createFakeManager();
    const r = await runCli(argv, { transport: fake.transport });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "t-0001\n");
    const request = fake.calls[0].request as { tasks: Array<{ cmd: string; params: string[] }> };
    assert.deepEqual(
      request.tasks.map((t) => ({ cmd: t.cmd, params: t.params })),
      [spec],
      argv.join(" "),
    );
  }
});

Deno.test("usage errors name the bad value, point at the help, exit 2 and send nothing", async () => {
  const cases: Array<[string[], string]> = [
    [["-x", "tasks", "ls"], `schedctl: unknown option "-x"; see 'schedctl help'\n`],
    [["bogus", "ls"], `schedctl: unknown target "bogus"; see 'schedctl help'\n`],
    [
      ["task", "ls"],
      `schedctl: unknown target "task" (did you mean tasks?); see 'schedctl help'\n`,
    ],
    [["tasks"], `schedctl: tasks: missing command; see 'schedctl tasks help'\n`],
    [["tasks", "list"], `schedctl: tasks: unknown command "list"; see 'schedctl tasks help'\n`],
    [
      ["workers", "purge"],
      `schedctl: workers: unknown command "purge"; see 'schedctl workers help'\n`,
    ],
    [
      ["workers", "ls", "x"],
      `schedctl: workers ls: unexpected argument "x"; see 'schedctl workers help'\n`,
    ],
    [
      ["tasks", "ls", "--bogus"],
      `schedctl: tasks ls: unknown option "--bogus"; see 'schedctl tasks help'\n`,
    ],
    [
      ["tasks", "ls", "--state", "running"],
      `schedctl: tasks ls: unknown state "running": use pending, scheduled, done or dead; see 'schedctl tasks help'\n`,
    ],
    [
      ["tasks", "ls", "--limit", "0"],
      `schedctl: tasks ls: --limit "0" is not a whole number above 0; see 'schedctl tasks help'\n`,
    ],
    [
      ["tasks", "ls", "--limit", "ten"],
      `schedctl: tasks ls: --limit "ten" is not a whole number above 0; see 'schedctl tasks help'\n`,
    ],
    [
      ["tasks", "ls", "--all", "--limit", "5"],
      `schedctl: tasks ls: --all and --limit cannot be used together; see 'schedctl tasks help'\n`,
    ],
    [["tasks", "get"], `schedctl: tasks get: missing the task ID; see 'schedctl tasks help'\n`],
    [
      ["tasks", "get", "a", "b"],
      `schedctl: tasks get: unexpected argument "b" (one ID at a time); see 'schedctl tasks help'\n`,
    ],
    [
      ["tasks", "schedule"],
      `schedctl: tasks schedule: missing -f FILE; see 'schedctl tasks help'\n`,
    ],
    [
      ["tasks", "schedule", "t.yaml"],
      `schedctl: tasks schedule: unexpected argument "t.yaml" (the file goes after -f); see 'schedctl tasks help'\n`,
    ],
    [["tasks", "add"], `schedctl: tasks add: missing CMD; see 'schedctl tasks help'\n`],
    [["tasks", "add", "--"], `schedctl: tasks add: missing CMD; see 'schedctl tasks help'\n`],
    [["tasks", "add", ""], `schedctl: tasks add: CMD is empty; see 'schedctl tasks help'\n`],
    [
      ["tasks", "add", "-x", "ls"],
      `schedctl: tasks add: unknown option "-x" (to run a command starting with '-', put '--' before it); see 'schedctl tasks help'\n`,
    ],
    [
      ["tasks", "ls", "-o", "json"],
      `schedctl: tasks ls: -o is a global option and goes before the target: 'schedctl -o json tasks ls ...'; see 'schedctl tasks help'\n`,
    ],
    [
      ["tasks", "get", "a\nb", "c\x1b"],
      `schedctl: tasks get: unexpected argument "c\\x1b" (one ID at a time); see 'schedctl tasks help'\n`,
    ],
  ];
  for (const [argv, stderr] of cases) {
    const fake = createFakeManager();
    const r = await runCli(argv, { transport: fake.transport });
    assert.deepEqual(r, { code: 2, stdout: "", stderr }, argv.join(" "));
    assert.deepEqual(fake.calls, []);
  }
});

Deno.test("parseCommandArgs collects a repeatable option, and can stop at the first positional", () => {
  const specs = [
    { names: ["--env"], takesValue: true, repeatable: true },
    { names: ["--wait"], takesValue: false },
  ];
  const parsed = parseCommandArgs(
    ["--env", "A=1", "--env=B=2", "cmd", "--wait", "--env", "C=3"],
    specs,
    "tasks add",
    "tasks",
    { stopAtPositional: true },
  );
  assert.deepEqual(parsed.repeated.get("--env"), ["A=1", "B=2"]);
  assert.equal(parsed.options.has("--wait"), false);
  assert.deepEqual(parsed.positionals, ["cmd", "--wait", "--env", "C=3"]);
  const all = parseCommandArgs(["a", "--wait", "b"], specs, "t c", "t");
  assert.deepEqual([all.positionals, all.options.get("--wait")], [["a", "b"], true]);
  assert.throws(
    () => parseCommandArgs(["--wait", "--wait"], specs, "t c", "t"),
    { message: "t c: option --wait is given twice; see 'schedctl t help'" },
  );
  assert.throws(
    () => parseCommandArgs(["-x"], specs, "tasks add", "tasks", { unknownOptionHint: "(hint)" }),
    { message: `tasks add: unknown option "-x" (hint); see 'schedctl tasks help'` },
  );
});
