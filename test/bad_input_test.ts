/**
 * Bad input and broken surroundings get a clear answer, a non-zero exit, and lose nothing.
 * Real processes throughout.
 */
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { WorkerService } from "../shared/gen/goschedule/v1/goschedule_pb.ts";
import { AsyncQueue } from "../shared/async_queue.ts";
import { freePort } from "./harness/ports.ts";
import { Cluster, runProgram, waitFor } from "./harness/processes.ts";

const NO_STACK = /\n\s+at /;

Deno.test("schedctl with the manager down says which address, and exits non-zero", async () => {
  await using cluster = await Cluster.create();
  const port = freePort();
  const config = await cluster.writeFile(
    "schedctl.yaml",
    `manager: http://127.0.0.1:${port}\ntimeout: 2s\n`,
  );
  const result = await runProgram("schedctl/main.ts", ["-c", config, "workers", "ls"]);
  assert.notEqual(result.code, 0);
  assert.equal(result.stderr.trim().split("\n").length, 1, result.stderr);
  assert.match(result.stderr, new RegExp(`127\\.0\\.0\\.1:${port}`));
  assert.doesNotMatch(result.stderr, NO_STACK);
});

Deno.test("schedctl gives up on a manager that never answers, within its timeout", async () => {
  await using cluster = await Cluster.create();
  // Accepts TCP connections and never says a word.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of listener) held.push(conn);
  })();
  try {
    const config = await cluster.writeFile(
      "schedctl.yaml",
      `manager: http://127.0.0.1:${listener.addr.port}\ntimeout: 1s\n`,
    );
    const result = await runProgram("schedctl/main.ts", ["-c", config, "tasks", "ls"]);
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /did not answer within 1s/);
    assert.doesNotMatch(result.stderr, NO_STACK);
  } finally {
    listener.close();
    await accepting.catch(() => {});
    for (const conn of held) conn.close();
  }
});

Deno.test("manager config mistakes: one line naming file and key, exit 2", async (t) => {
  await using cluster = await Cluster.create();
  const cases: [string, string, RegExp][] = [
    ["unknown key", "listen: 127.0.0.1:0\nping_intervall: 1s\n", /unknown key "ping_intervall"/],
    ["wrong type", "listen: 127.0.0.1:0\nack_timeout: [1]\n", /ack_timeout: expected string/],
    ["bad duration", "ping_interval: 5x\n", /ping_interval: Invalid duration "5x"/],
    [
      "silence shorter than ping",
      "ping_interval: 5s\nsilence_timeout: 2s\n",
      /silence_timeout: must be longer than ping_interval/,
    ],
    ["bad scheduler", "scheduler: fastest\n", /scheduler: /],
    ["not YAML", "listen: [\n", /not valid YAML/],
  ];
  for (const [name, text, expected] of cases) {
    await t.step(name, async () => {
      const path = await cluster.writeFile("manager.yaml", text);
      const result = await runProgram("manager/main.ts", ["-f", path]);
      assert.equal(result.code, 2, result.stderr);
      assert.equal(result.stderr.trim().split("\n").length, 1, result.stderr);
      assert.match(result.stderr, new RegExp(path.replaceAll(".", "\\.")));
      assert.match(result.stderr, expected);
    });
  }
  await t.step("a missing config file", async () => {
    const result = await runProgram("manager/main.ts", ["-f", `${cluster.dir}/nope.yaml`]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /nope\.yaml: cannot read the config file: no such file/);
  });
});

Deno.test("worker config mistakes: one line naming file and key, exit 2", async () => {
  await using cluster = await Cluster.create();
  const path = await cluster.writeFile("worker.yaml", "manager: ftp://x\nstate_dir: /tmp/x\n");
  const result = await runProgram("worker/main.ts", ["-f", path]);
  assert.equal(result.code, 2, result.stderr);
  assert.match(result.stderr, /worker\.yaml: manager: "ftp:\/\/x" is not an http/);
});

Deno.test("a manager whose etcd cannot be reached says so and exits non-zero", async () => {
  await using cluster = await Cluster.create();
  const port = freePort();
  const path = await cluster.writeFile(
    "manager.yaml",
    `listen: 127.0.0.1:${freePort()}\netcd:\n  endpoints: ["http://127.0.0.1:${port}"]\n` +
      `  request_timeout: 1s\n`,
  );
  const result = await runProgram("manager/main.ts", ["-f", path]);
  assert.equal(result.code, 1, result.stderr);
  assert.match(result.stderr, new RegExp(`cannot reach etcd at http://127\\.0\\.0\\.1:${port}`));
  assert.doesNotMatch(result.stderr, NO_STACK);
});

Deno.test("a malformed worker stream is closed; the manager keeps serving", async () => {
  await using cluster = await Cluster.create();
  await cluster.startManager();
  await cluster.startWorker("good");
  const client = createClient(WorkerService, createGrpcTransport({ baseUrl: cluster.managerUrl }));

  // A stream that starts with a pong instead of a hello.
  const wrongFirst = new AsyncQueue<{ msg: { case: "pong"; value: { seq: bigint } } }>();
  wrongFirst.push({ msg: { case: "pong", value: { seq: 1n } } });
  await assert.rejects(async () => {
    for await (const _ of client.connect(wrongFirst)) { /* nothing expected */ }
  }, /first message must be a hello/);

  // A hello with an id no worker may have.
  const badId = new AsyncQueue<{ msg: { case: "hello"; value: { workerId: string } } }>();
  badId.push({ msg: { case: "hello", value: { workerId: "../etc" } } });
  await assert.rejects(async () => {
    for await (const _ of client.connect(badId)) { /* nothing expected */ }
  }, /invalid worker id "\.\.\/etc"/);

  // Bytes that are not a protobuf message at all, in a valid gRPC frame.
  const session = http2.connect(cluster.managerUrl);
  try {
    const status = await new Promise<string | undefined>((resolve, reject) => {
      const stream = session.request({
        ":method": "POST",
        ":path": "/goschedule.v1.WorkerService/Connect",
        "content-type": "application/grpc",
        te: "trailers",
      });
      stream.on("trailers", (trailers) => resolve(String(trailers["grpc-status"])));
      stream.on("response", (headers) => {
        if (headers["grpc-status"]) resolve(String(headers["grpc-status"]));
      });
      stream.on("error", reject);
      stream.resume();
      const garbage = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0x0f]);
      const frame = new Uint8Array(5 + garbage.length);
      new DataView(frame.buffer).setUint32(1, garbage.length);
      frame.set(garbage, 5);
      stream.end(frame);
    });
    assert.notEqual(status, "0", "the malformed stream is not accepted");
  } finally {
    session.close();
  }

  const ls = await cluster.schedctl("workers", "ls");
  assert.equal(ls.code, 0, ls.stderr);
  assert.match(ls.stdout, /good\s+127\.0\.0\.1:\d+\s+\S+\s+connected/);
  const add = await cluster.schedctl("tasks", "add", "true");
  assert.equal(add.code, 0, add.stderr);
});

Deno.test("a silent worker turns disconnected, and comes back when it wakes", async () => {
  await using cluster = await Cluster.create();
  await cluster.startManager({ pingInterval: "300ms", silenceTimeout: "1500ms" });
  const worker = await cluster.startWorker("sleepy");
  worker.signal("SIGSTOP");
  try {
    await cluster.waitForWorkerState("sleepy", "disconnected", 1500 + 5000);
  } finally {
    worker.signal("SIGCONT");
  }
  await cluster.waitForWorkerState("sleepy", "connected");
  await waitFor(async () => (await cluster.manager.log()).includes("silent for more than 1.5s"), {
    timeoutMs: 2000,
    what: "the manager to log why it dropped the worker",
  });
});
