import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { Etcd3 } from "etcd3";
import { createEtcdGrpc } from "./etcd_grpc.ts";
import type { EtcdKv } from "./etcd_kv.ts";
import { startEtcd } from "../../test/harness/etcd.ts";
import { freePort } from "../../test/harness/ports.ts";
import { TcpProxy } from "../../test/harness/tcp_proxy.ts";
import { storeConformance, task } from "./conformance.ts";
import { createEtcdStore, ETCD_PROTOCOLS, type EtcdProtocol } from "./etcd_store.ts";
import { type Store, StoreFullError, StoreUnavailableError } from "./store.ts";

// Each test gets its own etcd (it starts in well under a second), so tests share nothing and
// the sanitizers see each test's processes and connections start and end inside it.
for (const protocol of ETCD_PROTOCOLS) {
  storeConformance(protocol === "grpc" ? "etcd" : `etcd (${protocol})`, async () => {
    const etcd = await startEtcd();
    try {
      const open = () => createEtcdStore({ endpoints: [etcd.endpoint], protocol });
      return { store: await open(), reopen: open, cleanup: () => etcd[Symbol.asyncDispose]() };
    } catch (error) {
      await etcd[Symbol.asyncDispose]();
      throw error;
    }
  });
}

/** The deadline of the stores the fault tests open, short so that they end soon. */
const QUICK_MS = 1_000;

/** A store on `endpoint` with a QUICK_MS deadline, closed however `fn` ends. */
async function withQuickStore(
  endpoint: string,
  protocol: EtcdProtocol | undefined,
  fn: (store: Store) => Promise<void>,
): Promise<void> {
  const store = await createEtcdStore({
    endpoints: [endpoint],
    requestTimeoutMs: QUICK_MS,
    protocol,
  });
  try {
    await fn(store);
  } finally {
    await store.close();
  }
}

/**
 * The StoreUnavailableError that `call` fails with, checked to come within the deadline (and
 * no sooner than `earliestMs`).
 */
async function unavailableInTime(
  call: () => Promise<unknown>,
  earliestMs = 0,
): Promise<StoreUnavailableError> {
  const started = Date.now();
  const error = await call().then(() => undefined, (e) => e);
  const elapsed = Date.now() - started;
  assert.ok(error instanceof StoreUnavailableError, `expected StoreUnavailableError: ${error}`);
  assert.ok(elapsed >= earliestMs && elapsed < QUICK_MS + 500, `gave up after ${elapsed} ms`);
  return error;
}

for (const protocol of ETCD_PROTOCOLS) {
  Deno.test(`etcd (${protocol}): an unreachable etcd is StoreUnavailableError in time, and recovery is immediate`, async () => {
    await using etcd = await startEtcd();
    await withQuickStore(etcd.endpoint, protocol, async (store) => {
      const [created] = await store.createTasks([task("t1")]);
      await etcd.stop();

      for (const call of [() => store.getTask("t1"), () => store.createTasks([task("t2")])]) {
        const error = await unavailableInTime(call);
        assert.match(
          error.message,
          new RegExp(`^etcd at ${etcd.endpoint.slice(7)} is unavailable`),
        );
      }

      await etcd.restart();
      assert.deepEqual(await store.getTask("t1"), created);
      const [t2] = await store.createTasks([task("t2")]);
      assert.ok(t2.revision > created.revision);
    });
  });
}

for (const protocol of ETCD_PROTOCOLS) {
  Deno.test(`etcd (${protocol}): a connection gone silent is given up, and the next call gets through`, async () => {
    await using etcd = await startEtcd();
    await using proxy = new TcpProxy(Number(new URL(etcd.endpoint).port));
    await withQuickStore(proxy.url, protocol, async (store) => {
      const [created] = await store.createTasks([task("t1")]);
      assert.ok(proxy.silenceAll() > 0, "the store's connection goes through the proxy");
      await assert.rejects(store.getTask("t1"), StoreUnavailableError);
      // etcd itself is fine: a new connection reaches it at once.
      const started = Date.now();
      assert.deepEqual(await store.getTask("t1"), created);
      assert.ok(Date.now() - started < QUICK_MS / 2, `took ${Date.now() - started} ms`);
    });
  });
}

Deno.test("etcd: an etcd that does not answer is StoreUnavailableError in time", async () => {
  await using etcd = await startEtcd();
  await withQuickStore(etcd.endpoint, undefined, async (store) => {
    const [created] = await store.createTasks([task("t1")]);
    etcd.pause();
    try {
      for (const call of [() => store.listTasks({ state: "pending" }), () => store.listWorkers()]) {
        await unavailableInTime(call, QUICK_MS - 50);
      }
    } finally {
      etcd.resume();
    }
    assert.deepEqual(await store.listTasks({ state: "pending" }), [created]);
  });
});

Deno.test("etcd: createEtcdStore reports an etcd that is not there", async () => {
  const endpoint = `http://127.0.0.1:${freePort()}`;
  const started = Date.now();
  await assert.rejects(
    createEtcdStore({ endpoints: [endpoint], requestTimeoutMs: 1_000 }),
    (error: Error) => {
      assert.ok(error instanceof StoreUnavailableError, `expected StoreUnavailableError: ${error}`);
      assert.match(error.message, /^etcd at 127\.0\.0\.1:\d+ is unavailable: /);
      return true;
    },
  );
  assert.ok(Date.now() - started < 1_500);
});

Deno.test("etcd: with several endpoints, calls go to one that answers", async () => {
  await using etcd = await startEtcd();
  const dead = `http://127.0.0.1:${freePort()}`;
  const store = await createEtcdStore({ endpoints: [dead, etcd.endpoint, dead] });
  try {
    for (let i = 0; i < 10; i++) {
      const [created] = await store.createTasks([task(`t${i}`)]);
      assert.deepEqual(await store.getTask(`t${i}`), created);
    }
  } finally {
    await store.close();
  }
});

Deno.test("etcd: listing by state reads only that state's tasks", async () => {
  await using etcd = await startEtcd();
  const store = await createEtcdStore({ endpoints: [etcd.endpoint] });
  const raw = new Etcd3({ hosts: etcd.endpoint });
  try {
    const done = Array.from(
      { length: 200 },
      (_, i) => task(`d${String(i).padStart(3, "0")}`, "done"),
    );
    await store.createTasks(done);
    const pending = await store.createTasks([task("p1"), task("p2"), task("p3")]);
    // Unreadable records in place of the finished tasks: a list that so much as decoded one
    // of them would fail.
    for (const { id } of done) await raw.put(`/goschedule/tasks/${id}`).value("{not json");

    assert.deepEqual(await store.listTasks({ state: "pending", limit: 10 }), pending);
    assert.deepEqual(await store.listActiveTasks(), pending);
    assert.deepEqual(
      await raw.getAll().prefix("/goschedule/index/pending/").keys(),
      [
        "/goschedule/index/pending/p1",
        "/goschedule/index/pending/p2",
        "/goschedule/index/pending/p3",
      ],
    );
  } finally {
    raw.close();
    await store.close();
  }
});

Deno.test("etcd: stores with different prefixes do not see each other", async () => {
  await using etcd = await startEtcd();
  const a = await createEtcdStore({ endpoints: [etcd.endpoint], prefix: "/a/" });
  try {
    const b = await createEtcdStore({ endpoints: [etcd.endpoint], prefix: "/b/" });
    try {
      const [inA] = await a.createTasks([task("t1")]);
      const [inB] = await b.createTasks([task("t1", "done")]);
      assert.deepEqual(await a.listTasks(), [inA]);
      assert.deepEqual(await b.listTasks(), [inB]);
      assert.deepEqual(await b.listActiveTasks(), []);
    } finally {
      await b.close();
    }
  } finally {
    await a.close();
  }
});

Deno.test("etcd: revisions are etcd's mod revisions", async () => {
  await using etcd = await startEtcd();
  const store = await createEtcdStore({ endpoints: [etcd.endpoint] });
  const raw = new Etcd3({ hosts: etcd.endpoint });
  try {
    const [created] = await store.createTasks([task("t1")]);
    const kv = await raw.kv.range({ key: Buffer.from("/goschedule/tasks/t1") });
    assert.equal(BigInt(kv.kvs[0].mod_revision), created.revision);
  } finally {
    raw.close();
    await store.close();
  }
});

/**
 * A store whose client runs `race` once, just before sending the first transaction that
 * compares `key` (unless `race` declines): a deterministic stand-in for another manager's write landing between two
 * transactions of one batch.
 */
function racingStore(endpoint: string, key: string, race: () => Promise<boolean | void>) {
  const inner = createEtcdGrpc([endpoint]);
  let raced = false;
  const client: EtcdKv = {
    ...inner,
    async txn(request, call) {
      if (!raced && request.compare?.some((c) => c.key?.toString() === key)) {
        // A race that declines (returns false) waits for a later transaction.
        raced = (await race()) !== false;
      }
      return await inner.txn(request, call);
    },
  };
  return createEtcdStore({ endpoints: [endpoint], client });
}

const seq = (i: number) => `task-${String(i).padStart(5, "0")}`;

Deno.test("etcd: a create batch that loses a race part-way is taken back", async () => {
  await using etcd = await startEtcd();
  const raw = new Etcd3({ hosts: etcd.endpoint });
  const batch = Array.from({ length: 300 }, (_, i) => task(seq(i)));
  const rival = task(seq(290), "done");
  const touched = { ...task(seq(0)), attempt: 7 };
  const store = await racingStore(etcd.endpoint, `/goschedule/tasks/${seq(290)}`, async () => {
    await raw.put(`/goschedule/tasks/${seq(290)}`).value(JSON.stringify(rival));
    // Written by this batch's first transaction and changed since: the undo leaves it.
    await raw.put(`/goschedule/tasks/${seq(0)}`).value(JSON.stringify(touched));
  });
  try {
    await assert.rejects(store.createTasks(batch), { name: "ConflictError" });
    assert.deepEqual((await store.listTasks()).map((v) => v.value), [touched, rival]);
    assert.deepEqual((await store.listTasks({ state: "pending" })).map((v) => v.value), [touched]);
    assert.deepEqual(await raw.getAll().prefix("/goschedule/index/").keys(), [
      `/goschedule/index/pending/${seq(0)}`,
    ]);
  } finally {
    raw.close();
    await store.close();
  }
});

Deno.test("etcd: an update batch that loses a race part-way is taken back", async () => {
  await using etcd = await startEtcd();
  const raw = new Etcd3({ hosts: etcd.endpoint });
  const rival = { ...task(seq(140)), attempt: 5 };
  const touched = { ...task(seq(0), "scheduled"), attempt: 9 };
  let armed = false;
  const store = await racingStore(etcd.endpoint, `/goschedule/tasks/${seq(140)}`, async () => {
    if (!armed) return false;
    await raw.put(`/goschedule/tasks/${seq(140)}`).value(JSON.stringify(rival));
    await raw.put(`/goschedule/tasks/${seq(0)}`).value(JSON.stringify(touched));
    return true;
  });
  try {
    const created = await store.createTasks(Array.from({ length: 150 }, (_, i) => task(seq(i))));
    const updates = created.map((v) => ({
      task: { ...v.value, state: "scheduled" as const, attempt: 1 },
      expectedRevision: v.revision,
    }));
    armed = true;
    const error = await store.updateTasks(updates).then(() => undefined, (e) => e);
    assert.equal(error?.name, "ConflictError");
    assert.equal(error.key, `tasks/${seq(140)}`);
    const expected = created.map((v) => v.value);
    expected[0] = touched;
    expected[140] = rival;
    assert.deepEqual((await store.listTasks()).map((v) => v.value), expected);
    assert.deepEqual((await store.listTasks({ state: "scheduled" })).map((v) => v.value), [
      touched,
    ]);
    assert.equal((await store.listTasks({ state: "pending" })).length, 149);
  } finally {
    raw.close();
    await store.close();
  }
});

Deno.test("etcd: as many updates as updatesPerWrite, with their previous states, are one transaction", async () => {
  await using etcd = await startEtcd();
  const inner = createEtcdGrpc([etcd.endpoint]);
  const writes: { puts: number; askedPrevious: boolean }[] = [];
  const client: EtcdKv = {
    ...inner,
    txn(request, call) {
      const puts = (request.success ?? []).filter((op) => op.request_put);
      if (puts.length > 0) {
        writes.push({
          puts: puts.length,
          askedPrevious: puts.some((op) => op.request_put!.prev_kv),
        });
      }
      return inner.txn(request, call);
    },
  };
  const store = await createEtcdStore({ endpoints: [etcd.endpoint], client });
  try {
    const perWrite = store.updatesPerWrite!;
    assert.ok(perWrite >= 40, `etcd's 128 operations hold ${perWrite} updates, not 40 or more`);
    const created = await store.createTasks(
      Array.from({ length: perWrite + 1 }, (_, i) => task(seq(i))),
    );
    const moves = created.map((v) => ({
      task: { ...v.value, state: "scheduled" as const },
      expectedRevision: v.revision,
      previousState: "pending" as const,
    }));
    writes.length = 0;
    const written = await store.updateTasks(moves.slice(0, perWrite));
    assert.deepEqual(writes, [{ puts: 2 * perWrite, askedPrevious: false }]);
    assert.equal((await store.listTasks({ state: "scheduled" })).length, perWrite);
    assert.equal(written.length, perWrite);
    // One more than fits: two transactions, which may need undoing, so they ask for the
    // previous values.
    writes.length = 0;
    const more = created.map((v, i) => ({
      task: { ...v.value, state: "done" as const },
      expectedRevision: i < perWrite ? written[i].revision : v.revision,
      previousState: i < perWrite ? "scheduled" as const : "pending" as const,
    }));
    await store.updateTasks(more);
    assert.equal(writes.length, 2);
    assert.ok(writes.every((w) => w.askedPrevious));
    assert.equal((await store.listTasks({ state: "done" })).length, perWrite + 1);
  } finally {
    await store.close();
  }
});

for (const protocol of ETCD_PROTOCOLS) {
  Deno.test(`etcd (${protocol}): deleting a task deletes its key and its index entry`, async () => {
    await using etcd = await startEtcd();
    const store = await createEtcdStore({ endpoints: [etcd.endpoint], protocol });
    const raw = new Etcd3({ hosts: etcd.endpoint });
    try {
      const [d1, x1] = await store.createTasks([
        task("d1", "done"),
        task("x1", "dead"),
        task("p1"),
      ]);
      await store.deleteTasks([
        { id: "d1", expectedRevision: d1.revision, state: "done" },
        { id: "x1", expectedRevision: x1.revision, state: "dead" },
      ]);
      assert.deepEqual(await raw.getAll().prefix("/goschedule/").keys(), [
        "/goschedule/index/pending/p1",
        "/goschedule/tasks/p1",
      ]);
    } finally {
      raw.close();
      await store.close();
    }
  });
}

Deno.test("etcd: deletions fill each transaction to etcd's 128 operations", async () => {
  await using etcd = await startEtcd();
  const inner = createEtcdGrpc([etcd.endpoint]);
  const writes: { compares: number; deletes: number }[] = [];
  const client: EtcdKv = {
    ...inner,
    txn(request, call) {
      const deletes = (request.success ?? []).filter((op) => op.request_delete_range).length;
      if (deletes > 0) writes.push({ compares: request.compare?.length ?? 0, deletes });
      return inner.txn(request, call);
    },
  };
  const store = await createEtcdStore({ endpoints: [etcd.endpoint], client });
  try {
    const created = await store.createTasks(
      Array.from({ length: 300 }, (_, i) => task(seq(i), "done")),
    );
    await store.deleteTasks(
      created.map((v) => ({ id: v.value.id, expectedRevision: v.revision, state: "done" })),
    );
    // Two deletes and a compare per task: 64 tasks a transaction, the last with the rest.
    assert.deepEqual(writes, [
      ...Array(4).fill({ compares: 64, deletes: 128 }),
      { compares: 44, deletes: 88 },
    ]);
    assert.deepEqual(await store.listTasks(), []);
  } finally {
    await store.close();
  }
});

Deno.test("etcd: a delete batch that loses a race part-way leaves the earlier parts deleted", async () => {
  await using etcd = await startEtcd();
  const raw = new Etcd3({ hosts: etcd.endpoint });
  const rival = task(seq(140), "done", { exitCode: 5 });
  let armed = false;
  const store = await racingStore(etcd.endpoint, `/goschedule/tasks/${seq(140)}`, async () => {
    if (!armed) return false;
    await raw.put(`/goschedule/tasks/${seq(140)}`).value(JSON.stringify(rival));
    return true;
  });
  try {
    const created = await store.createTasks(
      Array.from({ length: 150 }, (_, i) => task(seq(i), "done")),
    );
    armed = true;
    // The revisions are all current when checked; seq(140) changes just before the third
    // transaction (tasks 128 to 149) compares it.
    const error = await store.deleteTasks(
      created.map((v) => ({ id: v.value.id, expectedRevision: v.revision, state: "done" })),
    ).then(() => undefined, (e) => e);
    assert.equal(error?.name, "ConflictError");
    assert.equal(error.key, `tasks/${seq(140)}`);
    assert.match(error.message, /the first 128 tasks of the batch were deleted/);
    const left = created.slice(128).map((v) => v.value);
    left[140 - 128] = rival;
    assert.deepEqual((await store.listTasks()).map((v) => v.value), left);
    assert.deepEqual((await store.listTasks({ state: "done" })).map((v) => v.value), left);
    assert.equal(
      (await raw.getAll().prefix("/goschedule/index/done/").keys()).length,
      left.length,
    );
  } finally {
    raw.close();
    await store.close();
  }
});

for (const protocol of ETCD_PROTOCOLS) {
  Deno.test(`etcd (${protocol}): compacting drops the old versions and nothing the store reads`, async () => {
    await using etcd = await startEtcd();
    const store = await createEtcdStore({ endpoints: [etcd.endpoint], protocol });
    const raw = createEtcdGrpc([etcd.endpoint]);
    const call = () => ({ deadline: Date.now() + 5_000 });
    try {
      const history = store.history!;
      const [created] = await store.createTasks([task("t1")]);
      const [scheduled] = await store.updateTasks([{
        task: { ...created.value, state: "scheduled" },
        expectedRevision: created.revision,
        previousState: "pending",
      }]);
      const now = await history.revision();
      assert.equal(now, scheduled.revision);
      const atCreation = { key: "/goschedule/tasks/t1", revision: created.revision.toString() };
      assert.equal((await raw.range(atCreation, call())).kvs.length, 1);

      assert.equal(await history.compact(now), true);
      await assert.rejects(raw.range(atCreation, call()), /required revision has been compacted/);
      // Again, or to an older revision: the history is gone already, which is no failure.
      assert.equal(await history.compact(now), false);
      assert.equal(await history.compact(created.revision), false);

      // The latest versions, and writes that compare against them, are untouched.
      assert.equal((await store.getTask("t1"))?.value.state, "scheduled");
      assert.deepEqual((await store.listTasks({ state: "scheduled" })).map((v) => v.value.id), [
        "t1",
      ]);
      const [done] = await store.updateTasks([{
        task: { ...scheduled.value, state: "done" },
        expectedRevision: scheduled.revision,
        previousState: "scheduled",
      }]);
      assert.ok(done.revision > now);
      assert.equal(await history.revision(), done.revision);
    } finally {
      raw.close();
      await store.close();
    }
  });
}

for (const protocol of ETCD_PROTOCOLS) {
  Deno.test(`etcd (${protocol}): a full etcd is StoreFullError, naming it, and still reads`, async () => {
    // The quota is on the size of etcd's database file; this one is full after a few batches.
    await using etcd = await startEtcd({ flags: [`--quota-backend-bytes=${512 * 1024}`] });
    const store = await createEtcdStore({ endpoints: [etcd.endpoint], protocol });
    try {
      const padding = "x".repeat(4000);
      let full: unknown;
      for (let batch = 0; batch < 200 && full === undefined; batch++) {
        const tasks = Array.from(
          { length: 20 },
          (_, i) => task(seq(batch * 20 + i), "pending", { params: [padding] }),
        );
        await store.createTasks(tasks).catch((e) => full = e);
      }
      assert.ok(full instanceof StoreFullError, `expected StoreFullError: ${full}`);
      assert.match(
        full.message,
        new RegExp(`^etcd at ${etcd.endpoint.slice(7)} is full \\(.*database space exceeded\\)`),
      );
      assert.equal((await store.getTask(seq(0)))?.value.id, seq(0));
      await assert.rejects(store.createTasks([task("one-more")]), StoreFullError);
    } finally {
      await store.close();
    }
  });
}
