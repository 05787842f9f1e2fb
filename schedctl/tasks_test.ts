import assert from "node:assert/strict";
import { durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { TaskState } from "../shared/gen/goschedule/v1/goschedule_pb.ts";
import { createFakeManager, makeAttempt, makeTask, NOW, runCli } from "./test_util.ts";

const TASKS = [
  makeTask({
    id: "t-0001",
    cmd: "sleep",
    params: ["30"],
    state: TaskState.SCHEDULED,
    workerId: "w-1",
    attempt: 1,
    createdAt: timestampFromMs(NOW - 5 * 60_000),
  }),
  makeTask({
    id: "t-0002",
    cmd: "sh",
    params: ["-c", "echo hi; exit 3"],
    state: TaskState.DONE,
    workerId: "w-2",
    attempt: 1,
    exitCode: 3,
    createdAt: timestampFromMs(NOW - 4 * 60_000),
  }),
  makeTask({
    id: "t-0003",
    cmd: "yes",
    params: [],
    state: TaskState.DONE,
    workerId: "w-1",
    attempt: 1,
    exitCode: 137,
    signal: "SIGKILL",
    createdAt: timestampFromMs(NOW - 3 * 60_000),
  }),
  makeTask({
    id: "t-0004",
    cmd: "printf",
    params: ["a\nb", "it's"],
    state: TaskState.DEAD,
    attempt: 1,
    deadReason: "no eligible worker",
    createdAt: timestampFromMs(NOW - 2 * 60_000),
  }),
  makeTask({
    id: "t-0005",
    cmd: "/usr/local/bin/report",
    params: ["--from", "2025-01-01", "--to", "2025-01-02", "--format", "csv", "--out", "/tmp/x"],
    createdAt: timestampFromMs(NOW - 10_000),
  }),
];

function manyTasks(n: number) {
  return Array.from(
    { length: n },
    (_, i) => makeTask({ id: `t-${String(i + 1).padStart(4, "0")}`, params: [String(i + 1)] }),
  );
}

Deno.test("tasks ls prints the table: lowercase state, exit or signal, age, quoted command", async () => {
  const fake = createFakeManager({ tasks: TASKS });
  const r = await runCli(["tasks", "ls"], { transport: fake.transport });
  assert.deepEqual(r, {
    code: 0,
    stderr: "",
    stdout: `\
ID       STATE       WORKER   EXIT      CREATED   COMMAND
t-0001   scheduled   w-1      -         5m ago    sleep 30
t-0002   done        w-2      3         4m ago    sh -c 'echo hi; exit 3'
t-0003   done        w-1      SIGKILL   3m ago    yes
t-0004   dead        -        -         2m ago    printf $'a\\nb' 'it'\\''s'
t-0005   pending     -        -         10s ago   /usr/local/bin/report --from 2025-01-01 --to 2025-01-02 --f…
`,
  });
  const { state, pageSize, pageToken } = fake.calls[0].request as {
    state: TaskState;
    pageSize: number;
    pageToken: string;
  };
  assert.deepEqual([state, pageSize, pageToken], [TaskState.UNSPECIFIED, 100, ""]);
});

Deno.test("tasks ls --state asks the manager for that state", async () => {
  const fake = createFakeManager({ tasks: TASKS });
  const r = await runCli(["tasks", "ls", "--state", "done"], { transport: fake.transport });
  assert.equal(r.code, 0);
  assert.deepEqual(r.stdout.split("\n").slice(1, -1).map((l) => l.split(" ")[0]), [
    "t-0002",
    "t-0003",
  ]);
  assert.equal((fake.calls[0].request as { state: TaskState }).state, TaskState.DONE);
});

Deno.test("tasks ls with no tasks says so on stderr", async () => {
  const fake = createFakeManager();
  const r = await runCli(["tasks", "ls", "--state=pending"], { transport: fake.transport });
  assert.deepEqual(r, { code: 0, stdout: "", stderr: "No tasks in state pending.\n" });
  const all = await runCli(["tasks", "ls"], { transport: fake.transport });
  assert.deepEqual(all, { code: 0, stdout: "", stderr: "No tasks.\n" });
});

Deno.test("tasks ls shows the first 100 and says on stderr how to see the rest", async () => {
  const fake = createFakeManager({ tasks: manyTasks(250) });
  const r = await runCli(["tasks", "ls"], { transport: fake.transport });
  assert.equal(r.code, 0);
  assert.equal(r.stdout.trimEnd().split("\n").length, 101);
  assert.equal(
    r.stderr,
    "schedctl: showing the first 100 tasks; there are more: use --all to list every task, or --limit N\n",
  );
  assert.equal(fake.calls.length, 1);
});

Deno.test("tasks ls with exactly 100 tasks has no note", async () => {
  const fake = createFakeManager({ tasks: manyTasks(100) });
  const r = await runCli(["tasks", "ls"], { transport: fake.transport });
  assert.equal(r.stderr, "");
  assert.equal(r.stdout.trimEnd().split("\n").length, 101);
});

Deno.test("tasks ls --all pages through every task with page_token", async () => {
  const fake = createFakeManager({ tasks: manyTasks(2500) });
  const r = await runCli(["-o", "json", "tasks", "ls", "--all"], { transport: fake.transport });
  assert.equal(r.code, 0);
  assert.equal(r.stderr, "");
  const tasks = JSON.parse(r.stdout);
  assert.equal(tasks.length, 2500);
  assert.equal(tasks[0].id, "t-0001");
  assert.equal(tasks[2499].id, "t-2500");
  assert.deepEqual(
    fake.calls.map((c) => {
      const { pageSize, pageToken } = c.request as { pageSize: number; pageToken: string };
      return [pageSize, pageToken];
    }),
    [[1000, ""], [1000, "1000"], [1000, "2000"]],
  );
});

Deno.test("tasks ls --limit N pages as needed, stops at N and says when there are more", async () => {
  const fake = createFakeManager({ tasks: manyTasks(1500) });
  const r = await runCli(["-o", "json", "tasks", "ls", "--limit", "1200"], {
    transport: fake.transport,
  });
  assert.equal(r.code, 0);
  assert.equal(JSON.parse(r.stdout).length, 1200);
  assert.equal(
    r.stderr,
    "schedctl: showing the first 1200 tasks (--limit 1200); there are more: use --all to list every task\n",
  );
  assert.deepEqual(fake.calls.map((c) => (c.request as { pageSize: number }).pageSize), [
    1000,
    200,
  ]);
  const few = await runCli(["tasks", "ls", "--limit=2"], {
    transport: createFakeManager({ tasks: TASKS }).transport,
  });
  assert.equal(few.stdout.trimEnd().split("\n").length, 3);
});

Deno.test("tasks ls stops when the manager repeats a page token", async () => {
  const fake = createFakeManager({}, {
    listTasks: () => ({ tasks: [makeTask({ id: "t-1" })], nextPageToken: "same" }),
  });
  const r = await runCli(["tasks", "ls", "--all"], { transport: fake.transport });
  assert.equal(r.code, 1);
  assert.equal(
    r.stderr,
    `schedctl: unexpected error: the manager returned the page token "same" twice (run with -v for details)\n`,
  );
});

Deno.test("-o json tasks ls prints a JSON array of the Task objects", async () => {
  const fake = createFakeManager({ tasks: TASKS.slice(2, 3) });
  const r = await runCli(["-o", "json", "tasks", "ls"], { transport: fake.transport });
  assert.deepEqual(r, {
    code: 0,
    stderr: "",
    stdout: `[
  {
    "id": "t-0003",
    "cmd": "yes",
    "params": [],
    "state": "TASK_STATE_DONE",
    "workerId": "w-1",
    "attempt": 1,
    "exitCode": 137,
    "stdout": "",
    "stderr": "",
    "stdoutTruncated": false,
    "stderrTruncated": false,
    "deadReason": "",
    "createdAt": "2025-01-02T11:57:00Z",
    "signal": "SIGKILL",
    "env": {},
    "cwd": "",
    "retries": 0,
    "retryOnFailure": false,
    "attempts": [],
    "cpu": 0,
    "memoryBytes": "0",
    "labels": [],
    "pinWorkerId": "",
    "priority": 0,
    "queue": false,
    "placement": "",
    "waitingInWorkerQueue": false
  }
]
`,
  });
});

const FINISHED = makeTask({
  id: "t-0042",
  cmd: "sh",
  params: ["-c", "seq 3; echo oops >&2; exit 3"],
  state: TaskState.DONE,
  workerId: "w-1",
  attempt: 2,
  exitCode: 3,
  stdout: "...\n998\n999\n1000\n",
  stdoutTruncated: true,
  stderr: "oops\n\x1b[31mred\x1b[0m\r",
  createdAt: timestampFromMs(NOW - 10 * 60_000),
  assignedAt: timestampFromMs(NOW - 9 * 60_000),
  scheduledAt: timestampFromMs(NOW - 9 * 60_000 + 150),
  finishedAt: timestampFromMs(NOW - 8 * 60_000),
});

Deno.test("tasks get prints every field, then the stdout and stderr sections", async () => {
  const fake = createFakeManager({ tasks: [FINISHED] });
  const r = await runCli(["tasks", "get", "t-0042"], { transport: fake.transport });
  assert.deepEqual(r, {
    code: 0,
    stderr: "",
    stdout: `\
ID:               t-0042
State:            done
Command:          sh -c 'seq 3; echo oops >&2; exit 3'
Env:              -
Cwd:              / (default)
Timeout:          none
Kill timeout:     10s (default)
Retries:          none
CPU:              none
Memory:           none
Labels:           -
Run on:           any worker
Priority:         0
Schedule timeout: the manager's default
Wait for a fit:   no
Worker:           w-1
Attempt:          2
Exit code:        3
Signal:           -
Dead reason:      -
Created:          2025-01-02T11:50:00.000Z (10m ago)
Assigned:         2025-01-02T11:51:00.000Z (9m ago)
Scheduled:        2025-01-02T11:51:00.150Z (8m59s ago)
Finished:         2025-01-02T11:52:00.000Z (8m ago)
Stdout:           17 bytes, truncated: earlier output was dropped
Stderr:           18 bytes

--- stdout (truncated: earlier output was dropped) ---
...
998
999
1000
--- stderr ---
oops
\\x1b[31mred\\x1b[0m\\r
`,
  });
  assert.deepEqual((fake.calls[0].request as { id: string }).id, "t-0042");
});

Deno.test("tasks get of a dead task shows its reason, and empty output sections", async () => {
  const fake = createFakeManager({ tasks: TASKS });
  const r = await runCli(["tasks", "get", "t-0004"], { transport: fake.transport });
  assert.equal(r.code, 0);
  assert.match(r.stdout, /\nState: {12}dead\n/);
  assert.match(r.stdout, /\nCommand: {10}printf \$'a\\nb' 'it'\\''s'\n/);
  assert.match(r.stdout, /\nDead reason: {6}no eligible worker\n/);
  assert.match(r.stdout, /\nFinished: {9}-\n/);
  assert.ok(r.stdout.endsWith("\n--- stdout (empty) ---\n--- stderr (empty) ---\n"), r.stdout);
});

Deno.test("-o json tasks get prints the Task object", async () => {
  const fake = createFakeManager({ tasks: [FINISHED] });
  const r = await runCli(["-o", "json", "tasks", "get", "t-0042"], { transport: fake.transport });
  assert.equal(r.code, 0);
  const task = JSON.parse(r.stdout);
  assert.equal(task.id, "t-0042");
  assert.equal(task.state, "TASK_STATE_DONE");
  assert.equal(task.stdoutTruncated, true);
  assert.equal(task.stderr, "oops\n\x1b[31mred\x1b[0m\r");
  assert.equal(task.scheduledAt, "2025-01-02T11:51:00.150Z");
});

Deno.test("tasks get of an unknown id prints the manager's message and exits 1", async () => {
  const fake = createFakeManager({ tasks: TASKS });
  const r = await runCli(["tasks", "get", "nope"], { transport: fake.transport });
  assert.deepEqual(r, { code: 1, stdout: "", stderr: `schedctl: task "nope" not found\n` });
});

async function withFile<T>(text: string, f: (path: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "schedctl_test_" });
  try {
    const path = `${dir}/tasks.yaml`;
    await Deno.writeTextFile(path, text);
    return await f(path);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const TASKS_FILE = `tasks:
  - cmd: sleep
    params: [30]
  - cmd: ls
    params: [-la, /tmp]
  - cmd: date
`;

Deno.test("tasks schedule -f FILE sends the tasks in file order and prints the new ids", async () => {
  await withFile(TASKS_FILE, async (path) => {
    const fake = createFakeManager();
    const r = await runCli(["tasks", "schedule", "-f", path], { transport: fake.transport });
    assert.deepEqual(r, { code: 0, stderr: "", stdout: "t-0001\nt-0002\nt-0003\n" });
    assert.equal(fake.calls.length, 1);
    const request = fake.calls[0].request as { tasks: Array<{ cmd: string; params: string[] }> };
    assert.deepEqual(request.tasks.map(({ cmd, params }) => ({ cmd, params })), [
      { cmd: "sleep", params: ["30"] },
      { cmd: "ls", params: ["-la", "/tmp"] },
      { cmd: "date", params: [] },
    ]);
  });
});

Deno.test("tasks schedule -f - reads stdin; -o json prints the created tasks", async () => {
  const fake = createFakeManager();
  const r = await runCli(["-o", "json", "tasks", "schedule", "--file", "-"], {
    transport: fake.transport,
    stdin: TASKS_FILE,
  });
  assert.equal(r.code, 0, r.stderr);
  const tasks = JSON.parse(r.stdout);
  assert.deepEqual(tasks.map((t: { id: string }) => t.id), ["t-0001", "t-0002", "t-0003"]);
  assert.deepEqual(tasks[0].params, ["30"]);
  assert.equal(tasks[0].state, "TASK_STATE_PENDING");
});

Deno.test("tasks schedule with a bad file exits 2 naming the entry, and sends nothing", async () => {
  const file = `tasks:\n  - cmd: sleep\n    params: ["1"]\n  - cmd: sleep\n  - params: ["3"]\n`;
  await withFile(file, async (path) => {
    const fake = createFakeManager();
    const r = await runCli(["tasks", "schedule", "-f", path], { transport: fake.transport });
    assert.deepEqual(r, {
      code: 2,
      stdout: "",
      stderr: `schedctl: ${path}: task 3: cmd is required\n`,
    });
    assert.deepEqual(fake.calls, []);
  });
  const fake = createFakeManager();
  const r = await runCli(["tasks", "schedule", "-f", "-"], {
    transport: fake.transport,
    stdin: "tasks: [\n",
  });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^schedctl: stdin: not valid YAML: /);
  assert.deepEqual(fake.calls, []);
});

Deno.test("tasks schedule of a file that cannot be read exits 2", async () => {
  const r = await runCli(["tasks", "schedule", "-f", "/nonexistent/tasks.yaml"], {
    transport: createFakeManager().transport,
  });
  assert.deepEqual(r, {
    code: 2,
    stdout: "",
    stderr: "schedctl: /nonexistent/tasks.yaml: cannot read the tasks file: no such file\n",
  });
});

Deno.test("tasks add prints the new id; -o json the created task", async () => {
  const fake = createFakeManager();
  const r = await runCli(["tasks", "add", "ls", "-la"], { transport: fake.transport });
  assert.deepEqual(r, { code: 0, stdout: "t-0001\n", stderr: "" });
  const j = await runCli(["-o", "json", "tasks", "add", "--", "echo", "a b"], {
    transport: fake.transport,
  });
  assert.equal(j.code, 0);
  assert.equal(
    j.stdout,
    `{
  "id": "t-0002",
  "cmd": "echo",
  "params": [
    "a b"
  ],
  "state": "TASK_STATE_PENDING",
  "workerId": "",
  "attempt": 0,
  "stdout": "",
  "stderr": "",
  "stdoutTruncated": false,
  "stderrTruncated": false,
  "deadReason": "",
  "createdAt": "2025-01-02T12:00:00Z",
  "signal": "",
  "env": {},
  "cwd": "",
  "retries": 0,
  "retryOnFailure": false,
  "attempts": [],
  "cpu": 0,
  "memoryBytes": "0",
  "labels": [],
  "pinWorkerId": "",
  "priority": 0,
  "queue": false,
  "placement": "",
  "waitingInWorkerQueue": false
}
`,
  );
});

Deno.test("tasks help and tasks CMD --help print the tasks commands with their options", async () => {
  for (
    const argv of [["tasks", "help"], ["tasks", "ls", "-h"], ["tasks", "add", "--help"], [
      "help",
      "tasks",
    ]]
  ) {
    const r = await runCli(argv);
    assert.equal(r.code, 0, argv.join(" "));
    assert.equal(r.stderr, "");
    assert.match(
      r.stdout,
      /^Usage: schedctl \[-c FILE\] \[-v\] \[-o table\|json\] tasks COMMAND \[ARGS\]\n/,
    );
    for (
      const text of [
        "--state STATE",
        "--limit N",
        "--all",
        "get ID",
        "schedule [--wait [--detach-on-interrupt]] -f FILE",
        "add [OPTIONS] [--] CMD",
        "--env KEY=VALUE",
        "--cwd DIR",
        "--timeout DUR",
        "--kill-timeout DUR",
        "logs [-f|--follow] [--stderr] [--tail N] ID",
        "cancel ID...",
        "Cancel task ID? [y/N]",
        "--detach-on-interrupt",
        "stdin is not a terminal",
      ]
    ) {
      assert.ok(r.stdout.includes(text), text);
    }
  }
});

Deno.test("tasks get shows env sorted, cwd, timeouts and when a cancel was requested", async () => {
  const task = makeTask({
    id: "t-0050",
    cmd: "sh",
    params: ["-c", "echo $GREETING; sleep 100"],
    state: TaskState.SCHEDULED,
    workerId: "w-1",
    attempt: 1,
    env: { GREETING: "hi there", A_FIRST: "1", ESC: "a\x1bb" },
    cwd: "/srv/app",
    timeout: durationFromMs(90_000),
    killTimeout: durationFromMs(0),
    createdAt: timestampFromMs(NOW - 60_000),
    assignedAt: timestampFromMs(NOW - 59_000),
    scheduledAt: timestampFromMs(NOW - 58_000),
    cancelRequestedAt: timestampFromMs(NOW - 5_000),
  });
  const fake = createFakeManager({ tasks: [task] });
  const r = await runCli(["tasks", "get", "t-0050"], { transport: fake.transport });
  assert.deepEqual(r, {
    code: 0,
    stderr: "",
    stdout: `\
ID:               t-0050
State:            scheduled
Command:          sh -c 'echo $GREETING; sleep 100'
Env:              A_FIRST=1
                  ESC=a\\x1bb
                  GREETING=hi there
Cwd:              /srv/app
Timeout:          1m30s
Kill timeout:     0s
Retries:          none
CPU:              none
Memory:           none
Labels:           -
Run on:           any worker
Priority:         0
Schedule timeout: the manager's default
Wait for a fit:   no
Worker:           w-1
Attempt:          1
Exit code:        -
Signal:           -
Dead reason:      -
Created:          2025-01-02T11:59:00.000Z (1m ago)
Assigned:         2025-01-02T11:59:01.000Z (59s ago)
Scheduled:        2025-01-02T11:59:02.000Z (58s ago)
Finished:         -
Cancel requested: 2025-01-02T11:59:55.000Z (5s ago)
Stdout:           empty
Stderr:           empty

Attempts:
ATTEMPT   WORKER   ASSIGNED   FINISHED   OUTCOME
1         w-1      59s ago    -          running (cancel requested)

--- stdout (empty) ---
--- stderr (empty) ---
`,
  });
  const json = await runCli(["-o", "json", "tasks", "get", "t-0050"], {
    transport: fake.transport,
  });
  const parsed = JSON.parse(json.stdout);
  assert.deepEqual(
    [parsed.env.GREETING, parsed.cwd, parsed.timeout, parsed.killTimeout, parsed.cancelRequestedAt],
    ["hi there", "/srv/app", "90s", "0s", "2025-01-02T11:59:55Z"],
  );
});

Deno.test("tasks get of a task a deadline killed shows its reason and signal", async () => {
  const task = makeTask({
    id: "t-0051",
    state: TaskState.DEAD,
    exitCode: 137,
    signal: "SIGKILL",
    deadReason: "deadline exceeded",
    timeout: durationFromMs(30_000),
  });
  const fake = createFakeManager({ tasks: [task] });
  const r = await runCli(["tasks", "get", "t-0051"], { transport: fake.transport });
  assert.equal(r.code, 0);
  assert.match(r.stdout, /\nTimeout: {10}30s\n/);
  assert.match(
    r.stdout,
    /\nExit code: {8}137\nSignal: {11}SIGKILL\nDead reason: {6}deadline exceeded\n/,
  );
  const ls = await runCli(["tasks", "ls"], { transport: fake.transport });
  assert.match(ls.stdout, /\nt-0051 +dead +- +SIGKILL +1m ago +sleep 30\n/);
});

/** A task that needed three attempts: an ack timeout, a lost worker, then a success. */
const RETRIED = makeTask({
  id: "t-0060",
  cmd: "make",
  params: ["test"],
  state: TaskState.DONE,
  workerId: "w-1",
  attempt: 3,
  exitCode: 0,
  retries: 2,
  retryOnFailure: true,
  stdout: "ok\n",
  createdAt: timestampFromMs(NOW - 10 * 60_000),
  assignedAt: timestampFromMs(NOW - 4 * 60_000),
  scheduledAt: timestampFromMs(NOW - 4 * 60_000 + 100),
  finishedAt: timestampFromMs(NOW - 3 * 60_000),
  attempts: [
    makeAttempt({
      attempt: 1,
      workerId: "w-2",
      assignedAt: timestampFromMs(NOW - 10 * 60_000),
      finishedAt: timestampFromMs(NOW - 10 * 60_000 + 30_000),
      outcome: "ack timeout",
    }),
    makeAttempt({
      attempt: 2,
      workerId: "w-3",
      assignedAt: timestampFromMs(NOW - 9 * 60_000),
      scheduledAt: timestampFromMs(NOW - 9 * 60_000 + 100),
      finishedAt: timestampFromMs(NOW - 5 * 60_000),
      outcome: "lost: worker w-3 disconnected for more than 2m",
    }),
    makeAttempt({
      attempt: 3,
      workerId: "w-1",
      assignedAt: timestampFromMs(NOW - 4 * 60_000),
      scheduledAt: timestampFromMs(NOW - 4 * 60_000 + 100),
      finishedAt: timestampFromMs(NOW - 3 * 60_000),
      outcome: "exit code 0",
    }),
  ],
});

Deno.test("tasks get shows the retry settings and every attempt as a table", async () => {
  const fake = createFakeManager({ tasks: [RETRIED] });
  const r = await runCli(["tasks", "get", "t-0060"], { transport: fake.transport });
  assert.deepEqual(r, {
    code: 0,
    stderr: "",
    stdout: `\
ID:               t-0060
State:            done
Command:          make test
Env:              -
Cwd:              / (default)
Timeout:          none
Kill timeout:     10s (default)
Retries:          2 (backoff 1s, also on failure)
CPU:              none
Memory:           none
Labels:           -
Run on:           any worker
Priority:         0
Schedule timeout: the manager's default
Wait for a fit:   no
Worker:           w-1
Attempt:          3
Exit code:        0
Signal:           -
Dead reason:      -
Created:          2025-01-02T11:50:00.000Z (10m ago)
Assigned:         2025-01-02T11:56:00.000Z (4m ago)
Scheduled:        2025-01-02T11:56:00.100Z (3m59s ago)
Finished:         2025-01-02T11:57:00.000Z (3m ago)
Stdout:           3 bytes
Stderr:           empty

Attempts:
ATTEMPT   WORKER   ASSIGNED   FINISHED    OUTCOME
1         w-2      10m ago    9m30s ago   ack timeout
2         w-3      9m ago     5m ago      lost: worker w-3 disconnected for more than 2m
3         w-1      4m ago     3m ago      exit code 0

--- stdout ---
ok
--- stderr (empty) ---
`,
  });
  const json = JSON.parse(
    (await runCli(["-o", "json", "tasks", "get", "t-0060"], { transport: fake.transport })).stdout,
  );
  assert.deepEqual(json.attempts[1], {
    attempt: 2,
    workerId: "w-3",
    assignedAt: "2025-01-02T11:51:00Z",
    scheduledAt: "2025-01-02T11:51:00.100Z",
    finishedAt: "2025-01-02T11:55:00Z",
    outcome: "lost: worker w-3 disconnected for more than 2m",
  });
  assert.deepEqual([json.retries, json.retryOnFailure], [2, true]);
});

Deno.test("tasks get of a task waiting for a retry shows when, and the attempt it waits for", async () => {
  const waiting = makeTask({
    id: "t-0061",
    cmd: "make",
    params: [],
    state: TaskState.PENDING,
    attempt: 1,
    retries: 3,
    retryBackoff: durationFromMs(2_000),
    retryAt: timestampFromMs(NOW + 2_000),
    createdAt: timestampFromMs(NOW - 60_000),
    attempts: [makeAttempt({
      attempt: 1,
      workerId: "w-1",
      assignedAt: timestampFromMs(NOW - 59_000),
      scheduledAt: timestampFromMs(NOW - 58_000),
      finishedAt: timestampFromMs(NOW),
      outcome: "worker restarted",
    })],
  });
  const fake = createFakeManager({ tasks: [waiting] });
  const r = await runCli(["tasks", "get", "t-0061"], { transport: fake.transport });
  assert.equal(r.code, 0);
  assert.equal(
    r.stdout,
    `\
ID:               t-0061
State:            pending
Command:          make
Env:              -
Cwd:              / (default)
Timeout:          none
Kill timeout:     10s (default)
Retries:          3 (backoff 2s)
CPU:              none
Memory:           none
Labels:           -
Run on:           any worker
Priority:         0
Schedule timeout: the manager's default
Wait for a fit:   no
Worker:           -
Attempt:          1
Exit code:        -
Signal:           -
Dead reason:      -
Created:          2025-01-02T11:59:00.000Z (1m ago)
Assigned:         -
Scheduled:        -
Finished:         -
Retry at:         2025-01-02T12:00:02.000Z (in 2s)
Stdout:           empty
Stderr:           empty

Attempts:
ATTEMPT   WORKER   ASSIGNED   FINISHED   OUTCOME
1         w-1      59s ago    0s ago     worker restarted
2         -        -          -          retry in 2s

--- stdout (empty) ---
--- stderr (empty) ---
`,
  );
});

Deno.test("tasks get: the current attempt's row says where it stands", async () => {
  const rowOf = async (init: Parameters<typeof makeTask>[0]) => {
    const fake = createFakeManager({ tasks: [makeTask(init)] });
    const r = await runCli(["tasks", "get", init.id], { transport: fake.transport });
    assert.equal(r.code, 0, r.stderr);
    const section = r.stdout.split("\nAttempts:\n")[1];
    return section?.split("\n\n")[0].split("\n").slice(1).join("\n");
  };
  assert.equal(
    await rowOf({
      id: "a",
      workerId: "w-2",
      attempt: 2,
      assignedAt: timestampFromMs(NOW - 1_000),
      attempts: [makeAttempt({ attempt: 1, outcome: "ack timeout" })],
    }),
    "1         w-1      -          -          ack timeout\n" +
      "2         w-2      1s ago     -          sent, not acknowledged yet",
  );
  assert.equal(
    await rowOf({ id: "b" }),
    "1         -        -          -          waiting to be placed",
  );
  assert.equal(
    await rowOf({ id: "c", attempt: 1, retryAt: timestampFromMs(NOW - 1), attempts: [] }),
    "2         -        -          -          retry due",
  );
  assert.equal(
    await rowOf({ id: "d", state: TaskState.DEAD, deadReason: "no eligible worker" }),
    undefined,
    "no attempt: no section",
  );
});

Deno.test("tasks ls is unchanged by retries: the current attempt's worker", async () => {
  const fake = createFakeManager({ tasks: [RETRIED] });
  const r = await runCli(["tasks", "ls"], { transport: fake.transport });
  assert.equal(
    r.stdout,
    "ID       STATE   WORKER   EXIT   CREATED   COMMAND\n" +
      "t-0060   done    w-1      0      10m ago   make test\n",
  );
});
