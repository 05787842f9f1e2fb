/**
 * go-schedule's benchmark suite: `deno task bench [-- SCENARIO...] [--flags]`.
 *
 * Each scenario prints one summary line on stdout, `bench: <scenario> key=value ...`;
 * progress goes to stderr. Benchmarks print figures and never fail on a timing: the exit
 * code is non-zero only when a scenario could not run at all.
 */
import { parseArgs } from "node:util";
import { installSignalHandlers, phases, progress } from "./common.ts";
import { runHistory } from "./history.ts";
import { runLatency } from "./latency.ts";
import { BENCH_STORES, type BenchStore } from "./cluster.ts";
import { runManyWorkers } from "./many_workers.ts";
import { summarizeProfiles } from "./profile.ts";
import { runThroughput } from "./throughput.ts";

const SCENARIOS = [
  "throughput",
  "latency",
  "latency-simulated",
  "many-workers",
  "history",
  "store-cost",
] as const;
type Scenario = typeof SCENARIOS[number];

const USAGE = `Usage: deno task bench [-- [SCENARIO...] [OPTIONS]]

Scenarios (all of them, in this order, when none is named):
  throughput     N /bin/true tasks on K real workers, against the process-start ceiling
  latency        one task at a time: p50/p95/p99 of submit->scheduled and submit->done
  latency-simulated  the same with one SIMULATED worker (no process started): the share of
                 the manager and etcd
  many-workers   M simulated workers in one process: connect time, manager RSS and idle CPU,
                 placement throughput
  history        100,000 finished tasks in etcd: manager start-up, RSS, paged tasks ls
  store-cost     etcd round trips and bytes per task (measured in the throughput run; naming
                 either prints both lines)

Options (defaults from issue 6):
  --tasks N                 throughput: tasks (5000)
  --workers K               throughput: real workers (4)
  --batch B                 tasks per ScheduleTasks call, throughput and many-workers (100)
  --slots S                 throughput: each worker's slots, and the /bin/true runs at once
                            of each ceiling process (the machine's cores, a worker's default)
  --latency-tasks N         latency: measured tasks (500)
  --latency-workers K       latency: real workers (1)
  --warmup N                latency: unmeasured tasks first (10)
  --sim-workers M           many-workers: simulated workers (5000)
  --streams-per-connection S  many-workers: worker streams per HTTP/2 connection (1)
  --idle-seconds S          many-workers: idle CPU window (60)
  --placement-tasks N       many-workers: tasks placed across the simulated workers (5000)
  --in-flight N             many-workers: ScheduleTasks calls under way at once, as several
                            clients would submit (4; with 1 the rate is one call's round trip)
  --store etcd|sqlite       many-workers: where the manager keeps its state (etcd); sqlite
                            runs it on its embedded SQLite file with no etcd, to see the cost
                            without etcd's (the targets are judged on etcd)
  --history-tasks N         history: finished tasks written to etcd (100000)
  --profile DIR             run the manager under deno --cpu-prof, profiles in DIR/<scenario>,
                            and print the hottest functions
  -h, --help                this text
`;

export async function main(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      // `deno task bench -- ...` passes the `--` along.
      args: args[0] === "--" ? args.slice(1) : args,
      allowPositionals: true,
      strict: true,
      options: {
        tasks: { type: "string", default: "5000" },
        workers: { type: "string", default: "4" },
        batch: { type: "string", default: "100" },
        slots: { type: "string", default: String(navigator.hardwareConcurrency) },
        "latency-tasks": { type: "string", default: "500" },
        "latency-workers": { type: "string", default: "1" },
        warmup: { type: "string", default: "10" },
        "sim-workers": { type: "string", default: "5000" },
        "streams-per-connection": { type: "string", default: "1" },
        "idle-seconds": { type: "string", default: "60" },
        "placement-tasks": { type: "string", default: "5000" },
        "in-flight": { type: "string", default: "4" },
        "history-tasks": { type: "string", default: "100000" },
        store: { type: "string", default: "etcd" },
        profile: { type: "string" },
        help: { type: "boolean", short: "h", default: false },
      },
    });
  } catch (e) {
    console.error(`bench: ${(e as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (parsed.values.help) {
    console.log(USAGE);
    return 0;
  }
  const unknown = parsed.positionals.filter((p) => !(SCENARIOS as readonly string[]).includes(p));
  if (unknown.length > 0) {
    console.error(`bench: unknown scenario ${JSON.stringify(unknown[0])}\n\n${USAGE}`);
    return 2;
  }
  const v = parsed.values;
  const num = (name: keyof typeof v): number => {
    const value = Number(v[name]);
    if (!Number.isInteger(value) || value < 0) {
      throw new RangeError(`--${name} ${JSON.stringify(v[name])} is not a whole number`);
    }
    return value;
  };
  // Every number is checked before any scenario starts: a typo in the last one's option
  // should not come out after the first has run for minutes.
  try {
    for (const name of Object.keys(v) as (keyof typeof v)[]) {
      if (name !== "profile" && name !== "help" && name !== "store") num(name);
    }
  } catch (e) {
    console.error(`bench: ${(e as Error).message}\n\n${USAGE}`);
    return 2;
  }
  let chosen = new Set<Scenario>(
    parsed.positionals.length > 0 ? parsed.positionals as Scenario[] : SCENARIOS,
  );
  const store = v.store as BenchStore;
  if (!BENCH_STORES.includes(store)) {
    console.error(`bench: --store ${JSON.stringify(v.store)} is not etcd or sqlite\n\n${USAGE}`);
    return 2;
  }
  const others = [...chosen].filter((name) => name !== "many-workers");
  if (store !== "etcd" && others.length > 0) {
    // The other scenarios measure etcd itself (round trips, history in etcd): refuse rather
    // than print etcd figures under a --store that did not apply to them.
    console.error(
      `bench: --store ${store} applies to many-workers only, not ${others.join(", ")}: ` +
        `run \`deno task bench -- many-workers --store ${store}\``,
    );
    return 2;
  }
  // Store cost is measured in the throughput run.
  if (chosen.has("store-cost")) {
    chosen.delete("store-cost");
    chosen = new Set(["throughput", ...chosen]);
  }
  const profileDir = (name: string) => v.profile ? `${v.profile}/${name}` : undefined;

  installSignalHandlers();
  let failed = 0;
  const run = async (name: Scenario, fn: () => Promise<unknown>) => {
    if (!chosen.has(name)) return;
    progress(`=== ${name}`);
    phases.list = [];
    try {
      await fn();
    } catch (e) {
      failed++;
      console.error(`bench: ${name} could not run: ${(e as Error).stack ?? e}`);
    }
    const dir = profileDir(name);
    if (dir) await summarizeProfiles(dir, 25, phases).catch((e) => console.error(e));
  };
  try {
    await run("throughput", () =>
      runThroughput({
        tasks: num("tasks"),
        workers: num("workers"),
        batch: num("batch"),
        slots: num("slots"),
        profileDir: profileDir("throughput"),
      }));
    await run("latency", () =>
      runLatency({
        tasks: num("latency-tasks"),
        workers: num("latency-workers"),
        warmup: num("warmup"),
        profileDir: profileDir("latency"),
      }));
    await run("latency-simulated", () =>
      runLatency({
        tasks: num("latency-tasks"),
        workers: 1,
        warmup: num("warmup"),
        simulated: true,
        profileDir: profileDir("latency-simulated"),
      }));
    await run("many-workers", () =>
      runManyWorkers({
        workers: num("sim-workers"),
        streamsPerConnection: Math.max(1, num("streams-per-connection")),
        idleSeconds: num("idle-seconds"),
        tasks: num("placement-tasks"),
        batch: num("batch"),
        inFlight: Math.max(1, num("in-flight")),
        store,
        profileDir: profileDir("many-workers"),
      }));
    await run(
      "history",
      () => runHistory({ tasks: num("history-tasks"), profileDir: profileDir("history") }),
    );
  } catch (e) {
    console.error(`bench: ${(e as Error).message}`);
    return 2;
  }
  return failed > 0 ? 1 : 0;
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
