/**
 * The worker stream served straight on node:http2 (gRPC), over a real port with
 * connect-node's gRPC client as the worker uses it; and the same server still leaving every
 * other call to Connect.
 */
import assert from "node:assert/strict";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { type Client, Code, createClient } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  Http2SessionManager,
} from "@connectrpc/connect-node";
import { createClock } from "@sinonjs/fake-timers";
import { AsyncQueue } from "../shared/async_queue.ts";
import { clockOf } from "../shared/fake_clock.ts";
import {
  type ConnectRequestSchema,
  OperatorService,
  TaskState,
  WorkerService,
  WorkerState,
} from "../shared/gen/goschedule/v1/goschedule_pb.ts";
import type { Logger } from "../shared/log.ts";
import { createMemoryStore } from "../shared/store/memory_store.ts";
import { Manager } from "./manager.ts";
import { createOperatorService } from "./operator_service.ts";
import { type RunningServer, startServer } from "./server.ts";
import { createWorkerService, createWorkerStreams } from "./worker_service.ts";
import { EnvelopeReader } from "../shared/grpc_frames.ts";
import { createGrpcWorkerStream } from "./worker_stream.ts";
import { rejectsWithCode } from "../shared/connect_test_util.ts";
import { hello } from "./test_util.ts";

type Request = MessageInitShape<typeof ConnectRequestSchema>;

const silent: Logger = { debug() {}, info() {}, warn() {}, error() {} };

class Served implements AsyncDisposable {
  readonly fake = createClock(Date.UTC(2025, 0, 1, 12));
  readonly store = createMemoryStore();
  readonly manager = new Manager({
    store: this.store,
    log: silent,
    pingIntervalMs: 1_000,
    silenceTimeoutMs: 3_000,
    ackTimeoutMs: 2_000,
    scheduler: "round-robin",
    clock: clockOf(this.fake),
  });
  readonly #sessions: Http2SessionManager[] = [];
  readonly #queues: AsyncQueue<Request>[] = [];
  server!: RunningServer;
  url = "";
  /** Streams the direct handler took. */
  direct = 0;

  static async start(): Promise<Served> {
    const served = new Served();
    await served.manager.start();
    const streams = createWorkerStreams(served.manager, silent);
    const grpcStream = createGrpcWorkerStream(streams, silent, 3_000);
    served.server = await startServer({
      host: "127.0.0.1",
      port: 0,
      routes: (router) => {
        router.service(OperatorService, createOperatorService(served.manager, silent));
        router.service(WorkerService, createWorkerService(served.manager, silent, 3_000, streams));
      },
      direct: [(req, res, peer) => {
        const taken = grpcStream(req, res, peer);
        if (taken) served.direct++;
        return taken;
      }],
    });
    served.url = `http://${served.server.address}`;
    return served;
  }

  #session(): Http2SessionManager {
    const session = new Http2SessionManager(this.url);
    this.#sessions.push(session);
    return session;
  }

  /** A gRPC client, as the worker makes it. */
  grpc<T extends typeof WorkerService | typeof OperatorService>(service: T) {
    return createClient(
      service,
      createGrpcTransport({ baseUrl: this.url, sessionManager: this.#session() }),
    );
  }

  /** A Connect-protocol client, which the direct handler leaves to Connect. */
  connectProtocol<T extends typeof WorkerService | typeof OperatorService>(service: T) {
    return createClient(
      service,
      createConnectTransport({
        baseUrl: this.url,
        httpVersion: "2",
        sessionManager: this.#session(),
      }),
    );
  }

  openStream(worker: Client<typeof WorkerService>) {
    const requests = new AsyncQueue<Request>();
    this.#queues.push(requests);
    const responses = worker.connect(requests)[Symbol.asyncIterator]();
    return { requests, responses };
  }

  async [Symbol.asyncDispose](): Promise<void> {
    for (const queue of this.#queues) queue.close();
    this.manager.stop();
    await this.server.close();
    for (const session of this.#sessions) session.abort();
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

Deno.test("gRPC worker stream: welcome, pings, runs and acks; the worker's end disconnects", async () => {
  await using s = await Served.start();
  const operator = s.grpc(OperatorService);
  const { requests, responses } = s.openStream(s.grpc(WorkerService));
  requests.push(hello("w1"));
  const welcome = await responses.next();
  assert.equal(welcome.value.msg.case, "welcome");
  assert.equal(welcome.value.msg.value.pingIntervalMs, 1_000);
  const [w1] = (await operator.listWorkers({})).workers;
  assert.equal(w1.state, WorkerState.CONNECTED);
  assert.match(w1.address, /^127\.0\.0\.1:\d+$/, "the peer address comes from the socket");

  await s.fake.tickAsync(1_000);
  const ping = await responses.next();
  assert.equal(ping.value.msg.case, "ping");

  const { tasks: [scheduled] } = await operator.scheduleTasks({
    tasks: [{ cmd: "echo", params: ["hi"] }],
  });
  const run = await responses.next();
  assert.equal(run.value.msg.case, "run");
  assert.equal(run.value.msg.value.taskId, scheduled.id);

  requests.push({ msg: { case: "pong", value: { seq: ping.value.msg.value.seq } } });
  requests.push({ msg: { case: "ack", value: { taskId: scheduled.id, attempt: 1 } } });
  requests.close();
  assert.equal((await responses.next()).done, true);
  // The stream ends once what it delivered is taken: the ack is stored by then.
  assert.equal((await operator.getTask({ id: scheduled.id })).task?.state, TaskState.SCHEDULED);
  assert.equal((await operator.listWorkers({})).workers[0].state, WorkerState.DISCONNECTED);
  assert.equal(s.direct, 1, "served straight, not by Connect");
});

Deno.test("gRPC worker stream: a bad first or a second hello ends it with InvalidArgument", async () => {
  await using s = await Served.start();
  const worker = s.grpc(WorkerService);
  const notHello = s.openStream(worker);
  notHello.requests.push({ msg: { case: "pong", value: { seq: 1n } } });
  await rejectsWithCode(
    notHello.responses.next(),
    Code.InvalidArgument,
    "the first message must be a hello",
  );
  const badId = s.openStream(worker);
  badId.requests.push(hello("no spaces"));
  await rejectsWithCode(badId.responses.next(), Code.InvalidArgument, /^invalid worker id/);

  const twice = s.openStream(worker);
  twice.requests.push(hello("w1"));
  assert.equal((await twice.responses.next()).value.msg.case, "welcome");
  twice.requests.push(hello("w1"));
  await rejectsWithCode(
    twice.responses.next(),
    Code.InvalidArgument,
    "hello may only be the first message",
  );
  const workers = (await s.grpc(OperatorService).listWorkers({})).workers;
  assert.deepEqual(workers.map((w) => [w.id, w.state]), [["w1", WorkerState.DISCONNECTED]]);
});

Deno.test("gRPC worker stream: a newer stream of the same worker ends the older one", async () => {
  await using s = await Served.start();
  const worker = s.grpc(WorkerService);
  const older = s.openStream(worker);
  older.requests.push(hello("w1"));
  assert.equal((await older.responses.next()).value.msg.case, "welcome");
  const newer = s.openStream(worker);
  newer.requests.push(hello("w1"));
  assert.equal((await newer.responses.next()).value.msg.case, "welcome");
  assert.equal((await older.responses.next()).done, true);
  const workers = (await s.grpc(OperatorService).listWorkers({})).workers;
  assert.deepEqual(workers.map((w) => [w.id, w.state]), [["w1", WorkerState.CONNECTED]]);
});

Deno.test("the Connect protocol on the same route is still served by Connect", async () => {
  await using s = await Served.start();
  const { requests, responses } = s.openStream(s.connectProtocol(WorkerService));
  requests.push(hello("w1"));
  assert.equal((await responses.next()).value.msg.case, "welcome");
  requests.close();
  assert.equal((await responses.next()).done, true);
  assert.equal((await s.connectProtocol(OperatorService).listWorkers({})).workers.length, 1);
  assert.equal(s.direct, 0);
});

Deno.test("envelopes are split across and within chunks; compressed ones are refused", () => {
  const envelope = (...bytes: number[]) => [0, 0, 0, 0, bytes.length, ...bytes];
  const reader = new EnvelopeReader();
  const all = new Uint8Array([...envelope(1, 2, 3), ...envelope(), ...envelope(4)]);
  assert.deepEqual(reader.push(all.subarray(0, 3)), []);
  assert.deepEqual(reader.push(all.subarray(3, 9)).map((m) => [...m]), [[1, 2, 3]]);
  assert.deepEqual(reader.push(all.subarray(9)).map((m) => [...m]), [[], [4]]);
  assert.throws(() => new EnvelopeReader().push(new Uint8Array([1, 0, 0, 0, 0])), /compressed/);
  // Lengths are 4 bytes, big-endian, unsigned.
  const long = new Uint8Array(5 + 0x0102);
  long.set([0, 0, 0, 0x01, 0x02]);
  assert.deepEqual(new EnvelopeReader().push(long).map((m) => m.length), [0x0102]);
  assert.throws(
    () => new EnvelopeReader().push(new Uint8Array([0, 0xff, 0, 0, 1])),
    /a message of 4278190081 bytes is more than the 4194304 accepted/,
  );
});
