import assert from "node:assert/strict";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { create } from "@bufbuild/protobuf";
import { createClient, type Transport } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { OperatorService } from "../shared/gen/goschedule/v1/goschedule_pb.ts";
import { MAX_LOG_MESSAGE } from "../manager/operator_service.ts";
import { createManagerTransport, createOperatorClient } from "./client.ts";

Deno.test("a call that asks the manager to wait gets the wait on top of its timeout", async () => {
  const timeouts: (number | undefined)[] = [];
  const transport: Transport = {
    unary(method, _signal, timeoutMs) {
      timeouts.push(timeoutMs);
      return Promise.resolve({
        stream: false,
        service: OperatorService,
        method,
        header: new Headers(),
        trailer: new Headers(),
        message: create(method.output),
      });
    },
    stream: () => Promise.reject(new Error("no streams here")),
  };
  const client = createOperatorClient(transport, { timeoutMs: 5_000 });
  await client.getTask({ id: "t1" });
  await client.getTask({ id: "t1", wait: { seconds: 2n, nanos: 500_000_000 } });
  await client.getTask({ id: "t1" }, { timeoutMs: 100 });
  assert.deepEqual(timeouts, [5_000, 7_500, 100]);
});

Deno.test("a log stream as the manager sends it arrives whole over a real HTTP/2 connection", async () => {
  // The manager sends logs in messages of MAX_LOG_MESSAGE bytes: larger ones, several to a
  // stream, end early under Deno's node:http2 client. 192 KiB of them must arrive whole.
  const size = 64 * MAX_LOG_MESSAGE;
  const server = http2.createServer(connectNodeAdapter({
    routes: (router) =>
      router.service(OperatorService, {
        async *taskLogs() {
          for (let i = 0; i < 3 * 64; i++) {
            yield { data: new Uint8Array(MAX_LOG_MESSAGE).fill(65 + (i % 26)) };
          }
        },
      }),
  }));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  try {
    for (let round = 0; round < 10; round++) {
      const { transport, close } = createManagerTransport({
        manager: `http://127.0.0.1:${port}`,
        timeoutMs: 5000,
      });
      try {
        let received = 0;
        for await (const chunk of createClient(OperatorService, transport).taskLogs({ id: "t" })) {
          received += chunk.data.length;
        }
        assert.equal(received, 3 * size, `round ${round}`);
      } finally {
        close();
      }
    }
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});
