import assert from "node:assert/strict";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { WorkerState } from "../shared/gen/goschedule/v1/goschedule_pb.ts";
import { createFakeManager, makeWorker, NOW, runCli } from "./test_util.ts";

const WORKERS = [
  makeWorker({
    id: "w-1",
    hostname: "node-a",
    address: "10.0.0.11:51234",
    runningTasks: 2,
    lastSeenAt: timestampFromMs(NOW - 2_000),
  }),
  makeWorker({
    id: "w-2",
    hostname: "node-b.example.org",
    address: "10.0.0.12:40110",
    state: WorkerState.DISCONNECTED,
    lastSeenAt: timestampFromMs(NOW - 3 * 60_000 - 20_000),
    disconnectedAt: timestampFromMs(NOW - 3 * 60_000),
  }),
  makeWorker({ id: "w-3", hostname: "", address: "", lastSeenAt: undefined }),
];

Deno.test("workers ls prints the table, state in lowercase and last seen as an age", async () => {
  const fake = createFakeManager({ workers: WORKERS });
  const r = await runCli(["workers", "ls"], { transport: fake.transport });
  assert.deepEqual(r, {
    code: 0,
    stderr: "",
    stdout: `\
ID    ADDRESS           HOSTNAME             STATE          TASKS   LAST SEEN
w-1   10.0.0.11:51234   node-a               connected      2       2s ago
w-2   10.0.0.12:40110   node-b.example.org   disconnected   0       3m20s ago
w-3   -                 -                    connected      0       -
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
    runningTasks: 0,
    lastSeenAt: "2025-01-02T11:56:40Z",
    disconnectedAt: "2025-01-02T11:57:00Z",
    version: "",
  });
  assert.ok(r.stdout.includes('\n  {\n    "id": "w-1",\n'), "pretty, two spaces");
});

Deno.test("-o json workers ls with no workers prints []", async () => {
  const fake = createFakeManager();
  const r = await runCli(["-o", "json", "workers", "ls"], { transport: fake.transport });
  assert.deepEqual(r, { code: 0, stdout: "[]\n", stderr: "" });
});

Deno.test("workers help and workers ls --help print the workers commands", async () => {
  for (const argv of [["workers", "help"], ["workers", "ls", "--help"], ["help", "workers"]]) {
    const r = await runCli(argv);
    assert.equal(r.code, 0);
    assert.equal(r.stderr, "");
    assert.match(
      r.stdout,
      /^Usage: schedctl \[-c FILE\] \[-v\] \[-o table\|json\] workers COMMAND\n/,
    );
    assert.match(r.stdout, /\n {2}ls {6}List the workers/);
  }
});
