import assert from "node:assert/strict";
import { storeConformance, task } from "./conformance.ts";
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
