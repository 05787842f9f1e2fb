import assert from "node:assert/strict";
import { formatDuration, parseDuration } from "./duration.ts";

Deno.test("parseDuration reads each unit and combinations", () => {
  const cases: [string, number][] = [
    ["500ms", 500],
    ["5s", 5000],
    ["1.5s", 1500],
    ["2m", 120_000],
    ["1h", 3_600_000],
    ["1h30m", 5_400_000],
    ["1m30s", 90_000],
    ["0s", 0],
    [" 10s ", 10_000],
  ];
  for (const [text, ms] of cases) assert.equal(parseDuration(text), ms, text);
});

Deno.test("parseDuration refuses bad text and names it", () => {
  for (const text of ["", "5", "5x", "-5s", "s", "5s5", "five seconds", "5 s"]) {
    assert.throws(() => parseDuration(text), (e: Error) => {
      assert.ok(e instanceof RangeError, text);
      assert.ok(e.message.includes(`"${text}"`), `${text}: ${e.message}`);
      return true;
    });
  }
  assert.throws(() => parseDuration("-5s"), /cannot be negative/);
});

Deno.test("formatDuration is short and exact", () => {
  assert.equal(formatDuration(850), "850ms");
  assert.equal(formatDuration(5000), "5s");
  assert.equal(formatDuration(1500), "1.5s");
  assert.equal(formatDuration(150_000), "2m30s");
  assert.equal(formatDuration(120_000), "2m");
  assert.equal(formatDuration(3_720_000), "1h2m");
  assert.equal(formatDuration(3_600_000), "1h");
});
