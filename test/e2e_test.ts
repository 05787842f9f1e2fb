/**
 * End to end, as an operator would: a real etcd, a manager, two workers and schedctl, all as
 * processes, through the whole call flow.
 */
import assert from "node:assert/strict";
import { createEtcdGrpc } from "../shared/store/etcd_grpc.ts";
import { startEtcd } from "./harness/etcd.ts";
import { Cluster, waitFor } from "./harness/processes.ts";

interface TaskJson {
  id: string;
  state: string;
  workerId?: string;
  exitCode?: number;
  stdout?: string;
  stderr?: string;
  deadReason?: string;
}

const final = (t: TaskJson) => t.state === "TASK_STATE_DONE" || t.state === "TASK_STATE_DEAD";

Deno.test("the call flow on etcd, with the operator's commands", async (t) => {
  await using etcd = await startEtcd();
  await using cluster = await Cluster.create();
  try {
    await cluster.startManager({
      etcd: etcd.endpoint,
      silenceTimeout: "2s",
      scheduleTimeout: "3s",
      // Every second, so that the whole flow runs while etcd's history is being compacted.
      compactionInterval: "1s",
    });
    await cluster.startWorker("w1");
    await cluster.startWorker("w2");

    await t.step("both workers are connected, with their real addresses", async () => {
      const ls = await cluster.schedctl("workers", "ls");
      assert.equal(ls.code, 0, ls.stderr);
      const rows = ls.stdout.trim().split("\n");
      assert.match(
        rows[0],
        /^ID\s+ADDRESS\s+HOSTNAME\s+STATE\s+TASKS\s+SLOTS\s+CPU\s+MEMORY\s+LABELS\s+LAST SEEN$/,
      );
      for (const id of ["w1", "w2"]) {
        const row = rows.find((r) => r.startsWith(`${id} `));
        assert.ok(row, `${id} missing from:\n${ls.stdout}`);
        assert.match(row, /127\.0\.0\.1:\d+\s+\S+\s+connected\s+0/);
      }
      // Each worker says how it starts tasks: here, with one exec (glibc, -A allows FFI).
      for (const worker of cluster.workers) {
        await waitFor(
          async () => /INFO {2}worker starting .* spawn=posix_spawn/.test(await worker.log()),
          {
            timeoutMs: 2000,
            what: `${worker.name} logging spawn=posix_spawn`,
            log: () => worker.log(),
          },
        );
      }
    });

    let batch: string[] = [];
    await t.step("ten tasks from a file all reach done with the right output", async () => {
      const file = await cluster.writeFile(
        "tasks.yaml",
        "tasks:\n" +
          Array.from({ length: 10 }, (_, i) => `  - cmd: echo\n    params: ["task ${i}"]\n`)
            .join(""),
      );
      const scheduled = await cluster.schedctl("tasks", "schedule", "-f", file);
      assert.equal(scheduled.code, 0, scheduled.stderr);
      batch = scheduled.stdout.trim().split("\n");
      assert.equal(batch.length, 10);
      const tasks = await waitForFinal(cluster, batch);
      tasks.forEach((task, i) => {
        assert.equal(task.state, "TASK_STATE_DONE", JSON.stringify(task));
        assert.equal(task.exitCode ?? 0, 0);
        assert.equal(task.stdout, `task ${i}\n`);
      });
      const used = new Set(tasks.map((task) => task.workerId));
      assert.deepEqual([...used].sort(), ["w1", "w2"], "round-robin uses both workers");
    });

    await t.step("a failing command is done with its exit code and output", async () => {
      const add = await cluster.schedctl("tasks", "add", "sh", "-c", "echo oops >&2; exit 3");
      assert.equal(add.code, 0, add.stderr);
      const [task] = await waitForFinal(cluster, [add.stdout.trim()]);
      assert.equal(task.state, "TASK_STATE_DONE");
      assert.equal(task.exitCode, 3);
      assert.equal(task.stderr, "oops\n");
      const get = await cluster.schedctl("tasks", "get", task.id);
      assert.equal(get.code, 0);
      assert.match(get.stdout, /oops/);
    });

    await t.step("a command that cannot start is dead and says why", async () => {
      const add = await cluster.schedctl("tasks", "add", "/no/such/program");
      assert.equal(add.code, 0, add.stderr);
      const [task] = await waitForFinal(cluster, [add.stdout.trim()]);
      assert.equal(task.state, "TASK_STATE_DEAD");
      assert.match(task.deadReason ?? "", /no such file or directory/);
    });

    await t.step("bad tasks are refused and nothing is half-scheduled", async () => {
      const before = (await listAll(cluster)).length;
      const noCmd = await cluster.writeFile(
        "bad.yaml",
        "tasks:\n  - cmd: echo\n  - params: [x]\n",
      );
      const refused = await cluster.schedctl("tasks", "schedule", "-f", noCmd);
      assert.notEqual(refused.code, 0);
      assert.match(refused.stderr, /task 2/);
      assert.doesNotMatch(refused.stderr, /\n\s+at /, "no stack trace");
      const notYaml = await cluster.writeFile("bad2.yaml", "tasks: [\n  {cmd: echo\n");
      const refused2 = await cluster.schedctl("tasks", "schedule", "-f", notYaml);
      assert.notEqual(refused2.code, 0);
      assert.match(refused2.stderr, /bad2\.yaml/);
      const empty = await cluster.schedctl("tasks", "add", "--", "");
      assert.notEqual(empty.code, 0);
      assert.equal((await listAll(cluster)).length, before, "nothing was stored");
    });

    await t.step("a SIGKILLed worker turns disconnected within silence_timeout", async () => {
      const w2 = cluster.workers[1];
      const killedAt = Date.now();
      await w2.kill();
      await cluster.waitForWorkerState("w2", "disconnected", 2000 + 3000);
      assert.ok(Date.now() - killedAt < 2000 + 3000);
    });

    await t.step("with no worker connected, a task waits, then is dead saying why", async () => {
      await cluster.workers[0].stop();
      await cluster.waitForWorkerState("w1", "disconnected");
      const add = await cluster.schedctl("tasks", "add", "true");
      assert.equal(add.code, 0, add.stderr);
      const [task] = await waitForFinal(cluster, [add.stdout.trim()]);
      assert.equal(task.state, "TASK_STATE_DEAD");
      assert.equal(task.deadReason, "not placed within 3s: 0/2 workers fit: 2 are disconnected");
    });

    await t.step("a restarted manager still lists every task and worker", async () => {
      const tasksBefore = await listAll(cluster);
      await cluster.manager.stop();
      await cluster.restartManager();
      const tasksAfter = await listAll(cluster);
      assert.deepEqual(tasksAfter, tasksBefore);
      const workers = await cluster.schedctlJson<{ id: string }[]>("workers", "ls");
      assert.deepEqual(workers.map((w) => w.id), ["w1", "w2"]);
    });

    await t.step("the restarted manager takes workers back and runs tasks", async () => {
      await cluster.workers[0].start();
      await cluster.waitForWorkerState("w1", "connected");
      const add = await cluster.schedctl("tasks", "add", "echo", "again");
      const [task] = await waitForFinal(cluster, [add.stdout.trim()]);
      assert.equal(task.state, "TASK_STATE_DONE");
      assert.equal(task.workerId, "w1");
    });

    await t.step("the manager compacts etcd's history and still reads every task", async () => {
      const before = await listAll(cluster);
      const compacted = async () =>
        [...(await cluster.manager.log()).matchAll(/compacted the store's history revision=(\d+)/g)]
          .map((m) => m[1]);
      const seen = (await compacted()).length;
      // A write, so the next round has a newer revision to compact to than the last.
      const add = await cluster.schedctl("tasks", "add", "true");
      assert.equal(add.code, 0, add.stderr);
      await waitForFinal(cluster, [add.stdout.trim()]);
      await waitFor(async () => (await compacted()).length > seen + 1, {
        timeoutMs: 10_000,
        what: "two more compactions",
        log: () => cluster.manager.log(),
      });
      const revision = (await compacted()).at(-1)!;
      const raw = createEtcdGrpc([etcd.endpoint]);
      try {
        const old = { key: "/goschedule/tasks/", revision: String(Number(revision) - 1) };
        await assert.rejects(
          raw.range(old, { deadline: Date.now() + 5000 }),
          /required revision has been compacted/,
        );
      } finally {
        raw.close();
      }
      const after = await listAll(cluster);
      assert.deepEqual(after.slice(0, before.length), before);
      assert.equal(after.at(-1)?.state, "TASK_STATE_DONE");
      assert.match(await cluster.manager.log(), /manager listening .*etcd_compaction=1s/);
    });

    await t.step("while etcd is down RPCs say unavailable; the manager recovers", async () => {
      await etcd.stop();
      const add = await cluster.schedctl("tasks", "add", "true");
      assert.notEqual(add.code, 0);
      assert.match(add.stderr, /unavailable/);
      await etcd.restart();
      await waitFor(async () => (await cluster.schedctl("tasks", "add", "true")).code === 0, {
        timeoutMs: 20_000,
        what: "the manager to accept tasks again",
        log: () => cluster.manager.log(),
      });
    });

    await t.step(
      "workers rm forgets the gone w2 for good and refuses the connected w1",
      async () => {
        const rm = await cluster.schedctl("workers", "rm", "w1", "w2");
        assert.equal(rm.code, 1);
        assert.equal(rm.stdout, "w2  removed\n");
        assert.equal(
          rm.stderr,
          'schedctl: workers rm: worker "w1" is connected; only a disconnected worker can be ' +
            "removed (stop it first, after a drain if its tasks should finish)\n",
        );
        const listed = async () =>
          (await cluster.schedctlJson<{ id: string }[]>("workers", "ls")).map((w) => w.id);
        assert.deepEqual(await listed(), ["w1"]);
        await cluster.manager.stop();
        await cluster.restartManager();
        assert.deepEqual(await listed(), ["w1"], "gone from etcd too");
        await cluster.waitForWorkerState("w1", "connected");
      },
    );
  } catch (e) {
    console.error(await cluster.logs());
    throw e;
  }
});

async function getTask(cluster: Cluster, id: string): Promise<TaskJson> {
  return await cluster.schedctlJson<TaskJson>("tasks", "get", id);
}

async function waitForFinal(cluster: Cluster, ids: string[]): Promise<TaskJson[]> {
  let tasks: TaskJson[] = [];
  await waitFor(async () => {
    tasks = await Promise.all(ids.map((id) => getTask(cluster, id)));
    return tasks.every(final);
  }, { timeoutMs: 20_000, what: `tasks ${ids.join(", ")} to finish`, log: () => cluster.logs() });
  return tasks;
}

async function listAll(cluster: Cluster): Promise<TaskJson[]> {
  return await cluster.schedctlJson<TaskJson[]>("tasks", "ls", "--all");
}
