/**
 * task_retention end to end, on a real etcd with a real manager and worker: a task finished
 * longer ago than the retention is removed from etcd (record and index), one finished since is
 * kept, and an unfinished one is never touched, however old. `tasks rm` removes a finished one
 * at once, and refuses an unfinished one.
 */
import assert from "node:assert/strict";
import { createEtcdGrpc } from "../shared/store/etcd_grpc.ts";
import { startEtcd } from "./harness/etcd.ts";
import { Cluster, waitFor } from "./harness/processes.ts";

interface TaskJson {
  id: string;
  state: string;
}

/** Every key etcd holds for a task: its record and its state index entry. */
async function keysOfTask(kv: ReturnType<typeof createEtcdGrpc>, id: string): Promise<string[]> {
  const { kvs } = await kv.range(
    { key: "/goschedule/", range_end: "/goschedule0", keys_only: true },
    { deadline: Date.now() + 5000 },
  );
  return kvs.map((e) => String(e.key)).filter((k) => k.endsWith(`/${id}`));
}

Deno.test("task_retention removes finished tasks from etcd once they are that old", async () => {
  await using etcd = await startEtcd();
  await using cluster = await Cluster.create();
  const kv = createEtcdGrpc([etcd.endpoint]);
  const schedule = async (...cmd: string[]) => {
    const added = await cluster.schedctl("tasks", "add", "--", ...cmd);
    assert.equal(added.code, 0, added.stderr);
    return added.stdout.trim();
  };
  const ls = async () =>
    (await cluster.schedctlJson<TaskJson[]>("tasks", "ls", "--all")).map((x) => x.id);
  const keysOf = (id: string) => keysOfTask(kv, id);
  try {
    await cluster.startManager({ etcd: etcd.endpoint, taskRetention: "3s" });
    await cluster.startWorker("w1");
    assert.match(await cluster.manager.log(), /manager listening .* task_retention=3s/);

    const long = await schedule("sleep", "6");
    const short = await schedule("true");
    await waitFor(async () => {
      const got = await cluster.schedctlJson<TaskJson>("tasks", "get", short);
      return got.state === "TASK_STATE_DONE";
    }, { timeoutMs: 10_000, what: "the short task to be done" });
    assert.deepEqual((await keysOf(short)).sort(), [
      `/goschedule/index/done/${short}`,
      `/goschedule/tasks/${short}`,
    ]);

    await waitFor(async () => !(await ls()).includes(short), {
      timeoutMs: 15_000,
      what: "the short task to be removed",
      log: () => cluster.manager.log(),
    });
    assert.deepEqual(await keysOf(short), [], "record and index entry both gone");
    const get = await cluster.schedctl("tasks", "get", short);
    assert.notEqual(get.code, 0);
    assert.match(get.stderr, new RegExp(`task "${short}" not found`));
    assert.ok((await ls()).includes(long), "the running task stays, older than the retention");
    assert.match(
      await cluster.manager.log(),
      /removed finished tasks past task_retention tasks=1 finished_before=\S+Z/,
    );

    // The long task, created first, finishes last: it stays for its own retention, then goes.
    await waitFor(async () => {
      const got = await cluster.schedctlJson<TaskJson>("tasks", "get", long);
      return got.state === "TASK_STATE_DONE";
    }, { timeoutMs: 15_000, what: "the long task to be done" });
    assert.ok((await ls()).includes(long));
    await waitFor(async () => !(await ls()).includes(long), {
      timeoutMs: 15_000,
      what: "the long task to be removed",
      log: () => cluster.manager.log(),
    });
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${await cluster.logs()}`, { cause: e });
  } finally {
    kv.close();
  }
});

Deno.test("tasks rm removes a finished task from etcd at once, and refuses a running one", async () => {
  await using etcd = await startEtcd();
  await using cluster = await Cluster.create();
  const kv = createEtcdGrpc([etcd.endpoint]);
  const keysOf = (id: string) => keysOfTask(kv, id);
  try {
    await cluster.startManager({ etcd: etcd.endpoint });
    await cluster.startWorker("w1");
    const finished = await cluster.schedctl("tasks", "add", "--wait", "--", "echo", "hi");
    assert.equal(finished.code, 0, finished.stderr);
    const done = (await cluster.schedctlJson<TaskJson[]>("tasks", "ls"))[0].id;
    const running = (await cluster.schedctl("tasks", "add", "--", "sleep", "30")).stdout.trim();
    assert.equal((await keysOf(done)).length, 2, "its record and its index entry");

    const rm = await cluster.schedctl("tasks", "rm", done, running);
    assert.equal(rm.code, 1);
    assert.equal(rm.stdout, `${done}  removed\n`);
    assert.match(
      rm.stderr,
      new RegExp(`^schedctl: tasks rm: task "${running}" is (pending|scheduled): only a finished`),
    );
    assert.deepEqual(await keysOf(done), [], "record and index entry both gone");
    const get = await cluster.schedctl("tasks", "get", done);
    assert.equal(get.code, 1);
    assert.equal(get.stderr, `schedctl: task "${done}" not found\n`);
    assert.deepEqual(
      (await cluster.schedctlJson<TaskJson[]>("tasks", "ls", "--all")).map((t) => t.id),
      [running],
    );
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${await cluster.logs()}`, { cause: e });
  } finally {
    kv.close();
  }
});
