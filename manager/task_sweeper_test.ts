import assert from "node:assert/strict";
import { createClock } from "@sinonjs/fake-timers";
import { clockOf } from "../shared/fake_clock.ts";
import { createLogger } from "../shared/log.ts";
import { task } from "../shared/store/conformance.ts";
import { createMemoryStore } from "../shared/store/memory_store.ts";
import { type Store, StoreUnavailableError } from "../shared/store/store.ts";
import type { TaskRecord, TaskState } from "../shared/task.ts";
import { TaskSweeper } from "./task_sweeper.ts";

const HOUR = 3_600_000;
const RETENTION = 24 * HOUR;
const NOW = Date.UTC(2026, 0, 10);

/** A task id that sorts by creation time, as the manager's ids do. */
const idAt = (createdAt: number, n: number) => `${createdAt.toString(36).padStart(10, "0")}-${n}`;

function finished(
  n: number,
  createdAt: number,
  finishedAt: number,
  state: TaskState = "done",
): TaskRecord {
  return task(idAt(createdAt, n), state, { createdAt, finishedAt });
}

async function setup(tasks: TaskRecord[], store: Store = createMemoryStore()) {
  const fake = createClock(NOW);
  const lines: string[] = [];
  const log = createLogger({ write: (line) => lines.push(line), now: () => fake.now });
  if (tasks.length > 0) await store.createTasks(tasks);
  const forgotten: string[] = [];
  const sweeper = new TaskSweeper({
    store,
    retentionMs: RETENTION,
    log,
    clock: clockOf(fake),
    removed: (ids) => forgotten.push(...ids),
  });
  const ids = async () => (await store.listTasks()).map((t) => t.value.id);
  return { fake, lines, store, sweeper, forgotten, ids };
}

Deno.test("task sweeper: finished tasks past the retention go, the rest stay", async () => {
  const old = NOW - 3 * RETENTION;
  const tasks = [
    finished(1, old, old + HOUR), // done long ago: removed
    finished(2, old, old + 2 * HOUR, "dead"), // dead long ago: removed
    finished(3, old, NOW - HOUR), // created long ago, but finished an hour ago: stays
    task(idAt(old, 4), "scheduled", { createdAt: old }), // still running: stays
    task(idAt(old, 5), "pending", { createdAt: old }), // still waiting: stays
    finished(6, NOW - 2 * HOUR, NOW - HOUR), // recent: stays
  ];
  const { lines, sweeper, forgotten, ids } = await setup(tasks);
  assert.equal(await sweeper.sweep(), 2);
  assert.deepEqual(await ids(), [tasks[2].id, tasks[3].id, tasks[4].id, tasks[5].id]);
  assert.deepEqual(forgotten.sort(), [tasks[0].id, tasks[1].id].sort());
  assert.match(
    lines.at(-1)!,
    /INFO +removed finished tasks past task_retention tasks=2 finished_before=2026-01-09T00:00:00.000Z/,
  );
  assert.equal(await sweeper.sweep(), 0, "nothing left to remove");
  assert.equal(lines.length, 1, "a round that removes nothing says nothing");
});

Deno.test("task sweeper: pages through more tasks than one read, and stops at the cutoff", async () => {
  const old = NOW - 2 * RETENTION;
  const tasks: TaskRecord[] = [];
  for (let i = 0; i < 1234; i++) tasks.push(finished(i, old + i, old + i + 1));
  for (let i = 0; i < 10; i++) tasks.push(finished(i, NOW - HOUR + i, NOW - HOUR + i + 1));
  const store = createMemoryStore();
  const reads: (string | undefined)[] = [];
  const listTasks = store.listTasks.bind(store);
  store.listTasks = (options) => {
    if (options?.state === "done") reads.push(options.afterId);
    return listTasks(options);
  };
  const { sweeper, ids } = await setup(tasks, store);
  assert.equal(await sweeper.sweep(), 1234);
  assert.equal((await ids()).length, 10);
  assert.equal(reads.length, 3, "three pages of done tasks: the third reaches the recent ones");
});

Deno.test("task sweeper: runs every minute once started, and stop() leaves no timer", async () => {
  const old = NOW - 2 * RETENTION;
  const { fake, sweeper, ids, store } = await setup([finished(1, old, old + 1)]);
  assert.equal(sweeper.intervalMs, 60_000);
  sweeper.start();
  await fake.tickAsync(59_999);
  assert.equal((await ids()).length, 1);
  await fake.tickAsync(1);
  assert.equal((await ids()).length, 0);
  // A task that finished just inside the retention goes a round after it passes.
  await store.createTasks([finished(2, NOW - RETENTION, NOW - RETENTION + 150_000)]);
  await fake.tickAsync(60_000);
  assert.equal((await ids()).length, 1);
  await fake.tickAsync(60_000);
  assert.equal((await ids()).length, 0);
  await sweeper.stop();
  assert.equal(fake.countTimers(), 0);
});

Deno.test("task sweeper: a task changed since it was read is left alone, the rest go", async () => {
  const old = NOW - 2 * RETENTION;
  const tasks = [finished(1, old, old + 1), finished(2, old, old + 2), finished(3, old, old + 3)];
  const store = createMemoryStore();
  const { sweeper, ids } = await setup(tasks, store);
  // Another writer changes task 2 between the sweeper's read and its removal.
  const deleteTasks = store.deleteTasks.bind(store);
  let once = true;
  store.deleteTasks = async (deletions) => {
    if (once) {
      once = false;
      const current = (await store.getTask(tasks[1].id))!;
      await store.updateTasks([{
        task: { ...current.value, stdout: "changed" },
        expectedRevision: current.revision,
      }]);
    }
    return deleteTasks(deletions);
  };
  assert.equal(await sweeper.sweep(), 2);
  assert.deepEqual(await ids(), [tasks[1].id]);
});

Deno.test("task sweeper: a store that is down is warned about once, and retried", async () => {
  const old = NOW - 2 * RETENTION;
  const store = createMemoryStore();
  const { lines, sweeper, ids } = await setup([finished(1, old, old + 1)], store);
  const listTasks = store.listTasks.bind(store);
  let down = true;
  store.listTasks = (options) =>
    down ? Promise.reject(new StoreUnavailableError("etcd is down")) : listTasks(options);
  assert.equal(await sweeper.sweep(), 0);
  assert.equal(await sweeper.sweep(), 0);
  assert.equal(lines.filter((l) => l.includes("WARN")).length, 1);
  assert.match(lines[0], /WARN +cannot remove finished tasks yet; will retry .*etcd is down/);
  down = false;
  assert.equal(await sweeper.sweep(), 1);
  assert.deepEqual(await ids(), []);
  assert.match(lines.at(-1)!, /INFO +removing finished tasks again/);
});
