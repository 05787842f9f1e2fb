import assert from "node:assert/strict";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { fromBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { AsyncQueue } from "../shared/async_queue.ts";
import {
  type ConnectRequest,
  type ConnectRequestSchema,
  ConnectRequestSchema as RequestSchema,
  type ConnectResponse,
  ConnectResponseSchema,
} from "../shared/gen/goschedule/v1/goschedule_pb.ts";
import { EnvelopeReader, grpcFrame } from "../shared/grpc_frames.ts";
import { rejectsWithCode } from "../shared/connect_test_util.ts";
import { openManagerStream } from "./manager_stream.ts";

type Outgoing = MessageInitShape<typeof ConnectRequestSchema>;

/**
 * A bare gRPC server on a free port: `handle` gets each worker stream's messages and a way to
 * answer and to end it with a status.
 */
async function withServer(
  handle: (
    request: ConnectRequest,
    reply: (message: MessageInitShape<typeof ConnectResponseSchema>) => void,
    end: (status: number, message?: string) => void,
  ) => void,
  fn: (url: string, seen: { path?: string; contentType?: string }) => Promise<void>,
  /** The server reads nothing of a stream until this settles (flow control holds the worker). */
  readAfter: Promise<void> = Promise.resolve(),
): Promise<void> {
  const seen: { path?: string; contentType?: string } = {};
  const server = http2.createServer();
  server.on("stream", (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => {
    seen.path = String(headers[":path"]);
    seen.contentType = String(headers["content-type"]);
    stream.respond({ ":status": 200, "content-type": "application/grpc+proto" }, {
      waitForTrailers: true,
    });
    let trailers: Record<string, string> = { "grpc-status": "0" };
    stream.on("wantTrailers", () => stream.sendTrailers(trailers));
    const end = (status: number, message = "") => {
      trailers = { "grpc-status": String(status), "grpc-message": encodeURIComponent(message) };
      stream.end();
    };
    const reader = new EnvelopeReader();
    stream.on("error", () => {});
    readAfter.then(() =>
      stream.on("data", (chunk: Uint8Array) => {
        for (const bytes of reader.push(chunk)) {
          handle(
            fromBinary(RequestSchema, bytes),
            (m) => stream.write(grpcFrame(ConnectResponseSchema, m)),
            end,
          );
        }
      })
    );
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  try {
    await fn(`http://127.0.0.1:${port}`, seen);
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

async function collect(stream: AsyncIterable<ConnectResponse>): Promise<ConnectResponse[]> {
  const messages: ConnectResponse[] = [];
  for await (const message of stream) messages.push(message);
  return messages;
}

const HELLO: Outgoing = { msg: { case: "hello", value: { workerId: "w1" } } };

Deno.test("the stream carries messages both ways and ends on the manager's OK", async () => {
  await withServer((request, reply, end) => {
    if (request.msg.case === "hello") {
      reply({ msg: { case: "welcome", value: { pingIntervalMs: 2000, acceptsReports: true } } });
      reply({ msg: { case: "ping", value: { seq: 7n } } });
    }
    if (request.msg.case === "pong") end(0);
  }, async (url, seen) => {
    const outgoing = new AsyncQueue<Outgoing>();
    outgoing.push(HELLO);
    const received: ConnectResponse[] = [];
    for await (const message of openManagerStream(url, outgoing, new AbortController().signal)) {
      received.push(message);
      if (message.msg.case === "ping") {
        outgoing.push({ msg: { case: "pong", value: { seq: message.msg.value.seq } } });
      }
    }
    outgoing.close();
    assert.deepEqual(received.map((m) => m.msg.case), ["welcome", "ping"]);
    assert.equal(seen.path, "/goschedule.v1.WorkerService/Connect");
    assert.equal(seen.contentType, "application/grpc+proto");
  });
});

Deno.test("the manager's error status ends the stream as a ConnectError with its code", async () => {
  await withServer(
    (_request, _reply, end) => end(Code.InvalidArgument, "bad worker id: ü"),
    async (url) => {
      const outgoing = new AsyncQueue<Outgoing>();
      outgoing.push(HELLO);
      await rejectsWithCode(
        collect(openManagerStream(url, outgoing, new AbortController().signal)),
        Code.InvalidArgument,
        "bad worker id: ü",
      );
      outgoing.close();
    },
  );
});

Deno.test("a manager that cannot be reached is Unavailable; an abort is Canceled", async () => {
  // A port that was just free: nothing listens there.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const none = new AsyncQueue<Outgoing>();
  await rejectsWithCode(
    collect(openManagerStream(`http://127.0.0.1:${port}`, none, new AbortController().signal)),
    Code.Unavailable,
  );
  none.close();

  await withServer(() => {}, async (url) => {
    const outgoing = new AsyncQueue<Outgoing>();
    outgoing.push(HELLO);
    const abort = new AbortController();
    const stream = collect(openManagerStream(url, outgoing, abort.signal));
    setTimeout(() => abort.abort(), 50);
    await rejectsWithCode(stream, Code.Canceled);
    outgoing.close();
  });
});

Deno.test("while the manager reads nothing, messages wait in the worker's queue", async () => {
  let release!: () => void;
  const readAfter = new Promise<void>((resolve) => release = resolve);
  let received = 0;
  await withServer((request, _reply, end) => {
    if (request.msg.case === "logChunk" && ++received === 200) end(0);
  }, async (url) => {
    const outgoing = new AsyncQueue<Outgoing>();
    let taken = 0;
    const counted = (async function* () {
      for await (const message of outgoing) {
        taken++;
        yield message;
      }
    })();
    const chunk = new Uint8Array(8192);
    for (let i = 0; i < 200; i++) {
      outgoing.push({ msg: { case: "logChunk", value: { requestId: 1n, data: chunk } } });
    }
    const abort = new AbortController();
    const stream = collect(openManagerStream(url, counted, abort.signal));
    try {
      await new Promise((r) => setTimeout(r, 300));
      // 1.6 MiB offered; HTTP/2 flow control lets about 64 KiB through to a peer not reading.
      assert.ok(taken < 100, `only what the connection can hold is taken (${taken} of 200)`);
      release();
      await stream;
      assert.equal(received, 200, "everything arrives once the manager reads");
    } finally {
      release();
      abort.abort();
      await stream.catch(() => {});
      outgoing.close();
    }
  }, readAfter);
});
