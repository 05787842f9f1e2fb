import assert from "node:assert/strict";
import { UsageLedger } from "./usage_ledger.ts";

Deno.test("a share taken back before another is added keeps what the slots do not show", () => {
  const ledger = new UsageLedger();
  // A reported end gives back 1 core while a placement of half a core is being stored.
  ledger.add("w1", { cpu: 1, memoryBytes: 512 }, -1);
  ledger.add("w1", { cpu: 0.5, memoryBytes: 256 }, 1);
  assert.deepEqual(ledger.of("w1"), { slots: 0, cpu: -0.5, memoryBytes: -256 });
  ledger.add("w1", { cpu: 1, memoryBytes: 512 }, 1);
  ledger.add("w1", { cpu: 0.5, memoryBytes: 256 }, -1);
  assert.deepEqual(ledger.of("w1"), { slots: 0, cpu: 0, memoryBytes: 0 });
  assert.deepEqual([...ledger.takeChanges()], ["w1"]);
});
