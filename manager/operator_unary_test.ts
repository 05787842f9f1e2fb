/**
 * OperatorService's unary calls served on node:http2 without Connect: over a real HTTP/2
 * connection, the same handlers answer the same through this path (gRPC) as through
 * Connect's (the Connect protocol, which this path leaves to Connect).
 */
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import { create, toBinary } from "@bufbuild/protobuf";
import {
  type Client,
  Code,
  ConnectError,
  createClient,
  type ServiceImpl,
} from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  Http2SessionManager,
} from "@connectrpc/connect-node";
import {
  GetTaskRequestSchema,
  OperatorService,
  TaskState,
} from "../shared/gen/goschedule/v1/goschedule_pb.ts";
import { rejectsWithCode } from "../shared/connect_test_util.ts";
import { createGrpcOperatorUnary } from "./operator_unary.ts";
import { startServer } from "./server.ts";

/** A server with the handlers behind both paths, and a client for each path. */
async function serving(impl: Partial<ServiceImpl<typeof OperatorService>>) {
  /** How many calls the direct path took. */
  const seen = { direct: 0 };
  const unary = createGrpcOperatorUnary(impl as ServiceImpl<typeof OperatorService>);
  const server = await startServer({
    host: "127.0.0.1",
    port: 0,
    routes: (router) => router.service(OperatorService, impl),
    direct: [(req, res, peer) => unary(req, res, peer) && ++seen.direct > 0],
  });
  const url = `http://${server.address}`;
  const sessions: Http2SessionManager[] = [];
  const client = (
    make: typeof createGrpcTransport | typeof createConnectTransport,
  ): Client<typeof OperatorService> => {
    const sessionManager = new Http2SessionManager(url);
    sessions.push(sessionManager);
    return createClient(
      OperatorService,
      make({ baseUrl: url, httpVersion: "2", sessionManager }),
    );
  };
  return {
    seen,
    url,
    grpc: client(createGrpcTransport),
    connect: client(createConnectTransport),
    async [Symbol.asyncDispose]() {
      for (const s of sessions) s.abort();
      await server.close();
    },
  };
}

Deno.test("a unary gRPC call gets the same answer and the same errors as through Connect", async () => {
  const seen: unknown[] = [];
  await using s = await serving({
    getTask(request) {
      seen.push(request.id);
      if (request.id === "nope") {
        throw new ConnectError(`task "nope" not found: 100% sure`, Code.NotFound);
      }
      if (request.id === "boom") throw new Error("a bug");
      // An answer that cannot be encoded: an int64 that is not a number.
      if (request.id === "bad") return { task: { createdAt: { seconds: "x" } } } as never;
      return { task: { id: request.id, cmd: "échO", params: ["a"], state: TaskState.DONE } };
    },
    listWorkers: () => ({ workers: [{ id: "w1", address: "127.0.0.1:1" }] }),
  });
  for (const client of [s.grpc, s.connect]) {
    const { task } = await client.getTask({ id: "t1" });
    assert.deepEqual([task?.id, task?.cmd, task?.params, task?.state], [
      "t1",
      "échO",
      ["a"],
      TaskState.DONE,
    ]);
    assert.equal((await client.listWorkers({})).workers[0].id, "w1");
    await rejectsWithCode(
      client.getTask({ id: "nope" }),
      Code.NotFound,
      `task "nope" not found: 100% sure`,
    );
    await rejectsWithCode(client.getTask({ id: "boom" }), Code.Internal, "internal error");
    await rejectsWithCode(client.getTask({ id: "bad" }), Code.Internal, /./);
    assert.equal((await client.getTask({ id: "t2" })).task?.id, "t2", "and serves on");
  }
  const asked = ["t1", "nope", "boom", "bad", "t2"];
  assert.deepEqual(seen, [...asked, ...asked]);
  assert.equal(s.seen.direct, 6, "the gRPC calls took the direct path, the Connect ones not");
});

Deno.test("a unary gRPC call's signal ends with its deadline, or when the client goes away", async () => {
  const aborted: unknown[] = [];
  let started = () => {};
  await using s = await serving({
    getTask(_request, context) {
      started();
      return new Promise((resolve) => {
        // Without an abort, the call still ends, and the test fails rather than hangs.
        const timer = setTimeout(() => resolve({}), 2_000);
        context.signal.addEventListener("abort", () => {
          clearTimeout(timer);
          aborted.push(context.signal.reason);
          resolve({});
        });
      });
    },
  });
  // The deadline: the request's grpc-timeout ends the handler's signal (a client that keeps
  // waiting past it, as this one does, gets the handler's answer).
  assert.deepEqual(await rawCall(s.url, getTaskBody("t1"), { "grpc-timeout": "100m" }), {
    code: "0",
    message: "",
  });
  assert.equal(aborted.length, 1);
  assert.equal(ConnectError.from(aborted[0]).code, Code.DeadlineExceeded);

  // The client cancels.
  const cancel = new AbortController();
  const call = s.grpc.getTask({ id: "t2" }, { signal: cancel.signal });
  await new Promise<void>((resolve) => started = resolve);
  cancel.abort();
  await rejectsWithCode(call, Code.Canceled, /./);
  await waitFor(() => aborted.length === 2);
  assert.equal(ConnectError.from(aborted[1]).rawMessage, "the client went away");
  assert.equal(s.seen.direct, 2);
});

Deno.test("a malformed unary gRPC request is refused with a status, not served", async () => {
  const seen: string[] = [];
  await using s = await serving({
    getTask(request) {
      seen.push(request.id);
      return {};
    },
  });
  const message = toBinary(GetTaskRequestSchema, create(GetTaskRequestSchema, { id: "t1" }));
  const cases: [string, Uint8Array, number, string][] = [
    ["no message", new Uint8Array(0), Code.Unimplemented, "missing input message"],
    [
      "two messages",
      new Uint8Array([...envelope(0, message), ...envelope(0, message)]),
      Code.Unimplemented,
      "received extra input message",
    ],
    ["a cut message", envelope(0, message).subarray(0, 6), Code.InvalidArgument, "incomplete"],
    ["a compressed message", envelope(1, message), Code.InvalidArgument, "compressed"],
    ["bytes that are not one", envelope(0, new Uint8Array([0xff])), Code.InvalidArgument, "decode"],
  ];
  for (const [what, body, code, words] of cases) {
    const status = await rawCall(s.url, body);
    assert.equal(status.code, String(code), `${what}: ${JSON.stringify(status)}`);
    assert.match(decodeURIComponent(status.message), new RegExp(words), what);
  }
  assert.deepEqual(seen, [], "no handler ran");
  assert.equal(s.seen.direct, cases.length);
  // A well-formed one, the same way.
  assert.deepEqual(await rawCall(s.url, getTaskBody("t1")), { code: "0", message: "" });
  assert.deepEqual(seen, ["t1"]);
});

function envelope(flags: number, bytes: Uint8Array): Uint8Array {
  const framed = new Uint8Array(5 + bytes.length);
  framed[0] = flags;
  new DataView(framed.buffer).setUint32(1, bytes.length);
  framed.set(bytes, 5);
  return framed;
}

function getTaskBody(id: string): Uint8Array {
  return envelope(0, toBinary(GetTaskRequestSchema, create(GetTaskRequestSchema, { id })));
}

/** POSTs a gRPC body to GetTask on a fresh connection; the status from the trailers. */
async function rawCall(
  url: string,
  body: Uint8Array,
  headers: Record<string, string> = {},
): Promise<{ code: string; message: string }> {
  const session = http2.connect(url);
  try {
    return await new Promise((resolve, reject) => {
      const stream = session.request({
        ":method": "POST",
        ":path": `/${OperatorService.typeName}/GetTask`,
        "content-type": "application/grpc",
        te: "trailers",
        ...headers,
      });
      stream.on("trailers", (trailers) =>
        resolve({
          code: String(trailers["grpc-status"]),
          message: String(trailers["grpc-message"] ?? ""),
        }));
      stream.on("error", reject);
      stream.on("data", () => {});
      stream.end(body);
    });
  } finally {
    await new Promise<void>((resolve) => session.close(() => resolve()));
  }
}

async function waitFor(check: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !check(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(check(), "timed out");
}
