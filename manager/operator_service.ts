/** OperatorService handlers: decode, call the manager, map errors. */
import type { ServiceImpl } from "@connectrpc/connect";
import { durationMs } from "@bufbuild/protobuf/wkt";
import { OperatorService } from "../shared/gen/goschedule/v1/goschedule_pb.ts";
import type { Logger } from "../shared/log.ts";
import type { TaskRecord } from "../shared/task.ts";
import { taskSpecToDomain, taskStateToDomain, taskToProto, workerToProto } from "./convert.ts";
import { InvalidArgumentError, toConnectError } from "./errors.ts";
import type { Manager } from "./manager.ts";

export const DEFAULT_PAGE_SIZE = 100;

/**
 * Log data is sent in messages of at most this many bytes. Under Deno 2.9, connect-node's
 * HTTP/2 client ends a server stream early ("Premature close") when it carries several
 * messages of a KiB or more (3 x 19 KB failed 40 times in 40; 1000 x 1000 B never did), and
 * schedctl is such a client.
 */
export const MAX_LOG_MESSAGE = 1000;
export const MAX_PAGE_SIZE = 1000;

export function createOperatorService(
  manager: Manager,
  log: Logger,
): ServiceImpl<typeof OperatorService> {
  // What only the manager's memory holds goes with the stored task.
  const toProto = (task: TaskRecord) => ({
    ...taskToProto(task),
    ...(manager.waitsInWorkerQueue(task) ? { waitingInWorkerQueue: true } : {}),
  });
  const edge = <T>(rpc: string, fn: () => Promise<T>): Promise<T> =>
    fn().catch((e) => {
      throw toConnectError(e, log, rpc);
    });

  return {
    listWorkers: () =>
      edge("ListWorkers", () =>
        Promise.resolve({
          workers: manager.listWorkers().map(workerToProto),
        })),

    listTasks: (req) =>
      edge("ListTasks", async () => {
        const state = req.state === 0 ? undefined : taskStateToDomain(req.state);
        if (req.state !== 0 && state === undefined) {
          throw new InvalidArgumentError(`unknown task state ${req.state}`);
        }
        if (req.pageSize > MAX_PAGE_SIZE) {
          throw new InvalidArgumentError(
            `page_size ${req.pageSize} is more than the maximum of ${MAX_PAGE_SIZE}`,
          );
        }
        const size = req.pageSize || DEFAULT_PAGE_SIZE;
        const tasks = await manager.listTasks({
          state,
          afterId: req.pageToken || undefined,
          limit: size + 1,
        });
        const page = tasks.slice(0, size);
        return {
          tasks: page.map(toProto),
          nextPageToken: tasks.length > size ? page[page.length - 1].id : "",
        };
      }),

    getTask: (req, ctx) =>
      edge("GetTask", async () => {
        const wait = req.wait ? { ms: durationMs(req.wait), signal: ctx.signal } : undefined;
        return { task: toProto(await manager.getTask(req.id, wait)) };
      }),

    scheduleTasks: (req) =>
      edge("ScheduleTasks", async () => {
        const tasks = await manager.schedule(req.tasks.map(taskSpecToDomain));
        return { tasks: tasks.map(toProto) };
      }),

    getWorker: (req) =>
      edge("GetWorker", () => {
        const { view, tasks } = manager.getWorker(req.id);
        return Promise.resolve({ worker: workerToProto(view), tasks: tasks.map(toProto) });
      }),

    drainWorker: (req) =>
      edge("DrainWorker", async () => ({
        worker: workerToProto(
          await manager.drainWorker(
            req.id,
            req.deadline ? durationMs(req.deadline) : undefined,
          ),
        ),
      })),

    undrainWorker: (req) =>
      edge("UndrainWorker", async () => ({
        worker: workerToProto(await manager.undrainWorker(req.id)),
      })),

    removeTask: (req) =>
      edge("RemoveTask", async () => {
        await manager.removeTask(req.id);
        return {};
      }),

    removeWorker: (req) =>
      edge("RemoveWorker", async () => {
        await manager.removeWorker(req.id);
        return {};
      }),

    cancelTasks: (req) =>
      edge("CancelTasks", async () => ({
        tasks: (await manager.cancel(req.ids)).map(toProto),
      })),

    async *taskLogs(req, ctx) {
      try {
        const chunks = manager.logs(req.id, {
          follow: req.follow,
          stderr: req.stderr,
          tailLines: req.tailLines,
        }, ctx.signal);
        for await (const data of chunks) {
          for (let at = 0; at < data.length; at += MAX_LOG_MESSAGE) {
            yield { data: data.subarray(at, at + MAX_LOG_MESSAGE) };
          }
        }
      } catch (e) {
        throw toConnectError(e, log, "TaskLogs");
      }
    },
  };
}
