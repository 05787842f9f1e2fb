import assert from "node:assert/strict";
import { detectMachine, resolveCapacity } from "./capacity.ts";

const MACHINE = { cpuCores: 8, memoryBytes: 16 * 1024 ** 3 };

Deno.test("resolveCapacity: what worker.yaml sets wins, the rest is detected", () => {
  const cases: [Parameters<typeof resolveCapacity>[0], ReturnType<typeof resolveCapacity>][] = [
    [{}, { cpu: 8, memoryBytes: 16 * 1024 ** 3, slots: 8, queue: 16 }],
    [{ cpu: 4 }, { cpu: 4, memoryBytes: 16 * 1024 ** 3, slots: 4, queue: 8 }],
    [{ cpu: 2.5 }, { cpu: 2.5, memoryBytes: 16 * 1024 ** 3, slots: 2, queue: 4 }],
    [{ cpu: 0.5 }, { cpu: 0.5, memoryBytes: 16 * 1024 ** 3, slots: 1, queue: 2 }],
    [{ slots: 20 }, { cpu: 8, memoryBytes: 16 * 1024 ** 3, slots: 20, queue: 40 }],
    [{ memoryBytes: 1024 }, { cpu: 8, memoryBytes: 1024, slots: 8, queue: 16 }],
    [{ queue: 0 }, { cpu: 8, memoryBytes: 16 * 1024 ** 3, slots: 8, queue: 0 }],
    [
      { cpu: 16, memoryBytes: 1 << 30, slots: 2, queue: 5 },
      { cpu: 16, memoryBytes: 1 << 30, slots: 2, queue: 5 },
    ],
  ];
  for (const [configured, expected] of cases) {
    assert.deepEqual(resolveCapacity(configured, MACHINE), expected, JSON.stringify(configured));
  }
});

Deno.test("resolveCapacity: a machine that reports no processors still offers one", () => {
  assert.deepEqual(resolveCapacity({}, { cpuCores: 0, memoryBytes: 1 }), {
    cpu: 1,
    memoryBytes: 1,
    slots: 1,
    queue: 2,
  });
});

Deno.test("detectMachine reads this machine", () => {
  const machine = detectMachine();
  assert.ok(machine.cpuCores >= 1);
  assert.ok(machine.memoryBytes > 0);
});
