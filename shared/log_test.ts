import assert from "node:assert/strict";
import { createLogger, LineBuffer } from "./log.ts";

Deno.test("lines logged close together reach the sink in one write, in order", async () => {
  const writes: string[] = [];
  const buffer = new LineBuffer((text) => writes.push(text), { holdMs: 30 });
  buffer.write("a\n");
  buffer.write("b\n");
  await new Promise((resolve) => setTimeout(resolve, 5));
  buffer.write("c\n");
  assert.deepEqual(writes, [], "held while the first line is younger than holdMs");
  await new Promise((resolve) => setTimeout(resolve, 60));
  assert.deepEqual(writes, ["a\nb\nc\n"]);
  buffer.write("d\n");
  await new Promise((resolve) => setTimeout(resolve, 60));
  assert.deepEqual(writes, ["a\nb\nc\n", "d\n"], "a later line is a later write");
});

Deno.test("held lines are written at once when they reach maxChars", () => {
  const writes: string[] = [];
  const buffer = new LineBuffer((text) => writes.push(text), { holdMs: 60_000, maxChars: 10 });
  buffer.write("12345\n");
  assert.deepEqual(writes, []);
  buffer.write("67890\n");
  assert.deepEqual(writes, ["12345\n67890\n"]);
});

Deno.test("a warning or an error is written at once, after the lines before it", () => {
  const writes: string[] = [];
  const buffer = new LineBuffer((text) => writes.push(text));
  buffer.write("info\n", "info");
  buffer.write("warn\n", "warn");
  assert.deepEqual(writes, ["info\nwarn\n"]);
  buffer.write("error\n", "error");
  assert.deepEqual(writes, ["info\nwarn\n", "error\n"]);
});

Deno.test("a logger gives each line its time, level, message and fields", () => {
  const lines: string[] = [];
  const log = createLogger({ write: (line) => lines.push(line), now: () => 0 });
  log.info("task finished", { task: "t1", exit_code: 0, why: "a reason", skipped: undefined });
  log.debug("not shown without verbose");
  assert.deepEqual(lines, [
    '1970-01-01T00:00:00.000Z INFO  task finished task=t1 exit_code=0 why="a reason"\n',
  ]);
});

Deno.test("a date field is written as the line's time is, in ISO 8601 UTC", () => {
  const lines: string[] = [];
  const log = createLogger({ write: (line) => lines.push(line), now: () => 0 });
  log.info("task will be retried", { task: "t1", at: new Date(Date.UTC(2026, 11, 7, 14, 0, 5)) });
  assert.deepEqual(lines, [
    "1970-01-01T00:00:00.000Z INFO  task will be retried task=t1 at=2026-12-07T14:00:05.000Z\n",
  ]);
});

Deno.test("lines still held are written when the process exits or crashes", async () => {
  const logModule = new URL("./log.ts", import.meta.url).href;
  // The empty ending is a process that simply runs out of work: the held line's timer does
  // not keep it alive, its exit writes the line.
  const endings = [["Deno.exit(3)", 3], ['throw new Error("boom")', 1], ["", 0]] as const;
  for (const [ending, code] of endings) {
    // In a timer's callback, as a daemon's code runs: the crash ends the process before the
    // microtask that would write the line.
    const script = `import { createLogger } from "${logModule}";
      setTimeout(() => { createLogger().info("the last words"); ${ending}; }, 1);`;
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["eval", script],
      stdout: "null",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(output.stderr);
    assert.equal(output.code, code, stderr);
    assert.match(stderr, /INFO {2}the last words\n/, `after ${ending}`);
  }
});
