/**
 * One process of the throughput ceiling: starts and reaps `/bin/true` `count` times, at most
 * `concurrency` at once, the way a worker does (no shell, a fresh minimal environment, its own
 * process group, stdout and stderr piped and read to their end). It prints `ready`, waits for
 * a line on stdin (so that Deno's own start-up is not timed), runs, and prints
 * `{"startedAt":..,"endedAt":..,"count":..,"failures":..}` (epoch milliseconds).
 *
 * Usage: deno run -A bench/spawn_ceiling.ts COUNT CONCURRENCY
 */

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
  const child = new Deno.Command("/bin/true", {
    args: [],
    cwd: "/",
    clearEnv: true,
    env: { PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", LANG: "C.UTF-8" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    detached: true,
  }).spawn();
  const [status] = await Promise.all([child.status, drain(child.stdout), drain(child.stderr)]);
  return status.success;
}

console.log("ready");
const reader = Deno.stdin.readable.getReader();
await reader.read();
reader.releaseLock();

let next = 0;
let failures = 0;
const startedAt = performance.timeOrigin + performance.now();
await Promise.all(Array.from({ length: Math.min(concurrency, count) }, async () => {
  while (next < count) {
    next++;
    if (!(await runOnce())) failures++;
  }
}));
const endedAt = performance.timeOrigin + performance.now();
console.log(JSON.stringify({ startedAt, endedAt, count, failures }));
