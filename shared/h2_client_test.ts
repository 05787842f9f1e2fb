import assert from "node:assert/strict";
import http2 from "node:http2";
import { H2Connection, H2ConnectionError, H2StreamError } from "./h2_client.ts";

type Handler = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => void;

/** An h2c server on a free loopback port that answers each request with `handler`. */
async function withServer(handler: Handler, fn: (origin: URL) => Promise<void>): Promise<void> {
  const server = http2.createServer();
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (session) => {
    sessions.add(session);
    session.on("close", () => sessions.delete(session));
    session.on("error", () => {});
  });
  server.on("stream", (stream, headers) => {
    stream.on("error", () => {});
    const chunks: Uint8Array[] = [];
    stream.on("data", (c: Uint8Array) => chunks.push(c));
    stream.on("end", () => handler(stream as http2.ServerHttp2Stream, headers));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  try {
    await fn(new URL(`http://127.0.0.1:${port}`));
  } finally {
    for (const session of sessions) session.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

const never = () => new AbortController().signal;
const body = new Uint8Array([1, 2, 3]);

Deno.test("h2: an answer comes with its headers, body and trailers", async () => {
  await withServer((stream, headers) => {
    stream.respond({ ":status": 200, "x-path": String(headers[":path"]) }, {
      waitForTrailers: true,
    });
    stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
    stream.end(new Uint8Array([9, 8]));
  }, async (origin) => {
    const h2 = await H2Connection.open(origin, never());
    try {
      const answers = await Promise.all(
        ["/a", "/b", "/c"].map((path) => h2.request(path, [["te", "trailers"]], body, never())),
      );
      assert.deepEqual(answers.map((a) => a.headers.get("x-path")), ["/a", "/b", "/c"]);
      for (const answer of answers) {
        assert.equal(answer.status, 200);
        assert.deepEqual(answer.body, new Uint8Array([9, 8]));
        assert.equal(answer.trailers.get("grpc-status"), "0");
      }
      // Headers the server indexes fill its HPACK table many times over, and it evicts the
      // oldest: the client's copy of the table must follow, or headers come out wrong.
      for (let i = 0; i < 300; i++) {
        const path = `/long/${String(i).padStart(40, "0")}`;
        const answer = await h2.request(path, [], body, never());
        assert.equal(answer.headers.get("x-path"), path);
      }
    } finally {
      h2.close();
    }
  });
});

Deno.test("h2: a reset request fails alone, and a cancelled one is reset", async () => {
  await withServer((stream, headers) => {
    if (headers[":path"] === "/reset") return stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
    if (headers[":path"] === "/slow") return; // Never answered: the client cancels it.
    stream.respond({ ":status": 200 });
    stream.end();
  }, async (origin) => {
    const h2 = await H2Connection.open(origin, never());
    try {
      await assert.rejects(h2.request("/reset", [], body, never()), (e: Error) => {
        assert.ok(e instanceof H2StreamError, String(e));
        assert.equal(e.code, 7);
        assert.equal(e.unprocessed, true, "REFUSED_STREAM: not processed");
        return true;
      });
      const abort = new AbortController();
      const slow = h2.request("/slow", [], body, abort.signal);
      abort.abort();
      await assert.rejects(slow, H2StreamError);
      assert.equal((await h2.request("/ok", [], body, never())).status, 200);
      assert.equal(h2.usable, true);
    } finally {
      h2.close();
    }
  });
});

Deno.test("h2: a closed connection fails what is unanswered and takes no more", async () => {
  let closeSession = () => {};
  await withServer((stream) => {
    closeSession = () => stream.session?.destroy();
  }, async (origin) => {
    const h2 = await H2Connection.open(origin, never());
    const pending = h2.request("/hang", [], body, never());
    while (!(await Promise.race([pending.then(() => true, () => true), tick()]))) {
      closeSession();
    }
    // The server may reset the request before it closes the connection.
    const failed = (e: Error) => e instanceof H2ConnectionError || e instanceof H2StreamError;
    await assert.rejects(pending, failed);
    while (h2.usable) await tick();
    await assert.rejects(h2.request("/after", [], body, never()), failed);
    h2.close();
  });
});

function tick(): Promise<false> {
  return new Promise((resolve) => setTimeout(() => resolve(false), 10));
}

Deno.test("h2: a PING's ACK goes out with the next request, or alone soon after", async () => {
  const events: string[] = [];
  let session: http2.Http2Session | undefined;
  const ping = (label: string) =>
    new Promise<Uint8Array>((resolve, reject) => {
      const sent = session!.ping(new TextEncoder().encode(label.padEnd(8)), (err, _ms, payload) => {
        if (err) return reject(err);
        events.push(`ack ${label}`);
        resolve(payload);
      });
      assert.ok(sent, "the server could not send a PING");
    });
  let firstPing: Promise<Uint8Array> | undefined;
  await withServer((stream, headers) => {
    session = stream.session;
    events.push(`request ${headers[":path"]}`);
    // Before the answer, on the same connection: the client reads the PING first.
    if (headers[":path"] === "/first") firstPing = ping("first");
    stream.respond({ ":status": 200 });
    stream.end();
  }, async (origin) => {
    const h2 = await H2Connection.open(origin, never());
    try {
      await h2.request("/first", [], body, never());
      assert.equal(h2.holdsPingAck, true, "the PING came before the answer; its ACK waits");
      await h2.request("/second", [], body, never());
      assert.equal(h2.holdsPingAck, false);
      assert.equal(new TextDecoder().decode(await firstPing!), "first   ");
      // The ACK was held for the second request and went ahead of it.
      assert.deepEqual(events, ["request /first", "ack first", "request /second"]);
      // With no request to go with, it goes on its own.
      let timer: ReturnType<typeof setTimeout> | undefined;
      const alone = await Promise.race([
        ping("alone"),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error("no ACK within 2 s")), 2_000);
        }),
      ]).finally(() => clearTimeout(timer));
      assert.equal(new TextDecoder().decode(alone), "alone   ");
      assert.deepEqual(events.slice(3), ["ack alone"]);
      // One held when the connection closes leaves no timer behind (the sanitizer checks).
      void ping("unacked").catch(() => {});
      while (!h2.holdsPingAck) await new Promise((r) => setTimeout(r, 1));
    } finally {
      h2.close();
    }
  });
});

/** An h2c server on a free loopback port that hands each stream to `onStream`, as it opens. */
async function startStreamServer(onStream: (stream: http2.ServerHttp2Stream) => void) {
  const server = http2.createServer();
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (session) => {
    sessions.add(session);
    session.on("error", () => {});
  });
  server.on("stream", (stream: http2.ServerHttp2Stream) => {
    stream.on("error", () => {});
    onStream(stream);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  return {
    origin: new URL(`http://127.0.0.1:${port}`),
    async close() {
      for (const session of sessions) session.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

Deno.test("h2: a call's messages go both ways while it lasts, then it ends with trailers", async () => {
  const server = await startStreamServer((stream) => {
    stream.respond({ ":status": 200 }, { waitForTrailers: true });
    stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
    // Each chunk straight back, doubled: the answer comes while the request goes on.
    stream.on("data", (chunk: Uint8Array) => stream.write(new Uint8Array([...chunk, ...chunk])));
    stream.on("end", () => stream.end());
  });
  const h2 = await H2Connection.open(server.origin, never());
  try {
    const received: number[][] = [];
    let wake = () => {};
    const call = h2.call("/echo", [["te", "trailers"]], (data) => {
      received.push([...data]);
      wake();
    }, never());
    for (const n of [1, 2, 3]) {
      const echoed = new Promise<void>((resolve) => wake = resolve);
      await call.send(new Uint8Array([n]));
      await echoed;
    }
    assert.deepEqual(received, [[1, 1], [2, 2], [3, 3]]);
    call.end();
    const answer = await call.answer;
    assert.equal(answer.status, 200);
    assert.equal(answer.trailers.get("grpc-status"), "0");
    assert.equal(answer.body.length, 0, "the data went to onData");
  } finally {
    h2.close();
    await server.close();
  }
});

Deno.test("h2: a lazy message waits for the next eager one, or for coalesceMs", async () => {
  const server = await startStreamServer((stream) => {
    stream.respond({ ":status": 200 });
    stream.on("data", (chunk: Uint8Array) => stream.write(chunk));
  });
  const hold = 300;
  const h2 = await H2Connection.open(server.origin, never(), { coalesceMs: hold });
  try {
    const received: number[] = [];
    let wake = () => {};
    const echoed = (count: number) =>
      new Promise<void>((resolve) => {
        wake = () => received.length >= count && resolve();
        wake();
      });
    const call = h2.call("/echo", [], (data) => {
      received.push(...data);
      wake();
    }, never());
    // It fails when the test closes the connection.
    call.answer.catch(() => {});
    await call.send(new Uint8Array([1]));
    await echoed(1);
    const writes = h2.writes;

    // A lazy message waits; the eager one sent turns later takes it along, in one write.
    await call.send(new Uint8Array([2]), { lazy: true });
    await new Promise((resolve) => setTimeout(resolve, 1));
    assert.equal(h2.writes, writes, "the lazy message waits");
    await call.send(new Uint8Array([3]));
    await new Promise((resolve) => setTimeout(resolve, 0));
    assert.equal(h2.writes, writes + 1, "the eager one went at once, with the lazy one");
    await echoed(3);
    assert.deepEqual(received, [1, 2, 3]);

    // Alone, a lazy message goes once coalesceMs is up.
    const sentAt = performance.now();
    await call.send(new Uint8Array([4]), { lazy: true });
    await echoed(4);
    assert.ok(performance.now() - sentAt >= hold - 1, "it waited for coalesceMs");
    assert.equal(h2.writes, writes + 2);

    // One waiting when the connection closes leaves no timer behind (the sanitizer checks).
    await call.send(new Uint8Array([5]), { lazy: true });
    assert.equal(h2.writes, writes + 2);
  } finally {
    h2.close();
    await server.close();
  }
});
