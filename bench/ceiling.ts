/**
 * The process-start ceiling: how fast Deno starts and reaps `/bin/true` on this machine with
 * the throughput scenario's shape (one Deno process per worker, each running tasks
 * concurrently). Runs bench/spawn_ceiling.ts in `processes` processes at once.
 */
import { checkStop, ROOT } from "./common.ts";

export interface CeilingResult {
  /** Processes started and reaped per second, over all processes. */
  rate: number;
  count: number;
  failures: number;
  elapsedMs: number;
  /** CPU seconds the ceiling processes and their /bin/true children used while measured. */
  cpuSeconds: number;
}

export async function measureCeiling(
  total: number,
  processes: number,
  concurrency: number,
): Promise<CeilingResult> {
  const per = Math.ceil(total / processes);
  const children = Array.from({ length: processes }, () =>
    new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", `${ROOT}bench/spawn_ceiling.ts`, String(per), String(concurrency)],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn());
  try {
    const lines = children.map((child) => readLines(child.stdout));
    for (const next of lines) {
      const first = await next.next();
      if (first.value !== "ready") throw new Error(`spawn_ceiling.ts said ${first.value}`);
    }
    checkStop();
    const go = new TextEncoder().encode("go\n");
    const writers = children.map((child) => child.stdin.getWriter());
    await Promise.all(writers.map((w) => w.write(go)));
    const results = await Promise.all(lines.map(async (next) => {
      const line = await next.next();
      return JSON.parse(line.value as string) as {
        startedAt: number;
        endedAt: number;
        count: number;
        failures: number;
        cpuSeconds: number;
      };
    }));
    await Promise.all(writers.map((w) => w.close().catch(() => {})));
    const start = Math.min(...results.map((r) => r.startedAt));
    const end = Math.max(...results.map((r) => r.endedAt));
    const count = results.reduce((n, r) => n + r.count, 0);
    return {
      rate: count / ((end - start) / 1000),
      count,
      failures: results.reduce((n, r) => n + r.failures, 0),
      elapsedMs: end - start,
      cpuSeconds: results.reduce((n, r) => n + r.cpuSeconds, 0),
    };
  } finally {
    for (const child of children) {
      try {
        child.kill("SIGKILL");
      } catch {
        // It has exited.
      }
    }
    await Promise.all(children.map((child) => child.status));
  }
}

async function* readLines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let buffered = "";
  for await (const text of stream.pipeThrough(new TextDecoderStream())) {
    buffered += text;
    let newline;
    while ((newline = buffered.indexOf("\n")) >= 0) {
      yield buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
    }
  }
}
