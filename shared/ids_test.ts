import assert from "node:assert/strict";
import { createTaskId, createTaskIds, createWorkerId } from "./ids.ts";

Deno.test("task ids sort by creation time", () => {
  const earlier = createTaskId(1_700_000_000_000, () => 0.99);
  const later = createTaskId(1_700_000_000_001, () => 0);
  assert.equal(earlier.length, 16);
  assert.ok(earlier < later);
  assert.match(earlier, /^[0-9a-hjkmnp-tv-z]{16}$/);
});

Deno.test("a batch's ids are distinct and in order, even with the worst randomness", () => {
  for (const random of [() => 0, () => 0.999999, Math.random]) {
    const ids = createTaskIds(10_000, 1_700_000_000_000, random);
    assert.equal(new Set(ids).size, 10_000);
    assert.deepEqual([...ids].sort(), ids);
    assert.ok(ids.every((id) => id.length === 16 && id.startsWith(ids[0].slice(0, 10))));
  }
});

Deno.test("worker ids are w- and ten characters", () => {
  assert.match(createWorkerId(() => 0.5), /^w-[0-9a-z]{10}$/);
});
