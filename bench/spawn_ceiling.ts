/**
 * One process of the throughput ceiling: starts and reaps `/bin/true` `count` times, at most
 * `concurrency` at once, the way a worker does (no shell, a fresh minimal environment, its own
 * process group, stdout and stderr piped and read to their end). It prints `ready`, waits for
 * a line on stdin (so that Deno's own start-up is not timed), runs, and prints
 * `{"startedAt":..,"endedAt":..,"count":..,"failures":..,"cpuSeconds":..}` (epoch
 * milliseconds; the CPU time is this process's and its children's over the run).
 *
 * Usage: deno run -A bench/spawn_ceiling.ts COUNT CONCURRENCY
 */

import { BASE_PATH } from "../worker/executor.ts";
import { cpuWithChildren } from "./common.ts";
import { spawnInOwnGroup } from "../worker/spawn.ts";

const [count, concurrency] = Deno.args.map(Number);
if (!(count > 0) || !(concurrency > 0)) {
  console.error("usage: spawn_ceiling.ts COUNT CONCURRENCY");
  Deno.exit(2);
}

async function drain(stream: ReadableStream<Uint8Array>): Promise<void> {
  for await (const _ of stream) {
    // /bin/true prints nothing; reading to the end is what a worker does.
  }
}

async function runOnce(): Promise<boolean> {
  // Exactly the worker's spawn (worker/spawn.ts): its own session and process group.
  const child = await spawnInOwnGroup("/bin/true", {
    args: [],
    cwd: "/",
    env: { PATH: BASE_PATH, LANG: "C.UTF-8" },
    stdout: "piped",
    stderr: "piped",
  });
  const [status] = await Promise.all([child.status, drain(child.stdout), drain(child.stderr)]);
  return status.success;
}

/** CPU seconds of this process and of the children it reaped. */
async function cpuSeconds(): Promise<number> {
  const { self, children } = await cpuWithChildren(Deno.pid);
  return self + children;
}

console.log("ready");
const reader = Deno.stdin.readable.getReader();
await reader.read();
reader.releaseLock();

let next = 0;
let failures = 0;
const cpuBefore = await cpuSeconds();
const startedAt = performance.timeOrigin + performance.now();
await Promise.all(Array.from({ length: Math.min(concurrency, count) }, async () => {
  while (next < count) {
    next++;
    if (!(await runOnce())) failures++;
  }
}));
const endedAt = performance.timeOrigin + performance.now();
const cpu = await cpuSeconds() - cpuBefore;
console.log(JSON.stringify({ startedAt, endedAt, count, failures, cpuSeconds: cpu }));
