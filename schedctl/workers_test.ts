import assert from "node:assert/strict";
import { durationMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { TaskState, WorkerState } from "../shared/gen/goschedule/v1/goschedule_pb.ts";
import { createFakeManager, makeTask, makeWorker, NOW, runCli } from "./test_util.ts";

const GiB = 1024n ** 3n;
const MiB = 1024n ** 2n;

const WORKERS = [
  makeWorker({
    id: "w-1",
    hostname: "node-a",
    address: "10.0.0.11:51234",
    runningTasks: 1,
    lastSeenAt: timestampFromMs(NOW - 2_000),
    capabilities: {
      cpuCores: 8,
      memoryBytes: 16n * GiB,
      os: "linux",
      arch: "x86_64",
      capacity: { cpu: 4, memoryBytes: 8n * GiB, slots: 2 },
      labels: { zone: "a", gpu: "true" },
    },
    used: { cpu: 0.5, memoryBytes: 512n * MiB, slots: 1 },
  }),
  makeWorker({
    id: "w-2",
    hostname: "node-b.example.org",
    address: "10.0.0.12:40110",
    state: WorkerState.DISCONNECTED,
    draining: true,
    lastSeenAt: timestampFromMs(NOW - 3 * 60_000 - 20_000),
    disconnectedAt: timestampFromMs(NOW - 3 * 60_000),
    capabilities: {
      capacity: { cpu: 0.5, memoryBytes: 1536n * MiB, slots: 1 },
      labels: {
        "example.com/rack": "r-0042",
        "example.com/room": "basement-2",
        zone: "b",
      },
    },
  }),
  makeWorker({ id: "w-3", hostname: "", address: "", lastSeenAt: undefined }),
];

Deno.test("workers ls prints state with draining, used/total capacity and labels", async () => {
  const fake = createFakeManager({ workers: WORKERS });
  const r = await runCli(["workers", "ls"], { transport: fake.transport });
  assert.deepEqual(r, {
    code: 0,
    stderr: "",
    stdout: `\
ID    ADDRESS           HOSTNAME             STATE                    TASKS   SLOTS   CPU     MEMORY        LABELS                                     LAST SEEN
w-1   10.0.0.11:51234   node-a               connected                1       1/2     0.5/4   512MiB/8GiB   gpu=true,zone=a                            2s ago
w-2   10.0.0.12:40110   node-b.example.org   disconnected, draining   0       0/1     0/0.5   0B/1.5GiB     example.com/rack=r-0042,example.com/roo…   3m20s ago
w-3   -                 -                    connected                0       -       -       -             -                                          -
`,
  });
});

Deno.test("workers ls says on stderr that there are none, stdout stays empty", async () => {
  const fake = createFakeManager();
  const r = await runCli(["workers", "ls"], { transport: fake.transport });
  assert.deepEqual(r, {
    code: 0,
    stdout: "",
    stderr: "No workers: none has connected to the manager yet.\n",
  });
});

Deno.test("-o json workers ls prints a JSON array of the Worker objects, every field present", async () => {
  const fake = createFakeManager({ workers: WORKERS.slice(0, 2) });
  const r = await runCli(["-o", "json", "workers", "ls"], { transport: fake.transport });
  assert.equal(r.code, 0);
  assert.equal(r.stderr, "");
  assert.ok(r.stdout.endsWith("}\n]\n"));
  const workers = JSON.parse(r.stdout);
  assert.equal(workers.length, 2);
  assert.deepEqual(workers[1], {
    id: "w-2",
    hostname: "node-b.example.org",
    address: "10.0.0.12:40110",
    state: "WORKER_STATE_DISCONNECTED",
    capabilities: {
      cpuCores: 0,
      memoryBytes: "0",
      os: "",
      arch: "",
      capacity: { cpu: 0.5, memoryBytes: "1610612736", slots: 1, queue: 0 },
      labels: { "example.com/rack": "r-0042", "example.com/room": "basement-2", zone: "b" },
    },
    runningTasks: 0,
    lastSeenAt: "2025-01-02T11:56:40Z",
    disconnectedAt: "2025-01-02T11:57:00Z",
    version: "",
    draining: true,
  });
  assert.deepEqual(workers[0].used, { cpu: 0.5, memoryBytes: "536870912", slots: 1, queue: 0 });
  assert.ok(r.stdout.includes('\n  {\n    "id": "w-1",\n'), "pretty, two spaces");
});

Deno.test("-o json workers ls with no workers prints []", async () => {
  const fake = createFakeManager();
  const r = await runCli(["-o", "json", "workers", "ls"], { transport: fake.transport });
  assert.deepEqual(r, { code: 0, stdout: "[]\n", stderr: "" });
});

Deno.test("workers help and workers COMMAND --help print the workers commands", async () => {
  for (
    const argv of [
      ["workers", "help"],
      ["workers", "ls", "--help"],
      ["help", "workers"],
      ["workers", "get", "--help"],
      ["workers", "drain", "-h"],
      ["workers", "undrain", "--help"],
    ]
  ) {
    const r = await runCli(argv);
    assert.equal(r.code, 0);
    assert.equal(r.stderr, "");
    assert.match(
      r.stdout,
      /^Usage: schedctl \[-c FILE\] \[-v\] \[-o table\|json\] workers COMMAND \[ARGS\]\n/,
    );
    assert.match(r.stdout, /\n {2}ls {6}List the workers/);
    assert.match(r.stdout, /\n {2}get ID {2}Show every field of one worker/);
    assert.match(r.stdout, /\n {2}drain ID \[--deadline DUR\]\n/);
    assert.match(r.stdout, /\n {2}undrain ID\n/);
    assert.match(r.stdout, /\n {2}rm ID\.\.\.\n {10}Forget disconnected workers/);
  }
});

Deno.test("schedctl help lists the workers commands", async () => {
  const r = await runCli(["help"]);
  assert.match(r.stdout, /\n {2}workers get ID +show one worker with its unfinished tasks\n/);
  assert.match(
    r.stdout,
    /\n {2}workers drain ID \[--deadline DUR\] +place no new tasks on a worker\n/,
  );
  assert.match(r.stdout, /\n {2}workers undrain ID +put a drained worker back in service\n/);
  assert.match(r.stdout, /\n {2}workers rm ID\.\.\. +forget disconnected workers\n/);
});

const RUNNING = [
  makeTask({
    id: "t-0007",
    cmd: "make",
    params: ["test"],
    state: TaskState.SCHEDULED,
    workerId: "w-1",
    attempt: 1,
    assignedAt: timestampFromMs(NOW - 90_000),
    cpu: 0.5,
    memoryBytes: 512n * MiB,
  }),
  makeTask({
    id: "t-0008",
    cmd: "sleep",
    params: ["600"],
    state: TaskState.SCHEDULED,
    workerId: "w-1",
    attempt: 2,
    assignedAt: timestampFromMs(NOW - 5_000),
    cancelRequestedAt: timestampFromMs(NOW - 1_000),
  }),
  makeTask({ id: "t-0009", state: TaskState.DONE, workerId: "w-1", exitCode: 0 }),
  makeTask({ id: "t-0010", state: TaskState.SCHEDULED, workerId: "w-2" }),
];

Deno.test("workers get prints every field, then the worker's unfinished tasks", async () => {
  const worker = makeWorker({
    ...WORKERS[0],
    runningTasks: 2,
    version: "0.5.0",
    connectedAt: timestampFromMs(NOW - 3_600_000),
    draining: true,
    drainDeadline: timestampFromMs(NOW + 300_000),
  });
  const fake = createFakeManager({ workers: [worker], tasks: RUNNING });
  const r = await runCli(["workers", "get", "w-1"], { transport: fake.transport });
  assert.deepEqual(r, {
    code: 0,
    stderr: "",
    stdout: `\
ID:             w-1
Hostname:       node-a
Address:        10.0.0.11:51234
State:          connected, draining
Draining:       yes: no new tasks are placed on it
Drain deadline: 2025-01-02T12:05:00.000Z (in 5m): tasks still running then are cancelled
Tasks:          2
Slots:          1 of 2 used
CPU:            0.5 of 4 cores used
Memory:         512MiB of 8GiB used
Labels:         gpu=true
                zone=a
Machine:        linux/x86_64, 8 cores, 16GiB memory
Version:        0.5.0
Connected:      2025-01-02T11:00:00.000Z (1h ago)
Last seen:      2025-01-02T11:59:58.000Z (2s ago)
Disconnected:   -

Unfinished tasks:
ID       STATE                   ATTEMPT   ASSIGNED    CPU   MEMORY   COMMAND
t-0007   scheduled               1         1m30s ago   0.5   512MiB   make test
t-0008   scheduled, cancelling   2         5s ago      -     -        sleep 600
`,
  });
  assert.deepEqual(fake.calls.map((c) => c.method), ["GetWorker"]);
});

Deno.test("workers get of a worker that reported nothing, not draining, with no tasks", async () => {
  const fake = createFakeManager({ workers: [WORKERS[2]] });
  const r = await runCli(["workers", "get", "w-3"], { transport: fake.transport });
  assert.deepEqual(r, {
    code: 0,
    stderr: "",
    stdout: `\
ID:             w-3
Hostname:       -
Address:        -
State:          connected
Draining:       no
Tasks:          0
Slots:          not reported by the worker
CPU:            not reported by the worker
Memory:         not reported by the worker
Labels:         -
Machine:        -
Version:        -
Connected:      -
Last seen:      -
Disconnected:   -

Unfinished tasks: none
`,
  });
});

Deno.test("workers get of a draining worker without a deadline; memory not in round units", async () => {
  const worker = makeWorker({
    id: "w-4",
    draining: true,
    capabilities: {
      cpuCores: 1,
      memoryBytes: 8_345_000_000n,
      os: "linux",
      arch: "aarch64",
      capacity: { cpu: 1, memoryBytes: 8_345_000_000n, slots: 1 },
    },
  });
  const fake = createFakeManager({ workers: [worker] });
  const r = await runCli(["workers", "get", "w-4"], { transport: fake.transport });
  assert.equal(r.code, 0);
  assert.match(r.stdout, /\nDraining: {7}yes: no new tasks are placed on it\n/);
  assert.match(r.stdout, /\nDrain deadline: none \(its tasks may run to their end\)\n/);
  assert.match(r.stdout, /\nMemory: {9}0B of 7\.8GiB used\n/);
  assert.match(
    r.stdout,
    /\nMachine: {8}linux\/aarch64, 1 core, 7\.8GiB \(8345000000 bytes\) memory\n/,
  );
});

Deno.test("-o json workers get prints the worker and its tasks", async () => {
  const fake = createFakeManager({ workers: WORKERS, tasks: RUNNING });
  const r = await runCli(["-o", "json", "workers", "get", "w-1"], { transport: fake.transport });
  assert.equal(r.code, 0);
  const out = JSON.parse(r.stdout);
  assert.deepEqual(Object.keys(out), ["worker", "tasks"]);
  assert.equal(out.worker.id, "w-1");
  assert.deepEqual(out.worker.capabilities.labels, { zone: "a", gpu: "true" });
  assert.deepEqual(out.tasks.map((t: { id: string }) => t.id), ["t-0007", "t-0008"]);
  assert.equal(out.tasks[0].memoryBytes, "536870912");
});

Deno.test("workers drain marks the worker draining and prints its new state", async () => {
  const fake = createFakeManager({ workers: WORKERS });
  const r = await runCli(["workers", "drain", "w-1"], { transport: fake.transport });
  assert.deepEqual(r, {
    code: 0,
    stderr: "",
    stdout: "w-1  connected, draining (1 unfinished task; no deadline)\n",
  });
  assert.deepEqual(fake.calls.map((c) => c.method), ["DrainWorker"]);
  const request = fake.calls[0].request as { id: string; deadline?: unknown };
  assert.equal(request.id, "w-1");
  assert.equal(request.deadline, undefined);
  assert.equal(fake.workers[0].draining, true);
});

Deno.test("workers drain --deadline sends it; the line says when", async () => {
  for (
    const [argv, ms, when] of [
      [["--deadline", "10m"], 600_000, "2025-01-02T12:10:00.000Z, in 10m"],
      [["--deadline=1h30m"], 5_400_000, "2025-01-02T13:30:00.000Z, in 1h30m"],
      [["--deadline", "0s"], 0, "2025-01-02T12:00:00.000Z, 0s ago"],
    ] as const
  ) {
    const workers = [makeWorker({ ...WORKERS[0], runningTasks: 3 })];
    const fake = createFakeManager({ workers });
    const r = await runCli(["workers", "drain", "w-1", ...argv], { transport: fake.transport });
    assert.deepEqual(r, {
      code: 0,
      stderr: "",
      stdout: `w-1  connected, draining (3 unfinished tasks; deadline ${when})\n`,
    }, argv.join(" "));
    const request = fake.calls[0].request as { deadline?: Parameters<typeof durationMs>[0] };
    assert.equal(durationMs(request.deadline!), ms);
  }
});

Deno.test("workers undrain puts the worker back and prints its new state", async () => {
  const fake = createFakeManager({ workers: WORKERS });
  const r = await runCli(["workers", "undrain", "w-2"], { transport: fake.transport });
  assert.deepEqual(r, { code: 0, stderr: "", stdout: "w-2  disconnected\n" });
  assert.deepEqual(fake.calls.map((c) => c.method), ["UndrainWorker"]);
  assert.equal(fake.workers[1].draining, false);
});

Deno.test("-o json workers drain and undrain print the Worker object", async () => {
  const fake = createFakeManager({ workers: WORKERS });
  const drained = await runCli(["-o", "json", "workers", "drain", "w-1", "--deadline", "5m"], {
    transport: fake.transport,
  });
  assert.equal(drained.code, 0);
  const worker = JSON.parse(drained.stdout);
  assert.equal(worker.draining, true);
  assert.equal(worker.drainDeadline, "2025-01-02T12:05:00Z");
  const undrained = await runCli(["-o", "json", "workers", "undrain", "w-1"], {
    transport: fake.transport,
  });
  assert.equal(JSON.parse(undrained.stdout).draining, false);
  assert.equal(JSON.parse(undrained.stdout).drainDeadline, undefined);
});

Deno.test("workers get, drain and undrain of an unknown id: not found, exit 1", async () => {
  for (const command of ["get", "drain", "undrain"]) {
    const fake = createFakeManager({ workers: WORKERS });
    const r = await runCli(["workers", command, "w-9"], { transport: fake.transport });
    assert.deepEqual(r, {
      code: 1,
      stdout: "",
      stderr: `schedctl: worker "w-9" not found\n`,
    }, command);
  }
});

Deno.test("workers command line mistakes are refused naming the value, exit 2, nothing sent", async () => {
  const duration = "use a number with a unit (ms, s, m, h), e.g. 500ms, 5s, 2m";
  const cases: Array<[string[], string]> = [
    [["get"], "workers get: missing the worker ID"],
    [["get", ""], "workers get: the worker ID is empty"],
    [["get", "w-1", "w-2"], `workers get: unexpected argument "w-2" (one ID at a time)`],
    [["get", "--all"], `workers get: unknown option "--all"`],
    [["drain"], "workers drain: missing the worker ID"],
    [["drain", "w-1", "w-2"], `workers drain: unexpected argument "w-2" (one ID at a time)`],
    [["drain", "w-1", "--deadline"], "workers drain: option --deadline needs a duration, e.g. 10m"],
    [
      ["drain", "w-1", "--deadline", "soon"],
      `workers drain: --deadline: invalid duration "soon": ${duration}`,
    ],
    [
      ["drain", "w-1", "--deadline", "-5m"],
      `workers drain: --deadline: invalid duration "-5m" (durations cannot be negative): ${duration}`,
    ],
    [
      ["drain", "--deadline", "1m", "--deadline", "2m", "w-1"],
      "workers drain: option --deadline is given twice",
    ],
    [["undrain"], "workers undrain: missing the worker ID"],
    [["undrain", "w-1", "--deadline", "1m"], `workers undrain: unknown option "--deadline"`],
    [["rm"], "workers rm: missing the worker ID"],
    [["rm", "w-1", ""], "workers rm: a worker ID is empty"],
    [["rm", "--force", "w-1"], `workers rm: unknown option "--force"`],
    [["remove", "w-1"], `workers: unknown command "remove"`],
    [[], "workers: missing command"],
  ];
  for (const [args, message] of cases) {
    const fake = createFakeManager({ workers: WORKERS });
    const r = await runCli(["workers", ...args], { transport: fake.transport });
    assert.deepEqual(
      r,
      { code: 2, stdout: "", stderr: `schedctl: ${message}; see 'schedctl workers help'\n` },
      args.join(" "),
    );
    assert.deepEqual(fake.calls, [], "nothing sent");
  }
});

const GONE = [
  makeWorker({ id: "old-1", state: WorkerState.DISCONNECTED }),
  makeWorker({ id: "busy", state: WorkerState.DISCONNECTED, runningTasks: 2 }),
  makeWorker({ id: "live", state: WorkerState.CONNECTED }),
  makeWorker({ id: "old-2", state: WorkerState.DISCONNECTED }),
];

Deno.test("workers rm removes what it may and says why not for the rest, exit 1", async () => {
  const fake = createFakeManager({ workers: [...GONE] });
  const r = await runCli(["workers", "rm", "old-1", "busy", "live", "w-9", "old-2"], {
    transport: fake.transport,
  });
  assert.deepEqual(r, {
    code: 1,
    stdout: "old-1  removed\nold-2  removed\n",
    stderr: 'schedctl: workers rm: worker "busy" still holds 2 unfinished tasks\n' +
      'schedctl: workers rm: worker "live" is connected\n' +
      'schedctl: workers rm: worker "w-9" not found\n',
  });
  assert.deepEqual(fake.calls.map((c) => c.method), Array(5).fill("RemoveWorker"));
  assert.deepEqual(fake.workers.map((w) => w.id), ["busy", "live"]);
});

Deno.test("workers rm of removable workers only: exit 0; -o json says what happened to each", async () => {
  const fake = createFakeManager({ workers: [...GONE] });
  const r = await runCli(["workers", "rm", "old-2"], { transport: fake.transport });
  assert.deepEqual(r, { code: 0, stdout: "old-2  removed\n", stderr: "" });
  const json = await runCli(["-o", "json", "workers", "rm", "old-1", "live"], {
    transport: fake.transport,
  });
  assert.equal(json.code, 1);
  assert.equal(json.stderr, "");
  assert.deepEqual(JSON.parse(json.stdout), [
    { id: "old-1", removed: true },
    { id: "live", removed: false, reason: 'worker "live" is connected' },
  ]);
});

Deno.test("workers rm stops at a manager that cannot be reached, as every command does", async () => {
  const fake = createFakeManager({ workers: [...GONE] }, {
    removeWorker: () => {
      throw new ConnectError("the store is down", Code.Unavailable);
    },
  });
  const r = await runCli(["workers", "rm", "old-1", "old-2"], { transport: fake.transport });
  assert.deepEqual(r, {
    code: 1,
    stdout: "",
    stderr: "schedctl: the manager at http://127.0.0.1:7070 is unavailable: the store is down\n",
  });
});
