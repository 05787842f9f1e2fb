/**
 * WorkerService handlers. `connect` holds a worker's bidirectional stream: it waits for the
 * Hello, then drains the session's outgoing queue while a reader hands the worker's messages
 * to the manager. A malformed message closes that stream only. Any message from the worker
 * counts as hearing from it.
 */
import {
  Code,
  ConnectError,
  createContextKey,
  type HandlerContext,
  type ServiceImpl,
} from "@connectrpc/connect";
import {
  type ConnectRequest,
  type SetTaskRequest,
  WorkerService,
} from "../shared/gen/goschedule/v1/goschedule_pb.ts";
import type { Logger } from "../shared/log.ts";
import { capabilitiesToDomain, terminationToDomain } from "./convert.ts";
import { toConnectError } from "./errors.ts";
import type { Manager, TaskReport } from "./manager.ts";
import type { SessionSink, WorkerSession } from "./worker_session.ts";

/** The peer's host:port, set by the server from the socket (never from a header). */
export const peerAddressKey = createContextKey<string>("", { description: "peer address" });

const WORKER_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/**
 * What a worker stream does, whatever carries it: the Connect handler below, or the gRPC
 * stream served straight on node:http2 (worker_stream.ts).
 */
export interface WorkerStreams {
  /**
   * Opens the session of a stream whose first message is `first` (undefined: none came in
   * time); throws a ConnectError for the worker when it cannot be opened.
   */
  open(
    first: ConnectRequest | undefined,
    address: string,
    sink?: SessionSink,
  ): Promise<WorkerSession>;
  /**
   * Takes one message after the Hello. Acknowledgements are stored in the order they came,
   * without holding up the messages behind them. Throws a ConnectError for a message a worker
   * may not send.
   */
  receive(session: WorkerSession, request: ConnectRequest): void;
  /** The stream is over: once what it delivered is taken, the session is closed. */
  end(session: WorkerSession): Promise<void>;
}

export function createWorkerStreams(manager: Manager, log: Logger): WorkerStreams {
  const acks = new WeakMap<WorkerSession, Promise<void>>();
  return {
    async open(first, address, sink) {
      if (first === undefined || first.msg.case !== "hello") {
        throw new ConnectError("the first message must be a hello", Code.InvalidArgument);
      }
      const hello = first.msg.value;
      if (!WORKER_ID.test(hello.workerId)) {
        throw new ConnectError(
          `invalid worker id ${
            JSON.stringify(hello.workerId)
          }: use 1 to 63 letters, digits, ".", "_" or "-"`,
          Code.InvalidArgument,
        );
      }
      try {
        return await manager.openSession(hello.workerId, address, {
          hostname: hello.hostname,
          capabilities: capabilitiesToDomain(hello.capabilities),
          version: hello.version,
        }, {
          running: hello.running.map(({ taskId, attempt }) => ({ taskId, attempt })),
          unreported: hello.unreported.map(({ taskId, attempt }) => ({ taskId, attempt })),
          queued: hello.queued.map(({ taskId, attempt }) => ({ taskId, attempt })),
        }, sink);
      } catch (e) {
        throw toConnectError(e, log, "Connect");
      }
    },

    receive(session, request) {
      manager.heard(session);
      const msg = request.msg;
      switch (msg.case) {
        case "pong":
          return;
        case "ack": {
          const { taskId, attempt, queued } = msg.value;
          const stored = (acks.get(session) ?? Promise.resolve()).then(() =>
            manager.acknowledge(session, taskId, attempt, queued).catch((e) =>
              log.warn("cannot store acknowledgement", { task: taskId, cause: e })
            )
          );
          acks.set(session, stored);
          return;
        }
        case "logChunk":
          manager.deliverLogs(session, msg.value);
          return;
        case "report": {
          // Stored concurrently, like SetTask calls; each gets its answer when it is done.
          const { taskId, attempt } = msg.value;
          const answer = (code: number, message = "") =>
            manager.sendSoon(session, {
              msg: { case: "reportAnswer", value: { taskId, attempt, code, message } },
            });
          let report: TaskReport;
          try {
            report = reportOf(msg.value, session.workerId);
          } catch (e) {
            const error = toConnectError(e, log, "report");
            answer(error.code, error.rawMessage);
            return;
          }
          manager.report(report).then(
            () => answer(0),
            (e) => {
              const error = toConnectError(e, log, "report");
              answer(error.code, error.rawMessage);
            },
          );
          return;
        }
        case "hello":
          throw new ConnectError("hello may only be the first message", Code.InvalidArgument);
        default:
          throw new ConnectError("message without a known kind", Code.InvalidArgument);
      }
    },

    async end(session) {
      session.close();
      await acks.get(session);
      await manager.closeSession(session, session.error?.message ?? "stream ended");
    },
  };
}

export function createWorkerService(
  manager: Manager,
  log: Logger,
  helloTimeoutMs: number,
  streams: WorkerStreams = createWorkerStreams(manager, log),
): ServiceImpl<typeof WorkerService> {
  return {
    async *connect(requests: AsyncIterable<ConnectRequest>, ctx: HandlerContext) {
      const incoming = requests[Symbol.asyncIterator]();
      const first = await withTimeout(incoming.next(), helloTimeoutMs);
      const session = await streams.open(
        first === undefined || first.done ? undefined : first.value,
        ctx.values.get(peerAddressKey),
      );
      const reader = readLoop(streams, session, incoming, log);
      try {
        yield* session.outgoing;
      } finally {
        session.close();
        await reader;
        await streams.end(session);
      }
      if (session.error) throw session.error;
    },

    async setTask(req) {
      const report = reportOf(req, req.workerId);
      try {
        await manager.report(report);
      } catch (e) {
        throw toConnectError(e, log, "SetTask");
      }
      return {};
    },
  };
}

/**
 * A report as the manager takes it, from a SetTask call or a stream's report message (whose
 * worker is the stream's, whatever the message says). Throws InvalidArgument without outcome.
 */
function reportOf(req: SetTaskRequest, workerId: string): TaskReport {
  const outcome: TaskReport["outcome"] | undefined = req.outcome.case === "exited"
    ? {
      kind: "exited",
      exitCode: req.outcome.value.exitCode,
      signal: req.outcome.value.signal || undefined,
      stoppedFor: terminationToDomain(req.termination),
    }
    : req.outcome.case === "startError"
    ? { kind: "start_failed", error: req.outcome.value }
    : req.outcome.case === "abandoned"
    ? { kind: "abandoned", error: req.outcome.value }
    : req.outcome.case === "notStarted"
    ? { kind: "not_started", reason: req.outcome.value }
    : undefined;
  if (!outcome) {
    throw new ConnectError(
      "outcome is required: exited, start_error, abandoned or not_started",
      Code.InvalidArgument,
    );
  }
  return {
    workerId,
    taskId: req.taskId,
    attempt: req.attempt,
    outcome,
    output: {
      stdout: req.stdout,
      stderr: req.stderr,
      stdoutTruncated: req.stdoutTruncated,
      stderrTruncated: req.stderrTruncated,
    },
  };
}

async function readLoop(
  streams: WorkerStreams,
  session: WorkerSession,
  incoming: AsyncIterator<ConnectRequest>,
  log: Logger,
): Promise<void> {
  try {
    while (session.open) {
      const next = await incoming.next();
      if (next.done) break;
      streams.receive(session, next.value);
    }
  } catch (e) {
    const error = e instanceof ConnectError ? e : undefined;
    if (error) {
      log.warn("closing a worker stream", { worker: session.workerId, why: error.rawMessage });
    }
    session.close(error);
  } finally {
    session.close();
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
