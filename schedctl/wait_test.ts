import assert from "node:assert/strict";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { type Task, TaskState } from "../shared/gen/goschedule/v1/goschedule_pb.ts";
import {
  createFakeInterrupts,
  createFakeManager,
  type FakeManager,
  type LiveOutput,
  makeAttempt,
  makeTask,
  NOW,
  startCli,
} from "./test_util.ts";
import { GET_EACH_LIMIT, progressLine, waitExitCode } from "./wait.ts";

/** Waits until `check` holds, looking every millisecond, for at most 5 s. */
async function eventually(check: () => boolean, what: string): Promise<void> {
  const started = performance.now();
  while (!check()) {
    if (performance.now() - started > 5_000) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

function written(output: LiveOutput, which: "stdout" | "stderr"): string {
  return output.events.filter(([w]) => w === which).map(([, text]) => text).join("");
}

/** Resolves once both output streams of the task are being followed. */
function streamsOpen(fake: FakeManager, id: string): Promise<void> {
  return fake.until(() =>
    fake.openStreams.get(`${id} stdout`) === 1 && fake.openStreams.get(`${id} stderr`) === 1
  );
}

function callsOf(fake: FakeManager, method: string): unknown[] {
  return fake.calls.filter((c) => c.method === method).map((c) => c.request);
}

Deno.test("waitExitCode: the exit code, 128 + the signal, and never 0 for a dead task", () => {
  const cases: Array<[Parameters<typeof makeTask>[0], number]> = [
    [{ id: "a", state: TaskState.DONE, exitCode: 0 }, 0],
    [{ id: "a", state: TaskState.DONE, exitCode: 3 }, 3],
    [{ id: "a", state: TaskState.DONE, exitCode: 137, signal: "SIGKILL" }, 137],
    [{ id: "a", state: TaskState.DONE, exitCode: 143, signal: "SIGTERM" }, 143],
    [{ id: "a", state: TaskState.DONE, signal: "SIGSEGV" }, 139],
    [{ id: "a", state: TaskState.DONE, exitCode: 200, signal: "SIGWHATEVER" }, 200],
    [{ id: "a", state: TaskState.DEAD, deadReason: "no eligible worker" }, 1],
    [{ id: "a", state: TaskState.DEAD, deadReason: "cancelled", exitCode: 0 }, 1],
    [{ id: "a", state: TaskState.DEAD, deadReason: "worker stopped", exitCode: 2 }, 2],
    [{
      id: "a",
      state: TaskState.DEAD,
      deadReason: "deadline exceeded",
      exitCode: 137,
      signal: "SIGKILL",
    }, 137],
    [{ id: "a", state: TaskState.DEAD, deadReason: "cancelled", signal: "SIGTERM" }, 143],
  ];
  for (const [init, code] of cases) {
    assert.equal(waitExitCode(makeTask(init)), code, JSON.stringify(init));
  }
});

Deno.test("progressLine counts the tasks in each state", () => {
  assert.equal(
    progressLine([
      makeTask({ id: "a" }),
      makeTask({ id: "b", state: TaskState.SCHEDULED }),
      makeTask({ id: "c", state: TaskState.DONE }),
      makeTask({ id: "d", state: TaskState.DONE }),
      makeTask({ id: "e", state: TaskState.DEAD }),
    ]),
    "1 pending, 1 scheduled, 2 done, 1 dead",
  );
});

Deno.test("tasks add --wait streams stdout and stderr live, in order, and exits 0", async () => {
  const fake = createFakeManager();
  const interrupts = createFakeInterrupts();
  const cli = startCli(["tasks", "add", "--wait", "--", "sh", "-c", "x"], {
    transport: fake.transport,
    interrupts,
  });
  await streamsOpen(fake, "t-0001");
  assert.equal(interrupts.subscribed, 1, "Ctrl-C is handled while waiting");
  fake.update("t-0001", { state: TaskState.SCHEDULED, workerId: "w-1" });
  const steps: Array<["stdout" | "stderr", string]> = [
    ["stdout", "one\n"],
    ["stderr", "two\n"],
    ["stdout", "three"],
    ["stderr", "four\n"],
  ];
  for (const [which, text] of steps) {
    const before = cli.output.events.length;
    fake.print("t-0001", which, text);
    await eventually(() => cli.output.events.length > before, `"${text}" to be written`);
  }
  fake.update("t-0001", { state: TaskState.DONE, exitCode: 0 });
  const r = await cli.result;
  assert.equal(r.code, 0);
  assert.deepEqual(cli.output.events, steps);
  assert.equal(r.stdout, "one\nthree", "no id, nothing but the task's stdout");
  assert.equal(r.stderr, "two\nfour\n");
  assert.deepEqual(
    callsOf(fake, "TaskLogs").map((req) => {
      const { id, follow, stderr, tailLines } = req as {
        id: string;
        follow: boolean;
        stderr: boolean;
        tailLines: number;
      };
      return { id, follow, stderr, tailLines };
    }).sort((a, b) => Number(a.stderr) - Number(b.stderr)),
    [
      { id: "t-0001", follow: true, stderr: false, tailLines: 0 },
      { id: "t-0001", follow: true, stderr: true, tailLines: 0 },
    ],
  );
  assert.equal(callsOf(fake, "GetTask").length, 1, "GetTask once, for the final state");
  assert.equal(interrupts.subscribed, 0, "Ctrl-C is left alone once done");
});

/** Runs `tasks add --wait`, ends the task with `end`, and returns the result. */
async function waitFor(end: Parameters<FakeManager["update"]>[1], argv: string[] = []) {
  const fake = createFakeManager();
  const cli = startCli([...argv, "tasks", "add", "--wait", "make"], { transport: fake.transport });
  if (argv.includes("json")) {
    await fake.until(() => callsOf(fake, "GetTask").length > 0);
  } else {
    await streamsOpen(fake, "t-0001");
  }
  fake.print("t-0001", "stdout", "out\n");
  fake.update("t-0001", end);
  return { ...await cli.result, fake };
}

Deno.test("tasks add --wait exits with the task's exit code", async () => {
  const r = await waitFor({ state: TaskState.DONE, exitCode: 3 });
  assert.deepEqual([r.code, r.stdout, r.stderr], [3, "out\n", ""]);
});

Deno.test("tasks add --wait: a task a signal ended exits 128 + the signal and says so", async () => {
  const kill = await waitFor({ state: TaskState.DONE, exitCode: 137, signal: "SIGKILL" });
  assert.deepEqual([kill.code, kill.stderr], [
    137,
    "schedctl: task t-0001 was ended by SIGKILL\n",
  ]);
  const term = await waitFor({ state: TaskState.DONE, exitCode: 143, signal: "SIGTERM" });
  assert.equal(term.code, 143);
});

Deno.test("tasks add --wait: a dead task prints its reason and exits 1, or 128 + its signal", async () => {
  const never = await waitFor({ state: TaskState.DEAD, deadReason: "no eligible worker" });
  assert.deepEqual([never.code, never.stderr], [
    1,
    "schedctl: task t-0001 is dead: no eligible worker\n",
  ]);
  const deadline = await waitFor({
    state: TaskState.DEAD,
    deadReason: "deadline exceeded",
    exitCode: 137,
    signal: "SIGKILL",
  });
  assert.deepEqual([deadline.code, deadline.stderr], [
    137,
    "schedctl: task t-0001 is dead: deadline exceeded (its process was ended by SIGKILL)\n",
  ]);
});

Deno.test("-o json tasks add --wait streams nothing and prints the final Task", async () => {
  const r = await waitFor({ state: TaskState.DONE, exitCode: 3, stdout: "out\n" }, [
    "-o",
    "json",
  ]);
  assert.equal(r.code, 3);
  assert.equal(r.stderr, "");
  const task = JSON.parse(r.stdout);
  assert.deepEqual([task.id, task.state, task.exitCode, task.stdout], [
    "t-0001",
    "TASK_STATE_DONE",
    3,
    "out\n",
  ]);
  assert.equal(callsOf(r.fake, "TaskLogs").length, 0);
});

Deno.test("tasks add --wait: a broken log stream falls back to polling GetTask for the answer", async () => {
  let getTasks = 0;
  const fake: FakeManager = createFakeManager({}, {
    async *taskLogs(request) {
      fake.calls.push({ method: "TaskLogs", request });
      if (request.stderr) return;
      yield { data: new TextEncoder().encode("partial\n") };
      throw new ConnectError("the manager is restarting", Code.Unavailable);
    },
    getTask(request) {
      fake.calls.push({ method: "GetTask", request });
      getTasks++;
      // The manager is away for two polls, then the task is still running for one.
      if (getTasks <= 2) throw new ConnectError("connection refused", Code.Unavailable);
      if (getTasks === 4) fake.update("t-0001", { state: TaskState.DONE, exitCode: 4 });
      return { task: fake.tasks.find((t) => t.id === request.id) };
    },
  });
  const r = await startCli(["tasks", "add", "--wait", "make"], { transport: fake.transport })
    .result;
  assert.equal(r.code, 4);
  assert.equal(r.stdout, "partial\n");
  assert.equal(
    r.stderr,
    "schedctl: the stdout stream of task t-0001 broke (the manager at http://127.0.0.1:7070 " +
      "is unavailable: the manager is restarting); waiting for the task to end without it\n" +
      "schedctl: the manager at http://127.0.0.1:7070 is unavailable: connection refused; " +
      "still waiting for task t-0001, asking again every 5ms\n",
  );
  assert.equal(getTasks, 4);
});

Deno.test("-o json tasks add --wait asks the manager to wait for the end, and ends with it", async () => {
  const fake: FakeManager = createFakeManager({}, {
    async getTask(request) {
      fake.calls.push({ method: "GetTask", request });
      const now = () => fake.tasks.find((t) => t.id === request.id);
      // As the manager does with a wait: the answer once the task is done or dead.
      if (request.wait) {
        await fake.until(() => [TaskState.DONE, TaskState.DEAD].includes(now()!.state));
      }
      return { task: now() };
    },
  });
  // An hour between looks: only an answer that waits for the end can end this test.
  const cli = startCli(["-o", "json", "tasks", "add", "--wait", "make"], {
    transport: fake.transport,
    pollIntervalMs: 3_600_000,
  });
  await eventually(() => callsOf(fake, "GetTask").length === 2, "two looks");
  const [first, second] = callsOf(fake, "GetTask") as { wait?: { seconds: bigint } }[];
  assert.equal(first.wait, undefined, "the first look is at once");
  assert.equal(second.wait?.seconds, 3600n, "the next asks to wait up to the poll interval");
  fake.update("t-0001", { state: TaskState.DONE, exitCode: 0 });
  const r = await cli.result;
  assert.equal(r.code, 0);
  assert.equal(JSON.parse(r.stdout).state, "TASK_STATE_DONE");
});

Deno.test("tasks add --wait: a manager that answers before the wait is over is not asked in a loop", async () => {
  // The fake answers at once, as a manager older than GetTask's wait does.
  const fake = createFakeManager();
  const cli = startCli(["-o", "json", "tasks", "add", "--wait", "make"], {
    transport: fake.transport,
    pollIntervalMs: 50,
  });
  await fake.until(() => callsOf(fake, "GetTask").length === 3);
  const started = performance.now();
  await fake.until(() => callsOf(fake, "GetTask").length === 5);
  const elapsed = performance.now() - started;
  fake.update("t-0001", { state: TaskState.DONE, exitCode: 0 });
  assert.equal((await cli.result).code, 0);
  assert.ok(elapsed >= 95, `two more looks came ${elapsed.toFixed(1)} ms apart, not 2 x 50 ms`);
});

Deno.test("tasks add --wait: an error that is not passing ends the wait with exit 1", async () => {
  const fake = createFakeManager({}, {
    getTask: (request) => {
      throw new ConnectError(`task "${request.id}" not found`, Code.NotFound);
    },
  });
  const cli = startCli(["tasks", "add", "--wait", "make"], { transport: fake.transport });
  await streamsOpen(fake, "t-0001");
  fake.update("t-0001", { state: TaskState.DONE, exitCode: 0 });
  const r = await cli.result;
  assert.deepEqual([r.code, r.stderr], [1, `schedctl: task "t-0001" not found\n`]);
});

const BATCH = `tasks:
  - cmd: "true"
  - cmd: "false"
  - cmd: sleep
    params: [1]
`;

Deno.test("tasks schedule --wait: ids, a progress line on each change, the failures, exit 1", async () => {
  const fake = createFakeManager();
  const cli = startCli(["tasks", "schedule", "--wait", "-f", "-"], {
    transport: fake.transport,
    stdin: BATCH,
  });
  const expectProgress = async (line: string) => {
    await eventually(() => written(cli.output, "stderr").endsWith(`${line}\n`), line);
  };
  await expectProgress("3 pending, 0 scheduled, 0 done, 0 dead");
  fake.update("t-0001", { state: TaskState.SCHEDULED });
  fake.update("t-0002", { state: TaskState.SCHEDULED });
  await expectProgress("1 pending, 2 scheduled, 0 done, 0 dead");
  fake.update("t-0001", { state: TaskState.DONE, exitCode: 0 });
  fake.update("t-0002", { state: TaskState.DONE, exitCode: 1 });
  await expectProgress("1 pending, 0 scheduled, 2 done, 0 dead");
  fake.update("t-0003", { state: TaskState.DEAD, deadReason: "no eligible worker" });
  const r = await cli.result;
  assert.equal(r.code, 1);
  assert.equal(r.stdout, "t-0001\nt-0002\nt-0003\n");
  assert.equal(
    r.stderr,
    `3 pending, 0 scheduled, 0 done, 0 dead
1 pending, 2 scheduled, 0 done, 0 dead
1 pending, 0 scheduled, 2 done, 0 dead
0 pending, 0 scheduled, 2 done, 1 dead
schedctl: t-0002 failed: exit code 1
schedctl: t-0003 is dead: no eligible worker
schedctl: 2 of 3 tasks failed or died
`,
  );
  assert.ok(callsOf(fake, "GetTask").length >= 3);
  assert.equal(callsOf(fake, "TaskLogs").length, 0, "a batch streams no output");
});

Deno.test("tasks schedule --wait: all done with 0 exits 0; on a terminal the line is rewritten", async () => {
  const fake = createFakeManager();
  const cli = startCli(["tasks", "schedule", "--wait", "-f", "-"], {
    transport: fake.transport,
    stdin: BATCH,
    isTerminal: { stdin: false, stderr: true },
  });
  await fake.until(() => callsOf(fake, "GetTask").length > 0);
  fake.update("t-0001", { state: TaskState.SCHEDULED });
  await eventually(() => written(cli.output, "stderr").includes("2 pending, 1 scheduled"), "1");
  for (const id of ["t-0001", "t-0002", "t-0003"]) {
    fake.update(id, { state: TaskState.DONE, exitCode: 0 });
  }
  const r = await cli.result;
  assert.equal(r.code, 0);
  assert.equal(
    r.stderr,
    "\r\x1b[2K3 pending, 0 scheduled, 0 done, 0 dead" +
      "\r\x1b[2K2 pending, 1 scheduled, 0 done, 0 dead" +
      "\r\x1b[2K0 pending, 0 scheduled, 3 done, 0 dead\n",
  );
});

Deno.test("tasks schedule --wait on a few tasks asks the manager to wait for their ends", async () => {
  const fake: FakeManager = createFakeManager({}, {
    async getTask(request) {
      fake.calls.push({ method: "GetTask", request });
      const now = () => fake.tasks.find((t) => t.id === request.id)!;
      // As the manager does with a wait: the answer once the task is done or dead.
      if (request.wait) {
        await fake.until(() => [TaskState.DONE, TaskState.DEAD].includes(now().state));
      }
      return { task: now() };
    },
  });
  // An hour between rounds: only answers that wait for the ends can end this test.
  const cli = startCli(["-o", "json", "tasks", "schedule", "--wait", "-f", "-"], {
    transport: fake.transport,
    stdin: BATCH,
    pollIntervalMs: 3_600_000,
  });
  await eventually(() => callsOf(fake, "GetTask").length === 3, "a look at each task");
  const asked = callsOf(fake, "GetTask") as { wait?: { seconds: bigint } }[];
  assert.deepEqual(asked.map((r) => r.wait?.seconds), [3600n, 3600n, 3600n]);
  fake.update("t-0002", { state: TaskState.DONE, exitCode: 0 });
  fake.update("t-0001", { state: TaskState.DEAD, deadReason: "cancelled" });
  fake.update("t-0003", { state: TaskState.DONE, exitCode: 0 });
  const r = await cli.result;
  assert.equal(r.code, 1);
  assert.deepEqual(JSON.parse(r.stdout).map((t: { state: string }) => t.state), [
    "TASK_STATE_DEAD",
    "TASK_STATE_DONE",
    "TASK_STATE_DONE",
  ]);
});

Deno.test("tasks schedule --wait with many tasks lists the pending and scheduled ones", async () => {
  const count = GET_EACH_LIMIT + 10;
  const file = `tasks:\n${"  - cmd: date\n".repeat(count)}`;
  const fake = createFakeManager({
    tasks: [makeTask({ id: "other", state: TaskState.SCHEDULED })],
  });
  const cli = startCli(["-o", "json", "tasks", "schedule", "--wait", "-f", "-"], {
    transport: fake.transport,
    stdin: file,
  });
  await fake.until(() => callsOf(fake, "ListTasks").length >= 2);
  for (const t of fake.tasks.slice(1)) fake.update(t.id, { state: TaskState.DONE, exitCode: 0 });
  const r = await cli.result;
  assert.equal(r.code, 0);
  const tasks = JSON.parse(r.stdout);
  assert.equal(tasks.length, count);
  assert.ok(tasks.every((t: { state: string }) => t.state === "TASK_STATE_DONE"));
  const states = callsOf(fake, "ListTasks").map((req) => (req as { state: TaskState }).state);
  assert.deepEqual(states.slice(0, 2), [TaskState.PENDING, TaskState.SCHEDULED]);
  assert.ok(callsOf(fake, "GetTask").length <= count, "no GetTask per task and round");
});

Deno.test("tasks schedule --wait with one entry streams its output like tasks add --wait", async () => {
  const fake = createFakeManager();
  const cli = startCli(["tasks", "schedule", "--wait", "-f", "-"], {
    transport: fake.transport,
    stdin: "tasks:\n  - cmd: date\n",
  });
  await streamsOpen(fake, "t-0001");
  fake.print("t-0001", "stdout", "Thu Jan  2 12:00:00 UTC 2025\n");
  fake.update("t-0001", { state: TaskState.DONE, exitCode: 0 });
  const r = await cli.result;
  assert.deepEqual([r.code, r.stdout, r.stderr], [0, "Thu Jan  2 12:00:00 UTC 2025\n", ""]);
});

/** A prompt that records its questions and answers from a list (null: end of input). */
function scriptedPrompt(answers: Array<string | null | Promise<string | null>>) {
  const questions: string[] = [];
  return {
    questions,
    prompt: (question: string) => {
      questions.push(question);
      const answer = answers.shift();
      if (answer === undefined) return Promise.reject(new Error("asked too often"));
      return Promise.resolve(answer);
    },
  };
}

Deno.test("Ctrl-C, answered y: the task is cancelled, and the wait goes on to its end", async () => {
  const fake = createFakeManager();
  const interrupts = createFakeInterrupts();
  let answer!: (text: string) => void;
  const asked = scriptedPrompt([new Promise((resolve) => answer = resolve)]);
  const cli = startCli(["tasks", "add", "--wait", "sleep", "100"], {
    transport: fake.transport,
    interrupts,
    prompt: asked.prompt,
    isTerminal: { stdin: true, stderr: true },
  });
  await streamsOpen(fake, "t-0001");
  fake.update("t-0001", { state: TaskState.SCHEDULED, workerId: "w-1" });
  interrupts.fire();
  await eventually(() => asked.questions.length === 1, "the question");
  assert.deepEqual(asked.questions, ["Cancel task t-0001? [y/N] "]);
  // Output is held while the question is open, so it is not written over the prompt.
  fake.print("t-0001", "stdout", "late\n");
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(written(cli.output, "stdout"), "");
  answer("y");
  await fake.until(() => callsOf(fake, "CancelTasks").length === 1);
  assert.deepEqual((callsOf(fake, "CancelTasks")[0] as { ids: string[] }).ids, ["t-0001"]);
  fake.update("t-0001", {
    state: TaskState.DEAD,
    deadReason: "cancelled",
    exitCode: 143,
    signal: "SIGTERM",
  });
  const r = await cli.result;
  assert.equal(r.code, 143);
  assert.equal(r.stdout, "late\n");
  assert.equal(
    r.stderr,
    "\nschedctl: cancelling task t-0001; waiting for the end (Ctrl-C again detaches)\n" +
      "schedctl: task t-0001 is dead: cancelled (its process was ended by SIGTERM)\n",
  );
});

Deno.test("Ctrl-C, answered anything but y: detach, the task keeps running, exit 130", async () => {
  for (const answer of ["n", "", "nope", null]) {
    const fake = createFakeManager();
    const interrupts = createFakeInterrupts();
    const asked = scriptedPrompt([answer]);
    const cli = startCli(["tasks", "add", "--wait", "sleep", "100"], {
      transport: fake.transport,
      interrupts,
      prompt: asked.prompt,
      isTerminal: { stdin: true, stderr: false },
    });
    await streamsOpen(fake, "t-0001");
    interrupts.fire();
    const r = await cli.result;
    assert.equal(r.code, 130, String(answer));
    assert.equal(
      r.stderr,
      "schedctl: detached: the task keeps running; wait for it again with: schedctl tasks wait t-0001\n",
    );
    assert.equal(asked.questions.length, 1);
    assert.equal(callsOf(fake, "CancelTasks").length, 0);
    assert.equal(fake.tasks[0].state, TaskState.PENDING, "nothing was cancelled");
    await fake.until(() =>
      fake.openStreams.get("t-0001 stdout") === 0 && fake.openStreams.get("t-0001 stderr") === 0
    );
    assert.equal(interrupts.subscribed, 0);
  }
});

Deno.test("Ctrl-C again while asked detaches", async () => {
  const fake = createFakeManager();
  const interrupts = createFakeInterrupts();
  const asked = scriptedPrompt([new Promise(() => {})]);
  const cli = startCli(["tasks", "add", "--wait", "sleep", "100"], {
    transport: fake.transport,
    interrupts,
    prompt: asked.prompt,
    isTerminal: { stdin: true, stderr: false },
  });
  await streamsOpen(fake, "t-0001");
  interrupts.fire();
  await eventually(() => asked.questions.length === 1, "the question");
  interrupts.fire();
  const r = await cli.result;
  assert.equal(r.code, 130);
  assert.equal(callsOf(fake, "CancelTasks").length, 0);
});

Deno.test("--detach-on-interrupt, or stdin not a terminal: Ctrl-C detaches without asking", async () => {
  const cases: Array<[string[], boolean]> = [
    [["--wait", "--detach-on-interrupt"], true],
    [["--wait"], false],
  ];
  for (const [flags, stdinIsTerminal] of cases) {
    const fake = createFakeManager();
    const interrupts = createFakeInterrupts();
    const asked = scriptedPrompt(["y"]);
    const cli = startCli(["tasks", "add", ...flags, "sleep", "100"], {
      transport: fake.transport,
      interrupts,
      prompt: asked.prompt,
      isTerminal: { stdin: stdinIsTerminal, stderr: stdinIsTerminal },
    });
    await streamsOpen(fake, "t-0001");
    interrupts.fire();
    const r = await cli.result;
    assert.equal(r.code, 130, flags.join(" "));
    assert.match(r.stderr, /^schedctl: detached: the task keeps running; /);
    assert.deepEqual(asked.questions, [], "nobody was asked");
    assert.equal(callsOf(fake, "CancelTasks").length, 0);
  }
});

Deno.test("Ctrl-C on a batch asks to cancel the unfinished tasks and cancels only those", async () => {
  const fake = createFakeManager();
  const interrupts = createFakeInterrupts();
  const asked = scriptedPrompt(["yes"]);
  const cli = startCli(["tasks", "schedule", "--wait", "-f", "-"], {
    transport: fake.transport,
    stdin: BATCH,
    interrupts,
    prompt: asked.prompt,
    isTerminal: { stdin: true, stderr: false },
  });
  await fake.until(() => callsOf(fake, "GetTask").length > 0);
  fake.update("t-0001", { state: TaskState.DONE, exitCode: 0 });
  fake.update("t-0003", { state: TaskState.SCHEDULED });
  await eventually(() => written(cli.output, "stderr").includes("1 pending, 1 scheduled"), "1");
  interrupts.fire();
  await fake.until(() => callsOf(fake, "CancelTasks").length === 1);
  assert.deepEqual(asked.questions, ["Cancel the 2 unfinished tasks? [y/N] "]);
  assert.deepEqual((callsOf(fake, "CancelTasks")[0] as { ids: string[] }).ids, [
    "t-0002",
    "t-0003",
  ]);
  // t-0002 was pending: dead at once. t-0003 ran: dead once its worker stopped it.
  fake.update("t-0003", { state: TaskState.DEAD, deadReason: "cancelled", signal: "SIGTERM" });
  const r = await cli.result;
  assert.equal(r.code, 1);
  assert.ok(
    r.stderr.endsWith(
      "schedctl: cancelling the 2 unfinished tasks; waiting for the end (Ctrl-C again detaches)\n" +
        "0 pending, 0 scheduled, 1 done, 2 dead\n" +
        "schedctl: t-0002 is dead: cancelled\n" +
        "schedctl: t-0003 is dead: cancelled (its process was ended by SIGTERM)\n" +
        "schedctl: 2 of 3 tasks failed or died\n",
    ),
    r.stderr,
  );
});

Deno.test("after a cancel, Ctrl-C again detaches without asking", async () => {
  const fake = createFakeManager();
  const interrupts = createFakeInterrupts();
  const asked = scriptedPrompt(["y"]);
  const cli = startCli(["tasks", "add", "--wait", "sleep", "100"], {
    transport: fake.transport,
    interrupts,
    prompt: asked.prompt,
    isTerminal: { stdin: true, stderr: false },
  });
  await streamsOpen(fake, "t-0001");
  fake.update("t-0001", { state: TaskState.SCHEDULED });
  interrupts.fire();
  await fake.until(() => callsOf(fake, "CancelTasks").length === 1);
  await eventually(() => written(cli.output, "stderr").includes("cancelling"), "the note");
  interrupts.fire();
  const r = await cli.result;
  assert.equal(r.code, 130);
  assert.equal(asked.questions.length, 1);
  assert.equal(
    fake.tasks[0].cancelRequestedAt?.seconds,
    timestampFromMs(NOW).seconds,
    "the cancel stands",
  );
});

Deno.test("Ctrl-C on a batch on a terminal: the progress line ends once, then the question", async () => {
  const fake = createFakeManager();
  const interrupts = createFakeInterrupts();
  const asked = scriptedPrompt(["n"]);
  const cli = startCli(["tasks", "schedule", "--wait", "-f", "-"], {
    transport: fake.transport,
    stdin: BATCH,
    interrupts,
    prompt: asked.prompt,
    isTerminal: { stdin: true, stderr: true },
  });
  await fake.until(() => callsOf(fake, "GetTask").length > 0);
  interrupts.fire();
  const r = await cli.result;
  assert.equal(r.code, 130);
  assert.deepEqual(asked.questions, ["Cancel the 3 unfinished tasks? [y/N] "]);
  assert.equal(
    r.stderr,
    "\r\x1b[2K3 pending, 0 scheduled, 0 done, 0 dead\n" +
      "schedctl: detached: the 3 unfinished tasks keep running; wait for them again with: schedctl tasks wait ID...\n",
  );
  assert.equal(r.stdout, "t-0001\nt-0002\nt-0003\n");
  assert.equal(callsOf(fake, "CancelTasks").length, 0);
});

const LOST = "lost: worker w-1 disconnected for more than 2m";

/** Ends the current attempt of t-0001 with `outcome`: pending, waiting for a retry. */
function failAttempt(fake: FakeManager, outcome: string, retryAtMs = NOW + 1_000): void {
  const task = fake.tasks.find((t) => t.id === "t-0001")!;
  // A new attempt has its own output, as a worker keeps logs per attempt.
  fake.logs.delete("t-0001");
  fake.update("t-0001", {
    state: TaskState.PENDING,
    workerId: "",
    assignedAt: undefined,
    scheduledAt: undefined,
    retryAt: timestampFromMs(retryAtMs),
    attempts: [
      ...task.attempts,
      makeAttempt({ attempt: task.attempt, workerId: task.workerId, outcome }),
    ],
  });
}

/** Places t-0001 again, as its next attempt, on `workerId`. */
function placeAgain(fake: FakeManager, workerId: string): void {
  const task = fake.tasks.find((t) => t.id === "t-0001")!;
  fake.update("t-0001", {
    state: TaskState.SCHEDULED,
    workerId,
    attempt: task.attempt + 1,
    assignedAt: timestampFromMs(NOW),
    retryAt: undefined,
  });
}

/** Resolves once both streams of t-0001 have been opened `n` times in all, and are open. */
async function streamsOpened(fake: FakeManager, n: number): Promise<void> {
  await fake.until(() => callsOf(fake, "TaskLogs").length === 2 * n);
  await streamsOpen(fake, "t-0001");
}

Deno.test("tasks add --wait across a retry: a note, then the next attempt's output, exit of the last", async () => {
  const fake = createFakeManager({ placeOn: "w-1" });
  const cli = startCli(["tasks", "add", "--wait", "--retries", "2", "make"], {
    transport: fake.transport,
  });
  await streamsOpened(fake, 1);
  fake.update("t-0001", { state: TaskState.SCHEDULED });
  fake.print("t-0001", "stdout", "attempt 1 out\n");
  await eventually(() => cli.output.events.length === 1, "the stdout of attempt 1");
  fake.print("t-0001", "stderr", "attempt 1 err\n");
  await eventually(() => cli.output.events.length === 2, "the stderr of attempt 1");

  failAttempt(fake, LOST);
  await eventually(
    () => written(cli.output, "stderr").includes("waiting for attempt 2"),
    "the note about attempt 1",
  );
  await fake.until(() =>
    fake.openStreams.get("t-0001 stdout") === 0 && fake.openStreams.get("t-0001 stderr") === 0
  );
  const pollsWhilePending = callsOf(fake, "GetTask").length;
  await fake.until(() => callsOf(fake, "GetTask").length > pollsWhilePending + 2);
  assert.equal(callsOf(fake, "TaskLogs").length, 2, "no stream while waiting for the retry");

  placeAgain(fake, "w-2");
  await streamsOpened(fake, 2);
  fake.print("t-0001", "stdout", "attempt 2 out\n");
  await eventually(() => written(cli.output, "stdout").endsWith("attempt 2 out\n"), "attempt 2");
  const task = fake.tasks[0];
  fake.update("t-0001", {
    state: TaskState.DONE,
    exitCode: 3,
    attempts: [
      ...task.attempts,
      makeAttempt({ attempt: 2, workerId: "w-2", outcome: "exit code 3" }),
    ],
  });
  const r = await cli.result;
  assert.equal(r.code, 3, "the exit code of the last attempt");
  assert.equal(r.stdout, "attempt 1 out\nattempt 2 out\n", "each attempt's output once");
  assert.equal(
    r.stderr,
    "attempt 1 err\n" +
      `schedctl: attempt 1 ended (${LOST}); waiting for attempt 2\n`,
  );
  assert.deepEqual(
    cli.output.events.map(([which, text]) => `${which}: ${text}`),
    [
      "stdout: attempt 1 out\n",
      "stderr: attempt 1 err\n",
      `stderr: schedctl: attempt 1 ended (${LOST}); waiting for attempt 2\n`,
      "stdout: attempt 2 out\n",
    ],
  );
});

Deno.test("tasks add --wait across retries that end dead: a note per retried attempt, then why", async () => {
  const fake = createFakeManager({ placeOn: "w-1" });
  const cli = startCli(["tasks", "add", "--wait", "--retries", "1", "make"], {
    transport: fake.transport,
  });
  await streamsOpened(fake, 1);
  failAttempt(fake, "ack timeout");
  await eventually(() => written(cli.output, "stderr").includes("attempt 2"), "the note");
  placeAgain(fake, "w-2");
  await streamsOpened(fake, 2);
  const task = fake.tasks[0];
  fake.update("t-0001", {
    state: TaskState.DEAD,
    deadReason: "lost",
    attempts: [...task.attempts, makeAttempt({ attempt: 2, workerId: "w-2", outcome: LOST })],
  });
  const r = await cli.result;
  assert.equal(r.code, 1);
  assert.equal(
    r.stderr,
    "schedctl: attempt 1 ended (ack timeout); waiting for attempt 2\n" +
      "schedctl: task t-0001 is dead: lost\n",
    "the last attempt's end is the final note's",
  );
});

Deno.test("tasks add --wait: a stream that breaks, then a retry: said once, and the next attempt is streamed", async () => {
  const encoder = new TextEncoder();
  const fake: FakeManager = createFakeManager({ placeOn: "w-1" }, {
    async *taskLogs(request) {
      fake.calls.push({ method: "TaskLogs", request });
      const attempt = fake.tasks[0].attempt;
      if (request.stderr) return;
      yield { data: encoder.encode(`attempt ${attempt} out\n`) };
      if (attempt === 1) {
        throw new ConnectError(
          "worker w-1 disconnected while its logs were being read",
          Code.Aborted,
        );
      }
    },
  });
  const cli = startCli(["tasks", "add", "--wait", "--retries", "1", "make"], {
    transport: fake.transport,
  });
  await eventually(() => written(cli.output, "stderr").includes("broke"), "the broken stream");
  failAttempt(fake, LOST);
  await eventually(() => written(cli.output, "stderr").includes("attempt 2"), "the note");
  placeAgain(fake, "w-2");
  await fake.until(() => callsOf(fake, "TaskLogs").length === 4);
  await eventually(() => written(cli.output, "stdout").includes("attempt 2"), "attempt 2");
  fake.update("t-0001", { state: TaskState.DONE, exitCode: 0 });
  const r = await cli.result;
  assert.equal(r.code, 0);
  assert.equal(r.stdout, "attempt 1 out\nattempt 2 out\n");
  assert.equal(
    r.stderr,
    "schedctl: the stdout stream of task t-0001 broke (worker w-1 disconnected while its " +
      "logs were being read); waiting for the attempt to end without it\n" +
      `schedctl: attempt 1 ended (${LOST}); waiting for attempt 2\n`,
  );
});

Deno.test("tasks add --wait: an attempt that ended before its streams opened is not a broken stream", async () => {
  // The manager placed attempt 2 and it timed out at once: GetTask said "on w-2", but by the
  // time the streams asked, the task was waiting for attempt 3 (the manager: unavailable).
  let stale: Task | undefined;
  const fake: FakeManager = createFakeManager({ placeOn: "w-1" }, {
    getTask(request) {
      fake.calls.push({ method: "GetTask", request });
      const task = stale ?? fake.tasks.find((t) => t.id === request.id);
      stale = undefined;
      return { task };
    },
  });
  const cli = startCli(["tasks", "add", "--wait", "--retries", "5", "make"], {
    transport: fake.transport,
  });
  await streamsOpened(fake, 1);
  const first = makeAttempt({ attempt: 1, outcome: LOST });
  stale = makeTask({
    ...fake.tasks[0],
    state: TaskState.PENDING,
    workerId: "w-2",
    attempt: 2,
    attempts: [first],
  });
  fake.update("t-0001", {
    state: TaskState.PENDING,
    workerId: "",
    attempt: 2,
    retryAt: timestampFromMs(NOW + 2_000),
    attempts: [first, makeAttempt({ attempt: 2, workerId: "w-2", outcome: "ack timeout" })],
  });
  await eventually(() => written(cli.output, "stderr").includes("attempt 3"), "the notes");
  placeAgain(fake, "w-1");
  await fake.until(() =>
    callsOf(fake, "TaskLogs").length === 6 && fake.openStreams.get("t-0001 stdout") === 1
  );
  fake.print("t-0001", "stdout", "attempt 3 out\n");
  await eventually(() => written(cli.output, "stdout").includes("attempt 3"), "attempt 3");
  fake.update("t-0001", { state: TaskState.DONE, exitCode: 0 });
  const r = await cli.result;
  assert.equal(r.code, 0);
  assert.equal(r.stdout, "attempt 3 out\n");
  assert.equal(
    r.stderr,
    `schedctl: attempt 1 ended (${LOST}); waiting for attempt 2\n` +
      "schedctl: attempt 2 ended (ack timeout); waiting for attempt 3\n",
    "no broken stream",
  );
});

Deno.test("-o json tasks add --wait across a retry prints only the final Task", async () => {
  const fake = createFakeManager({ placeOn: "w-1" });
  const cli = startCli(["-o", "json", "tasks", "add", "--wait", "--retries", "1", "make"], {
    transport: fake.transport,
  });
  await fake.until(() => callsOf(fake, "GetTask").length > 0);
  failAttempt(fake, "exit code 2");
  const polls = callsOf(fake, "GetTask").length;
  await fake.until(() => callsOf(fake, "GetTask").length > polls + 1);
  placeAgain(fake, "w-2");
  const task = fake.tasks[0];
  fake.update("t-0001", {
    state: TaskState.DONE,
    exitCode: 0,
    attempts: [...task.attempts, makeAttempt({ attempt: 2, workerId: "w-2" })],
  });
  const r = await cli.result;
  assert.deepEqual([r.code, r.stderr], [0, ""]);
  const json = JSON.parse(r.stdout);
  assert.deepEqual(
    [json.attempt, json.retries, json.attempts.map((a: { outcome: string }) => a.outcome)],
    [2, 1, ["exit code 2", "exit code 0"]],
  );
  assert.equal(callsOf(fake, "TaskLogs").length, 0);
});

Deno.test("tasks add --wait: an attempt that began and ended between two looks is said to be unseen", async () => {
  const fake = createFakeManager({ placeOn: "w-1" });
  const cli = startCli(["tasks", "add", "--wait", "--retries", "3", "make"], {
    transport: fake.transport,
  });
  await streamsOpened(fake, 1);
  fake.update("t-0001", {
    state: TaskState.PENDING,
    workerId: "",
    attempt: 2,
    retryAt: timestampFromMs(NOW + 2_000),
    attempts: [
      makeAttempt({ attempt: 1, outcome: "exit code 3" }),
      makeAttempt({ attempt: 2, workerId: "w-2", outcome: "exit code 3" }),
    ],
  });
  await eventually(() => written(cli.output, "stderr").includes("attempt 3"), "the notes");
  placeAgain(fake, "w-1");
  await streamsOpened(fake, 2);
  fake.update("t-0001", { state: TaskState.DONE, exitCode: 0 });
  const r = await cli.result;
  assert.equal(r.code, 0);
  assert.equal(
    r.stderr,
    "schedctl: attempt 1 ended (exit code 3); waiting for attempt 2\n" +
      "schedctl: attempt 2 ended (exit code 3) before its output could be shown; " +
      "waiting for attempt 3\n",
  );
});

Deno.test("tasks add --wait looks again soon after a retry is due, not a whole poll interval later", async () => {
  const fake = createFakeManager({ placeOn: "w-1" });
  const cli = startCli(["tasks", "add", "--wait", "--retries", "1", "make"], {
    transport: fake.transport,
    pollIntervalMs: 60_000,
  });
  await streamsOpened(fake, 1);
  failAttempt(fake, "ack timeout", NOW);
  await fake.until(() => callsOf(fake, "GetTask").length === 1);
  placeAgain(fake, "w-2");
  // The next look is 100 ms after the retry is due (the clock of the tests stands at it).
  await eventually(() => callsOf(fake, "TaskLogs").length === 4, "the streams of attempt 2");
  fake.update("t-0001", { state: TaskState.DONE, exitCode: 0 });
  const r = await cli.result;
  assert.equal(r.code, 0);
});

Deno.test("tasks wait ID follows a running task's output and exits with its exit code", async () => {
  const fake = createFakeManager({
    tasks: [makeTask({ id: "t-0007", state: TaskState.SCHEDULED, workerId: "w-1", attempt: 1 })],
  });
  const cli = startCli(["tasks", "wait", "t-0007"], { transport: fake.transport });
  await streamsOpen(fake, "t-0007");
  fake.print("t-0007", "stdout", "out\n");
  fake.print("t-0007", "stderr", "err\n");
  fake.update("t-0007", { state: TaskState.DONE, exitCode: 4 });
  const r = await cli.result;
  assert.deepEqual([r.code, r.stdout, r.stderr], [4, "out\n", "err\n"]);
  assert.equal(callsOf(fake, "ScheduleTasks").length, 0, "nothing new is scheduled");
});

Deno.test("tasks wait on a task that has ended shows its output and its end at once", async () => {
  const fake = createFakeManager({
    tasks: [
      makeTask({
        id: "t-0003",
        state: TaskState.DEAD,
        deadReason: "deadline exceeded",
        exitCode: 143,
        signal: "SIGTERM",
        stdout: "partial\n",
      }),
    ],
  });
  const r = await startCli(["tasks", "wait", "t-0003"], { transport: fake.transport }).result;
  assert.deepEqual([r.code, r.stdout, r.stderr], [
    143,
    "partial\n",
    "schedctl: task t-0003 is dead: deadline exceeded (its process was ended by SIGTERM)\n",
  ]);
});

Deno.test("-o json tasks wait A B waits for both and prints them, failures exit 1", async () => {
  const fake = createFakeManager({
    tasks: [
      makeTask({ id: "t-0001", state: TaskState.DONE, exitCode: 0 }),
      makeTask({ id: "t-0002", state: TaskState.SCHEDULED, workerId: "w-1", attempt: 1 }),
    ],
  });
  const cli = startCli(["-o", "json", "tasks", "wait", "t-0001", "t-0002", "t-0001"], {
    transport: fake.transport,
  });
  await fake.until(() => callsOf(fake, "GetTask").length >= 3);
  fake.update("t-0002", { state: TaskState.DONE, exitCode: 2 });
  const r = await cli.result;
  assert.equal(r.code, 1);
  const printed = JSON.parse(r.stdout) as { id: string; exitCode?: number }[];
  assert.deepEqual(printed.map((t) => [t.id, t.exitCode ?? 0]), [["t-0001", 0], ["t-0002", 2]]);
  assert.equal(
    r.stderr,
    "0 pending, 1 scheduled, 1 done, 0 dead\n" +
      "0 pending, 0 scheduled, 2 done, 0 dead\n" +
      "schedctl: t-0002 failed: exit code 2\n" +
      "schedctl: 1 of 2 tasks failed or died\n",
  );
});

Deno.test("tasks wait: an unknown ID waits for nothing; no ID is a usage error", async () => {
  const fake = createFakeManager({ tasks: [makeTask({ id: "t-0001" })] });
  const unknown = await startCli(["tasks", "wait", "t-0001", "nope"], { transport: fake.transport })
    .result;
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /task "nope" not found/);
  assert.equal(callsOf(fake, "TaskLogs").length, 0, "no wait began");
  const none = await startCli(["tasks", "wait"], { transport: fake.transport }).result;
  assert.equal(none.code, 2);
  assert.match(none.stderr, /tasks wait: missing the task ID/);
  const empty = await startCli(["tasks", "wait", ""], { transport: fake.transport }).result;
  assert.equal(empty.code, 2);
  assert.match(empty.stderr, /tasks wait: a task ID is empty/);
});
