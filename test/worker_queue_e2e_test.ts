/**
 * The worker's queue end to end, with a real manager and real workers: a task beyond the slots
 * waits on the worker, a cancelled one never starts, one that waits while another worker has a
 * slot idle moves there, and a stopping worker gives its queue back without using up a retry;
 * so does a worker killed outright, when it starts again, and a draining one; a later task of
 * higher priority takes a queued one's place; a queued task's followers get its output.
 */
import assert from "node:assert/strict";
import { Cluster, waitFor } from "./harness/processes.ts";

interface TaskJson {
  id: string;
  state: string;
  workerId: string;
  deadReason: string;
  attempt: number;
  attempts: { attempt: number; workerId: string; outcome: string }[];
  waitingInWorkerQueue?: boolean;
}

/** A cluster's tasks as these tests see them: one, one waited for, and the starts in order. */
function tasksOf(cluster: Cluster) {
  const startsFile = `${cluster.dir}/starts.log`;
  const get = (id: string) => cluster.schedctlJson<TaskJson>("tasks", "get", id);
  return {
    /** Where the tasks write a line as they start. */
    startsFile,
    get,
    starts: async () =>
      (await Deno.readTextFile(startsFile).catch(() => "")).split("\n").filter(Boolean),
    /** Schedules the tasks of a file holding `entries`; their ids, in order. */
    schedule: async (entries: string) => {
      const file = await cluster.writeFile(
        `tasks-${crypto.randomUUID()}.yaml`,
        `tasks:\n${entries}`,
      );
      const result = await cluster.schedctl("tasks", "schedule", "-f", file);
      assert.equal(result.code, 0, result.stderr);
      return result.stdout.trim().split("\n");
    },
    waitForTask: (id: string, what: string, ok: (x: TaskJson) => boolean) =>
      waitFor(async () => ok(await get(id)), {
        timeoutMs: 30_000,
        what,
        log: () => cluster.logs(),
      }),
  };
}

Deno.test("a worker's queue: held, cancelled unstarted, moved to an idle slot, given back", async (t) => {
  await using cluster = await Cluster.create();
  const { startsFile, starts, get, schedule, waitForTask } = tasksOf(cluster);
  const task = (name: string, sleep: number) =>
    `  - cmd: sh\n    params: ["-c", ${
      JSON.stringify(`echo "${name} $GO_SCHEDULE_WORKER_ID" >> ${startsFile}; sleep ${sleep}`)
    }]\n`;

  try {
    await cluster.startManager();
    await cluster.startWorker("w1", { extraConfig: "capacity: {slots: 1, queue: 1}\n" });
    const [long, queued, third] = await schedule(
      `${task("long", 60)}${task("queued", 0)}${task("third", 0)}`,
    );

    await t.step("one task runs, one waits on the worker, the third at the manager", async () => {
      await waitForTask(
        queued,
        "the queued task to be acknowledged",
        (x) => x.state === "TASK_STATE_SCHEDULED" && x.workerId === "w1",
      );
      await waitFor(async () => (await starts()).length === 1, {
        timeoutMs: 20_000,
        what: "the long task to start",
      });
      assert.deepEqual(await starts(), ["long w1"]);
      assert.equal((await get(third)).state, "TASK_STATE_PENDING");
      assert.equal((await get(queued)).waitingInWorkerQueue, true);
      assert.equal((await get(long)).waitingInWorkerQueue ?? false, false, "it runs");
      const shownTask = await cluster.schedctl("tasks", "get", queued);
      assert.match(
        shownTask.stdout,
        /^State:\s+scheduled: waiting in w1's queue, not started yet$/m,
        shownTask.stdout,
      );
      const listed = await cluster.schedctl("tasks", "ls");
      assert.match(listed.stdout, new RegExp(`^${queued}\\s+scheduled \\(queued\\)\\s+w1 `, "m"));
      assert.match(listed.stdout, new RegExp(`^${long}\\s+scheduled\\s+w1 `, "m"));
      const ls = await cluster.schedctl("workers", "ls");
      assert.match(ls.stdout, /\n\s*w1 .* 1\/1 \+1 queued /, ls.stdout);
      const shown = await cluster.schedctl("workers", "get", "w1");
      assert.match(shown.stdout, /^Slots:\s+1 of 1 used, 1 of 1 queued$/m, shown.stdout);
      assert.match(
        await cluster.workers[0].log(),
        /task queued until a slot frees task=\S+ attempt=1 running=1 queued=1/,
      );
    });

    await t.step("a cancelled queued task never starts; the third takes its place", async () => {
      const cancel = await cluster.schedctl("tasks", "cancel", queued);
      assert.equal(cancel.code, 0, cancel.stderr);
      await waitForTask(queued, "the queued task to be dead", (x) => x.state === "TASK_STATE_DEAD");
      const dead = await get(queued);
      assert.equal(dead.deadReason, "cancelled");
      assert.deepEqual(dead.attempts.map((a) => a.outcome), [
        "not started: cancelled while queued",
      ]);
      await waitForTask(
        third,
        "the third task to be queued on w1",
        (x) => x.state === "TASK_STATE_SCHEDULED" && x.workerId === "w1",
      );
      assert.deepEqual(await starts(), ["long w1"], "only the long task ever started");
    });

    await t.step("a task queued for a while moves to a worker with an idle slot", async () => {
      await cluster.startWorker("w2", { extraConfig: "capacity: {slots: 1, queue: 0}\n" });
      await waitForTask(third, "the third task to be done", (x) => x.state === "TASK_STATE_DONE");
      const done = await get(third);
      assert.equal(done.workerId, "w2");
      assert.equal(done.attempt, 2);
      assert.deepEqual(done.attempts.map((a) => [a.workerId, a.outcome]), [
        ["w1", "not started: moved to a slot free elsewhere"],
        ["w2", "exit code 0"],
      ]);
      assert.deepEqual(await starts(), ["long w1", "third w2"]);
      assert.match(
        await cluster.manager.log(),
        /moving a queued task to a slot free elsewhere task=\S+ attempt=1 from=w1 idle_slot_on=w2/,
      );
    });

    await t.step("a stopped worker gives its queue back, unstarted, no retry used", async () => {
      const [fourth, fifth] = await schedule(`${task("fourth", 60)}${task("fifth", 0)}`);
      await waitForTask(
        fifth,
        "the fifth task to be queued on w1",
        (x) => x.state === "TASK_STATE_SCHEDULED" && x.workerId === "w1",
      );
      assert.equal((await get(fourth)).workerId, "w2", "the idle slot first");

      assert.equal((await cluster.workers[0].stop(15_000))?.code, 0, "the worker exits 0");
      await waitForTask(
        fifth,
        "the fifth task to be given back",
        (x) => x.state === "TASK_STATE_PENDING" && x.attempts?.length === 1,
      );
      const back = await get(fifth);
      assert.deepEqual(back.attempts.map((a) => [a.workerId, a.outcome]), [
        ["w1", "not started: the worker stopped"],
      ]);
      assert.equal(back.deadReason ?? "", "", "not dead, though it has no retries");
      assert.equal((await get(long)).state, "TASK_STATE_DEAD", "the running one was stopped");
      assert.ok(!(await starts()).includes("fifth w1"), "it never started on w1");
    });
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${await cluster.logs()}`, { cause: e });
  }
});

Deno.test("a worker killed outright gives its queue back when it starts again", async () => {
  await using cluster = await Cluster.create();
  const { startsFile, starts, get, schedule, waitForTask } = tasksOf(cluster);
  const task = (name: string, sleep: number) =>
    `  - cmd: sh\n    params: ["-c", ${
      JSON.stringify(`echo "${name}" >> ${startsFile}; sleep ${sleep}`)
    }]\n`;
  try {
    await cluster.startManager();
    const worker = await cluster.startWorker("w1", {
      extraConfig: "capacity: {slots: 1, queue: 1}\n",
    });
    const [long, queued] = await schedule(`${task("long", 60)}${task("queued", 0)}`);
    await waitForTask(
      queued,
      "the second task to be queued on w1",
      (x) => x.state === "TASK_STATE_SCHEDULED" && x.workerId === "w1",
    );
    await waitFor(async () => (await starts()).length === 1, {
      timeoutMs: 20_000,
      what: "the long task to start",
    });

    await worker.kill();
    await worker.start();
    await waitForTask(queued, "the queued task to be done", (x) => x.state === "TASK_STATE_DONE");
    const done = await get(queued);
    assert.deepEqual(done.attempts.map((a) => [a.workerId, a.outcome]), [
      ["w1", "not started: the worker restarted before starting it"],
      ["w1", "exit code 0"],
    ], "given back, not lost: it has no retries, and would be dead");
    assert.deepEqual(await starts(), ["long", "queued"], "started once, after the restart");
    assert.match(
      await worker.log(),
      /gave back the tasks queued in the worker's previous life, unstarted tasks=1/,
    );
    assert.equal((await get(long)).state, "TASK_STATE_DEAD", "the running one was abandoned");
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${await cluster.logs()}`, { cause: e });
  }
});

Deno.test("a queued task's output reaches those who follow it from before it starts, and after it moves", async () => {
  await using cluster = await Cluster.create();
  const gate = `${cluster.dir}/gate`;
  try {
    await cluster.startManager();
    await cluster.startWorker("w1", { extraConfig: "capacity: {slots: 1, queue: 2}\n" });
    const add = async (...args: string[]) => {
      const result = await cluster.schedctl("tasks", "add", "--", ...args);
      assert.equal(result.code, 0, result.stderr);
      return result.stdout.trim();
    };
    /** A task that holds w1's slot until the gate opens, then `echo text` queued behind it. */
    const queuedBehindBlocker = async (text: string) => {
      await add("sh", "-c", `while [ ! -e ${gate} ]; do sleep 0.05; done`);
      const id = await add("echo", text);
      await tasksOf(cluster).waitForTask(
        id,
        "the task to be queued on w1",
        (x) => x.state === "TASK_STATE_SCHEDULED",
      );
      return id;
    };
    const id = await queuedBehindBlocker("from the queue");

    // Both follow while it waits: `tasks logs -f`, and `--wait` on a third task queued behind.
    const follow = cluster.schedctl("tasks", "logs", "-f", id);
    const waited = cluster.schedctl("tasks", "add", "--wait", "--", "echo", "waited for");
    await new Promise((r) => setTimeout(r, 1500));
    await Deno.writeTextFile(gate, "");
    const [followed, added] = await Promise.all([follow, waited]);
    assert.equal(followed.code, 0, followed.stderr);
    assert.equal(followed.stdout, "from the queue\n");
    assert.equal(added.code, 0, added.stderr);
    assert.equal(added.stdout, "waited for\n");

    // A follow of a queued task that moves to another worker goes on there.
    await Deno.remove(gate);
    const movingId = await queuedBehindBlocker("moved and ran");
    const followMoving = cluster.schedctl("tasks", "logs", "-f", movingId);
    await new Promise((r) => setTimeout(r, 500));
    await cluster.startWorker("w2", { extraConfig: "capacity: {slots: 1, queue: 0}\n" });
    const followedMoving = await followMoving;
    assert.equal(followedMoving.code, 0, followedMoving.stderr);
    assert.equal(followedMoving.stdout, "moved and ran\n");
    const ran = await tasksOf(cluster).get(movingId);
    assert.deepEqual(ran.attempts.map((a) => [a.workerId, a.outcome]), [
      ["w1", "not started: moved to a slot free elsewhere"],
      ["w2", "exit code 0"],
    ]);
    await Deno.writeTextFile(gate, "");
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${await cluster.logs()}`, { cause: e });
  }
});

Deno.test("a draining worker gives back what waits in its queue, to run elsewhere", async () => {
  await using cluster = await Cluster.create();
  const { get, waitForTask } = tasksOf(cluster);
  const add = async (...args: string[]) => {
    const result = await cluster.schedctl("tasks", "add", ...args);
    assert.equal(result.code, 0, result.stderr);
    return result.stdout.trim();
  };
  try {
    await cluster.startManager();
    await cluster.startWorker("w1", { extraConfig: "capacity: {slots: 1, queue: 1}\n" });
    const long1 = await add("--", "sleep", "60");
    const queued = await add("--", "true");
    // Pinned and waiting before w2 connects, so that w2's slot is taken at once.
    const long2 = await add("--worker", "w2", "--queue", "--", "sleep", "60");
    await waitForTask(
      queued,
      "the task to be queued on w1",
      (x) => x.state === "TASK_STATE_SCHEDULED",
    );
    await cluster.startWorker("w2", { extraConfig: "capacity: {slots: 1, queue: 0}\n" });
    await waitForTask(long2, "w2's task to run", (x) => x.state === "TASK_STATE_SCHEDULED");

    const drain = await cluster.schedctl("workers", "drain", "w1");
    assert.equal(drain.code, 0, drain.stderr);
    await waitForTask(queued, "the queued task to be given back", (x) => x.attempts?.length === 1);
    assert.equal((await get(queued)).state, "TASK_STATE_PENDING", "no slot is free yet");
    const cancel = await cluster.schedctl("tasks", "cancel", long2);
    assert.equal(cancel.code, 0, cancel.stderr);
    await waitForTask(queued, "the task to be done", (x) => x.state === "TASK_STATE_DONE");
    assert.deepEqual((await get(queued)).attempts.map((a) => [a.workerId, a.outcome]), [
      ["w1", "not started: its worker is draining"],
      ["w2", "exit code 0"],
    ]);
    assert.equal((await get(long1)).state, "TASK_STATE_SCHEDULED", "the running one runs on");
    assert.match(
      await cluster.manager.log(),
      /giving back the tasks waiting in a draining worker's queue worker=w1 tasks=1/,
    );
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${await cluster.logs()}`, { cause: e });
  }
});

Deno.test("a task of higher priority overtakes the tasks queued on a worker", async () => {
  await using cluster = await Cluster.create();
  const gate = `${cluster.dir}/gate`;
  const { startsFile, starts, get, waitForTask } = tasksOf(cluster);
  const add = async (name: string, ...flags: string[]) => {
    const script = `echo ${name} >> ${startsFile}; while [ ! -e ${gate} ]; do sleep 0.05; done`;
    const result = await cluster.schedctl("tasks", "add", ...flags, "--", "sh", "-c", script);
    assert.equal(result.code, 0, result.stderr);
    return result.stdout.trim();
  };
  try {
    await cluster.startManager();
    await cluster.startWorker("w1", { extraConfig: "capacity: {slots: 1, queue: 2}\n" });
    await add("blocker");
    const first = await add("first");
    const low = await add("low");
    await waitForTask(low, "the low task to be queued", (x) => x.state === "TASK_STATE_SCHEDULED");
    const urgent = await add("urgent", "--priority", "9");
    await waitForTask(urgent, "the urgent task to take its place", (x) => x.workerId === "w1");
    await Deno.writeTextFile(gate, "");
    await waitForTask(low, "the low task to be done", (x) => x.state === "TASK_STATE_DONE");
    assert.deepEqual(
      await starts(),
      ["blocker", "urgent", "first", "low"],
      "the urgent task starts first of the queue it joined, though it came last",
    );
    assert.equal((await get(first)).attempts.length, 1, "the first stayed queued");
    assert.deepEqual((await get(low)).attempts.map((a) => a.outcome), [
      "not started: a task of higher priority took its place",
      "exit code 0",
    ]);
    assert.match(
      await cluster.manager.log(),
      /a task of higher priority waits; asking back a queued one task=\S+ attempt=1 priority=0 from=w1 waiting=\S+ waiting_priority=9/,
    );
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${await cluster.logs()}`, { cause: e });
  }
});
