import assert from "node:assert/strict";
import { type Clock as FakeClock, createClock } from "@sinonjs/fake-timers";
import { silentLogger } from "../shared/log.ts";
import { filePrefix, LogStore } from "./log_store.ts";
import type { LogReader } from "./stream_log.ts";
import { clockOf } from "../shared/fake_clock.ts";

const HOUR = 3_600_000;
const bytes = (s: string) => new TextEncoder().encode(s);

async function withStore(
  fn: (store: LogStore, dir: string, fake: FakeClock) => Promise<void>,
) {
  const dir = await Deno.makeTempDir();
  const fake = createClock(Date.now());
  const store = new LogStore({
    dir: `${dir}/logs`,
    limit: 1024,
    retentionMs: 24 * HOUR,
    log: silentLogger,
    clock: clockOf(fake),
  });
  try {
    await store.start();
    await fn(store, `${dir}/logs`, fake);
  } finally {
    await store.close();
    await Deno.remove(dir, { recursive: true });
  }
}

function collect(): { reader: LogReader; text: () => string; ended: () => boolean } {
  let text = "";
  let ended = false;
  const decoder = new TextDecoder();
  return {
    reader: {
      snapshot: (d) => text += decoder.decode(d),
      data: (c) => text += decoder.decode(c),
      end: () => ended = true,
    },
    text: () => text,
    ended: () => ended,
  };
}

Deno.test("an attempt's logs are files named after it, readable during and after the run", async () => {
  await withStore(async (store, dir) => {
    const logs = await store.open("t-1", 2);
    await logs.stdout.write(bytes("out\n"));
    await logs.stderr.write(bytes("err\n"));
    assert.equal(await Deno.readTextFile(`${dir}/t-1.2.stdout`), "out\n");
    assert.equal(await Deno.readTextFile(`${dir}/t-1.2.stderr`), "err\n");

    const live = collect();
    await store.attach("t-1", 2, "stdout", true, live.reader);
    await logs.stdout.write(bytes("more\n"));
    await store.finish("t-1", 2);
    assert.equal(live.text(), "out\nmore\n");
    assert.ok(live.ended());

    const after = collect();
    assert.ok(await store.attach("t-1", 2, "stderr", true, after.reader));
    assert.equal(after.text(), "err\n");
    assert.ok(after.ended());
  });
});

Deno.test("a log this worker does not have is undefined", async () => {
  await withStore(async (store) => {
    assert.equal(await store.attach("t-9", 1, "stdout", false, collect().reader), undefined);
  });
});

Deno.test("a follower of a queued attempt waits for its start and gets all it prints", async () => {
  await withStore(async (store) => {
    store.queue("t-1", 1);
    const now = collect();
    assert.ok(await store.attach("t-1", 1, "stdout", false, now.reader), "not unknown");
    assert.equal(now.text(), "");
    assert.ok(now.ended(), "without follow: what it printed so far, nothing");

    const follower = collect();
    const attached = store.attach("t-1", 1, "stdout", true, follower.reader);
    const logs = await store.open("t-1", 1);
    assert.ok(await attached);
    await logs.stdout.write(bytes("first\n"));
    await store.finish("t-1", 1);
    assert.equal(follower.text(), "first\n");
    assert.ok(follower.ended());
  });
});

Deno.test("a follower of a queued attempt given back unstarted ends with nothing", async () => {
  await withStore(async (store) => {
    store.queue("t-1", 1);
    const follower = collect();
    const attached = store.attach("t-1", 1, "stdout", true, follower.reader);
    store.withdraw("t-1", 1);
    assert.ok(await attached);
    assert.equal(follower.text(), "");
    assert.ok(follower.ended());
    assert.equal(
      await store.attach("t-1", 1, "stdout", true, collect().reader),
      undefined,
      "once given back, the worker has no logs of it",
    );
  });
});

Deno.test("a follower that can be told is told a queued attempt was given back", async () => {
  await withStore(async (store) => {
    store.queue("t-1", 1);
    const follower = collect();
    let told = false;
    const attached = store.attach("t-1", 1, "stdout", true, {
      ...follower.reader,
      givenBack: () => told = true,
    });
    store.withdraw("t-1", 1);
    assert.ok(await attached);
    assert.ok(told);
    assert.ok(!follower.ended(), "told instead of an end");
  });
});

Deno.test("task ids cannot name a path outside the logs folder", () => {
  assert.equal(filePrefix("01m8ejde6j0q17wc", 1), "01m8ejde6j0q17wc.1");
  assert.equal(filePrefix("../../etc/passwd", 3), "..%2F..%2Fetc%2Fpasswd.3");
  assert.equal(filePrefix("a b/é", 1), "a%20b%2F%C3%A9.1");
});

Deno.test("log files of ended attempts are removed after the retention, running ones kept", async () => {
  await withStore(async (store, dir, fake) => {
    const ended = await store.open("t-old", 1);
    await ended.stdout.write(bytes("x"));
    await store.finish("t-old", 1);
    const running = await store.open("t-running", 1);
    await running.stdout.write(bytes("y"));

    assert.equal(await store.sweep(), 0, "nothing is old yet");
    fake.tick(24 * HOUR + 1000);
    await store.sweep();
    const names = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    // t-running printed nothing on stderr: that stream has no file.
    assert.deepEqual(names, ["t-running.1.stdout"]);
    await store.finish("t-running", 1);

    // The periodic sweep (hourly at most) takes the rest once they are old too.
    fake.tick(24 * HOUR);
    await fake.tickAsync(HOUR);
    for (let i = 0; i < 20 && [...Deno.readDirSync(dir)].length > 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.deepEqual([...Deno.readDirSync(dir)], []);
  });
});

Deno.test("log files past the retention are removed when the worker starts", async () => {
  const dir = await Deno.makeTempDir();
  const store = new LogStore({
    dir,
    limit: 1024,
    retentionMs: 24 * HOUR,
    log: silentLogger,
  });
  try {
    await Deno.writeTextFile(`${dir}/t-old.1.stdout`, "old");
    await Deno.writeTextFile(`${dir}/t-new.1.stdout`, "new");
    const dayAndHourAgo = new Date(Date.now() - 25 * HOUR);
    await Deno.utime(`${dir}/t-old.1.stdout`, dayAndHourAgo, dayAndHourAgo);
    await store.start();
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["t-new.1.stdout"]);
  } finally {
    await store.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an attempt that prints nothing makes no files, and its streams read as empty", async () => {
  await withStore(async (store, dir) => {
    const logs = await store.open("t-quiet", 1);
    const snapshots: string[] = [];
    const reader = {
      snapshot: (data: Uint8Array) => snapshots.push(new TextDecoder().decode(data)),
      data: () => assert.fail("no output was written"),
      end: () => {},
    };
    // While it runs, a reader gets an empty snapshot.
    assert.ok(await store.attach("t-quiet", 1, "stdout", false, reader));
    await logs.stdout.close();
    await store.finish("t-quiet", 1);
    assert.deepEqual([...Deno.readDirSync(dir)], []);
    assert.deepEqual(snapshots, [""]);
    assert.deepEqual(await store.abandonedTails("t-quiet", 1, 100), {
      stdout: "",
      stderr: "",
      stdoutTruncated: false,
      stderrTruncated: false,
    });
  });
});
