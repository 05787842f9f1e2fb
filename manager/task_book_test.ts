import assert from "node:assert/strict";
import { createMemoryStore } from "../shared/store/memory_store.ts";
import type { Store } from "../shared/store/store.ts";
import { newTask } from "../shared/task_machine.ts";
import { createClock } from "@sinonjs/fake-timers";
import { clockOf } from "../shared/fake_clock.ts";
import { TaskBook } from "./task_book.ts";

/** A store that counts its reads, its update calls and the updates in each. */
function counting(store: Store): { store: Store; groups: number[]; reads: string[] } {
  const groups: number[] = [];
  const reads: string[] = [];
  return {
    groups,
    reads,
    store: {
      ...store,
      listActiveTasks: () => store.listActiveTasks(),
      createTasks: (tasks) => store.createTasks(tasks),
      getTask: (id) => {
        reads.push(id);
        return store.getTask(id);
      },
      updateTasks(updates) {
        groups.push(updates.length);
        return store.updateTasks(updates);
      },
    },
  };
}

const tasks = (n: number) =>
  Array.from({ length: n }, (_, i) => newTask(`t${i}`, { cmd: "true", params: [] }, 0));

Deno.test("updates that arrive while a write is out go to the store together", async () => {
  const memory = createMemoryStore();
  const { store, groups } = counting(memory);
  const book = new TaskBook(store);
  await book.create(tasks(20));
  const results = await Promise.all(
    tasks(20).map((t) => book.apply(t.id, { type: "assign", workerId: "w1" }, 5)),
  );
  assert.ok(results.every((r) => r.ok && r.changed));
  assert.equal(groups.reduce((a, b) => a + b, 0), 20, "every update written once");
  assert.ok(groups.length <= 2, `20 updates took ${groups.length} writes`);
  for (const t of tasks(20)) assert.equal((await memory.getTask(t.id))?.value.workerId, "w1");
});

Deno.test("updates made in one turn share a write, even on an idle book", async () => {
  const memory = createMemoryStore();
  const { store, groups } = counting(memory);
  const book = new TaskBook(store);
  await book.create(tasks(2));
  // A task's end and the assignment that takes its room are made in one turn.
  const results = await Promise.all([
    book.apply("t0", { type: "assign", workerId: "w1" }, 5),
    book.apply("t1", { type: "assign", workerId: "w2" }, 5),
  ]);
  assert.ok(results.every((r) => r.ok && r.changed));
  assert.deepEqual(groups, [2]);
});

Deno.test("a full group goes to the store without waiting for the write before", async () => {
  const memory = createMemoryStore();
  const groups: number[] = [];
  let underWay = 0;
  let mostUnderWay = 0;
  let release = () => {};
  const released = new Promise<void>((resolve) => release = resolve);
  const store: Store = {
    ...memory,
    listActiveTasks: () => memory.listActiveTasks(),
    createTasks: (tasks) => memory.createTasks(tasks),
    getTask: (id) => memory.getTask(id),
    updatesPerWrite: 3,
    async updateTasks(updates) {
      groups.push(updates.length);
      mostUnderWay = Math.max(mostUnderWay, ++underWay);
      await released;
      underWay--;
      return memory.updateTasks(updates);
    },
  };
  const book = new TaskBook(store);
  await book.create(tasks(8));
  const assign = (id: string) => book.apply(id, { type: "assign", workerId: "w1" }, 5);
  const first = assign("t0");
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.deepEqual(groups, [1], "an idle book writes at once");
  const rest = tasks(8).slice(1).map((t) => assign(t.id));
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.deepEqual(groups, [1, 3, 3], "full groups of the store's size go out at once");
  release();
  const results = await Promise.all([first, ...rest]);
  assert.ok(results.every((r) => r.ok && r.changed));
  assert.deepEqual(groups, [1, 3, 3, 1], "the rest waits for a write to end");
  assert.equal(mostUnderWay, 3);
  for (const t of tasks(8)) assert.equal((await memory.getTask(t.id))?.value.workerId, "w1");
});

Deno.test("a stale update in a group fails alone", async () => {
  const memory = createMemoryStore();
  const book = new TaskBook(memory);
  await book.create(tasks(3));
  await book.load();
  // Another writer changes t1 behind the book's back: the book's revision for it is stale.
  const stored = await memory.getTask("t1");
  await memory.updateTasks([{
    task: { ...stored!.value, attempt: 9 },
    expectedRevision: stored!.revision,
  }]);
  const results = await Promise.all(
    ["t0", "t1", "t2"].map((id) => book.apply(id, { type: "cancel" }, 5)),
  );
  // t1 is re-read after its conflict and cancelled on the second try; the others at once.
  assert.ok(results.every((r) => r.ok && r.task.state === "dead"));
  assert.equal((await memory.getTask("t1"))?.value.attempt, 9, "the other writer's change kept");
});

Deno.test("a late acknowledgement of a finished task is answered without a store read", async () => {
  const { store, reads } = counting(createMemoryStore());
  const book = new TaskBook(store);
  const [task] = tasks(1);
  await book.create([task]);
  await book.apply(task.id, { type: "assign", workerId: "w1" }, 1);
  const output = { stdout: "", stderr: "", stdoutTruncated: false, stderrTruncated: false };
  const done = await book.apply(
    task.id,
    { type: "exited", workerId: "w1", attempt: 1, exitCode: 0, output },
    2,
  );
  assert.equal(done.ok && done.task.state, "done");
  // The result overtook the acknowledgement, as a fast task's does.
  const ack = await book.apply(task.id, { type: "ack", workerId: "w1", attempt: 1 }, 3);
  assert.ok(ack.ok && !ack.changed);
  assert.equal((await book.get(task.id)).state, "done");
  assert.deepEqual(reads, [], "the finished task came from memory");
  assert.equal(book.peek(task.id), undefined, "a finished task is not active");
});

Deno.test("only the most recently finished tasks are kept; older ones are read back", async () => {
  const { store, reads } = counting(createMemoryStore());
  const book = new TaskBook(store);
  const many = tasks(4097);
  await book.create(many);
  for (const t of many) await book.apply(t.id, { type: "cancel" }, 1);
  assert.equal((await book.get("t4096")).state, "dead");
  assert.deepEqual(reads, []);
  assert.equal((await book.get("t0")).state, "dead");
  assert.deepEqual(reads, ["t0"], "the oldest was dropped from memory and read from the store");
});

/** A book on fake time over a counting memory store, with one task assigned to w1. */
async function deferringBook() {
  const memory = createMemoryStore();
  const counted = counting(memory);
  const fake = createClock(0);
  const errors: unknown[] = [];
  const book = new TaskBook(counted.store, {
    clock: clockOf(fake),
    deferMs: 250,
    onDeferredWriteError: (e) => errors.push(e),
  });
  const [task] = tasks(1);
  await book.create([task]);
  await book.apply(task.id, { type: "assign", workerId: "w1" }, 1);
  counted.groups.length = 0;
  return { memory, book, fake, errors, groups: counted.groups, id: task.id };
}

const ACK = { type: "ack", workerId: "w1", attempt: 1 } as const;
const EXIT_0 = {
  type: "exited",
  workerId: "w1",
  attempt: 1,
  exitCode: 0,
  output: { stdout: "", stderr: "", stdoutTruncated: false, stderrTruncated: false },
} as const;

Deno.test("a deferred acknowledgement rides in the same write as the task's result", async () => {
  const { memory, book, fake, groups, id } = await deferringBook();
  const ack = await book.apply(id, ACK, 10, { defer: true });
  assert.ok(ack.ok && ack.changed);
  assert.equal((await book.get(id)).state, "scheduled", "the book knows at once");
  assert.equal((await memory.getTask(id))?.value.state, "pending", "the store not yet");
  assert.equal(book.deferred, 1);
  await book.apply(id, EXIT_0, 20);
  assert.deepEqual(groups, [1], "one write for both");
  const stored = (await memory.getTask(id))?.value;
  assert.equal(stored?.state, "done");
  assert.equal(stored?.scheduledAt, 10, "the acknowledgement's time is kept");
  assert.equal(book.deferred, 0);
  await fake.tickAsync(1000);
  assert.deepEqual(groups, [1], "nothing left to write when the timer would have fired");
});

Deno.test("a deferred acknowledgement is written on its own after deferMs", async () => {
  const { memory, book, fake, groups, id } = await deferringBook();
  await book.apply(id, ACK, 10, { defer: true });
  await fake.tickAsync(249);
  assert.deepEqual(groups, []);
  await fake.tickAsync(1);
  assert.deepEqual(groups, [1]);
  assert.equal((await memory.getTask(id))?.value.state, "scheduled");
  assert.equal(book.deferred, 0);
  // The book's revision is the stored one: the next change compares and succeeds.
  const done = await book.apply(id, EXIT_0, 20);
  assert.ok(done.ok && done.task.state === "done");
  assert.equal((await memory.getTask(id))?.value.state, "done");
});

Deno.test("a deferred write that fails is kept and tried again", async () => {
  const { memory, book, fake, errors, id } = await deferringBook();
  await book.apply(id, ACK, 10, { defer: true });
  memory.unavailable = true;
  await fake.tickAsync(250);
  assert.equal(errors.length, 1);
  assert.equal(book.deferred, 1);
  assert.equal((await book.get(id)).state, "scheduled");
  memory.unavailable = false;
  await fake.tickAsync(250);
  assert.equal(book.deferred, 0);
  assert.equal((await memory.getTask(id))?.value.state, "scheduled");
  book.close();
});

/** Whether `promise` has settled after the microtasks and timers due by now have run. */
async function settled(promise: Promise<unknown>, fake: ReturnType<typeof createClock>) {
  let done = false;
  promise.then(() => done = true, () => done = true);
  await fake.tickAsync(0);
  return done;
}

Deno.test("untilFinal waits for the task's end to be stored, not for its acknowledgement", async () => {
  const { memory, book, fake, id } = await deferringBook();
  let storedWhenWoken: string | undefined;
  const waiting = book.untilFinal(id, 60_000).then(async () => {
    storedWhenWoken = (await memory.getTask(id))?.value.state;
  });
  await book.apply(id, ACK, 10, { defer: true });
  assert.equal(await settled(waiting, fake), false, "an acknowledgement is not an end");
  await book.apply(id, EXIT_0, 20);
  assert.equal(await settled(waiting, fake), true, "woken by the end");
  assert.equal(storedWhenWoken, "done", "woken only once the store holds the end");
  assert.equal(await settled(book.untilFinal(id, 60_000), fake), true, "an ended task: at once");
  book.close();
});

Deno.test("untilFinal gives up after waitMs, on abort and on close", async () => {
  const { book, fake, id } = await deferringBook();
  const timed = book.untilFinal(id, 1000);
  await fake.tickAsync(999);
  assert.equal(await settled(timed, fake), false);
  await fake.tickAsync(1);
  assert.equal(await settled(timed, fake), true, "after waitMs");

  const abort = new AbortController();
  const aborted = book.untilFinal(id, 60_000, abort.signal);
  assert.equal(await settled(aborted, fake), false);
  abort.abort();
  assert.equal(await settled(aborted, fake), true, "when the caller goes away");

  const closed = book.untilFinal(id, 60_000);
  book.close();
  assert.equal(await settled(closed, fake), true, "when the book closes");
  assert.equal(fake.countTimers(), 0, "no timer is left behind");
  assert.equal(
    await settled(book.untilFinal("no-such-task", 60_000), fake),
    true,
    "a task not active here: at once",
  );
});

Deno.test("under load, a group that is not full waits a few milliseconds to fill", async () => {
  const memory = createMemoryStore();
  const { store, groups } = counting(memory);
  const fake = createClock(0);
  const book = new TaskBook(store, { clock: clockOf(fake) });
  try {
    await book.create(tasks(12));
    groups.length = 0;
    const assign = (i: number) => book.apply(`t${i}`, { type: "assign", workerId: "w1" }, 1);

    // Idle: a lone update is written at once.
    await assign(0);
    assert.deepEqual(groups, [1]);

    // Five in one turn: a write that says the manager is under load.
    await Promise.all([1, 2, 3, 4, 5].map(assign));
    assert.deepEqual(groups, [1, 5]);

    // The next, not a full group, waits for more; those that come meanwhile join it.
    const first = assign(6);
    await fake.tickAsync(1);
    const second = assign(7);
    await fake.tickAsync(1);
    assert.deepEqual(groups, [1, 5], "held while the group may fill");
    await fake.tickAsync(1);
    await Promise.all([first, second]);
    assert.deepEqual(groups, [1, 5, 2], "written together once the linger is over");

    // That small group says the load is over: the next update goes at once again.
    await assign(8);
    assert.deepEqual(groups, [1, 5, 2, 1]);
    assert.equal((await memory.getTask("t7"))?.value.workerId, "w1");
  } finally {
    book.close();
  }
});

Deno.test("a lingering group is written when the book closes, not left behind", async () => {
  const memory = createMemoryStore();
  const { store, groups } = counting(memory);
  const fake = createClock(0);
  const book = new TaskBook(store, { clock: clockOf(fake) });
  await book.create(tasks(6));
  groups.length = 0;
  const assign = (i: number) => book.apply(`t${i}`, { type: "assign", workerId: "w1" }, 1);
  await Promise.all([0, 1, 2, 3, 4].map(assign));
  const held = assign(5);
  await fake.tickAsync(0);
  assert.deepEqual(groups, [5]);
  book.close();
  await held;
  assert.deepEqual(groups, [5, 1]);
  assert.equal((await memory.getTask("t5"))?.value.workerId, "w1");
});
