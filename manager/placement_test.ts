import assert from "node:assert/strict";
import {
  type Candidate,
  createPlacer,
  createRandom,
  createRoundRobin,
  createScorer,
  diagnose,
  isConnected,
} from "./placement.ts";

const worker = (id: string, connected = true, runningTasks = 0): Candidate => ({
  id,
  connected,
  runningTasks,
});

Deno.test("isConnected passes connected workers and names the others", () => {
  assert.equal(isConnected(worker("a")), undefined);
  assert.equal(isConnected(worker("a", false)), "are disconnected");
});

Deno.test("round-robin cycles through eligible workers in id order", () => {
  const placer = createPlacer(createRoundRobin());
  const workers = [worker("w3"), worker("w1"), worker("w2", false), worker("w4")];
  const picks = Array.from({ length: 6 }, () => {
    const p = placer.place(workers);
    assert.ok(p.ok);
    return p.workerId;
  });
  assert.deepEqual(picks, ["w1", "w3", "w4", "w1", "w3", "w4"]);
});

Deno.test("round-robin keeps its place when a worker joins", () => {
  const scorer = createRoundRobin();
  assert.equal(scorer.pick([worker("a"), worker("c")]).id, "a");
  assert.equal(scorer.pick([worker("a"), worker("b"), worker("c")]).id, "b");
  assert.equal(scorer.pick([worker("a"), worker("c")]).id, "c");
});

Deno.test("random picks by the injected randomness", () => {
  const values = [0.1, 0.6, 0.99];
  const scorer = createRandom(() => values.shift() ?? 0);
  const workers = [worker("a"), worker("b"), worker("c")];
  assert.deepEqual([1, 2, 3].map(() => scorer.pick(workers).id), ["a", "b", "c"]);
});

Deno.test("createScorer knows both configured algorithms", () => {
  assert.equal(createScorer("round-robin").pick([worker("x")]).id, "x");
  assert.equal(createScorer("random", () => 0.5).pick([worker("x"), worker("y")]).id, "y");
});

Deno.test("no workers at all says so", () => {
  const p = createPlacer(createRoundRobin()).place([]);
  assert.deepEqual(p, { ok: false, reason: "no worker is connected" });
});

Deno.test("when nothing fits the reason counts each rejection", () => {
  const draining = (w: Candidate) => w.id.startsWith("d") ? "are draining" : undefined;
  const placer = createPlacer(createRoundRobin(), [isConnected, draining]);
  const p = placer.place([
    worker("a", false),
    worker("b", false),
    worker("d1"),
    worker("c", false),
  ]);
  assert.deepEqual(p, { ok: false, reason: "0/4 workers fit: 3 are disconnected, 1 are draining" });
});

Deno.test("diagnose orders reasons by count", () => {
  const reasons = new Map([["lack memory", 1], ["are draining", 2]]);
  assert.equal(diagnose(3, reasons), "0/3 workers fit: 2 are draining, 1 lack memory");
});
