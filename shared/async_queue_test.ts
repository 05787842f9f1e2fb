import assert from "node:assert/strict";
import { AsyncQueue } from "./async_queue.ts";

Deno.test("AsyncQueue yields pushed items in order, then ends on close", async () => {
  const queue = new AsyncQueue<number>();
  queue.push(1);
  queue.push(2);
  const seen: number[] = [];
  const reader = (async () => {
    for await (const n of queue) seen.push(n);
  })();
  await Promise.resolve();
  queue.push(3);
  queue.close();
  await reader;
  assert.deepEqual(seen, [1, 2, 3]);
  assert.equal(queue.push(4), false, "a closed queue refuses new items");
});

Deno.test("AsyncQueue closes when its reader stops early", async () => {
  const queue = new AsyncQueue<string>();
  queue.push("a");
  for await (const _ of queue) break;
  assert.equal(queue.closed, true);
});
