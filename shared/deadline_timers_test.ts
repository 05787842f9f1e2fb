import assert from "node:assert/strict";
import { createClock } from "@sinonjs/fake-timers";
import { clockOf } from "./fake_clock.ts";
import { DeadlineTimers } from "./deadline_timers.ts";

function setup() {
  const fake = createClock(1_000);
  const timers = new DeadlineTimers<string>(clockOf(fake));
  const fired: string[] = [];
  const at = (key: string, time: number) => timers.set(key, time, () => fired.push(key));
  return { fake, timers, fired, at };
}

Deno.test("deadlines fire when the clock reaches them, earliest first, ties in order set", () => {
  const { fake, timers, fired, at } = setup();
  at("c", 1_300);
  at("a", 1_100);
  at("b", 1_300);
  at("d", 1_200);
  fake.tick(99);
  assert.deepEqual(fired, []);
  fake.tick(1);
  assert.deepEqual(fired, ["a"]);
  fake.tick(200);
  assert.deepEqual(fired, ["a", "d", "c", "b"]);
  assert.equal(timers.size, 0);
  assert.equal(fake.countTimers(), 0, "no runtime timer is left once nothing is due");
});

Deno.test("a cleared deadline never fires; setting a key again replaces its deadline", () => {
  const { fake, timers, fired, at } = setup();
  at("gone", 1_100);
  at("moved", 1_100);
  at("kept", 1_150);
  timers.clear("gone");
  at("moved", 1_500);
  assert.equal(timers.has("gone"), false);
  assert.equal(timers.size, 2);
  fake.tick(200);
  assert.deepEqual(fired, ["kept"]);
  fake.tick(300);
  assert.deepEqual(fired, ["kept", "moved"]);
  assert.equal(fake.countTimers(), 0);
});

Deno.test("one runtime timer serves every deadline, armed for the earliest", () => {
  const { fake, fired, at } = setup();
  for (let i = 0; i < 100; i++) at(`t${i}`, 5_000 - i);
  assert.equal(fake.countTimers(), 1);
  fake.next();
  assert.equal(fake.now, 4_901);
  assert.deepEqual(fired, ["t99"]);
});

Deno.test("a deadline in the past fires on the timer's next turn", () => {
  const { fake, fired, at } = setup();
  at("late", 500);
  assert.deepEqual(fired, [], "not from within set");
  fake.tick(0);
  assert.deepEqual(fired, ["late"]);
});

Deno.test("a callback that sets a due deadline does not run it in the same turn", () => {
  const { fake, timers, fired } = setup();
  const again = () => {
    fired.push("again");
    timers.set("again", fake.now, again);
  };
  timers.set("again", 1_010, again);
  fake.tick(10);
  assert.deepEqual(fired, ["again"], "one call per turn, not a loop");
  fake.tick(1); // fake-timers delays a timer set during a tick by at least 1 ms
  assert.deepEqual(fired, ["again", "again"]);
  timers.clearAll();
  assert.equal(fake.countTimers(), 0);
});

Deno.test("a throwing callback does not keep the others from running", () => {
  const { fake, timers, fired, at } = setup();
  timers.set("bad", 1_100, () => {
    throw new Error("boom");
  });
  at("good", 1_100);
  at("later", 1_200);
  assert.throws(() => fake.tick(100), /boom/);
  assert.deepEqual(fired, ["good"]);
  fake.tick(100);
  assert.deepEqual(fired, ["good", "later"], "the timer was armed again");
});

Deno.test("clearAll forgets every deadline and stops the runtime timer", () => {
  const { fake, timers, fired, at } = setup();
  at("a", 1_100);
  at("b", 1_200);
  timers.clearAll();
  assert.equal(timers.size, 0);
  assert.equal(fake.countTimers(), 0);
  fake.tick(1_000);
  assert.deepEqual(fired, []);
});

Deno.test("many cleared deadlines do not delay or lose the live ones", () => {
  const { fake, timers, fired, at } = setup();
  // Far more cleared entries than live ones, so the heap is rebuilt from the live ones
  // several times while they wait.
  const live: string[] = [];
  for (let i = 0; i < 10_000; i++) {
    at(`x${i}`, 1_100 + (i % 500));
    if (i % 100 === 0) live.push(`x${i}`);
    else timers.clear(`x${i}`);
  }
  assert.equal(timers.size, live.length);
  fake.tick(99);
  assert.deepEqual(fired, []);
  fake.tick(500);
  assert.deepEqual([...fired].sort(), [...live].sort());
  assert.equal(fake.countTimers(), 0);
});

Deno.test("it fires what a runtime timer per key would, in random use", () => {
  // A reference: one fake-clock timer per key, on a second clock kept in step.
  let seed = 42;
  const random = (n: number) => {
    seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
    return seed % n;
  };
  const { fake, timers, fired } = setup();
  const reference = createClock(1_000);
  const referenceTimers = new Map<string, ReturnType<typeof reference.setTimeout>>();
  const referenceFired: string[] = [];
  for (let step = 0; step < 5_000; step++) {
    const key = `k${random(50)}`;
    const action = random(10);
    if (action < 5) {
      const delay = random(300);
      timers.set(key, fake.now + delay, () => fired.push(`${key}@${fake.now}`));
      reference.clearTimeout(referenceTimers.get(key)!);
      referenceTimers.set(
        key,
        reference.setTimeout(() => {
          referenceTimers.delete(key);
          referenceFired.push(`${key}@${reference.now}`);
        }, delay),
      );
    } else if (action < 7) {
      timers.clear(key);
      reference.clearTimeout(referenceTimers.get(key)!);
      referenceTimers.delete(key);
    } else {
      const ms = random(60);
      fake.tick(ms);
      reference.tick(ms);
    }
    assert.equal(timers.size, referenceTimers.size);
  }
  fake.tick(1_000);
  reference.tick(1_000);
  // Same keys at the same times; within one millisecond the order may differ (ties).
  assert.deepEqual([...fired].sort(), [...referenceFired].sort());
  assert.ok(fired.length > 500, `enough deadlines fired to mean something (${fired.length})`);
});
