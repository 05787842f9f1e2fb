/**
 * Test helpers: an in-memory OperatorService that behaves like the manager's (paging, not
 * found, all-or-nothing scheduling), and a way to run schedctl against it and collect what
 * it printed.
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  Code,
  ConnectError,
  type ConnectRouter,
  createRouterTransport,
  type ServiceImpl,
  type Transport,
} from "@connectrpc/connect";
import {
  OperatorService,
  type Task,
  TaskSchema,
  TaskState,
  type Worker,
  WorkerSchema,
  WorkerState,
} from "../shared/gen/goschedule/v1/goschedule_pb.ts";
import { run } from "./main.ts";

/** The fields of a message, all optional. */
type Fields<M> = Partial<Omit<M, "$typeName" | "$unknown">>;

/** The fixed "now" of the tests: 2025-01-02T12:00:00Z. */
export const NOW = Date.UTC(2025, 0, 2, 12, 0, 0);

/** A config path that does not exist, so the built-in defaults apply. */
export const NO_CONFIG = "/nonexistent/go-schedule/schedctl.yaml";

/** A task, with sensible defaults for what the test does not care about. */
export function makeTask(init: Fields<Task> & { id: string }): Task {
  return create(TaskSchema, {
    cmd: "sleep",
    params: ["30"],
    state: TaskState.PENDING,
    createdAt: timestampFromMs(NOW - 60_000),
    ...init,
  });
}

/** A worker, with sensible defaults for what the test does not care about. */
export function makeWorker(init: Fields<Worker> & { id: string }): Worker {
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

/** The fake manager's state; tests read and change it. */
export interface FakeManager {
  tasks: Task[];
  workers: Worker[];
  calls: RecordedCall[];
  transport: Transport;
}

/**
 * An in-memory manager. `overrides` replace single methods (e.g. one that throws), the
 * others behave like the real manager: ListTasks oldest first, page_size default 100 and at
 * most 1000, next_page_token empty on the last page; GetTask of an unknown id is not_found;
 * ScheduleTasks all or nothing, invalid_argument naming the entry.
 */
export function createFakeManager(
  init: { tasks?: Task[]; workers?: Worker[] } = {},
  overrides: Partial<ServiceImpl<typeof OperatorService>> = {},
): FakeManager {
  const fake: FakeManager = {
    tasks: init.tasks ?? [],
    workers: init.workers ?? [],
    calls: [],
    transport: undefined as unknown as Transport,
  };
  let nextId = 1;
  const impl: ServiceImpl<typeof OperatorService> = {
    listWorkers(request) {
      fake.calls.push({ method: "ListWorkers", request });
      return { workers: fake.workers };
    },
    listTasks(request) {
      fake.calls.push({ method: "ListTasks", request });
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
      fake.calls.push({ method: "GetTask", request });
      const task = fake.tasks.find((t) => t.id === request.id);
      if (task === undefined) {
        throw new ConnectError(`task "${request.id}" not found`, Code.NotFound);
      }
      return { task };
    },
    scheduleTasks(request) {
      fake.calls.push({ method: "ScheduleTasks", request });
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
          createdAt: timestampFromMs(NOW),
        })
      );
      fake.tasks.push(...created);
      return { tasks: created };
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

/** Runs schedctl with the fixed clock and no config file, collecting its output. */
export async function runCli(
  argv: string[],
  options: { transport?: Transport; stdin?: string; defaultConfigPath?: string } = {},
): Promise<RunResult> {
  let stdout = "";
  let stderr = "";
  const code = await run(argv, {
    stdout: (text) => stdout += text,
    stderr: (text) => stderr += text,
    transport: options.transport,
    readStdin: () => Promise.resolve(options.stdin ?? ""),
    now: () => NOW,
    defaultConfigPath: options.defaultConfigPath ?? NO_CONFIG,
  });
  return { code, stdout, stderr };
}
