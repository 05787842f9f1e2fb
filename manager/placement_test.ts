import assert from "node:assert/strict";
import {
  type Candidate,
  candidateOf,
  CandidatePool,
  createBinPack,
  createLeastLoaded,
  createPlacer,
  createRandom,
  createRoundRobin,
  createScorer,
  createSpread,
  type Filter,
  FILTERS,
  hasCpu,
  hasFreeSlot,
  hasLabels,
  hasMemory,
  isConnected,
  isNotDraining,
  isPinnedWorker,
  neverFits,
  takeRoom,
  type TaskNeeds,
} from "./placement.ts";
import type { WorkerRecord } from "../shared/task.ts";

const GiB = 1024 ** 3;

function worker(id: string, extra: Partial<Candidate> = {}): Candidate {
  return {
    id,
    connected: true,
    draining: false,
    labels: {},
    capacity: { cpu: 4, memoryBytes: 8 * GiB, slots: 2 },
    used: { cpu: 0, memoryBytes: 0, slots: 0 },
    ...extra,
  };
}

/** [filter, worker, task, expected rejection (plural form) or undefined] */
const filterCases: [string, Filter, Candidate, TaskNeeds, string | undefined][] = [
  ["connected", isConnected, worker("a"), {}, undefined],
  ["disconnected", isConnected, worker("a", { connected: false }), {}, "are disconnected"],
  ["not draining", isNotDraining, worker("a"), {}, undefined],
  ["draining", isNotDraining, worker("a", { draining: true }), {}, "are draining"],
  ["no pin", isPinnedWorker, worker("a"), {}, undefined],
  ["pinned here", isPinnedWorker, worker("a"), { pinWorkerId: "a" }, undefined],
  ["pinned elsewhere", isPinnedWorker, worker("a"), { pinWorkerId: "b" }, "are not worker b"],
  [
    "label equal",
    hasLabels,
    worker("a", { labels: { gpu: "true" } }),
    { labels: [{ key: "gpu", op: "=", value: "true" }] },
    undefined,
  ],
  [
    "label differs",
    hasLabels,
    worker("a", { labels: { gpu: "false" } }),
    { labels: [{ key: "gpu", op: "=", value: "true" }] },
    "lack label gpu=true",
  ],
  [
    "label missing",
    hasLabels,
    worker("a"),
    { labels: [{ key: "gpu", op: "=", value: "true" }] },
    "lack label gpu=true",
  ],
  [
    "label not equal, satisfied",
    hasLabels,
    worker("a", { labels: { zone: "a" } }),
    { labels: [{ key: "zone", op: "!=", value: "b" }] },
    undefined,
  ],
  [
    "label not equal, violated",
    hasLabels,
    worker("a", { labels: { zone: "b" } }),
    { labels: [{ key: "zone", op: "!=", value: "b" }] },
    "have label zone=b",
  ],
  [
    "label present",
    hasLabels,
    worker("a", { labels: { ssd: "" } }),
    { labels: [{ key: "ssd", op: "exists" }] },
    undefined,
  ],
  [
    "label absent",
    hasLabels,
    worker("a"),
    { labels: [{ key: "ssd", op: "exists" }] },
    "lack label ssd",
  ],
  [
    "free slot",
    hasFreeSlot,
    worker("a", { used: { cpu: 0, memoryBytes: 0, slots: 1 } }),
    {},
    undefined,
  ],
  [
    "no free slot",
    hasFreeSlot,
    worker("a", { used: { cpu: 0, memoryBytes: 0, slots: 2 } }),
    {},
    "have no free slot",
  ],
  ["cpu fits exactly", hasCpu, worker("a", { used: { cpu: 3.5, memoryBytes: 0, slots: 0 } }), {
    cpu: 0.5,
  }, undefined],
  ["cpu short", hasCpu, worker("a", { used: { cpu: 3.5, memoryBytes: 0, slots: 0 } }), {
    cpu: 1,
  }, "lack cpu"],
  ["memory fits", hasMemory, worker("a"), { memoryBytes: 8 * GiB }, undefined],
  ["memory short", hasMemory, worker("a"), { memoryBytes: 9 * GiB }, "lack memory"],
];

for (const [name, filter, candidate, task, expected] of filterCases) {
  Deno.test(`filter: ${name}`, () => {
    assert.equal(filter(candidate, task)?.many, expected);
  });
}

Deno.test("round-robin cycles through eligible workers in id order", () => {
  const placer = createPlacer(createRoundRobin());
  const workers = [worker("w3"), worker("w1"), worker("w2", { connected: false }), worker("w4")];
  const picks = Array.from({ length: 6 }, () => {
    const p = placer.place(workers, {});
    assert.ok(p.ok);
    return p.workerId;
  });
  assert.deepEqual(picks, ["w1", "w3", "w4", "w1", "w3", "w4"]);
});

Deno.test("random picks by the injected randomness", () => {
  const values = [0.1, 0.6, 0.99];
  const scorer = createRandom(() => values.shift() ?? 0);
  const workers = [worker("a"), worker("b"), worker("c")];
  assert.deepEqual([1, 2, 3].map(() => scorer.pick(workers, {}).id), ["a", "b", "c"]);
});

const busy = (id: string, slots: number, extra: Partial<Candidate> = {}) =>
  worker(id, { used: { cpu: 0, memoryBytes: 0, slots }, ...extra });

/** [scorer, workers, task, expected pick] */
const scorerCases: [
  string,
  ReturnType<typeof createLeastLoaded>,
  Candidate[],
  TaskNeeds,
  string,
][] = [
  ["least-loaded takes the emptiest", createLeastLoaded(), [busy("a", 1), busy("b", 0)], {}, "b"],
  ["least-loaded ties go by id", createLeastLoaded(), [busy("b", 0), busy("a", 0)], {}, "a"],
  ["bin-pack takes the fullest", createBinPack(), [busy("a", 1), busy("b", 0)], {}, "a"],
  [
    "bin-pack counts cpu too",
    createBinPack(),
    [
      busy("a", 0, { used: { cpu: 3, memoryBytes: 0, slots: 0 } }),
      busy("b", 1),
    ],
    { cpu: 1 },
    "a",
  ],
  [
    "spread takes the label value with fewest tasks",
    createSpread("rack"),
    [
      busy("a", 1, { labels: { rack: "r1" } }),
      busy("b", 0, { labels: { rack: "r1" } }),
      busy("c", 0, { labels: { rack: "r2" } }),
    ],
    {},
    "c",
  ],
  [
    "spread then the least loaded within the value",
    createSpread("rack"),
    [busy("a", 1, { labels: { rack: "r1" } }), busy("b", 0, { labels: { rack: "r1" } })],
    {},
    "b",
  ],
];

for (const [name, scorer, workers, task, expected] of scorerCases) {
  Deno.test(`scorer: ${name}`, () => {
    assert.equal(scorer.pick(workers, task).id, expected);
  });
}

Deno.test("createScorer knows every configured algorithm", () => {
  for (const name of ["round-robin", "random", "least-loaded", "bin-pack", "spread"] as const) {
    assert.equal(createScorer(name, { random: () => 0 }).pick([worker("x")], {}).id, "x");
  }
});

Deno.test("no workers at all says so", () => {
  const p = createPlacer(createRoundRobin()).place([], {});
  assert.deepEqual(p, { ok: false, reason: "no worker is connected" });
});

Deno.test("when nothing fits the diagnosis counts each reason, in words for one and many", () => {
  const placer = createPlacer(createRoundRobin());
  const workers = [
    worker("a", { capacity: { cpu: 4, memoryBytes: GiB, slots: 2 } }),
    worker("b", { capacity: { cpu: 4, memoryBytes: GiB, slots: 2 } }),
    worker("c", { capacity: { cpu: 4, memoryBytes: GiB, slots: 2 } }),
    worker("d", { draining: true, labels: { gpu: "true" } }),
    worker("e", { labels: { gpu: "false" } }),
  ];
  workers.slice(0, 3).forEach((w) => w.labels = { gpu: "true" });
  const p = placer.place(workers, {
    memoryBytes: 2 * GiB,
    labels: [{ key: "gpu", op: "=", value: "true" }],
  });
  assert.deepEqual(p, {
    ok: false,
    reason: "0/5 workers fit: 3 lack memory, 1 is draining, 1 lacks label gpu=true",
  });
});

Deno.test("neverFits looks only at what workers are, not what they do now", () => {
  const workers = [
    worker("a", { connected: false, used: { cpu: 4, memoryBytes: 0, slots: 2 } }),
    worker("b", { draining: true }),
  ];
  assert.equal(neverFits(workers, { cpu: 2 }), undefined, "busy or away workers still count");
  assert.equal(neverFits(workers, { cpu: 8 }), "0/2 workers fit: 2 offer less cpu");
  assert.equal(
    neverFits(workers, { labels: [{ key: "gpu", op: "exists" }] }),
    "0/2 workers fit: 2 lack label gpu",
  );
  assert.equal(neverFits([], { cpu: 100 }), undefined, "no worker seen yet: nothing is known");
});

Deno.test("candidateOf copies the usage it is given; takeRoom adds one", () => {
  const usage = { cpu: 1.5, memoryBytes: GiB, slots: 2 };
  const record: WorkerRecord = {
    id: "a",
    hostname: "h",
    address: "",
    state: "connected",
    capabilities: { cpuCores: 8, memoryBytes: 16 * GiB, os: "linux", arch: "x86_64" },
    version: "",
    connectedAt: 0,
    lastSeenAt: 0,
  };
  const candidates = [candidateOf(record, true, usage)];
  assert.deepEqual(candidates[0].capacity, { cpu: 8, memoryBytes: 16 * GiB, slots: 8 });
  takeRoom(candidates, "a", { cpu: 1, memoryBytes: GiB });
  assert.deepEqual(candidates[0].used, { cpu: 2.5, memoryBytes: 2 * GiB, slots: 3 });
  assert.deepEqual(usage, { cpu: 1.5, memoryBytes: GiB, slots: 2 }, "copied, not shared");
});

Deno.test("a kept pool settles to the usage of changed and charged workers only", () => {
  const pool = new CandidatePool([worker("a"), worker("b"), worker("c")]);
  const truth: Record<string, { cpu: number; memoryBytes: number; slots: number }> = {
    a: { cpu: 2, memoryBytes: 0, slots: 1 },
    b: { cpu: 0, memoryBytes: 0, slots: 0 },
    c: { cpu: 3, memoryBytes: 0, slots: 2 },
  };
  pool.takeRoom("b", { cpu: 1 }); // placed, but (say) never stored
  pool.settle(["a"], (id) => truth[id]);
  assert.deepEqual(pool.get("a")!.used, truth.a, "changed: as it is now");
  assert.deepEqual(pool.get("b")!.used, truth.b, "charged: the assumed room is given back");
  assert.deepEqual(pool.get("c")!.used, { cpu: 0, memoryBytes: 0, slots: 0 }, "untouched");
  truth.a.slots = 9;
  assert.equal(pool.get("a")!.used.slots, 1, "a copy, not the source's object");
  pool.settle([], (id) => truth[id]);
  assert.equal(pool.get("b")!.used.slots, 0, "charges are settled once");
});

Deno.test("a pool keeps the free slots of its open workers as room is taken and settled", () => {
  const pool = new CandidatePool([
    worker("a"), // 2 slots
    worker("b", { used: { cpu: 0, memoryBytes: 0, slots: 1 } }),
    worker("c", { draining: true }),
    worker("d", { connected: false }),
  ]);
  assert.equal(pool.openCount, 2);
  assert.equal(pool.freeSlots, 3, "a's two and b's one; draining and disconnected ones count 0");
  pool.takeRoom("a", {});
  pool.takeRoom("b", {});
  assert.equal(pool.freeSlots, 1);
  pool.takeRoom("c", {});
  assert.equal(pool.freeSlots, 1, "a draining worker's room is not free room");
  const slots: Record<string, number> = { a: 1, b: 3, c: 0, d: 0 };
  pool.settle([], (id) => ({ cpu: 0, memoryBytes: 0, slots: slots[id] }));
  assert.equal(pool.freeSlots, 1, "b over its slots counts as none free, not fewer");
  slots.b = 0;
  pool.settle(["b"], (id) => ({ cpu: 0, memoryBytes: 0, slots: slots[id] }));
  assert.equal(pool.freeSlots, 3, "b's usage changed: both its slots are free");
});

Deno.test("a pool places as picking among the fitting workers would, batch after batch", () => {
  // A fleet with every kind of rejection, in no particular order; each scorer must choose
  // what its pick over the filtered list chooses, while the pool is charged for each task.
  let seed = 7;
  const next = () => (seed = (seed * 48271) % 2147483647) / 2147483647;
  const fleet = () =>
    Array.from({ length: 60 }, (_, i) =>
      worker(`w${String((i * 37) % 60).padStart(2, "0")}`, {
        connected: next() > 0.1,
        draining: next() < 0.1,
        labels: next() < 0.5 ? { rack: `r${Math.floor(next() * 3)}` } : {},
        capacity: { cpu: 1 + Math.floor(next() * 4), memoryBytes: 8 * GiB, slots: 3 },
        used: { cpu: 0, memoryBytes: 0, slots: Math.floor(next() * 3) },
      }));
  const tasks: TaskNeeds[] = [{}, { cpu: 1 }, { labels: [{ key: "rack", op: "exists" }] }, {
    memoryBytes: 4 * GiB,
  }];
  const names = ["round-robin", "least-loaded", "bin-pack", "spread"] as const;
  for (const name of names) {
    const workers = fleet();
    const pooled = createPlacer(createScorer(name));
    const listed = createScorer(name);
    const pool = new CandidatePool(workers);
    const copies = workers.map((w) => ({ ...w, used: { ...w.used } }));
    for (let i = 0; i < 80; i++) {
      const task = tasks[i % tasks.length];
      const fit = [...copies].sort((a, b) => a.id < b.id ? -1 : 1).filter((w) =>
        FILTERS.every((f) => f(w, task) === undefined)
      );
      const placement = pooled.place(pool, task);
      if (fit.length === 0) {
        assert.equal(placement.ok, false, `${name} #${i}`);
        continue;
      }
      const expected = listed.pick(fit, task).id;
      assert.deepEqual(placement, { ok: true, workerId: expected }, `${name} #${i}`);
      pool.takeRoom(expected, task);
      takeRoom(copies, expected, task);
    }
  }
});

Deno.test("random places only on fitting workers, also when few fit", () => {
  const workers = Array.from({ length: 50 }, (_, i) => worker(`w${i}`, { connected: i === 17 }));
  const placer = createPlacer(createRandom(() => 0.5));
  assert.deepEqual(placer.place(new CandidatePool(workers), {}), { ok: true, workerId: "w17" });
});

Deno.test("a pool finds workers by id and the rotation point by binary search", () => {
  const pool = new CandidatePool([worker("c"), worker("a"), worker("b")]);
  assert.deepEqual(pool.workers.map((w) => w.id), ["a", "b", "c"]);
  assert.deepEqual(["", "a", "b", "bb", "c"].map((id) => pool.indexAfter(id)), [0, 1, 2, 2, 3]);
  pool.takeRoom("b", { cpu: 1 });
  assert.deepEqual(pool.get("b")?.used, { cpu: 1, memoryBytes: 0, slots: 1 });
});

Deno.test("a worker's queue is room beyond its slots, used only when no slot is idle", () => {
  const queued = (id: string, used: number) =>
    worker(id, {
      capacity: { cpu: 4, memoryBytes: 8 * GiB, slots: 2, queue: 1 },
      used: { cpu: 0, memoryBytes: 0, slots: used },
    });
  assert.equal(hasFreeSlot(queued("a", 2), {}), undefined, "both slots taken, the queue free");
  assert.deepEqual(hasFreeSlot(queued("a", 3), {})?.many, "have no free slot");

  for (const name of ["round-robin", "random", "least-loaded", "bin-pack", "spread"] as const) {
    const placer = createPlacer(createScorer(name, { random: () => 0 }));
    // a's slots are taken but its queue is free; b has an idle slot: b, whatever the scorer.
    const pool = new CandidatePool([queued("a", 2), queued("b", 1)]);
    assert.equal(pool.idleSlots, 1, name);
    assert.equal(pool.freeSlots, 3, name);
    assert.deepEqual(placer.place(pool, {}), { ok: true, workerId: "b" }, name);
    pool.takeRoom("b", {});
    assert.equal(pool.idleSlots, 0, name);
    // Every slot taken: a queue takes it.
    const second = placer.place(pool, {});
    assert.ok(second.ok, name);
    pool.takeRoom(second.workerId, {});
    const third = placer.place(pool, {});
    assert.ok(third.ok, name);
    pool.takeRoom(third.workerId, {});
    assert.deepEqual(
      [second.workerId, third.workerId].sort(),
      ["a", "b"],
      `${name}: one task in each queue`,
    );
    assert.equal(pool.freeSlots, 0, name);
    assert.deepEqual(placer.place(pool, {}), {
      ok: false,
      reason: "0/2 workers fit: 2 have no free slot",
    }, name);
  }
});
