/**
 * The benchmark suite at toy sizes, as a user runs it (`deno task bench -- ...`): it must
 * still run end to end and count every task. Only counts are asserted, never a timing.
 */
import assert from "node:assert/strict";
import { ROOT } from "./common.ts";

/** Runs bench/main.ts with `args`; its exit code and each summary line's fields by scenario. */
async function bench(args: string[]) {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}bench/main.ts`, ...args],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const lines = new TextDecoder().decode(output.stdout).split("\n");
  const figures = new Map<string, Record<string, string>>();
  for (const line of lines) {
    const [prefix, scenario, ...fields] = line.split(" ");
    if (prefix !== "bench:") continue;
    figures.set(scenario, Object.fromEntries(fields.map((f) => f.split("=") as [string, string])));
  }
  return { code: output.code, figures, stderr: new TextDecoder().decode(output.stderr) };
}

for (const store of ["etcd", "sqlite"]) {
  Deno.test(`bench many-workers on ${store} places and reports every task`, async () => {
    await placesAndReportsEvery(store);
  });
}

async function placesAndReportsEvery(store: string) {
  const { code, figures, stderr } = await bench([
    "many-workers",
    "--store",
    store,
    "--sim-workers",
    "20",
    "--idle-seconds",
    "1",
    "--placement-tasks",
    "60",
    "--batch",
    "10",
  ]);
  assert.equal(code, 0, stderr);
  const line = figures.get("many-workers");
  assert.ok(line, `no many-workers line in the output:\n${stderr}`);
  assert.equal(line.workers, "20");
  assert.equal(line.store, store);
  assert.equal(line.streams_lost, "0");
  assert.equal(line.failed_batches, "0");
  // The burst runs twice: cold, then on a manager that has placed before.
  assert.equal(line.runs, "120", "every task of both rounds sent to a simulated worker");
  assert.equal(line.reports, "120", "every report answered");
  assert.equal(line.report_failures, "0");
  assert.equal(line.dead, "0");
  for (
    const key of [
      "place_rate",
      "done_rate",
      "done_manager_ms_per_task",
      "idle_cpu_pct",
      "warm_place_rate",
      "warm_sent_rate",
      "warm_done_rate",
      "warm_done_manager_ms_per_task",
    ]
  ) {
    assert.ok(key in line && line[key] !== "nan", `${key} is printed: ${line[key]}`);
  }
  assert.equal("done_etcd_ms_per_task" in line, store === "etcd", "etcd's CPU only where it runs");
}

Deno.test("bench refuses an unknown scenario, a bad number and a bad store, naming them", async () => {
  const unknown = await bench(["many-worker"]);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown scenario "many-worker"/);
  const bad = await bench(["latency", "--latency-tasks", "ten"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--latency-tasks "ten" is not a whole number/);
  assert.doesNotMatch(bad.stderr, /^\s+at /m, "no stack trace");
  const store = await bench(["many-workers", "--store", "mysql"]);
  assert.equal(store.code, 2);
  assert.match(store.stderr, /--store "mysql" is not etcd or sqlite/);
  const elsewhere = await bench(["latency", "many-workers", "--store", "sqlite"]);
  assert.equal(elsewhere.code, 2);
  assert.match(elsewhere.stderr, /--store sqlite applies to many-workers only, not latency/);
});
