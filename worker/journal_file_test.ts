import assert from "node:assert/strict";
import type { Logger } from "../shared/log.ts";
import { COMPACT_MIN_BYTES, JournalFile } from "./journal_file.ts";

interface Value {
  n: number;
  pad?: string;
}

/** A logger that keeps its warnings. */
function warnings(): { log: Logger; warned: string[] } {
  const warned: string[] = [];
  const ignore = () => {};
  return {
    warned,
    log: { debug: ignore, info: ignore, error: ignore, warn: (message) => warned.push(message) },
  };
}

function parseValue(value: unknown): Value | undefined {
  const v = value as Value | null;
  return typeof v === "object" && v !== null && typeof v.n === "number" ? v : undefined;
}

async function withDir(fn: (path: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "goschedule-journal-" });
  try {
    await fn(`${dir}/test.jsonl`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function open(path: string, log: Logger = warnings().log): Promise<JournalFile<Value>> {
  return JournalFile.open({ path, parse: parseValue, log });
}

/** The entries a new life would find in the file. */
async function replayed(path: string, log?: Logger): Promise<[string, Value][]> {
  const journal = await open(path, log);
  try {
    return [...journal.entries()];
  } finally {
    journal.close();
  }
}

/**
 * This process's descriptors open on the file at `path`, or on one it replaced (Deno's
 * resource sanitizer does not see open files, so the tests look in /proc).
 */
async function descriptorsOn(path: string): Promise<number> {
  let count = 0;
  for await (const entry of Deno.readDir("/proc/self/fd")) {
    const target = await Deno.readLink(`/proc/self/fd/${entry.name}`).catch(() => "");
    if (target === path || target.startsWith(`${path} (deleted)`)) count++;
  }
  return count;
}

async function lines(path: string): Promise<string[]> {
  return (await Deno.readTextFile(path)).split("\n").slice(0, -1);
}

Deno.test("puts and deletes are replayed into the same entries when the file is opened again", async () => {
  await withDir(async (path) => {
    const journal = await open(path);
    try {
      journal.put("a", { n: 1 });
      journal.put("b", { n: 2 });
      journal.put("c", { n: 3 });
      journal.put("a", { n: 4 });
      journal.delete("b");
      journal.delete("never-there");
      assert.deepEqual([...journal.entries()], [["a", { n: 4 }], ["c", { n: 3 }]]);
      assert.equal(journal.size, 2);
      assert.ok(journal.has("c") && !journal.has("b"));
      assert.deepEqual(journal.get("a"), { n: 4 });
    } finally {
      journal.close();
    }
    assert.deepEqual(await lines(path), [
      `{"put":"a","value":{"n":1}}`,
      `{"put":"b","value":{"n":2}}`,
      `{"put":"c","value":{"n":3}}`,
      `{"put":"a","value":{"n":4}}`,
      `{"delete":"b"}`,
    ], "one line per change; deleting a missing key writes nothing");
    assert.deepEqual(await replayed(path), [["a", { n: 4 }], ["c", { n: 3 }]]);
  });
});

Deno.test("a key deleted and put again comes back, with its new value", async () => {
  await withDir(async (path) => {
    const journal = await open(path);
    try {
      journal.put("a", { n: 1 });
      journal.delete("a");
      journal.put("a", { n: 2 });
    } finally {
      journal.close();
    }
    assert.deepEqual(await replayed(path), [["a", { n: 2 }]]);
  });
});

Deno.test("a cut last line is skipped with a warning, and the next line starts on its own", async () => {
  await withDir(async (path) => {
    await Deno.writeTextFile(
      path,
      `{"put":"a","value":{"n":1}}\n{"put":"b","value":{"n":2}}\n{"put":"c","val`,
    );
    const first = warnings();
    const journal = await open(path, first.log);
    try {
      assert.deepEqual([...journal.entries()], [["a", { n: 1 }], ["b", { n: 2 }]]);
      assert.equal(first.warned.length, 1);
      assert.match(first.warned[0], /unreadable lines/);
      journal.put("d", { n: 4 });
    } finally {
      journal.close();
    }
    const second = warnings();
    assert.deepEqual(await replayed(path, second.log), [
      ["a", { n: 1 }],
      ["b", { n: 2 }],
      ["d", { n: 4 }],
    ]);
    assert.deepEqual(second.warned, [], "the cut line is gone from the file");
  });
});

Deno.test("lines that do not parse, or hold no value the owner accepts, are skipped", async () => {
  await withDir(async (path) => {
    await Deno.writeTextFile(
      path,
      [
        `{"put":"a","value":{"n":1}}`,
        `\u0000\u0000\u0000`,
        `{"put":"b","value":{"wrong":true}}`,
        `{"put":"c"}`,
        `[1,2]`,
        `{"put":"d","value":{"n":4}}`,
        `{"put":"e","val`,
      ].join("\n") + "\n",
    );
    const { log, warned } = warnings();
    assert.deepEqual(await replayed(path, log), [["a", { n: 1 }], ["d", { n: 4 }]]);
    assert.equal(warned.length, 1, "one warning for all of them");
  });
});

Deno.test("what a compaction cut short left is removed, and the file is read as it was", async () => {
  await withDir(async (path) => {
    await Deno.writeTextFile(path, `{"put":"a","value":{"n":1}}\n`);
    await Deno.writeTextFile(`${path}.tmp`, `{"put":"a","value":{"n":1}}\n{"pu`);
    assert.deepEqual(await replayed(path), [["a", { n: 1 }]]);
    await assert.rejects(Deno.stat(`${path}.tmp`), Deno.errors.NotFound);
  });
});

Deno.test("compaction keeps every live entry, shrinks the file, and appends go on after it", async () => {
  await withDir(async (path) => {
    const pad = "x".repeat(1000);
    const journal = await open(path);
    let shrank = 0;
    let largest = 0;
    try {
      for (let i = 0; i < 5; i++) journal.put(`keep-${i}`, { n: 0 });
      let last = 0;
      for (let i = 0; i < 1000; i++) {
        journal.put(`t-${i}`, { n: i, pad });
        if (i % 7 === 0) journal.put(`keep-${i % 5}`, { n: i });
        journal.delete(`t-${i}`);
        const size = (await Deno.stat(path)).size;
        if (size < last) shrank++;
        largest = Math.max(largest, size);
        last = size;
      }
      journal.put("after", { n: -1 });
      assert.equal(await descriptorsOn(path), 1, "each compaction closed the old file");
    } finally {
      journal.close();
    }
    assert.equal(await descriptorsOn(path), 0);
    // About 1 MiB was written in all; each compaction left the five live entries.
    assert.ok(shrank >= 3, `compacted ${shrank} times`);
    assert.ok(largest < COMPACT_MIN_BYTES + 2048, `the file grew to ${largest} bytes`);
    assert.ok((await Deno.stat(path)).size < COMPACT_MIN_BYTES);
    await assert.rejects(Deno.stat(`${path}.tmp`), Deno.errors.NotFound);
    const expected: [string, Value][] = [];
    for (let k = 0; k < 5; k++) {
      let n = 0;
      for (let i = 0; i < 1000; i += 7) if (i % 5 === k) n = i;
      expected.push([`keep-${k}`, { n }]);
    }
    expected.push(["after", { n: -1 }]);
    assert.deepEqual(await replayed(path), expected);
  });
});

Deno.test("a compaction that fails leaves every line in the old file, and is not retried at once", async () => {
  await withDir(async (path) => {
    const { log, warned } = warnings();
    const journal = await open(path, log);
    try {
      // The temporary file cannot be written where a folder is in the way.
      await Deno.mkdir(`${path}.tmp`);
      const pad = "x".repeat(1000);
      for (let i = 0; i < 400; i++) {
        journal.put(`t-${i}`, { n: i, pad });
        if (i % 10 !== 0) journal.delete(`t-${i}`);
      }
      // 400 lines of 1 KiB, a tenth of them live: the first compaction fails past 256 KiB, and
      // the next is not tried before another 256 KiB.
      assert.deepEqual(warned, ["cannot compact a journal; it keeps its old lines for now"]);
    } finally {
      journal.close();
    }
    await Deno.remove(`${path}.tmp`);
    const left = await replayed(path);
    assert.deepEqual(left.map(([key]) => key), Array.from({ length: 40 }, (_, i) => `t-${10 * i}`));
  });
});

Deno.test("a line the disk has no room for is cut off whole, and the next one is kept", async () => {
  await withDir(async (path) => {
    // A worker whose files may not grow past 4 KiB (bash counts ulimit -f in KiB; SIGXFSZ
    // ignored, so that a write past the limit is cut short, then refused, as on a full disk).
    const script = `${path}.script.ts`;
    await Deno.writeTextFile(
      script,
      `import { JournalFile } from ${JSON.stringify(import.meta.resolve("./journal_file.ts"))};
const ignore = () => {};
const log = { debug: ignore, info: ignore, warn: ignore, error: ignore };
const journal = await JournalFile.open({ path: ${JSON.stringify(path)}, parse: (v) => v, log });
journal.put("a", { n: 1, pad: "x".repeat(3900) });
try {
  journal.put("b", { n: 2, pad: "y".repeat(500) });
  console.log("b was written");
} catch (e) {
  console.log("b refused: " + e.name);
}
journal.put("c", { n: 3 });
journal.close();
`,
    );
    const out = await new Deno.Command("bash", {
      args: ["-c", `trap '' XFSZ; ulimit -f 4; exec "$0" run -A "$1"`, Deno.execPath(), script],
      stderr: "inherit",
    }).output();
    assert.equal(new TextDecoder().decode(out.stdout), "b refused: Error\n");
    assert.ok(out.success);
    const { log, warned } = warnings();
    const left = await replayed(path, log);
    assert.deepEqual(left.map(([key, value]) => [key, value.n]), [["a", 1], ["c", 3]]);
    assert.deepEqual(warned, []);
  });
});

Deno.test("close releases the file, and a closed journal refuses to write", async () => {
  await withDir(async (path) => {
    const journal = await open(path);
    journal.put("a", { n: 1 });
    assert.equal(await descriptorsOn(path), 1);
    journal.close();
    assert.equal(await descriptorsOn(path), 0);
    assert.throws(() => journal.put("b", { n: 2 }), /closed/);
    journal.close();
    assert.deepEqual(await replayed(path), [["a", { n: 1 }]]);
  });
});
