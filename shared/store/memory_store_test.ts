import assert from "node:assert/strict";
import { storeConformance, task, worker } from "./conformance.ts";
import { createMemoryStore } from "./memory_store.ts";
import { createSqliteStore } from "./sqlite_store.ts";
import { ConflictError, StoreUnavailableError } from "./store.ts";

storeConformance("memory", () => {
  const store = createMemoryStore();
  let current = store;
  return Promise.resolve({
    store,
    reopen: () => Promise.resolve(current = current.reopen()),
    cleanup: () => Promise.resolve(),
  });
});

Deno.test("memory: stored records are copies that callers cannot change", async () => {
  const store = createMemoryStore();
  const input = task("t1");
  const [created] = await store.createTasks([input]);
  input.params.push("mutated after create");
  created.value.state = "done";
  const read = await store.getTask("t1");
  assert.deepEqual(read?.value, task("t1"));
  read!.value.cmd = "mutated after read";
  (await store.listTasks())[0].value.params.length = 0;
  (await store.listActiveTasks())[0].value.stdout = "mutated after list";
  assert.deepEqual((await store.getTask("t1"))?.value, task("t1"));
  assert.deepEqual(await store.listTasks({ state: "done" }), []);

  const [updated] = await store.updateTasks([
    { task: task("t1", "scheduled"), expectedRevision: created.revision },
  ]);
  updated.value.state = "dead";
  assert.equal((await store.getTask("t1"))?.value.state, "scheduled");

  const w = worker("w1");
  const put = await store.putWorker(w, 0n);
  w.capabilities.cpuCores = 99;
  put.value.hostname = "mutated";
  (await store.listWorkers())[0].value.state = "disconnected";
  assert.deepEqual((await store.getWorker("w1"))?.value, worker("w1"));
});

Deno.test("memory: records come out as the real stores return them, through JSON", async () => {
  const store = createMemoryStore();
  // A key set to undefined does not survive encoding, in any store.
  await store.createTasks([{ ...task("t1"), exitCode: undefined }]);
  assert.equal(Object.hasOwn((await store.getTask("t1"))!.value, "exitCode"), false);
});

Deno.test("memory: ids are listed in the same order as SQLite lists them", async () => {
  // Byte order of UTF-8 is code point order, not JavaScript's UTF-16 order: "😀" (U+1F600)
  // sorts after "ｚ" (U+FF5A) although its first UTF-16 unit is smaller.
  const ids = ["t😀", "tｚ", "t\u{e000}", "tz", "t", "tZ", "t~", "té", "t0"];
  const memory = createMemoryStore();
  const sqlite = createSqliteStore({ path: ":memory:" });
  try {
    for (const store of [memory, sqlite]) await store.createTasks(ids.map((id) => task(id)));
    const listed = async (store: typeof sqlite) => (await store.listTasks()).map((v) => v.value.id);
    assert.deepEqual(await listed(memory), await listed(sqlite));
    assert.deepEqual(await listed(memory), [
      "t",
      "t0",
      "tZ",
      "tz",
      "t~",
      "té",
      "t\u{e000}",
      "tｚ",
      "t😀",
    ]);
    const after = async (store: typeof sqlite) =>
      (await store.listTasks({ afterId: "t\u{e000}" })).map((v) => v.value.id);
    assert.deepEqual(await after(memory), await after(sqlite));
    assert.deepEqual(await after(memory), ["tｚ", "t😀"]);
  } finally {
    await sqlite.close();
  }
});

Deno.test("memory: a negative or fractional limit is a RangeError", async () => {
  const store = createMemoryStore();
  await store.createTasks([task("t1")]);
  for (const limit of [-1, 1.5, Number.NaN, Infinity]) {
    await assert.rejects(store.listTasks({ limit }), RangeError);
  }
});

Deno.test("memory: an unavailable store refuses every call and changes nothing", async () => {
  const store = createMemoryStore();
  const [t1] = await store.createTasks([task("t1")]);
  const w1 = await store.putWorker(worker("w1"), 0n);
  store.unavailable = true;
  const calls = [
    () => store.createTasks([task("t2")]),
    () => store.getTask("t1"),
    () => store.updateTasks([{ task: task("t1", "done"), expectedRevision: t1.revision }]),
    () => store.deleteTasks([{ id: "t1", expectedRevision: t1.revision, state: "pending" }]),
    () => store.listTasks(),
    () => store.listActiveTasks(),
    () => store.putWorker(worker("w1", "disconnected"), w1.revision),
    () => store.getWorker("w1"),
    () => store.listWorkers(),
  ];
  for (const call of calls) await assert.rejects(call(), StoreUnavailableError);

  store.unavailable = false;
  assert.deepEqual(await store.listTasks(), [t1]);
  assert.deepEqual(await store.listWorkers(), [w1]);
  const [t2] = await store.createTasks([task("t2")]);
  assert.equal(t2.revision, w1.revision + 1n, "refused calls take no revision");
});

Deno.test("memory: failNext fails exactly the next call", async () => {
  const store = createMemoryStore();
  const [t1] = await store.createTasks([task("t1")]);
  const boom = new ConflictError("tasks/t1", "injected");
  store.failNext(boom);
  await assert.rejects(
    store.updateTasks([{ task: task("t1", "done"), expectedRevision: t1.revision }]),
    (error) => error === boom,
  );
  assert.deepEqual(await store.getTask("t1"), t1);
  const [done] = await store.updateTasks([
    { task: task("t1", "done"), expectedRevision: t1.revision },
  ]);
  assert.equal(done.revision, t1.revision + 1n);
});

Deno.test("memory: a closed store refuses calls; a reopened one sees the same data", async () => {
  const store = createMemoryStore();
  const [t1] = await store.createTasks([task("t1")]);
  await store.close();
  await assert.rejects(store.getTask("t1"), /closed/);
  const reopened = store.reopen();
  assert.deepEqual(await reopened.getTask("t1"), t1);
});
