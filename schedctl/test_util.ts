/**
 * Test helpers: an in-memory OperatorService that behaves like the manager's (paging, not
 * found, all-or-nothing scheduling, cancel, log streams), and a way to run schedctl against
 * it and collect what it printed, with Ctrl-C and the terminal replaced.
 */
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { concatBytes } from "../shared/bytes.ts";
import { durationMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  Code,
  ConnectError,
  type ConnectRouter,
  createRouterTransport,
  type ServiceImpl,
  type Transport,
} from "@connectrpc/connect";
import {
  type Attempt,
  AttemptSchema,
  OperatorService,
  type Task,
  TaskSchema,
  TaskState,
  type Worker,
  WorkerSchema,
  WorkerState,
} from "../shared/gen/goschedule/v1/goschedule_pb.ts";
import type { InterruptSource } from "./command.ts";
import { run } from "./main.ts";

/** The fields of a message, all optional. */
type Fields<M> = Partial<Omit<M, "$typeName" | "$unknown">>;

/** The fixed "now" of the tests: 2025-01-02T12:00:00Z. */
export const NOW = Date.UTC(2025, 0, 2, 12, 0, 0);

/** A config path that does not exist, so the built-in defaults apply. */
export const NO_CONFIG = "/nonexistent/go-schedule/schedctl.yaml";

/** A task, with sensible defaults for what the test does not care about. */
export function makeTask(init: MessageInitShape<typeof TaskSchema> & { id: string }): Task {
  return create(TaskSchema, {
    cmd: "sleep",
    params: ["30"],
    state: TaskState.PENDING,
    createdAt: timestampFromMs(NOW - 60_000),
    ...init,
  });
}

/** An attempt that ended, for a task's `attempts`. */
export function makeAttempt(init: Fields<Attempt> & { attempt: number }): Attempt {
  return create(AttemptSchema, { workerId: "w-1", outcome: "exit code 0", ...init });
}

/** A worker, with sensible defaults for what the test does not care about. */
export function makeWorker(init: MessageInitShape<typeof WorkerSchema> & { id: string }): Worker {
  return create(WorkerSchema, {
    hostname: `${init.id}.example`,
    address: "10.0.0.1:51234",
    state: WorkerState.CONNECTED,
    lastSeenAt: timestampFromMs(NOW - 2_000),
    ...init,
  });
}

/** One call the fake manager received. */
export interface RecordedCall {
  method: string;
  request: unknown;
}

/** What a task printed, as the fake's TaskLogs sends it: chunks of bytes per stream. */
export interface FakeLogs {
  stdout: Uint8Array[];
  stderr: Uint8Array[];
}

/** The fake manager's state; tests read and change it. */
export interface FakeManager {
  tasks: Task[];
  workers: Worker[];
  calls: RecordedCall[];
  transport: Transport;
  /** Output by task id; TaskLogs of a task without an entry sends its stored stdout/stderr. */
  logs: Map<string, FakeLogs>;
  /** TaskLogs streams open right now, by "id stdout" / "id stderr". */
  openStreams: Map<string, number>;
  /** Changes a task (by id) and wakes the followers. */
  update(id: string, fields: Fields<Task>): void;
  /** Appends output to a task and wakes the followers. */
  print(id: string, which: "stdout" | "stderr", data: string | Uint8Array): void;
  /** Resolves once `check` holds, looking again after every change or call. */
  until(check: () => boolean): Promise<void>;
}

const encoder = new TextEncoder();

function isFinalState(task: Task): boolean {
  return task.state === TaskState.DONE || task.state === TaskState.DEAD;
}

/** The last `n` lines of the bytes (a final line without "\n" counts as a line). */
function lastLines(data: Uint8Array, n: number): Uint8Array {
  let end = data.length;
  if (end > 0 && data[end - 1] === 0x0a) end--;
  let start = end;
  for (let lines = 0; start > 0; start--) {
    if (data[start - 1] === 0x0a && ++lines === n) break;
  }
  return data.subarray(start);
}

/**
 * An in-memory manager. `overrides` replace single methods (e.g. one that throws), the
 * others behave like the real manager: ListTasks oldest first, page_size default 100 and at
 * most 1000, next_page_token empty on the last page; GetTask of an unknown id is not_found;
 * ScheduleTasks all or nothing, invalid_argument naming the entry; GetWorker, DrainWorker,
 * UndrainWorker, RemoveWorker and RemoveTask of an unknown id are not_found (RemoveTask of an
 * unfinished task failed_precondition, RemoveWorker of a connected
 * worker, or of one with running tasks, failed_precondition; GetWorker's tasks: the unfinished ones whose
 * workerId is the worker's; a drain's deadline is NOW plus the request's); a followed TaskLogs
 * stream ends when the task is final or its attempt ends (a record is added to `attempts`),
 * and is unavailable while the task waits for a retry. Output is kept per task, not per
 * attempt: a test starting a new attempt clears `logs` for it.
 */
export function createFakeManager(
  init: {
    tasks?: Task[];
    workers?: Worker[];
    /**
     * ScheduleTasks places every task on this worker as attempt 1, as the manager does when
     * a worker fits. Default: the tasks are created pending, not placed (attempt 0).
     */
    placeOn?: string;
  } = {},
  overrides: Partial<ServiceImpl<typeof OperatorService>> = {},
): FakeManager {
  const fake: FakeManager = {
    tasks: init.tasks ?? [],
    workers: init.workers ?? [],
    calls: [],
    transport: undefined as unknown as Transport,
    logs: new Map(),
    openStreams: new Map(),
    update(id, fields) {
      const i = fake.tasks.findIndex((t) => t.id === id);
      if (i === -1) throw new Error(`no task ${id} in the fake`);
      fake.tasks[i] = create(TaskSchema, { ...fake.tasks[i], ...fields });
      wake();
    },
    print(id, which, data) {
      const logs = logsOf(id);
      logs[which].push(typeof data === "string" ? encoder.encode(data) : data);
      wake();
    },
    async until(check) {
      while (!check()) await new Promise<void>((resolve) => waiters.push(resolve));
    },
  };
  let waiters: Array<() => void> = [];
  const wake = () => {
    const woken = waiters;
    waiters = [];
    for (const w of woken) w();
  };
  const logsOf = (id: string): FakeLogs => {
    let logs = fake.logs.get(id);
    if (logs === undefined) {
      const task = fake.tasks.find((t) => t.id === id);
      logs = {
        stdout: task?.stdout ? [encoder.encode(task.stdout)] : [],
        stderr: task?.stderr ? [encoder.encode(task.stderr)] : [],
      };
      fake.logs.set(id, logs);
    }
    return logs;
  };
  const record = (method: string, request: unknown) => {
    fake.calls.push({ method, request });
    wake();
  };
  const workerOf = (id: string): Worker => {
    const worker = fake.workers.find((w) => w.id === id);
    if (worker === undefined) throw new ConnectError(`worker "${id}" not found`, Code.NotFound);
    return worker;
  };
  const updateWorker = (worker: Worker, fields: Fields<Worker>): Worker => {
    const updated = create(WorkerSchema, { ...worker, ...fields });
    fake.workers[fake.workers.indexOf(worker)] = updated;
    wake();
    return updated;
  };
  let nextId = 1;
  const impl: ServiceImpl<typeof OperatorService> = {
    listWorkers(request) {
      record("ListWorkers", request);
      return { workers: fake.workers };
    },
    getWorker(request) {
      record("GetWorker", request);
      const worker = workerOf(request.id);
      const tasks = fake.tasks.filter((t) => t.workerId === worker.id && !isFinalState(t));
      return { worker, tasks };
    },
    drainWorker(request) {
      record("DrainWorker", request);
      const worker = workerOf(request.id);
      const drainDeadline = request.deadline === undefined
        ? undefined
        : timestampFromMs(NOW + durationMs(request.deadline));
      return { worker: updateWorker(worker, { draining: true, drainDeadline }) };
    },
    removeWorker(request) {
      record("RemoveWorker", request);
      const worker = workerOf(request.id);
      if (worker.state === WorkerState.CONNECTED) {
        throw new ConnectError(`worker "${worker.id}" is connected`, Code.FailedPrecondition);
      }
      if (worker.runningTasks > 0) {
        throw new ConnectError(
          `worker "${worker.id}" still holds ${worker.runningTasks} unfinished tasks`,
          Code.FailedPrecondition,
        );
      }
      fake.workers.splice(fake.workers.indexOf(worker), 1);
      return {};
    },
    undrainWorker(request) {
      record("UndrainWorker", request);
      const worker = workerOf(request.id);
      return { worker: updateWorker(worker, { draining: false, drainDeadline: undefined }) };
    },
    listTasks(request) {
      record("ListTasks", request);
      const matching = fake.tasks.filter((t) =>
        request.state === TaskState.UNSPECIFIED || t.state === request.state
      );
      const size = Math.min(request.pageSize || 100, 1000);
      const offset = request.pageToken === "" ? 0 : Number(request.pageToken);
      const page = matching.slice(offset, offset + size);
      const next = offset + size < matching.length ? String(offset + size) : "";
      return { tasks: page, nextPageToken: next };
    },
    getTask(request) {
      record("GetTask", request);
      const task = fake.tasks.find((t) => t.id === request.id);
      if (task === undefined) {
        throw new ConnectError(`task "${request.id}" not found`, Code.NotFound);
      }
      return { task };
    },
    scheduleTasks(request) {
      record("ScheduleTasks", request);
      request.tasks.forEach((spec, i) => {
        if (spec.cmd === "") {
          throw new ConnectError(`task ${i + 1}: cmd is required`, Code.InvalidArgument);
        }
      });
      const created = request.tasks.map((spec) =>
        makeTask({
          id: `t-${String(nextId++).padStart(4, "0")}`,
          cmd: spec.cmd,
          params: spec.params,
          env: spec.env,
          cwd: spec.cwd,
          timeout: spec.timeout,
          killTimeout: spec.killTimeout,
          retries: spec.retries,
          retryBackoff: spec.retryBackoff,
          retryOnFailure: spec.retryOnFailure,
          cpu: spec.cpu,
          memoryBytes: spec.memoryBytes,
          labels: spec.labels,
          pinWorkerId: spec.workerId,
          priority: spec.priority,
          scheduleTimeout: spec.scheduleTimeout,
          queue: spec.queue,
          createdAt: timestampFromMs(NOW),
          ...(init.placeOn === undefined
            ? {}
            : { workerId: init.placeOn, attempt: 1, assignedAt: timestampFromMs(NOW) }),
        })
      );
      fake.tasks.push(...created);
      return { tasks: created };
    },
    removeTask(request) {
      record("RemoveTask", request);
      const task = fake.tasks.find((t) => t.id === request.id);
      if (task === undefined) {
        throw new ConnectError(`task "${request.id}" not found`, Code.NotFound);
      }
      if (task.state !== TaskState.DONE && task.state !== TaskState.DEAD) {
        throw new ConnectError(`task "${task.id}" is not finished`, Code.FailedPrecondition);
      }
      fake.tasks.splice(fake.tasks.indexOf(task), 1);
      return {};
    },
    cancelTasks(request) {
      record("CancelTasks", request);
      const unknown = request.ids.find((id) => !fake.tasks.some((t) => t.id === id));
      if (unknown !== undefined) {
        throw new ConnectError(`task "${unknown}" not found`, Code.NotFound);
      }
      // A pending task is dead at once; a scheduled one is cancelling until the test ends it.
      for (const id of request.ids) {
        const task = fake.tasks.find((t) => t.id === id)!;
        if (isFinalState(task)) continue;
        const cancelRequestedAt = timestampFromMs(NOW);
        fake.update(
          id,
          task.state === TaskState.PENDING
            ? {
              state: TaskState.DEAD,
              deadReason: "cancelled",
              cancelRequestedAt,
              finishedAt: cancelRequestedAt,
            }
            : { cancelRequestedAt },
        );
      }
      return { tasks: request.ids.map((id) => fake.tasks.find((t) => t.id === id)!) };
    },
    async *taskLogs(request, context) {
      record("TaskLogs", request);
      if (!fake.tasks.some((t) => t.id === request.id)) {
        throw new ConnectError(`task "${request.id}" not found`, Code.NotFound);
      }
      const started = fake.tasks.find((t) => t.id === request.id)!;
      if (
        request.follow && started.state === TaskState.PENDING && started.workerId === "" &&
        started.attempts.length > 0
      ) {
        // As the manager: a task waiting for a retry has no worker to read from.
        throw new ConnectError(
          `task ${request.id} is pending on worker (none), which is not connected`,
          Code.Unavailable,
        );
      }
      const which = request.stderr ? "stderr" : "stdout";
      const key = `${request.id} ${which}`;
      fake.openStreams.set(key, (fake.openStreams.get(key) ?? 0) + 1);
      wake();
      try {
        const chunks = logsOf(request.id)[which];
        let sent = chunks.length;
        if (request.tailLines > 0) {
          yield { data: lastLines(concatBytes(chunks), request.tailLines) };
        } else {
          for (const data of chunks.slice(0, sent)) yield { data };
        }
        if (!request.follow) return;
        for (;;) {
          for (; sent < chunks.length; sent++) yield { data: chunks[sent] };
          const task = fake.tasks.find((t) => t.id === request.id)!;
          // As the manager: the stream follows one attempt and ends with it.
          if (isFinalState(task) || task.attempts.length > started.attempts.length) return;
          if (context.signal.aborted) return;
          await new Promise<void>((resolve) => {
            const done = () => {
              context.signal.removeEventListener("abort", done);
              resolve();
            };
            waiters.push(done);
            context.signal.addEventListener("abort", done);
          });
        }
      } finally {
        fake.openStreams.set(key, fake.openStreams.get(key)! - 1);
        wake();
      }
    },
    ...overrides,
  };
  fake.transport = createRouterTransport((router: ConnectRouter) => {
    router.service(OperatorService, impl);
  });
  return fake;
}

/** What one schedctl run printed, and its exit code. */
export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Ctrl-C for tests: `fire()` delivers one to whoever subscribed. */
export interface FakeInterrupts extends InterruptSource {
  /** How many handlers are subscribed right now. */
  readonly subscribed: number;
  fire(): void;
}

export function createFakeInterrupts(): FakeInterrupts {
  const handlers = new Set<() => void>();
  return {
    get subscribed() {
      return handlers.size;
    },
    subscribe(handler) {
      handlers.add(handler);
      return () => handlers.delete(handler);
    },
    fire() {
      for (const h of [...handlers]) h();
    },
  };
}

/** Options of runCli and startCli. */
export interface CliOptions {
  transport?: Transport;
  stdin?: string;
  defaultConfigPath?: string;
  interrupts?: InterruptSource;
  /** Answers prompts; default: none expected (the test fails if asked). */
  prompt?: (question: string) => Promise<string | null>;
  /** Default: neither stdin nor stderr is a terminal. */
  isTerminal?: { stdin: boolean; stderr: boolean };
  /** Default: 5 ms, so that waiting tests are quick. */
  pollIntervalMs?: number;
}

/** Everything one run wrote, as it happens: bytes per stream, and the order of the writes. */
export interface LiveOutput {
  stdout: Uint8Array[];
  stderr: Uint8Array[];
  /** Each write in order: ["stdout", "text"] (decoded, for ordering checks). */
  events: Array<["stdout" | "stderr", string]>;
}

/** A run in progress: its output so far, and its result. */
export interface StartedCli {
  output: LiveOutput;
  result: Promise<RunResult & { stdoutBytes: Uint8Array }>;
}

/** Starts schedctl with the fixed clock and no config file; see `output` while it runs. */
export function startCli(argv: string[], options: CliOptions = {}): StartedCli {
  const output: LiveOutput = { stdout: [], stderr: [], events: [] };
  const decoder = new TextDecoder();
  const sink = (which: "stdout" | "stderr") => (data: Uint8Array) => {
    output[which].push(data.slice());
    output.events.push([which, decoder.decode(data)]);
  };
  const text = (which: "stdout" | "stderr") => (t: string) => sink(which)(encoder.encode(t));
  const result = run(argv, {
    stdout: text("stdout"),
    stderr: text("stderr"),
    writeStdout: sink("stdout"),
    writeStderr: sink("stderr"),
    transport: options.transport,
    readStdin: () => Promise.resolve(options.stdin ?? ""),
    now: () => NOW,
    defaultConfigPath: options.defaultConfigPath ?? NO_CONFIG,
    interrupts: options.interrupts ?? createFakeInterrupts(),
    prompt: options.prompt ??
      ((question) => Promise.reject(new Error(`unexpected prompt: ${question}`))),
    isTerminal: options.isTerminal ?? { stdin: false, stderr: false },
    pollIntervalMs: options.pollIntervalMs ?? 5,
  }).then((code) => {
    const stdoutBytes = concatBytes(output.stdout);
    return {
      code,
      stdout: new TextDecoder().decode(stdoutBytes),
      stderr: new TextDecoder().decode(concatBytes(output.stderr)),
      stdoutBytes,
    };
  });
  return { output, result };
}

/** Runs schedctl with the fixed clock and no config file, collecting its output. */
export async function runCli(argv: string[], options: CliOptions = {}): Promise<RunResult> {
  const { code, stdout, stderr } = await startCli(argv, options).result;
  return { code, stdout, stderr };
}
