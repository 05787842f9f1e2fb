import assert from "node:assert/strict";
import type { TaskRecord, TaskState, WorkerRecord } from "../task.ts";
import { ConflictError, type Store, type Versioned } from "./store.ts";

/** A store on empty data, provided by each implementation's test file. */
export interface StoreFixture {
  store: Store;
  /** Opens another store on the same data; the suite closes the previous one first. */
  reopen(): Promise<Store>;
  /** Deletes the data and stops anything the fixture started; runs even after a failure. */
  cleanup(): Promise<void>;
}

/** What a conformance test works with. */
export interface StoreContext {
  /** The store currently open. */
  readonly store: Store;
  /** Closes the store and opens a new one on the same data. */
  reopen(): Promise<Store>;
}

/**
 * Registers the tests every Store implementation must pass, each on fresh data from `open`.
 * Test names start with `name`.
 */
export function storeConformance(name: string, open: () => Promise<StoreFixture>): void {
  const test = (title: string, fn: (ctx: StoreContext) => Promise<void>) =>
    Deno.test(`${name}: ${title}`, () => withStore(open, fn));

  test("createTasks stores tasks that getTask returns", async ({ store }) => {
    const created = await store.createTasks([task("t1"), task("t2", "done")]);
    assert.deepEqual(created.map((v) => v.value), [task("t1"), task("t2", "done")]);
    assert.ok(created[0].revision > 0n, "a written record has a positive revision");
    assert.equal(created[0].revision, created[1].revision, "one batch is one write");
    assert.deepEqual(await store.getTask("t1"), created[0]);
    assert.deepEqual(await store.getTask("t2"), created[1]);
    assert.equal(await store.getTask("t3"), undefined);
    assert.deepEqual(await store.createTasks([]), []);
  });

  test("createTasks refuses a taken id and then stores nothing", async ({ store }) => {
    const [existing] = await store.createTasks([task("t2")]);
    const error = await rejectsWith(
      store.createTasks([task("t1"), task("t2", "done"), task("t3")]),
      ConflictError,
    );
    assert.equal(error.key, "tasks/t2");
    assert.match(error.message, /t2/);
    assert.equal(await store.getTask("t1"), undefined);
    assert.equal(await store.getTask("t3"), undefined);
    assert.deepEqual(await store.getTask("t2"), existing);
    assert.deepEqual(await ids(store.listTasks()), ["t2"]);
    assert.deepEqual(await ids(store.listActiveTasks()), ["t2"]);
  });

  test("createTasks refuses an id given twice in one batch", async ({ store }) => {
    await rejectsWith(store.createTasks([task("t1"), task("t2"), task("t1")]), ConflictError);
    assert.deepEqual(await store.listTasks(), []);
  });

  test("updateTasks with the current revision writes at a larger revision", async ({ store }) => {
    const [created] = await store.createTasks([task("t1")]);
    const next = task("t1", "scheduled", { workerId: "w1", attempt: 1 });
    const [updated] = await store.updateTasks([
      { task: next, expectedRevision: created.revision },
    ]);
    assert.deepEqual(updated.value, next);
    assert.ok(updated.revision > created.revision);
    assert.deepEqual(await store.getTask("t1"), updated);
    assert.deepEqual(await store.updateTasks([]), []);
  });

  test("updateTasks refuses a stale revision and changes nothing", async ({ store }) => {
    const [created] = await store.createTasks([task("t1")]);
    const [updated] = await store.updateTasks([
      { task: task("t1", "scheduled"), expectedRevision: created.revision },
    ]);
    const error = await rejectsWith(
      store.updateTasks([{ task: task("t1", "dead"), expectedRevision: created.revision }]),
      ConflictError,
    );
    assert.equal(error.key, "tasks/t1");
    assert.deepEqual(await store.getTask("t1"), updated);
    assert.deepEqual(await ids(store.listTasks({ state: "dead" })), []);
    assert.deepEqual(await ids(store.listTasks({ state: "scheduled" })), ["t1"]);
  });

  test("updateTasks refuses a task that was never created", async ({ store }) => {
    const error = await rejectsWith(
      store.updateTasks([{ task: task("ghost", "done"), expectedRevision: 1n }]),
      ConflictError,
    );
    assert.equal(error.key, "tasks/ghost");
    await rejectsWith(
      store.updateTasks([{ task: task("ghost", "done"), expectedRevision: 0n }]),
      ConflictError,
    );
    assert.equal(await store.getTask("ghost"), undefined);
    assert.deepEqual(await store.listTasks({ state: "done" }), []);
  });

  test("updateTasks applies every update or none", async ({ store }) => {
    const [a, b] = await store.createTasks([task("a"), task("b")]);
    const [b2] = await store.updateTasks([
      { task: task("b", "scheduled"), expectedRevision: b.revision },
    ]);
    const error = await rejectsWith(
      store.updateTasks([
        { task: task("a", "done", { exitCode: 0 }), expectedRevision: a.revision },
        { task: task("b", "done", { exitCode: 0 }), expectedRevision: b.revision },
      ]),
      ConflictError,
    );
    assert.equal(error.key, "tasks/b");
    assert.deepEqual(await store.getTask("a"), a);
    assert.deepEqual(await store.getTask("b"), b2);
    assert.deepEqual(await ids(store.listTasks({ state: "done" })), []);

    const both = await store.updateTasks([
      { task: task("a", "done"), expectedRevision: a.revision },
      { task: task("b", "dead"), expectedRevision: b2.revision },
    ]);
    assert.equal(both[0].revision, both[1].revision, "one batch is one write");
    assert.deepEqual(await store.getTask("b"), both[1]);
  });

  test("updateTasks refuses a task given twice", async ({ store }) => {
    const [a] = await store.createTasks([task("a")]);
    await assert.rejects(store.updateTasks([
      { task: task("a", "scheduled"), expectedRevision: a.revision },
      { task: task("a", "done"), expectedRevision: a.revision },
    ]));
    assert.deepEqual(await store.getTask("a"), a);
  });

  test("listTasks orders by id and filters, pages and limits", async ({ store }) => {
    // Created out of order on purpose: lists follow ids, not the order of writes.
    await store.createTasks([task("t3", "done"), task("t1")]);
    await store.createTasks([task("t5"), task("t2", "scheduled"), task("t4", "dead")]);
    assert.deepEqual(await ids(store.listTasks()), ["t1", "t2", "t3", "t4", "t5"]);
    assert.deepEqual(await ids(store.listTasks({})), ["t1", "t2", "t3", "t4", "t5"]);
    assert.deepEqual(await ids(store.listTasks({ state: "pending" })), ["t1", "t5"]);
    assert.deepEqual(await ids(store.listTasks({ state: "done" })), ["t3"]);
    assert.deepEqual(await ids(store.listTasks({ afterId: "t2" })), ["t3", "t4", "t5"]);
    assert.deepEqual(await ids(store.listTasks({ afterId: "t2", limit: 2 })), ["t3", "t4"]);
    assert.deepEqual(await ids(store.listTasks({ limit: 1 })), ["t1"]);
    assert.deepEqual(await ids(store.listTasks({ limit: 0 })), []);
    assert.deepEqual(await ids(store.listTasks({ afterId: "t5" })), []);
    // afterId need not be a stored id.
    assert.deepEqual(await ids(store.listTasks({ afterId: "t" })), ["t1", "t2", "t3", "t4", "t5"]);
    assert.deepEqual(await ids(store.listTasks({ afterId: "t35" })), ["t4", "t5"]);
    assert.deepEqual(await ids(store.listTasks({ state: "pending", afterId: "t1" })), ["t5"]);
    assert.deepEqual(await ids(store.listTasks({ state: "pending", limit: 1 })), ["t1"]);
    assert.deepEqual(await ids(store.listTasks({ state: "pending", afterId: "t5" })), []);
    const listed = await store.listTasks({ state: "scheduled" });
    assert.deepEqual(listed, [await store.getTask("t2")]);
  });

  test("listActiveTasks returns pending and scheduled tasks in id order", async ({ store }) => {
    assert.deepEqual(await store.listActiveTasks(), []);
    await store.createTasks([
      task("t4", "scheduled"),
      task("t1", "done"),
      task("t2"),
      task("t3", "dead"),
      task("t5"),
    ]);
    const active = await store.listActiveTasks();
    assert.deepEqual(active.map((v) => v.value.id), ["t2", "t4", "t5"]);
    assert.deepEqual(active[1], await store.getTask("t4"));
  });

  test("the state filter follows updates", async ({ store }) => {
    const [t1] = await store.createTasks([task("t1"), task("t2")]);
    const [scheduled] = await store.updateTasks([
      { task: task("t1", "scheduled"), expectedRevision: t1.revision },
    ]);
    assert.deepEqual(await ids(store.listTasks({ state: "pending" })), ["t2"]);
    assert.deepEqual(await ids(store.listTasks({ state: "scheduled" })), ["t1"]);
    const [done] = await store.updateTasks([
      { task: task("t1", "done", { exitCode: 3 }), expectedRevision: scheduled.revision },
    ]);
    for (const state of ["pending", "scheduled", "dead"] as const) {
      assert.deepEqual(await ids(store.listTasks({ state })), state === "pending" ? ["t2"] : []);
    }
    assert.deepEqual(await store.listTasks({ state: "done" }), [done]);
    assert.deepEqual(await ids(store.listActiveTasks()), ["t2"]);
    // An update that keeps the state keeps the task listed once.
    const [again] = await store.updateTasks([
      { task: task("t1", "done", { exitCode: 4 }), expectedRevision: done.revision },
    ]);
    assert.deepEqual(await store.listTasks({ state: "done" }), [again]);
  });

  test("the state filter follows updates that name their previous state", async ({ store }) => {
    const [t1, t2] = await store.createTasks([task("t1"), task("t2")]);
    // Same state (an assignment): the index is left as it is and still lists the task.
    const [assigned] = await store.updateTasks([
      {
        task: task("t1", "pending", { workerId: "w1" }),
        expectedRevision: t1.revision,
        previousState: "pending",
      },
    ]);
    assert.deepEqual(await store.listTasks({ state: "pending" }), [assigned, t2]);
    const [done, dead] = await store.updateTasks([
      { task: task("t1", "done"), expectedRevision: assigned.revision, previousState: "pending" },
      { task: task("t2", "dead"), expectedRevision: t2.revision, previousState: "pending" },
    ]);
    assert.deepEqual(await ids(store.listTasks({ state: "pending" })), []);
    assert.deepEqual(await store.listTasks({ state: "done" }), [done]);
    assert.deepEqual(await store.listTasks({ state: "dead" }), [dead]);
    assert.deepEqual(await store.listActiveTasks(), []);
  });

  test("putWorker creates, compares and refuses stale writes", async ({ store }) => {
    const first = await store.putWorker(worker("w1"), 0n);
    assert.ok(first.revision > 0n);
    assert.deepEqual(await store.getWorker("w1"), first);
    const taken = await rejectsWith(
      store.putWorker(worker("w1", "disconnected"), 0n),
      ConflictError,
    );
    assert.equal(taken.key, "workers/w1");

    const second = await store.putWorker(worker("w1", "disconnected"), first.revision);
    assert.ok(second.revision > first.revision);
    const stale = await rejectsWith(store.putWorker(worker("w1"), first.revision), ConflictError);
    assert.equal(stale.key, "workers/w1");
    assert.deepEqual(await store.getWorker("w1"), second);

    await rejectsWith(store.putWorker(worker("w2"), second.revision), ConflictError);
    assert.equal(await store.getWorker("w2"), undefined);
  });

  test("deleteWorker removes a worker only at its revision", async ({ store }) => {
    const first = await store.putWorker(worker("w1"), 0n);
    const w2 = await store.putWorker(worker("w2"), 0n);
    const w1 = await store.putWorker(worker("w1", "disconnected"), first.revision);
    const stale = await rejectsWith(store.deleteWorker("w1", first.revision), ConflictError);
    assert.equal(stale.key, "workers/w1");
    await rejectsWith(store.deleteWorker("w1", 0n), ConflictError);
    assert.deepEqual(await store.getWorker("w1"), w1);

    assert.equal(await store.deleteWorker("w1", w1.revision), undefined);
    assert.equal(await store.getWorker("w1"), undefined);
    assert.deepEqual(await store.listWorkers(), [w2]);
    // Gone: no revision matches, not even 0n, which etcd would compare equal to a missing key.
    const gone = await rejectsWith(store.deleteWorker("w1", w1.revision), ConflictError);
    assert.equal(gone.key, "workers/w1");
    assert.match(gone.message, /does not exist/);
    await rejectsWith(store.deleteWorker("w1", 0n), ConflictError);

    const again = await store.putWorker(worker("w1"), 0n);
    assert.ok(again.revision > w1.revision);
    assert.deepEqual(await store.listWorkers(), [again, w2]);
  });

  test("listWorkers returns every worker in id order", async ({ store }) => {
    assert.deepEqual(await store.listWorkers(), []);
    const b = await store.putWorker(worker("b"), 0n);
    const a = await store.putWorker(worker("a", "disconnected"), 0n);
    const c = await store.putWorker(worker("c"), 0n);
    assert.deepEqual(await store.listWorkers(), [a, b, c]);
    // Workers and tasks do not mix.
    await store.createTasks([task("a")]);
    assert.deepEqual(await store.listWorkers(), [a, b, c]);
    assert.deepEqual(await ids(store.listTasks()), ["a"]);
  });

  test("a reopened store finds everything and keeps counting revisions", async (ctx) => {
    const tasks = await ctx.store.createTasks([task("t1"), task("t2", "done")]);
    const [t1] = await ctx.store.updateTasks([
      { task: task("t1", "scheduled"), expectedRevision: tasks[0].revision },
    ]);
    const w1 = await ctx.store.putWorker(worker("w1"), 0n);

    const store = await ctx.reopen();
    assert.deepEqual(await store.getTask("t1"), t1);
    assert.deepEqual(await store.listTasks(), [t1, tasks[1]]);
    assert.deepEqual(await store.listTasks({ state: "scheduled" }), [t1]);
    assert.deepEqual(await store.listActiveTasks(), [t1]);
    assert.deepEqual(await store.listWorkers(), [w1]);
    await rejectsWith(store.createTasks([task("t2")]), ConflictError);
    const [later] = await store.createTasks([task("t3")]);
    assert.ok(later.revision > w1.revision, "revisions keep increasing after a reopen");
  });

  test("a batch larger than one transaction is stored and listed", async ({ store }) => {
    const states: TaskState[] = ["pending", "scheduled", "done", "dead"];
    const batch = Array.from({ length: 300 }, (_, i) => task(seq(i), states[i % 4]));
    const created = await store.createTasks(batch);
    assert.equal(created.length, 300);
    assert.deepEqual(created.map((v) => v.value), batch);

    const all = await store.listTasks();
    assert.deepEqual(all.map((v) => v.value), batch);
    assert.deepEqual(all, created);
    assert.equal((await store.listTasks({ state: "done" })).length, 75);
    assert.equal((await store.listActiveTasks()).length, 150);

    // Paging with a limit visits every task once, in order.
    const paged: string[] = [];
    let page = await store.listTasks({ limit: 128 });
    paged.push(...page.map((v) => v.value.id));
    while (page.length === 128) {
      page = await store.listTasks({ afterId: paged[paged.length - 1], limit: 128 });
      paged.push(...page.map((v) => v.value.id));
    }
    assert.deepEqual(paged, batch.map((t) => t.id));
    const pendingPage = await store.listTasks({ state: "pending", afterId: seq(100), limit: 10 });
    assert.deepEqual(
      pendingPage.map((v) => v.value.id),
      Array.from({ length: 10 }, (_, i) => seq(104 + 4 * i)),
    );
  });

  test("a large batch with a taken id at its end stores nothing", async ({ store }) => {
    const [existing] = await store.createTasks([task(seq(290), "done")]);
    const batch = Array.from({ length: 300 }, (_, i) => task(seq(i)));
    const error = await rejectsWith(store.createTasks(batch), ConflictError);
    assert.equal(error.key, `tasks/${seq(290)}`);
    assert.deepEqual(await store.listTasks(), [existing]);
    assert.deepEqual(await store.listActiveTasks(), []);
    assert.deepEqual(await store.listTasks({ state: "pending" }), []);
  });

  test("a large update batch applies every update or none", async ({ store }) => {
    const created = await store.createTasks(Array.from({ length: 150 }, (_, i) => task(seq(i))));
    const toScheduled = created.map((v) => ({
      task: { ...v.value, state: "scheduled" as const, attempt: 1 },
      expectedRevision: v.revision,
    }));
    // One stale revision near the end spoils the whole batch.
    const [moved] = await store.updateTasks([toScheduled[140]]);
    const error = await rejectsWith(store.updateTasks(toScheduled), ConflictError);
    assert.equal(error.key, `tasks/${seq(140)}`);
    const after = await store.listTasks();
    assert.deepEqual(after, created.map((v, i) => i === 140 ? moved : v));
    assert.deepEqual(await ids(store.listTasks({ state: "scheduled" })), [seq(140)]);
    assert.equal((await store.listTasks({ state: "pending" })).length, 149);

    toScheduled[140] = { task: toScheduled[140].task, expectedRevision: moved.revision };
    const updated = await store.updateTasks(toScheduled);
    assert.equal(updated.length, 150);
    assert.deepEqual(await store.listTasks(), updated);
    assert.equal((await store.listTasks({ state: "scheduled" })).length, 150);
    assert.deepEqual(await store.listTasks({ state: "pending" }), []);
  });

  test("deleteTasks removes the tasks named, their records and index entries", async (ctx) => {
    const [p1, s1, d1, x1, d2] = await ctx.store.createTasks([
      task("p1"),
      task("s1", "scheduled"),
      task("d1"),
      task("x1", "dead"),
      task("d2", "done"),
    ]);
    // d1 reaches done through updates, as the manager's tasks do, so its index entry moved.
    const [d1Scheduled] = await ctx.store.updateTasks([
      { task: task("d1", "scheduled"), expectedRevision: d1.revision },
    ]);
    const [d1Done] = await ctx.store.updateTasks([
      {
        task: task("d1", "done"),
        expectedRevision: d1Scheduled.revision,
        previousState: "scheduled",
      },
    ]);
    const active = await ctx.store.listActiveTasks();
    assert.deepEqual(active, [p1, s1]);

    assert.equal(
      await ctx.store.deleteTasks([
        { id: "d1", expectedRevision: d1Done.revision, state: "done" },
        { id: "x1", expectedRevision: x1.revision, state: "dead" },
      ]),
      undefined,
    );
    assert.equal(await ctx.store.getTask("d1"), undefined);
    assert.equal(await ctx.store.getTask("x1"), undefined);
    assert.deepEqual(await ctx.store.listTasks(), [d2, p1, s1]);
    assert.deepEqual(await ctx.store.listTasks({ state: "done" }), [d2]);
    // A stale index entry before d2 would take the one place a limit of one leaves.
    assert.deepEqual(await ctx.store.listTasks({ state: "done", limit: 1 }), [d2]);
    assert.deepEqual(await ctx.store.listTasks({ state: "dead" }), []);
    assert.deepEqual(await ctx.store.listTasks({ state: "scheduled" }), [s1]);
    assert.deepEqual(await ctx.store.listTasks({ state: "pending" }), [p1]);
    assert.deepEqual(await ctx.store.listActiveTasks(), active);
    assert.deepEqual(await ctx.store.getTask("d2"), d2);

    const store = await ctx.reopen();
    assert.equal(await store.getTask("d1"), undefined);
    assert.deepEqual(await store.listTasks(), [d2, p1, s1]);
    // The id can be used again; the new record has a new revision, which the old one does not
    // match.
    const [again] = await store.createTasks([task("d1", "done")]);
    assert.ok(again.revision > d1Done.revision);
    const error = await rejectsWith(
      store.deleteTasks([{ id: "d1", expectedRevision: d1Done.revision, state: "done" }]),
      ConflictError,
    );
    assert.equal(error.key, "tasks/d1");
    assert.deepEqual(await store.listTasks({ state: "done" }), [again, d2]);
  });

  test("deleteTasks refuses a stale revision and deletes nothing", async ({ store }) => {
    const [a, b, c] = await store.createTasks([task("a", "done"), task("b", "done"), task("c")]);
    const [b2] = await store.updateTasks([
      { task: task("b", "done", { exitCode: 1 }), expectedRevision: b.revision },
    ]);
    const error = await rejectsWith(
      store.deleteTasks([
        { id: "a", expectedRevision: a.revision, state: "done" },
        { id: "b", expectedRevision: b.revision, state: "done" },
      ]),
      ConflictError,
    );
    assert.equal(error.key, "tasks/b");
    assert.match(error.message, /b/);
    assert.deepEqual(await store.listTasks(), [a, b2, c]);
    assert.deepEqual(await store.listTasks({ state: "done" }), [a, b2]);

    await store.deleteTasks([
      { id: "a", expectedRevision: a.revision, state: "done" },
      { id: "b", expectedRevision: b2.revision, state: "done" },
    ]);
    assert.deepEqual(await store.listTasks(), [c]);
    assert.deepEqual(await store.listTasks({ state: "done" }), []);
  });

  test("deleteTasks refuses a task that does not exist and deletes nothing", async ({ store }) => {
    const [a, b] = await store.createTasks([task("a", "done"), task("b", "dead")]);
    const error = await rejectsWith(
      store.deleteTasks([
        { id: "a", expectedRevision: a.revision, state: "done" },
        { id: "ghost", expectedRevision: a.revision, state: "done" },
      ]),
      ConflictError,
    );
    assert.equal(error.key, "tasks/ghost");
    // Revision 0 is no way round it (in etcd, a missing key's mod revision is 0).
    const never = await rejectsWith(
      store.deleteTasks([{ id: "ghost", expectedRevision: 0n, state: "done" }]),
      ConflictError,
    );
    assert.equal(never.key, "tasks/ghost");
    assert.deepEqual(await store.listTasks(), [a, b]);

    // Deleted already: gone is gone, and the rest of the batch stays.
    await store.deleteTasks([{ id: "b", expectedRevision: b.revision, state: "dead" }]);
    const twice = await rejectsWith(
      store.deleteTasks([
        { id: "a", expectedRevision: a.revision, state: "done" },
        { id: "b", expectedRevision: b.revision, state: "dead" },
      ]),
      ConflictError,
    );
    assert.equal(twice.key, "tasks/b");
    assert.deepEqual(await store.listTasks(), [a]);
    assert.deepEqual(await store.listTasks({ state: "done" }), [a]);
  });

  test("deleteTasks with no deletions changes nothing", async ({ store }) => {
    const created = await store.createTasks([task("a", "done"), task("b")]);
    assert.equal(await store.deleteTasks([]), undefined);
    assert.deepEqual(await store.listTasks(), created);
    assert.deepEqual(await store.listTasks({ state: "done" }), [created[0]]);
    assert.deepEqual(await store.listActiveTasks(), [created[1]]);
  });

  test("deleteTasks refuses a task given twice", async ({ store }) => {
    const [a, b] = await store.createTasks([task("a", "done"), task("b", "done")]);
    await assert.rejects(store.deleteTasks([
      { id: "a", expectedRevision: a.revision, state: "done" },
      { id: "b", expectedRevision: b.revision, state: "done" },
      { id: "a", expectedRevision: a.revision, state: "done" },
    ]));
    assert.deepEqual(await store.listTasks(), [a, b]);
  });

  test("a delete batch larger than one transaction deletes every task", async ({ store }) => {
    const batch = Array.from({ length: 300 }, (_, i) => task(seq(i), i % 2 ? "dead" : "done"));
    const created = await store.createTasks(batch);
    // Kept, and sorting after the deleted ones, where a stale index entry would hide them.
    const kept = await store.createTasks([task(seq(300), "done"), task(seq(301))]);
    await store.deleteTasks(
      created.map((v) => ({ id: v.value.id, expectedRevision: v.revision, state: v.value.state })),
    );
    assert.deepEqual(await store.listTasks(), kept);
    assert.deepEqual(await store.listTasks({ state: "done" }), [kept[0]]);
    assert.deepEqual(await store.listTasks({ state: "done", limit: 1 }), [kept[0]]);
    assert.deepEqual(await store.listTasks({ state: "dead" }), []);
    assert.deepEqual(await store.listActiveTasks(), [kept[1]]);
    assert.equal(await store.getTask(seq(0)), undefined);
    assert.equal(await store.getTask(seq(299)), undefined);
  });

  test("a large delete batch with a stale revision at its end deletes nothing", async ({ store }) => {
    const created = await store.createTasks(
      Array.from({ length: 300 }, (_, i) => task(seq(i), "done")),
    );
    const deletions = created.map((v) => ({
      id: v.value.id,
      expectedRevision: v.revision,
      state: v.value.state,
    }));
    const [changed] = await store.updateTasks([
      { task: task(seq(290), "done", { exitCode: 2 }), expectedRevision: created[290].revision },
    ]);
    const error = await rejectsWith(store.deleteTasks(deletions), ConflictError);
    assert.equal(error.key, `tasks/${seq(290)}`);
    const all = created.map((v, i) => i === 290 ? changed : v);
    assert.deepEqual(await store.listTasks(), all);
    assert.deepEqual(await store.listTasks({ state: "done" }), all);

    deletions[290] = { ...deletions[290], expectedRevision: changed.revision };
    await store.deleteTasks(deletions);
    assert.deepEqual(await store.listTasks(), []);
    assert.deepEqual(await store.listTasks({ state: "done" }), []);
  });
}

/** Opens a fixture, runs fn, and always closes the store and cleans up, failure or not. */
async function withStore(
  open: () => Promise<StoreFixture>,
  fn: (ctx: StoreContext) => Promise<void>,
): Promise<void> {
  const fixture = await open();
  let current: Store | undefined = fixture.store;
  try {
    await fn({
      get store() {
        if (!current) throw new Error("The store is closed (a reopen failed)");
        return current;
      },
      async reopen() {
        const previous = current;
        current = undefined;
        await previous?.close();
        current = await fixture.reopen();
        return current;
      },
    });
  } finally {
    try {
      await current?.close();
    } finally {
      await fixture.cleanup();
    }
  }
}

async function rejectsWith<E extends Error>(
  promise: Promise<unknown>,
  type: abstract new (...args: never[]) => E,
): Promise<E> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof type, `expected a ${type.name}, got ${error}`);
    return error;
  }
  assert.fail(`expected a ${type.name}, but the call succeeded`);
}

async function ids(list: Promise<Versioned<TaskRecord>[]>): Promise<string[]> {
  return (await list).map((v) => v.value.id);
}

/** Ids that sort in creation order, like the manager's. */
function seq(i: number): string {
  return `task-${String(i).padStart(5, "0")}`;
}

/** A task record for tests. */
export function task(
  id: string,
  state: TaskState = "pending",
  extra: Partial<TaskRecord> = {},
): TaskRecord {
  return {
    id,
    cmd: "echo",
    params: ["hello", id],
    state,
    attempt: 0,
    stdout: "",
    stderr: "",
    stdoutTruncated: false,
    stderrTruncated: false,
    createdAt: 1_700_000_000_000,
    ...extra,
  };
}

/** A worker record for tests. */
export function worker(id: string, state: WorkerRecord["state"] = "connected"): WorkerRecord {
  return {
    id,
    hostname: `${id}.example`,
    address: "10.0.0.7:51234",
    state,
    capabilities: { cpuCores: 4, memoryBytes: 8 * 1024 ** 3, os: "linux", arch: "x86_64" },
    version: "0.1.0",
    connectedAt: 1_700_000_000_000,
    lastSeenAt: 1_700_000_000_500,
    ...(state === "disconnected" ? { disconnectedAt: 1_700_000_001_000 } : {}),
  };
}
