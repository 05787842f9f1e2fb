import assert from "node:assert/strict";
import { KeyedLock } from "./keyed_lock.ts";

Deno.test("KeyedLock runs work for one key in order, even when one fails", async () => {
  const lock = new KeyedLock();
  const log: string[] = [];
  const slow = lock.run("a", async () => {
    await new Promise((r) => setTimeout(r, 10));
    log.push("a1");
    throw new Error("boom");
  });
  const fast = lock.run("a", () => {
    log.push("a2");
    return Promise.resolve(2);
  });
  await assert.rejects(slow, /boom/);
  assert.equal(await fast, 2);
  assert.deepEqual(log, ["a1", "a2"]);
});

Deno.test("KeyedLock lets different keys overlap", async () => {
  const lock = new KeyedLock();
  const log: string[] = [];
  let release!: () => void;
  const blocked = lock.run(
    "a",
    () => new Promise<void>((r) => release = r).then(() => log.push("a")),
  );
  await lock.run("b", () => Promise.resolve(log.push("b")));
  release();
  await blocked;
  assert.deepEqual(log, ["b", "a"]);
});
