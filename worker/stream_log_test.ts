import assert from "node:assert/strict";
import { silentLogger } from "../shared/log.ts";
import { dropMarker, type LogReader, StreamLog } from "./stream_log.ts";
import { concatBytes } from "../shared/bytes.ts";

const bytes = (s: string) => new TextEncoder().encode(s);

/** A reader that records what it is given. */
function recorder() {
  const got = { snapshot: undefined as Uint8Array | undefined, data: [] as Uint8Array[], ended: 0 };
  const reader: LogReader = {
    snapshot: (d) => got.snapshot = d,
    data: (c) => got.data.push(c),
    end: () => got.ended++,
  };
  return { got, reader };
}

async function withLog(limit: number, fn: (log: StreamLog, path: string) => Promise<void>) {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/t.1.stdout`;
  const log = await StreamLog.create({ path, limit, log: silentLogger });
  try {
    await fn(log, path);
  } finally {
    await log.close();
    await Deno.remove(dir, { recursive: true });
  }
}

/** Distinct, recognisable chunks: "chunk 0 xxxx...\n", "chunk 1 ...". */
function chunks(count: number, size: number): Uint8Array[] {
  return Array.from({ length: count }, (_, i) => {
    const head = `chunk ${i} `;
    return bytes(head + "x".repeat(size - head.length - 1) + "\n");
  });
}

Deno.test("a log file under its limit holds the output exactly", async () => {
  await withLog(1024, async (log, path) => {
    await log.write(bytes("hello\n"));
    await log.write(new Uint8Array([0, 0xff, 0x0d]));
    assert.deepEqual(
      await Deno.readFile(path),
      concatBytes([bytes("hello\n"), new Uint8Array([0, 0xff, 0x0d])]),
    );
  });
});

Deno.test("past its limit a log file keeps the newest output and marks the drop", async () => {
  await withLog(1000, async (log, path) => {
    const written = chunks(10, 300);
    for (const chunk of written) await log.write(chunk);
    const all = concatBytes(written);
    const text = new TextDecoder().decode(await Deno.readFile(path));
    const match = /^\[go-schedule: (\d+) bytes dropped\]\n/.exec(text);
    assert.ok(match, text.slice(0, 60));
    const dropped = Number(match[1]);
    const kept = text.slice(match[0].length);
    assert.ok(kept.length <= 1000 && kept.length >= 500, `kept ${kept.length}`);
    assert.equal(dropped + kept.length, all.length, "every byte is either kept or counted");
    assert.equal(
      kept,
      new TextDecoder().decode(all.subarray(dropped)),
      "the newest bytes are kept",
    );
    assert.ok(kept.endsWith(`chunk 9 ${"x".repeat(291)}\n`));
  });
});

Deno.test("a single write larger than the limit is cut to the limit's newest half", async () => {
  await withLog(1024, async (log, path) => {
    const big = new Uint8Array(5000).map((_, i) => i % 251);
    await log.write(big);
    const file = await Deno.readFile(path);
    const marker = bytes(dropMarker(5000 - 512));
    assert.deepEqual(file.subarray(0, marker.length), marker);
    assert.deepEqual(file.subarray(marker.length), big.subarray(5000 - 512));
  });
});

Deno.test("a reader gets the content and, following, every later write until close", async () => {
  await withLog(1 << 20, async (log) => {
    await log.write(bytes("before\n"));
    const follower = recorder();
    const once = recorder();
    await log.attach(follower.reader, true);
    await log.attach(once.reader, false);
    await log.write(bytes("after 1\n"));
    await log.write(bytes("after 2\n"));
    assert.equal(new TextDecoder().decode(follower.got.snapshot), "before\n");
    assert.equal(new TextDecoder().decode(concatBytes(follower.got.data)), "after 1\nafter 2\n");
    assert.equal(follower.got.ended, 0);
    assert.equal(new TextDecoder().decode(once.got.snapshot), "before\n");
    assert.deepEqual(once.got.data, []);
    assert.equal(once.got.ended, 1);
    await log.close();
    assert.equal(follower.got.ended, 1);
    // After the close a follower gets the content and its end at once.
    const late = recorder();
    await log.attach(late.reader, true);
    assert.equal(new TextDecoder().decode(late.got.snapshot), "before\nafter 1\nafter 2\n");
    assert.equal(late.got.ended, 1);
  });
});

Deno.test("a detached follower gets nothing more", async () => {
  await withLog(1024, async (log) => {
    const follower = recorder();
    const detach = await log.attach(follower.reader, true);
    await log.write(bytes("a"));
    detach();
    await log.write(bytes("b"));
    await log.close();
    assert.equal(new TextDecoder().decode(concatBytes(follower.got.data)), "a");
    assert.equal(follower.got.ended, 0);
  });
});

Deno.test("followers attached while writes go on see every byte once, across rewrites", async () => {
  await withLog(2000, async (log) => {
    const written = chunks(200, 97);
    const followers: ReturnType<typeof recorder>[] = [];
    // Writes and attaches interleave without waiting for each other, as they do live.
    const pending: Promise<unknown>[] = [];
    written.forEach((chunk, i) => {
      pending.push(log.write(chunk));
      if (i % 40 === 5) {
        const f = recorder();
        followers.push(f);
        pending.push(log.attach(f.reader, true));
      }
    });
    await Promise.all(pending);
    const all = new TextDecoder().decode(concatBytes(written));
    for (const f of followers) {
      const snapshot = new TextDecoder().decode(f.got.snapshot).replace(
        /^\[go-schedule: \d+ bytes dropped\]\n/,
        "",
      );
      const live = new TextDecoder().decode(concatBytes(f.got.data));
      assert.ok(
        all.endsWith(snapshot + live),
        "snapshot and live output join without gap or repeat",
      );
      assert.ok(live.length > 0);
    }
    assert.equal(followers.length, 5);
  });
});
