import assert from "node:assert/strict";
import { backoffDelay } from "./backoff.ts";

const options = { initialMs: 100, maxMs: 5000 };

Deno.test("backoff ceiling doubles per attempt up to the cap", () => {
  const almostOne = () => 0.999999;
  const delays = [0, 1, 2, 3, 4, 5, 6, 10, 100].map((n) => backoffDelay(n, options, almostOne));
  assert.deepEqual(delays, [99, 199, 399, 799, 1599, 3199, 4999, 4999, 4999]);
});

Deno.test("backoff jitter spans zero to the ceiling", () => {
  assert.equal(backoffDelay(3, options, () => 0), 0);
  assert.equal(backoffDelay(3, options, () => 0.5), 400);
});
