import assert from "node:assert/strict";
import { storeConformance, task } from "./conformance.ts";
import { DatabaseSync } from "node:sqlite";
import { createSqliteStore } from "./sqlite_store.ts";

storeConformance("sqlite", async () => {
  const dir = await Deno.makeTempDir({ prefix: "goschedule-sqlite-" });
  // A missing parent directory is created.
  const path = `${dir}/state/goschedule.db`;
  return {
    store: createSqliteStore({ path }),
    reopen: () => Promise.resolve(createSqliteStore({ path })),
    cleanup: () => Deno.remove(dir, { recursive: true }),
  };
});

Deno.test("sqlite: a file that is not a database is refused with its path", async () => {
  const dir = await Deno.makeTempDir({ prefix: "goschedule-sqlite-" });
  try {
    const path = `${dir}/not-a.db`;
    await Deno.writeTextFile(path, "this is not an SQLite database, just some text ".repeat(100));
    assert.throws(() => createSqliteStore({ path }), (error: Error) => {
      assert.match(error.message, /Cannot open the SQLite store at .*not-a\.db/);
      return true;
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("sqlite: a path that cannot be created is refused with its path", async () => {
  const dir = await Deno.makeTempDir({ prefix: "goschedule-sqlite-" });
  try {
    await Deno.writeTextFile(`${dir}/file`, "");
    const path = `${dir}/file/below-a-file/store.db`;
    assert.throws(() => createSqliteStore({ path }), (error: Error) => {
      assert.match(error.message, /Cannot open the SQLite store at .*below-a-file/);
      return true;
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("sqlite: two stores on one file see each other's writes and conflicts", async () => {
  const dir = await Deno.makeTempDir({ prefix: "goschedule-sqlite-" });
  const path = `${dir}/shared.db`;
  const first = createSqliteStore({ path });
  try {
    const second = createSqliteStore({ path });
    try {
      const [created] = await first.createTasks([task("t1")]);
      assert.deepEqual(await second.getTask("t1"), created);
      const [updated] = await second.updateTasks([
        { task: task("t1", "scheduled"), expectedRevision: created.revision },
      ]);
      assert.ok(updated.revision > created.revision);
      await assert.rejects(
        first.updateTasks([{ task: task("t1", "dead"), expectedRevision: created.revision }]),
        { name: "ConflictError" },
      );
    } finally {
      await second.close();
    }
  } finally {
    await first.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("sqlite: a write while another connection holds the write lock is refused as unavailable", async () => {
  const dir = await Deno.makeTempDir({ prefix: "goschedule-sqlite-" });
  const path = `${dir}/locked.db`;
  const store = createSqliteStore({ path, busyTimeoutMs: 50 });
  const other = new DatabaseSync(path);
  try {
    other.exec("BEGIN IMMEDIATE");
    await assert.rejects(store.createTasks([task("t1")]), (error: Error) => {
      assert.equal(error.name, "StoreUnavailableError");
      assert.equal(error.message, "The SQLite store is busy: database is locked");
      return true;
    });
    other.exec("ROLLBACK");
    await store.createTasks([task("t1")]);
    assert.equal((await store.getTask("t1"))?.value.id, "t1");
  } finally {
    other.close();
    await store.close();
    await Deno.remove(dir, { recursive: true });
  }
});

/** Fills a store on the file system it is given, then reads it; prints what happened. */
const FILL_STORE = `
import { createSqliteStore } from ${
  JSON.stringify(new URL("./sqlite_store.ts", import.meta.url).href)
};
import { task } from ${JSON.stringify(new URL("./conformance.ts", import.meta.url).href)};
const path = Deno.args[0];
// Room to free once the disk is full.
Deno.writeFileSync(\`\${path}.ballast\`, new Uint8Array(64 * 1024));
const store = createSqliteStore({ path });
let stored = 0;
let error;
try {
  for (let batch = 0; batch < 1000; batch++) {
    const tasks = Array.from({ length: 20 }, (_, i) => ({ ...task(\`t-\${batch}-\${i}\`), cmd: "x".repeat(500) }));
    await store.createTasks(tasks);
    stored += tasks.length;
  }
} catch (e) {
  error = { name: e.name, message: e.message };
}
const listed = (await store.listTasks({ limit: 100000 })).length;
Deno.removeSync(\`\${path}.ballast\`);
const later = (await store.createTasks([task("t-later")])).length;
console.log(JSON.stringify({ stored, error, listed, later }));
await store.close();
`;

Deno.test("sqlite: a full disk is a StoreFullError naming the file; reads go on, writes resume with room", async () => {
  // A 256 KiB tmpfs, mounted in a mount namespace of the child's own: nothing outside sees it.
  const dir = await Deno.makeTempDir({ prefix: "goschedule-sqlite-full-" });
  try {
    const output = await new Deno.Command("unshare", {
      args: [
        "-m",
        "sh",
        "-c",
        'mount -t tmpfs -o size=256k tmpfs "$0" && exec "$1" eval --ext=ts "$2" "$0/store.db"',
        dir,
        Deno.execPath(),
        FILL_STORE,
      ],
      stdin: "null",
    }).output();
    const stderr = new TextDecoder().decode(output.stderr);
    assert.equal(output.code, 0, `the filling process failed: ${stderr}`);
    const result = JSON.parse(new TextDecoder().decode(output.stdout));
    assert.ok(result.stored > 0 && result.stored < 20_000, `stored ${result.stored} tasks`);
    assert.deepEqual(result.error, {
      name: "StoreFullError",
      message: `the SQLite store at ${dir}/store.db is full (database or disk is full): ` +
        "it refuses writes until space is freed on its disk",
    });
    assert.equal(result.listed, result.stored, "the refused batch left nothing behind");
    assert.equal(result.later, 1, "with room on the disk again, the same store writes");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
