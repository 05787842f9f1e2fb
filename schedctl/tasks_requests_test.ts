/** The placement requests of a task: `tasks add` flags, the tasks file, and `tasks get`. */
import assert from "node:assert/strict";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import {
  LabelConstraint_Op,
  type TaskSpec,
  TaskState,
} from "../shared/gen/goschedule/v1/goschedule_pb.ts";
import { createFakeManager, makeTask, runCli } from "./test_util.ts";

const { EQUAL, NOT_EQUAL, EXISTS } = LabelConstraint_Op;

function sentSpecs(fake: ReturnType<typeof createFakeManager>): TaskSpec[] {
  return (fake.calls[0].request as { tasks: TaskSpec[] }).tasks;
}

/** The requests of a spec, in plain values. */
function requests(spec: TaskSpec) {
  return {
    cpu: spec.cpu,
    memoryBytes: spec.memoryBytes,
    labels: spec.labels.map((l) => [l.key, l.op, l.value]),
    workerId: spec.workerId,
    priority: spec.priority,
    scheduleTimeoutSeconds: spec.scheduleTimeout?.seconds,
    queue: spec.queue,
  };
}

const NONE = {
  cpu: 0,
  memoryBytes: 0n,
  labels: [],
  workerId: "",
  priority: 0,
  scheduleTimeoutSeconds: undefined,
  queue: false,
};

Deno.test("tasks add sends --cpu, --memory, --label, --worker, --priority, --schedule-timeout, --queue", async () => {
  const fake = createFakeManager();
  const r = await runCli([
    "tasks",
    "add",
    "--cpu",
    "0.5",
    "--memory=512MiB",
    "--label",
    "gpu=true",
    "--label",
    "zone!=b",
    "--label=ssd",
    "--label",
    "example.com/rack=r-01",
    "--label",
    "gpu=true",
    "--worker",
    "w-1",
    "--priority",
    "-5",
    "--schedule-timeout",
    "10m",
    "--queue",
    "make",
    "test",
  ], { transport: fake.transport });
  assert.deepEqual(r, { code: 0, stdout: "t-0001\n", stderr: "" });
  const [spec] = sentSpecs(fake);
  assert.deepEqual([spec.cmd, spec.params], ["make", ["test"]]);
  assert.deepEqual(requests(spec), {
    cpu: 0.5,
    memoryBytes: 512n * 1024n * 1024n,
    // The repeated gpu=true is sent once.
    labels: [
      ["gpu", EQUAL, "true"],
      ["zone", NOT_EQUAL, "b"],
      ["ssd", EXISTS, ""],
      ["example.com/rack", EQUAL, "r-01"],
    ],
    workerId: "w-1",
    priority: -5,
    scheduleTimeoutSeconds: 600n,
    queue: true,
  });
  assert.equal(fake.tasks[0].pinWorkerId, "w-1", "the created task has them too");
});

Deno.test("tasks add: the requests' edge values", async () => {
  const cases: Array<[string[], Partial<typeof NONE>]> = [
    [[], {}],
    [["--cpu", "2"], { cpu: 2 }],
    [["--cpu", ".25"], { cpu: 0.25 }],
    [["--cpu", "0.001"], { cpu: 0.001 }],
    [["--memory", "1"], { memoryBytes: 1n }],
    [["--memory", "2GB"], { memoryBytes: 2_000_000_000n }],
    [["--memory", "1.5GiB"], { memoryBytes: 1536n * 1024n * 1024n }],
    [["--priority", "0"], {}],
    [["--priority", "+3"], { priority: 3 }],
    [["--priority=-0"], {}],
    [["--priority", "2147483647"], { priority: 2147483647 }],
    [["--priority", "-2147483648"], { priority: -2147483648 }],
    [["--label", "zone="], { labels: [["zone", EQUAL, ""]] } as never],
    [["--label", "a!=b", "--label", "a!=c"], {
      labels: [["a", NOT_EQUAL, "b"], ["a", NOT_EQUAL, "c"]],
    } as never],
    [["--label", "gpu", "--label", "gpu=true"], {
      labels: [["gpu", EXISTS, ""], ["gpu", EQUAL, "true"]],
    } as never],
    [["--schedule-timeout", "1h30m"], { scheduleTimeoutSeconds: 5400n } as never],
    [["--worker", "build-01.example_x"], { workerId: "build-01.example_x" }],
  ];
  for (const [options, expected] of cases) {
    const fake = createFakeManager();
    const r = await runCli(["tasks", "add", ...options, "date"], { transport: fake.transport });
    assert.deepEqual(r, { code: 0, stdout: "t-0001\n", stderr: "" }, options.join(" "));
    assert.deepEqual(requests(sentSpecs(fake)[0]), { ...NONE, ...expected }, options.join(" "));
  }
});

const LABEL_RULE = `use 1 to 63 letters, digits, "-", "_" or ".", beginning and ending with ` +
  "a letter or digit";

/** Each bad request value, and the line that names it (after "tasks add: "). */
const BAD_FLAGS: Array<[string[], string]> = [
  [
    ["--cpu", "0"],
    `--cpu: "0" is not a number of cores above 0 (fractions allowed, e.g. 0.5 or 2)`,
  ],
  [
    ["--cpu", "-1"],
    `--cpu: "-1" is not a number of cores above 0 (fractions allowed, e.g. 0.5 or 2)`,
  ],
  [
    ["--cpu", "two"],
    `--cpu: "two" is not a number of cores above 0 (fractions allowed, e.g. 0.5 or 2)`,
  ],
  [
    ["--cpu", "1e3"],
    `--cpu: "1e3" is not a number of cores above 0 (fractions allowed, e.g. 0.5 or 2)`,
  ],
  [
    ["--cpu", "500m"],
    `--cpu: "500m" is not a number of cores above 0 (fractions allowed, e.g. 0.5 or 2)`,
  ],
  [["--cpu", ""], `--cpu: "" is not a number of cores above 0 (fractions allowed, e.g. 0.5 or 2)`],
  [
    ["--memory", "lots"],
    `--memory: invalid size "lots": use a number with an optional unit, e.g. 512MiB or 2GiB`,
  ],
  [
    ["--memory", "-1GiB"],
    `--memory: invalid size "-1GiB": use a number with an optional unit, e.g. 512MiB or 2GiB`,
  ],
  [["--memory", "0"], `--memory: "0" must be more than 0 bytes (leave it out for none)`],
  [["--memory", "0.1"], `--memory: "0.1" must be more than 0 bytes (leave it out for none)`],
  [["--memory", "99999999999GiB"], `--memory: "99999999999GiB" is too large`],
  [
    ["--label", ""],
    `--label: the expression is empty: use key=value, key!=value or key (the worker has the label)`,
  ],
  [
    ["--label", "=a"],
    `--label: "=a" has no label key: use key=value, key!=value or key (the worker has the label)`,
  ],
  [
    ["--label", "!=a"],
    `--label: "!=a" has no label key: use key=value, key!=value or key (the worker has the label)`,
  ],
  [
    ["--label", "Zone A=x"],
    `--label: "Zone A=x": the label key "Zone A" is not valid: ${LABEL_RULE} (optionally after a DNS prefix and "/", e.g. example.com/rack)`,
  ],
  [
    ["--label", "!ssd"],
    `--label: "!ssd": the label key "!ssd" is not valid: ${LABEL_RULE} (optionally after a DNS prefix and "/", e.g. example.com/rack)`,
  ],
  [
    ["--label", "Example.com/rack=1"],
    `--label: "Example.com/rack=1": the label key "Example.com/rack" has a bad prefix "Example.com": before "/" use a lowercase DNS name, e.g. example.com/rack`,
  ],
  [
    ["--label", "zone=a b"],
    `--label: "zone=a b": the value "a b" of label zone is not valid: ${LABEL_RULE}, or nothing`,
  ],
  [
    ["--label", "zone==a"],
    `--label: "zone==a": the value "=a" of label zone is not valid: ${LABEL_RULE}, or nothing`,
  ],
  [
    ["--label", "gpu=true", "--label", "gpu=false"],
    `--label: gpu=true and gpu=false cannot both hold: no worker could match`,
  ],
  [
    ["--label", "zone!=a", "--label", "zone=a"],
    `--label: zone!=a and zone=a cannot both hold: no worker could match`,
  ],
  [["--worker", ""], `--worker: the worker id is empty`],
  [
    ["--worker", "../w"],
    `--worker: "../w" is not a worker id: 1 to 63 letters, digits, ".", "_" or "-" (see 'schedctl workers ls')`,
  ],
  [["--worker", "a", "--worker", "b"], `option --worker is given twice`],
  [
    ["--priority", "high"],
    `--priority: "high" is not a whole number, e.g. 10 or -5 (higher is placed first)`,
  ],
  [
    ["--priority", "1.5"],
    `--priority: "1.5" is not a whole number, e.g. 10 or -5 (higher is placed first)`,
  ],
  [
    ["--priority", "2147483648"],
    `--priority: "2147483648" is out of range: use -2147483648 to 2147483647`,
  ],
  [
    ["--priority", "-2147483649"],
    `--priority: "-2147483649" is out of range: use -2147483648 to 2147483647`,
  ],
  [
    ["--schedule-timeout", "0s"],
    `--schedule-timeout: "0s" must be longer than 0 (leave it out for the manager's schedule_timeout)`,
  ],
  [
    ["--schedule-timeout", "10"],
    `--schedule-timeout: invalid duration "10": use a number with a unit (ms, s, m, h), e.g. 500ms, 5s, 2m`,
  ],
  [["--queue=yes"], `option --queue takes no value`],
];

Deno.test("bad requests are refused naming the value, exit 2, nothing sent", async () => {
  for (const [options, message] of BAD_FLAGS) {
    const fake = createFakeManager();
    const argv = ["tasks", "add", ...options, "date"];
    const r = await runCli(argv, { transport: fake.transport });
    assert.deepEqual(
      r,
      {
        code: 2,
        stdout: "",
        stderr: `schedctl: tasks add: ${message}; see 'schedctl tasks help'\n`,
      },
      argv.join(" "),
    );
    assert.deepEqual(fake.calls, [], "nothing sent");
  }
});

Deno.test("tasks add: request options missing their value at the end say what they need", async () => {
  const needs: Array<[string, string]> = [
    ["--cpu", "a number of cores, e.g. 0.5"],
    ["--memory", "a size, e.g. 512MiB"],
    ["--label", "key=value, key!=value or key"],
    ["--worker", "a worker id"],
    ["--priority", "a whole number, e.g. 10"],
    ["--schedule-timeout", "a duration, e.g. 10m"],
  ];
  for (const [option, what] of needs) {
    const r = await runCli(["tasks", "add", option]);
    assert.deepEqual(r, {
      code: 2,
      stdout: "",
      stderr: `schedctl: tasks add: option ${option} needs ${what}; see 'schedctl tasks help'\n`,
    });
  }
});

Deno.test("tasks schedule sends the requests of the file", async () => {
  const fake = createFakeManager();
  const r = await runCli(["tasks", "schedule", "-f", "-"], {
    transport: fake.transport,
    stdin: `tasks:
  - cmd: train
    cpu: 1.5
    memory: 2GiB
    labels: [gpu=true, "zone!=b", ssd]
    worker: w-1
    priority: -5
    schedule_timeout: 10m
    queue: true
  - cmd: date
    priority: 007
    queue: false
    labels: []
`,
  });
  assert.deepEqual(r, { code: 0, stdout: "t-0001\nt-0002\n", stderr: "" });
  const [first, second] = sentSpecs(fake);
  assert.deepEqual(requests(first), {
    cpu: 1.5,
    memoryBytes: 2n * 1024n ** 3n,
    labels: [["gpu", EQUAL, "true"], ["zone", NOT_EQUAL, "b"], ["ssd", EXISTS, ""]],
    workerId: "w-1",
    priority: -5,
    scheduleTimeoutSeconds: 600n,
    queue: true,
  });
  assert.deepEqual(requests(second), { ...NONE, priority: 7 });
});

Deno.test("tasks schedule names each bad request with its entry; nothing is sent", async () => {
  const fake = createFakeManager();
  const r = await runCli(["tasks", "schedule", "-f", "-"], {
    transport: fake.transport,
    stdin: `tasks:
  - cmd: a
    cpu: 0
    memory: lots
  - cmd: b
    labels: {gpu: "true"}
  - cmd: c
    labels: [gpu=true, [x], "zone a=x"]
  - cmd: d
    labels: [gpu=true, gpu=false]
    worker: "w 1"
    priority: high
  - cmd: e
    schedule_timeout: 0s
    queue: maybe
    cpu: [1]
`,
  });
  assert.deepEqual(r, {
    code: 2,
    stdout: "",
    stderr: [
      `stdin: task 1: cpu: "0" is not a number of cores above 0 (fractions allowed, e.g. 0.5 or 2)`,
      `stdin: task 1: memory: invalid size "lots": use a number with an optional unit, e.g. 512MiB or 2GiB`,
      `stdin: task 2: labels must be a list of label expressions, not a mapping, e.g. labels: ["gpu=true", "zone!=b", "ssd"]`,
      `stdin: task 3: labels item 2 must be text, not a list`,
      `stdin: task 3: labels: "zone a=x": the label key "zone a" is not valid: ${LABEL_RULE} (optionally after a DNS prefix and "/", e.g. example.com/rack)`,
      `stdin: task 4: labels: gpu=true and gpu=false cannot both hold: no worker could match`,
      `stdin: task 4: worker: "w 1" is not a worker id: 1 to 63 letters, digits, ".", "_" or "-" (see 'schedctl workers ls')`,
      `stdin: task 4: priority: "high" is not a whole number, e.g. 10 or -5 (higher is placed first)`,
      `stdin: task 5: cpu must be text, not a list`,
      `stdin: task 5: schedule_timeout: "0s" must be longer than 0 (leave it out for the manager's schedule_timeout)`,
      // The first ten problems are listed.
      `stdin: ... and 1 more problem`,
    ].map((line) => `schedctl: ${line}\n`).join(""),
  });
  assert.deepEqual(fake.calls, []);
});

const PENDING = makeTask({
  id: "t-0050",
  cmd: "train",
  params: ["--epochs", "10"],
  state: TaskState.PENDING,
  placement: "0/5 workers fit: 3 lack memory, 1 is draining, 1 lacks label gpu=true",
  cpu: 1.5,
  memoryBytes: 3n * 1024n ** 3n,
  labels: [
    { key: "gpu", op: EQUAL, value: "true" },
    { key: "zone", op: NOT_EQUAL, value: "b" },
    { key: "ssd", op: EXISTS },
  ],
  pinWorkerId: "w-1",
  priority: 10,
  scheduleTimeout: durationFromMs(600_000),
  queue: true,
});

Deno.test("tasks schedule: queue must be true or false, priority fit in 32 bits", async () => {
  const fake = createFakeManager();
  const r = await runCli(["tasks", "schedule", "-f", "-"], {
    transport: fake.transport,
    stdin: "tasks:\n  - {cmd: a, queue: maybe, priority: 99999999999, memory: 0}\n",
  });
  assert.deepEqual(r, {
    code: 2,
    stdout: "",
    stderr: [
      `stdin: task 1: memory: "0" must be more than 0 bytes (leave it out for none)`,
      `stdin: task 1: priority: "99999999999" is out of range: use -2147483648 to 2147483647`,
      `stdin: task 1: queue: "maybe" is not true or false`,
    ].map((line) => `schedctl: ${line}\n`).join(""),
  });
  assert.deepEqual(fake.calls, []);
});

Deno.test("tasks get of a pending task shows why it is not placed, and its requests", async () => {
  const fake = createFakeManager({ tasks: [PENDING] });
  const r = await runCli(["tasks", "get", "t-0050"], { transport: fake.transport });
  assert.deepEqual(r, {
    code: 0,
    stderr: "",
    stdout: `\
ID:               t-0050
State:            pending
Placement:        0/5 workers fit: 3 lack memory, 1 is draining, 1 lacks label gpu=true
Command:          train --epochs 10
Env:              -
Cwd:              / (default)
Timeout:          none
Kill timeout:     10s (default)
Retries:          none
CPU:              1.5
Memory:           3GiB
Labels:           gpu=true
                  zone!=b
                  ssd
Run on:           w-1 only
Priority:         10
Schedule timeout: 10m
Wait for a fit:   yes (--queue): waits for a worker that fits
Worker:           -
Attempt:          0
Exit code:        -
Signal:           -
Dead reason:      -
Created:          2025-01-02T11:59:00.000Z (1m ago)
Assigned:         -
Scheduled:        -
Finished:         -
Stdout:           empty
Stderr:           empty

Attempts:
ATTEMPT   WORKER   ASSIGNED   FINISHED   OUTCOME
1         -        -          -          waiting to be placed

--- stdout (empty) ---
--- stderr (empty) ---
`,
  });
});

Deno.test("tasks get shows Placement only for a pending task the manager explained", async () => {
  const cases: Array<[Parameters<typeof makeTask>[0], boolean]> = [
    [{ ...PENDING, placement: "" }, false],
    [{ ...PENDING, state: TaskState.DEAD, deadReason: "schedule timeout" }, false],
    [{ ...PENDING, state: TaskState.SCHEDULED, workerId: "w-1", attempt: 1 }, false],
    [PENDING, true],
  ];
  for (const [task, shown] of cases) {
    const fake = createFakeManager({ tasks: [makeTask(task)] });
    const r = await runCli(["tasks", "get", "t-0050"], { transport: fake.transport });
    assert.equal(r.stdout.includes("\nPlacement:"), shown, JSON.stringify(task.state));
  }
});

Deno.test("tasks get shows a memory request that is not in round units exactly", async () => {
  const fake = createFakeManager({ tasks: [makeTask({ id: "t-1", memoryBytes: 1_000_000_000n })] });
  const r = await runCli(["tasks", "get", "t-1"], { transport: fake.transport });
  assert.match(r.stdout, /\nMemory: {11}953\.7MiB \(1000000000 bytes\)\n/);
});

Deno.test("tasks help documents the request options and keys", async () => {
  const r = await runCli(["tasks", "help"]);
  for (
    const text of [
      "--cpu N",
      "--memory SIZE",
      "--label EXPR",
      "--worker ID",
      "--priority N",
      "--schedule-timeout DUR",
      "--queue ",
      "cpu: 0.5",
      "memory: 512MiB",
      'labels: ["gpu=true", "zone!=b", "ssd"]',
      "worker: w-1",
      "priority: 10",
      "schedule_timeout: 10m",
      "queue: true",
      "Placement line",
    ]
  ) {
    assert.ok(r.stdout.includes(text), text);
  }
});
