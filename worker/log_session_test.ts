import assert from "node:assert/strict";
import { silentLogger } from "../shared/log.ts";
import { LogStore } from "./log_store.ts";
import {
  lastLines,
  type LogChunkOut,
  type LogQuery,
  LogSession,
  MAX_BACKLOG_BYTES,
  MAX_CHUNK_BYTES,
} from "./log_session.ts";
import { eventually } from "./test_util.ts";
import { concatBytes } from "../shared/bytes.ts";

const bytes = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array) => new TextDecoder().decode(b);

interface Fixture {
  store: LogStore;
  session: LogSession;
  sent: LogChunkOut[];
  /** The data of request `id` so far, joined. */
  dataOf(id: bigint): Uint8Array;
  /** Resolves once request `id` got its eof chunk. */
  eof(id: bigint): Promise<LogChunkOut>;
  setBacklog(n: number): void;
}

async function withSession(fn: (f: Fixture) => Promise<void>, limit = 1 << 20) {
  const dir = await Deno.makeTempDir();
  const store = new LogStore({ dir, limit, retentionMs: 3_600_000, log: silentLogger });
  const sent: LogChunkOut[] = [];
  let backlog = 0;
  const session = new LogSession({
    store,
    send: (chunk) => sent.push(chunk),
    backlog: () => backlog,
    log: silentLogger,
  });
  const of = (id: bigint) => sent.filter((c) => c.requestId === id);
  try {
    await store.start();
    await fn({
      store,
      session,
      sent,
      dataOf: (id) => concatBytes(of(id).map((c) => c.data)),
      eof: async (id) => {
        await eventually(() => of(id).some((c) => c.eof), `eof of request ${id}`);
        return of(id).find((c) => c.eof)!;
      },
      setBacklog: (n) => backlog = n,
    });
  } finally {
    session.close();
    await store.close();
    await Deno.remove(dir, { recursive: true });
  }
}

const query = (more: Partial<LogQuery>): LogQuery => ({
  requestId: 1n,
  taskId: "t-1",
  attempt: 1,
  follow: false,
  stderr: false,
  tailLines: 0,
  ...more,
});

Deno.test("lastLines takes the last n lines, a final newline ending the last one", () => {
  const cases: [string, number, string][] = [
    ["a\nb\nc\n", 2, "b\nc\n"],
    ["a\nb\nc", 2, "b\nc"],
    ["a\nb\nc\n", 3, "a\nb\nc\n"],
    ["a\nb\nc\n", 10, "a\nb\nc\n"],
    ["a\nb\nc\n", 0, "a\nb\nc\n"],
    ["a\n\n\n", 2, "\n\n"],
    ["", 1, ""],
  ];
  for (const [input, n, expected] of cases) {
    assert.equal(text(lastLines(bytes(input), n)), expected, `${JSON.stringify(input)} ${n}`);
  }
});

Deno.test("without follow a request gets the content in chunks of at most 64 KiB, then eof", async () => {
  await withSession(async (f) => {
    const logs = await f.store.open("t-1", 1);
    const big = new Uint8Array(3 * MAX_CHUNK_BYTES + 10).map((_, i) => i % 256);
    await logs.stdout.write(big);
    f.session.request(query({ requestId: 7n }));
    const eof = await f.eof(7n);
    assert.deepEqual(eof, { requestId: 7n, data: new Uint8Array(0), eof: true, error: "" });
    const chunks = f.sent.filter((c) => c.requestId === 7n && !c.eof);
    assert.deepEqual(chunks.map((c) => c.data.length), [65536, 65536, 65536, 10]);
    assert.deepEqual(f.dataOf(7n), big, "binary bytes pass unharmed");
    assert.equal(f.session.activeRequests, 0);
  });
});

Deno.test("a request reads stderr or stdout, and tail_lines cuts to the last lines", async () => {
  await withSession(async (f) => {
    const logs = await f.store.open("t-1", 1);
    await logs.stdout.write(bytes("1\n2\n3\n4\n"));
    await logs.stderr.write(bytes("oops\n"));
    f.session.request(query({ requestId: 1n, tailLines: 2 }));
    f.session.request(query({ requestId: 2n, stderr: true }));
    await f.eof(1n);
    await f.eof(2n);
    assert.equal(text(f.dataOf(1n)), "3\n4\n");
    assert.equal(text(f.dataOf(2n)), "oops\n");
  });
});

Deno.test("an unknown attempt gets one chunk with the error and eof", async () => {
  await withSession(async (f) => {
    f.session.request(query({ requestId: 3n, taskId: "t-9", attempt: 2, follow: true }));
    await f.eof(3n);
    assert.deepEqual(f.sent, [{
      requestId: 3n,
      data: new Uint8Array(0),
      eof: true,
      error: "no logs for task t-9 attempt 2 on this worker",
    }]);
  });
});

Deno.test("a follow gets new output as it is written and eof when the output is complete", async () => {
  await withSession(async (f) => {
    const logs = await f.store.open("t-1", 1);
    await logs.stdout.write(bytes("first\n"));
    f.session.request(query({ requestId: 4n, follow: true, tailLines: 1 }));
    f.session.request(query({ requestId: 5n, follow: true }));
    await eventually(() => text(f.dataOf(5n)) === "first\n", "the content");
    await logs.stdout.write(bytes("second\n"));
    assert.equal(text(f.dataOf(4n)), "first\nsecond\n");
    assert.equal(text(f.dataOf(5n)), "first\nsecond\n");
    assert.ok(!f.sent.some((c) => c.eof));
    await f.store.finish("t-1", 1);
    await f.eof(4n);
    await f.eof(5n);
    assert.equal(f.session.activeRequests, 0);
  });
});

Deno.test("LogCancel stops a follow; closing the session stops them all, without eof", async () => {
  await withSession(async (f) => {
    const logs = await f.store.open("t-1", 1);
    f.session.request(query({ requestId: 1n, follow: true }));
    f.session.request(query({ requestId: 2n, follow: true }));
    f.session.request(query({ requestId: 3n, follow: true }));
    f.session.cancel(3n); // Before it was even attached.
    await eventually(() => f.session.activeRequests === 2, "two follows");
    await logs.stdout.write(bytes("a"));
    f.session.cancel(1n);
    await logs.stdout.write(bytes("b"));
    assert.equal(text(f.dataOf(1n)), "a");
    assert.equal(text(f.dataOf(2n)), "ab");
    f.session.close();
    await logs.stdout.write(bytes("c"));
    await f.store.finish("t-1", 1);
    assert.equal(text(f.dataOf(2n)), "ab");
    assert.ok(!f.sent.some((c) => c.eof));
    assert.equal(text(f.dataOf(3n)), "");
  });
});

Deno.test("a follower on a stream that falls behind skips output and says how much", async () => {
  await withSession(async (f) => {
    const logs = await f.store.open("t-1", 1);
    f.session.request(query({ requestId: 1n, follow: true }));
    await eventually(() => f.session.activeRequests === 1 && f.sent.length === 0, "attached");
    await logs.stdout.write(bytes("kept 1\n"));
    f.setBacklog(MAX_BACKLOG_BYTES + 1);
    await logs.stdout.write(bytes("skipped\n"));
    f.setBacklog(0);
    await logs.stdout.write(bytes("kept 2\n"));
    await f.store.finish("t-1", 1);
    await f.eof(1n);
    assert.equal(
      text(f.dataOf(1n)),
      "kept 1\n\n[go-schedule: 8 bytes skipped: the reader fell behind]\nkept 2\n",
    );
  });
});
