/**
 * `deno task demo`: a manager on the embedded store and two workers on loopback, a few tasks
 * scheduled with schedctl, the results shown, and everything stopped and removed again.
 */
import { Cluster, waitFor } from "../test/harness/processes.ts";

const TASKS = `tasks:
  - cmd: echo
    params: ["hello from go-schedule"]
  - cmd: uname
    params: ["-sr"]
  - cmd: sh
    params: ["-c", "echo 'this one fails' >&2; exit 3"]
  - cmd: sleep
    params: ["1"]
`;

async function show(cluster: Cluster, ...args: string[]): Promise<string> {
  console.log(`\n$ schedctl ${args.join(" ")}`);
  const result = await cluster.schedctl(...args);
  Deno.stdout.writeSync(new TextEncoder().encode(result.stdout + result.stderr));
  if (result.code !== 0) throw new Error(`schedctl ${args.join(" ")} exited ${result.code}`);
  return result.stdout;
}

await using cluster = await Cluster.create();
try {
  console.log("Starting a manager (embedded SQLite store) and two workers on 127.0.0.1 ...");
  await cluster.startManager();
  // A worker's default capacity (a slot per core), not the test harness's 8 slots.
  const defaults = { extraConfig: "capacity: {}\n" };
  await cluster.startWorker("demo-1", defaults);
  await cluster.startWorker("demo-2", defaults);
  console.log(`manager: ${cluster.managerUrl}   files and logs: ${cluster.dir}`);

  await show(cluster, "workers", "ls");
  const file = await cluster.writeFile("tasks.yaml", TASKS);
  console.log(`\n$ cat tasks.yaml\n${TASKS.trimEnd()}`);
  const ids = (await show(cluster, "tasks", "schedule", "-f", file)).trim().split("\n");
  await waitFor(async () => {
    const tasks = await cluster.schedctlJson<{ state: string }[]>("tasks", "ls");
    return tasks.every((t) => t.state === "TASK_STATE_DONE" || t.state === "TASK_STATE_DEAD");
  }, { timeoutMs: 30_000, what: "the demo tasks to finish", log: () => cluster.logs() });
  await show(cluster, "tasks", "ls");
  await show(cluster, "tasks", "get", ids[2]);
  await show(cluster, "workers", "ls");
  console.log("\nStopping the workers and the manager, and removing their files.");
} catch (e) {
  console.error(`demo failed: ${(e as Error).message}`);
  Deno.exitCode = 1;
}
