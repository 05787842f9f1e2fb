import assert from "node:assert/strict";
import { createClock } from "@sinonjs/fake-timers";
import { clockOf } from "../shared/fake_clock.ts";
import { DelayedAcks } from "./delayed_acks.ts";

function delayedAcks() {
  const fake = createClock(1_000);
  const sent: string[] = [];
  const acks = new DelayedAcks((taskId, attempt) => sent.push(`${taskId}.${attempt}`), {
    clock: clockOf(fake),
    delayMs: 20,
  });
  return { fake, sent, acks };
}

Deno.test("an acknowledgement goes out after the delay, in the order the runs came", () => {
  const { fake, sent, acks } = delayedAcks();
  acks.add("a", 1);
  fake.tick(5);
  acks.add("b", 2);
  fake.tick(14);
  assert.deepEqual(sent, []);
  fake.tick(1);
  assert.deepEqual(sent, ["a.1"]);
  fake.tick(5);
  assert.deepEqual(sent, ["a.1", "b.2"]);
  assert.equal(fake.countTimers(), 0, "no timer once nothing is due");
});

Deno.test("a report sent within the delay stands for the acknowledgement", () => {
  const { fake, sent, acks } = delayedAcks();
  acks.add("a", 1);
  acks.add("a", 2);
  acks.drop("a", 1);
  fake.tick(100);
  assert.deepEqual(sent, ["a.2"], "only the attempt without a report");
});

Deno.test("closing sends nothing more and leaves no timer", () => {
  const { fake, sent, acks } = delayedAcks();
  acks.add("a", 1);
  acks.close();
  assert.equal(fake.countTimers(), 0);
  fake.tick(100);
  assert.deepEqual(sent, []);
});
