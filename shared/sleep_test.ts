import assert from "node:assert/strict";
import { sleep } from "./sleep.ts";

Deno.test("sleep waits, and an abort ends the wait at once", async () => {
  const started = performance.now();
  await sleep(20, new AbortController().signal);
  assert.ok(performance.now() - started >= 15, "it waited");

  const abort = new AbortController();
  const waiting = sleep(60_000, abort.signal);
  abort.abort();
  await waiting; // The sanitizers fail the test if the timer were left behind.

  const aborted = new AbortController();
  aborted.abort();
  await sleep(60_000, aborted.signal);
});
