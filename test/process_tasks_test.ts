/**
 * Tasks that behave like real processes, end to end: env and cwd, deadlines, cancel with the
 * whole process group, live logs, --wait exit codes, bounded logs, and a worker stopping its
 * tasks on SIGTERM. Real manager, workers, schedctl and processes; the embedded store.
 */
import assert from "node:assert/strict";
import { Cluster, waitFor } from "./harness/processes.ts";

interface TaskJson {
  id: string;
  state: string;
  exitCode?: number;
  signal?: string;
  stdout?: string;
  stderr?: string;
  stdoutTruncated?: boolean;
  deadReason?: string;
  assignedAt?: string;
  finishedAt?: string;
}

const isFinal = (t: TaskJson) => t.state === "TASK_STATE_DONE" || t.state === "TASK_STATE_DEAD";

async function waitForFinal(cluster: Cluster, id: string, timeoutMs = 20_000): Promise<TaskJson> {
  let task: TaskJson | undefined;
  await waitFor(async () => {
    task = await cluster.schedctlJson<TaskJson>("tasks", "get", id);
    return isFinal(task);
  }, { timeoutMs, what: `task ${id} to finish`, log: () => cluster.logs() });
  return task!;
}

async function add(cluster: Cluster, ...args: string[]): Promise<string> {
  const result = await cluster.schedctl("tasks", "add", ...args);
  assert.equal(result.code, 0, result.stderr);
  return result.stdout.trim();
}

/** Processes whose command line contains `marker`, from the process table. */
async function processesWith(marker: string): Promise<string[]> {
  // Anchored, so that the `sh -c '...'` that started them does not count.
  const { stdout } = await new Deno.Command("pgrep", { args: ["-af", `^${marker}`] }).output();
  return new TextDecoder().decode(stdout).split("\n").filter((line) => line.includes(marker));
}

Deno.test("tasks behave like real processes", async (t) => {
  await using cluster = await Cluster.create();
  try {
    await cluster.startManager();
    await cluster.startWorker("p1");

    await t.step("env and cwd reach the process, on a minimal environment", async () => {
      const id = await add(
        cluster,
        "--env",
        "GREETING=hi",
        "--cwd",
        "/tmp",
        "--",
        "sh",
        "-c",
        'echo "$GREETING"; pwd; echo "home=${HOME:+set}"; echo "leak=${GOSCHEDULE_LEAK:-none}"',
      );
      const task = await waitForFinal(cluster, id);
      assert.equal(task.state, "TASK_STATE_DONE", JSON.stringify(task));
      assert.equal(task.stdout, "hi\n/tmp\nhome=set\nleak=none\n");
    });

    await t.step("bad task options are refused before anything is scheduled", async () => {
      const before = (await cluster.schedctlJson<TaskJson[]>("tasks", "ls", "--all")).length;
      const cases: [string[], RegExp][] = [
        [["--env", "NOEQUALS", "true"], /NOEQUALS/],
        [["--timeout", "-5s", "true"], /-5s/],
        [["--timeout", "soon", "true"], /soon/],
        [["--cwd", "relative/dir", "true"], /relative\/dir/],
      ];
      for (const [args, named] of cases) {
        const result = await cluster.schedctl("tasks", "add", ...args);
        assert.equal(result.code, 2, `${args.join(" ")}: ${result.stderr}`);
        assert.match(result.stderr, named);
      }
      const after = (await cluster.schedctlJson<TaskJson[]>("tasks", "ls", "--all")).length;
      assert.equal(after, before, "nothing was scheduled");
    });

    await t.step("unknown ids: logs and cancel say not found, naming the id", async () => {
      for (const command of ["logs", "cancel"]) {
        const result = await cluster.schedctl("tasks", command, "no-such-task");
        assert.equal(result.code, 1, result.stderr);
        assert.match(result.stderr, /task "no-such-task" not found/);
      }
    });

    await t.step("a deadline kills sleep 60 and the task is dead", async () => {
      const id = await add(cluster, "--timeout", "1s", "--kill-timeout", "1s", "--", "sleep", "60");
      const task = await waitForFinal(cluster, id, 15_000);
      assert.equal(task.state, "TASK_STATE_DEAD");
      assert.equal(task.deadReason, "deadline exceeded");
      const ranMs = Date.parse(task.finishedAt!) - Date.parse(task.assignedAt!);
      // Timeout plus grace, with room for process start-up and the report's trip.
      assert.ok(ranMs < 1000 + 1000 + 2000, `ran for ${ranMs}ms`);
    });

    await t.step("cancel kills the whole process group", async () => {
      const marker = "1007.5";
      const id = await add(cluster, "sh", "-c", `sleep ${marker} & sleep ${marker}`);
      await waitFor(async () => (await processesWith(`sleep ${marker}`)).length === 2, {
        timeoutMs: 10_000,
        what: "both sleeps to run",
      });
      const cancel = await cluster.schedctl("tasks", "cancel", id);
      assert.equal(cancel.code, 0, cancel.stderr);
      const task = await waitForFinal(cluster, id);
      assert.equal(task.state, "TASK_STATE_DEAD");
      assert.equal(task.deadReason, "cancelled");
      assert.deepEqual(await processesWith(`sleep ${marker}`), [], "no sleep is left");
    });

    await t.step("logs -f receives lines as they are printed, and ends with the task", async () => {
      const id = await add(
        cluster,
        "sh",
        "-c",
        "for i in $(seq 1 20); do echo line $i; sleep 0.1; done",
      );
      const child = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          "schedctl/main.ts",
          "-c",
          cluster.schedctlConfig,
          "tasks",
          "logs",
          "-f",
          id,
        ],
        cwd: new URL("../", import.meta.url).pathname,
        stdout: "piped",
        stderr: "piped",
        stdin: "null",
      }).spawn();
      const arrivals: { at: number; text: string }[] = [];
      const stderr = new Response(child.stderr).text();
      for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
        arrivals.push({ at: Date.now(), text: chunk });
      }
      const status = await child.status;
      assert.equal(status.code, 0, await stderr);
      await stderr;
      const text = arrivals.map((a) => a.text).join("");
      assert.equal(text, Array.from({ length: 20 }, (_, i) => `line ${i + 1}\n`).join(""));
      assert.ok(arrivals.length >= 5, `the lines came in ${arrivals.length} pieces, not at once`);
      const spread = arrivals[arrivals.length - 1].at - arrivals[0].at;
      assert.ok(spread > 1000, `first and last pieces were ${spread}ms apart`);
      assert.ok(isFinal(await cluster.schedctlJson<TaskJson>("tasks", "get", id)));
    });

    await t.step("--wait exits with the task's exit code", async () => {
      const cases: [string[], number][] = [
        [["true"], 0],
        [["sh", "-c", "echo waiting; exit 3"], 3],
        [["sh", "-c", "kill -9 $$"], 137],
      ];
      for (const [command, code] of cases) {
        const result = await cluster.schedctl("tasks", "add", "--wait", "--", ...command);
        assert.equal(result.code, code, `${command.join(" ")}: ${result.stderr}`);
        if (code === 3) assert.match(result.stdout, /waiting/);
      }
    });

    await t.step("output beyond the bound is cut, and the cut is marked", async () => {
      const id = await add(
        cluster,
        "sh",
        "-c",
        'i=0; while [ $i -lt 3000 ]; do echo "line $i of some length to fill the log"; i=$((i+1)); done',
      );
      const task = await waitForFinal(cluster, id);
      assert.equal(task.state, "TASK_STATE_DONE");
      assert.equal(task.stdoutTruncated, true, "the stored tail says it was cut");
      assert.ok(task.stdout!.endsWith("line 2999 of some length to fill the log\n"));
      const logs = await cluster.schedctl("tasks", "logs", id);
      assert.equal(logs.code, 0, logs.stderr);
      assert.match(logs.stdout, /bytes dropped/, "the worker's log file marks its cut");
      assert.ok(logs.stdout.endsWith("line 2999 of some length to fill the log\n"));
      assert.ok(logs.stdout.length < 3000 * 40, "the log is bounded");
    });

    await t.step("binary output does not break the log stream or the table", async () => {
      const id = await add(cluster, "sh", "-c", "printf 'a\\000b\\377c\\033[31m\\n'");
      const task = await waitForFinal(cluster, id);
      assert.equal(task.state, "TASK_STATE_DONE");
      const logs = await cluster.schedctl("tasks", "logs", id);
      assert.equal(logs.code, 0);
      const ls = await cluster.schedctl("tasks", "ls", "--all");
      assert.equal(ls.code, 0);
      for (const line of ls.stdout.trim().split("\n")) {
        assert.ok(!line.includes("\x1b") && !line.includes("\0"), `raw control bytes in ${line}`);
      }
    });

    await t.step("a worker stopped with SIGTERM stops its tasks, reports them, exits", async () => {
      const marker = "1009.5";
      const id = await add(cluster, "sh", "-c", `sleep ${marker} & sleep ${marker}`);
      await waitFor(async () => (await processesWith(`sleep ${marker}`)).length === 2, {
        timeoutMs: 10_000,
        what: "both sleeps to run",
      });
      const stopping = Date.now();
      const status = await cluster.workers[0].stop(20_000);
      assert.equal(status?.code, 0);
      assert.ok(Date.now() - stopping < 15_000, "the worker exits in bounded time");
      assert.deepEqual(await processesWith(`sleep ${marker}`), []);
      const task = await cluster.schedctlJson<TaskJson>("tasks", "get", id);
      assert.equal(task.state, "TASK_STATE_DEAD");
      assert.equal(task.deadReason, "worker stopped");
    });

    await t.step("a report with full-size output tails reaches the manager whole", async () => {
      // The default output_limit: the report carries two 64 KiB tails in one message.
      await cluster.startWorker("p2", { outputLimit: "64KiB" });
      const id = await add(
        cluster,
        "sh",
        "-c",
        "head -c 200000 /dev/zero | tr '\\0' o; head -c 200000 /dev/zero | tr '\\0' e >&2",
      );
      const task = await waitForFinal(cluster, id);
      assert.equal(task.state, "TASK_STATE_DONE");
      assert.equal(task.stdout, "o".repeat(65536));
      assert.equal(task.stderr, "e".repeat(65536));
      assert.equal(task.stdoutTruncated, true);
    });

    await t.step("large RunTask messages in a row reach the worker whole", async () => {
      // Several messages of over 1 KiB close together on the worker's stream, the kind of
      // traffic that made connect-node's client end other streams early under Deno.
      const big = "x".repeat(16_384);
      const tasks = Array.from(
        { length: 6 },
        (_, i) =>
          `  - cmd: sh\n    params: [-c, 'printf %s "$BIG" | wc -c; echo ${i}']\n` +
          `    env: {BIG: "${big}"}\n    worker: p2\n`,
      ).join("");
      const file = await cluster.writeFile("big-env.yaml", `tasks:\n${tasks}`);
      const scheduled = await cluster.schedctl("tasks", "schedule", "-f", file);
      assert.equal(scheduled.code, 0, scheduled.stderr);
      const ids = scheduled.stdout.trim().split("\n");
      assert.equal(ids.length, 6);
      for (const [i, id] of ids.entries()) {
        const task = await waitForFinal(cluster, id);
        assert.equal(task.state, "TASK_STATE_DONE");
        assert.equal(task.stdout, `16384\n${i}\n`);
      }
    });
  } catch (e) {
    console.error(await cluster.logs());
    throw e;
  }
});
