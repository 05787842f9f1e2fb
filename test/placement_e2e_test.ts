/**
 * Placement end to end: three real workers with different labels and slots, and tasks that
 * record on which worker, when and in which order they ran, so that labels, slot limits,
 * priorities, drains and schedule timeouts are checked from the workers' side.
 */
import assert from "node:assert/strict";
import { Cluster, waitFor } from "./harness/processes.ts";

interface TaskJson {
  id: string;
  state: string;
  workerId: string;
  deadReason: string;
  placement: string;
}

interface Run {
  event: "start" | "end";
  task: string;
  worker: string;
  at: number;
}

const isFinal = (t: TaskJson) => t.state === "TASK_STATE_DONE" || t.state === "TASK_STATE_DEAD";

Deno.test("placement by labels and slots, priority queueing, drain and schedule timeout", async (t) => {
  await using cluster = await Cluster.create();
  const runsFile = `${cluster.dir}/runs.log`;
  /** A task that logs its start and end, in milliseconds, and sleeps in between. */
  const task = (sleep: number, extra = "") =>
    `  - cmd: sh\n    params: ["-c", ${
      JSON.stringify(
        `echo "start $GO_SCHEDULE_TASK_ID $GO_SCHEDULE_WORKER_ID $(date +%s%3N)" >> ${runsFile}; ` +
          `sleep ${sleep}; ` +
          `echo "end $GO_SCHEDULE_TASK_ID $GO_SCHEDULE_WORKER_ID $(date +%s%3N)" >> ${runsFile}`,
      )
    }]\n${extra}`;
  const schedule = async (yaml: string): Promise<string[]> => {
    const file = await cluster.writeFile(`t-${crypto.randomUUID()}.yaml`, `tasks:\n${yaml}`);
    const result = await cluster.schedctl("tasks", "schedule", "-f", file);
    assert.equal(result.code, 0, result.stderr);
    return result.stdout.trim().split("\n");
  };
  const runs = async (): Promise<Run[]> =>
    (await Deno.readTextFile(runsFile).catch(() => "")).split("\n").filter(Boolean).map(
      (line) => {
        const [event, task, worker, at] = line.split(" ");
        return { event: event as Run["event"], task, worker, at: Number(at) };
      },
    );
  const waitForFinal = async (ids: string[], timeoutMs = 60_000): Promise<TaskJson[]> => {
    let tasks: TaskJson[] = [];
    await waitFor(async () => {
      const all = await cluster.schedctlJson<TaskJson[]>("tasks", "ls", "--all");
      tasks = ids.map((id) => all.find((x) => x.id === id)!);
      return tasks.every((x) => x && isFinal(x));
    }, { timeoutMs, what: `${ids.length} tasks to end`, log: () => cluster.logs() });
    return tasks;
  };
  /** The most runs a worker had going at once, from its tasks' own start and end times. */
  const maxConcurrent = (all: Run[], worker: string): number => {
    const events = all.filter((r) => r.worker === worker)
      .map((r) => ({ at: r.at, delta: r.event === "start" ? 1 : -1 }))
      .sort((a, b) => a.at - b.at || a.delta - b.delta);
    let now = 0;
    let max = 0;
    for (const e of events) max = Math.max(max, now += e.delta);
    return max;
  };

  try {
    await cluster.startManager({ scheduler: "least-loaded", scheduleTimeout: "30s" });
    await cluster.startWorker("gpu1", {
      extraConfig: 'capacity: {slots: 1}\nlabels: {gpu: "true", zone: a}\n',
    });
    await cluster.startWorker("cpu1", { extraConfig: "capacity: {slots: 2}\nlabels: {zone: a}\n" });
    await cluster.startWorker("cpu2", { extraConfig: "capacity: {slots: 2}\nlabels: {zone: b}\n" });

    await t.step("label selection lands on the right worker", async () => {
      const ids = await schedule(
        task(0.1, '    labels: ["gpu=true"]\n') +
          task(0.1, '    labels: ["zone=b"]\n') +
          task(0.1, '    labels: ["zone!=b", "gpu!=true"]\n') +
          task(0.1, "    worker: cpu2\n"),
      );
      const tasks = await waitForFinal(ids);
      assert.deepEqual(tasks.map((x) => x.workerId), ["gpu1", "cpu2", "cpu1", "cpu2"]);
    });

    await t.step("slots limit concurrency, seen from the workers' side", async () => {
      const ids = await schedule(Array.from({ length: 12 }, () => task(0.5)).join(""));
      await waitForFinal(ids);
      const all = await runs();
      assert.equal(maxConcurrent(all, "gpu1"), 1);
      assert.equal(maxConcurrent(all, "cpu1"), 2);
      assert.equal(maxConcurrent(all, "cpu2"), 2);
    });

    await t.step("a queue of 50 tasks on 2 slots drains in priority order", async () => {
      await Deno.remove(runsFile).catch(() => {});
      // A blocker holds cpu1's slots while the queue forms, so that every queued task waits.
      const blockers = await schedule(
        task(2, "    worker: cpu1\n    priority: 100\n") +
          task(2, "    worker: cpu1\n    priority: 100\n"),
      );
      const priorities = Array.from({ length: 50 }, (_, i) => (i * 7) % 10);
      const ids = await schedule(
        priorities.map((p) => task(0, `    worker: cpu1\n    priority: ${p}\n`)).join(""),
      );
      await waitForFinal([...blockers, ...ids], 90_000);
      const order = (await runs()).filter((r) => r.event === "start" && ids.includes(r.task))
        .map((r) => priorities[ids.indexOf(r.task)]);
      assert.equal(order.length, 50);
      // Two slots let neighbours start together; a later start never has a higher priority
      // than one two places before it.
      for (let i = 2; i < order.length; i++) {
        assert.ok(order[i] <= order[i - 2], `start ${i}: priority ${order[i]} after ${order}`);
      }
    });

    await t.step("drain moves new work elsewhere and waits for running work", async () => {
      const [long] = await schedule(task(2, "    worker: cpu2\n"));
      await waitFor(async () => (await runs()).some((r) => r.task === long), {
        timeoutMs: 10_000,
        what: "the long task to start",
      });
      const drain = await cluster.schedctl("workers", "drain", "cpu2");
      assert.equal(drain.code, 0, drain.stderr);
      const ids = await schedule(Array.from({ length: 4 }, () => task(0.1)).join(""));
      const tasks = await waitForFinal([long, ...ids]);
      assert.equal(tasks[0].state, "TASK_STATE_DONE", "the running task finished");
      assert.ok(tasks.slice(1).every((x) => x.workerId !== "cpu2"), "no new work on cpu2");
      const undrain = await cluster.schedctl("workers", "undrain", "cpu2");
      assert.equal(undrain.code, 0, undrain.stderr);
    });

    await t.step("schedule_timeout ends an unplaceable task dead, with its diagnosis", async () => {
      const [id] = await schedule(
        task(0, '    labels: ["gpu=true", "zone=b"]\n    queue: true\n    schedule_timeout: 2s\n'),
      );
      const pending = await cluster.schedctlJson<TaskJson>("tasks", "get", id);
      assert.equal(pending.state, "TASK_STATE_PENDING");
      assert.match(pending.placement, /^0\/3 workers fit: /);
      const [dead] = await waitForFinal([id], 20_000);
      assert.equal(dead.state, "TASK_STATE_DEAD");
      assert.match(dead.deadReason, /^not placed within 2s: 0\/3 workers fit: .*lack label/);
    });

    await t.step("a task no worker could ever run is refused at submission", async () => {
      const file = await cluster.writeFile("huge.yaml", `tasks:\n${task(0, "    cpu: 1000\n")}`);
      const result = await cluster.schedctl("tasks", "schedule", "-f", file);
      assert.equal(result.code, 1);
      assert.match(result.stderr, /can never be placed: 0\/3 workers fit: 3 offer less cpu/);
    });
  } catch (e) {
    console.error(await cluster.logs());
    throw e;
  }
});
