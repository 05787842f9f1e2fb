/**
 * The worker's one stream to the manager. It dials out (so it works behind NAT), introduces
 * itself with what it runs and what it has not reported yet (afresh on every stream, so that
 * the manager can reconcile after a reconnect or a restart of either side), answers pings,
 * acknowledges, starts and cancels tasks, and serves log requests on the same stream; when the
 * stream drops, or the manager goes quiet for three ping intervals, it ends the log follows of
 * that stream and reconnects with capped exponential backoff and jitter. The running tasks and
 * their results do not depend on the stream.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import { durationMs } from "@bufbuild/protobuf/wkt";
import { type Client, ConnectError } from "@connectrpc/connect";
import { AsyncQueue } from "../shared/async_queue.ts";
import type {
  ConnectRequestSchema,
  ConnectResponse,
  HelloSchema,
  RunTask,
  WorkerService,
} from "../shared/gen/goschedule/v1/goschedule_pb.ts";
import type { Logger } from "../shared/log.ts";
import { type Agent, attemptKey, type RunRequest } from "./agent.ts";
import { backoffDelay } from "./backoff.ts";
import type { LogStore } from "./log_store.ts";
import { LogSession } from "./log_session.ts";
import type { ReportChannel } from "./report_channel.ts";
import type { ReportOutbox } from "./report_outbox.ts";
import { sleep } from "../shared/sleep.ts";

type Outgoing = MessageInitShape<typeof ConnectRequestSchema>;

export interface Introduction {
  workerId: string;
  hostname: string;
  capabilities: {
    cpuCores: number;
    memoryBytes: bigint;
    os: string;
    arch: string;
    /** What the worker offers to tasks (worker.yaml's capacity, the rest detected). */
    capacity: { cpu: number; memoryBytes: bigint; slots: number; queue: number };
    labels: Record<string, string>;
  };
  version: string;
}

export interface ConnectionOptions {
  client: Client<typeof WorkerService>;
  managerUrl: string;
  intro: Introduction;
  /** Runs and cancels the tasks the manager sends; says what runs, for the Hello. */
  agent: Agent;
  /**
   * The results not delivered yet: listed in the Hello, and sent again at once each time a
   * stream is established.
   */
  outbox: ReportOutbox;
  /** Answers the manager's log requests; without it every request gets a "no logs" error. */
  logs?: LogStore;
  /**
   * Carries reports on the stream while there is one whose manager takes them; without it
   * the outbox sends them by SetTask calls.
   */
  reports?: ReportChannel;
  /**
   * Opens the stream (worker/manager_stream.ts in the worker); without it the stream goes
   * through `client`, as in tests against an in-memory manager.
   */
  openStream?: (
    outgoing: AsyncIterable<Outgoing>,
    signal: AbortSignal,
  ) => AsyncIterable<ConnectResponse>;
  log: Logger;
  reconnectMaxDelayMs: number;
  random?: () => number;
}

/** Before the manager says its ping interval, this long without a word means the stream is dead. */
const FIRST_WORD_TIMEOUT_MS = 15_000;

/** Keeps a stream to the manager open until `signal` aborts. */
export async function runConnectionLoop(
  options: ConnectionOptions,
  signal: AbortSignal,
): Promise<void> {
  let failures = 0;
  let reported = false;
  while (!signal.aborted) {
    let welcomed = false;
    try {
      await streamOnce(options, signal, () => {
        welcomed = true;
        failures = 0;
        if (reported) options.log.info("reconnected to the manager", { url: options.managerUrl });
        else options.log.info("connected to the manager", { url: options.managerUrl });
        reported = false;
      });
      if (!signal.aborted) options.log.warn("the manager ended the stream");
    } catch (e) {
      if (signal.aborted) break;
      const why = e instanceof ConnectError ? e.rawMessage : (e as Error).message;
      if (!reported || welcomed) {
        options.log.warn("lost the stream to the manager; reconnecting", {
          url: options.managerUrl,
          why,
        });
        reported = true;
      } else {
        options.log.debug("still cannot reach the manager", { why });
      }
    }
    if (signal.aborted) break;
    const delay = backoffDelay(
      welcomed ? 0 : failures++,
      { initialMs: 200, maxMs: options.reconnectMaxDelayMs },
      options.random,
    );
    await sleep(delay, signal);
  }
}

async function streamOnce(
  options: ConnectionOptions,
  stop: AbortSignal,
  onWelcome: () => void,
): Promise<void> {
  const outgoing = new AsyncQueue<Outgoing>();
  // Log bytes queued but not yet taken by the stream: lets followers skip rather than pile up.
  let logBacklog = 0;
  const sent = tracked(outgoing, (message) => logBacklog -= logBytes(message));
  const send = (message: Outgoing) => {
    if (outgoing.push(message)) logBacklog += logBytes(message);
  };
  const logSession = options.logs
    ? new LogSession({
      store: options.logs,
      send: (chunk) => send({ msg: { case: "logChunk", value: chunk } }),
      backlog: () => logBacklog,
      log: options.log,
    })
    : undefined;
  const abort = new AbortController();
  const onStop = () => abort.abort();
  stop.addEventListener("abort", onStop);
  let quietLimit = FIRST_WORD_TIMEOUT_MS;
  // One timer that looks at when the manager was last heard, rather than a new timer per
  // message: a timer's setting and clearing were a few percent of a short task's cost.
  let heardAt = performance.now();
  let watchdog: ReturnType<typeof setTimeout> | undefined;
  const watch = () => {
    const left = heardAt + quietLimit - performance.now();
    if (left <= 0) abort.abort(new Error("the manager went quiet"));
    else watchdog = setTimeout(watch, left);
  };
  const heard = () => {
    heardAt = performance.now();
  };
  // From the Hello on, each queued attempt that starts is told on this stream: the Hello
  // lists the queue as it is, and the acknowledgements after it follow the changes.
  const onQueuedStart = (taskId: string, attempt: number) =>
    send({ msg: { case: "ack", value: { taskId, attempt } } });
  try {
    send({ msg: { case: "hello", value: hello(options) } });
    options.agent.onQueuedStart = onQueuedStart;
    watch();
    const responses = options.openStream
      ? options.openStream(sent, abort.signal)
      : options.client.connect(sent, { signal: abort.signal });
    for await (const message of responses) {
      heard();
      const msg = message.msg;
      switch (msg.case) {
        case "welcome":
          quietLimit = Math.max(3 * msg.value.pingIntervalMs, 1000);
          clearTimeout(watchdog);
          watch();
          onWelcome();
          if (msg.value.acceptsReports) options.reports?.attach(send);
          options.outbox.flush();
          break;
        case "ping":
          if (!msg.value.noPong) send({ msg: { case: "pong", value: { seq: msg.value.seq } } });
          break;
        case "run": {
          const run = msg.value;
          const queued = options.agent.run(runRequest(run));
          send({
            msg: { case: "ack", value: { taskId: run.taskId, attempt: run.attempt, queued } },
          });
          break;
        }
        case "cancel":
          options.agent.cancel(msg.value.taskId, msg.value.attempt);
          break;
        case "unqueue":
          options.agent.unqueue(
            msg.value.taskId,
            msg.value.attempt,
            msg.value.reason === "" ? undefined : msg.value.reason,
          );
          break;
        case "logRequest":
          if (logSession) logSession.request(msg.value);
          else {
            send({
              msg: {
                case: "logChunk",
                value: {
                  requestId: msg.value.requestId,
                  eof: true,
                  error: "this worker keeps no logs",
                },
              },
            });
          }
          break;
        case "logCancel":
          logSession?.cancel(msg.value.requestId);
          break;
        case "reportAnswer":
          options.reports?.answer(msg.value);
          break;
        default:
          options.log.debug("ignoring a message of an unknown kind from the manager");
      }
    }
  } catch (e) {
    // An abort by the watchdog surfaces as a cancel; say what really happened.
    if (abort.signal.aborted && !stop.aborted && abort.signal.reason instanceof Error) {
      throw abort.signal.reason;
    }
    throw e;
  } finally {
    clearTimeout(watchdog);
    stop.removeEventListener("abort", onStop);
    if (options.agent.onQueuedStart === onQueuedStart) options.agent.onQueuedStart = undefined;
    options.reports?.detach();
    logSession?.close();
    outgoing.close();
  }
}

/**
 * The Hello of a new stream. An attempt whose report is already in the outbox is listed as
 * unreported only (for a moment it is in both sets): the manager expects its SetTask, and has
 * no process to cancel.
 */
export function hello(
  options: Pick<ConnectionOptions, "intro" | "agent" | "outbox">,
): MessageInitShape<typeof HelloSchema> {
  const unreported = options.outbox.unreported();
  const reported = new Set(unreported.map((r) => attemptKey(r.taskId, r.attempt)));
  const held = (r: { taskId: string; attempt: number }) =>
    !reported.has(attemptKey(r.taskId, r.attempt));
  const running = options.agent.runningAttempts().filter(held);
  const queued = options.agent.queuedAttempts().filter(held);
  return { ...options.intro, running, unreported, queued };
}

/** A RunTask as the agent takes it: durations in milliseconds, unset ones left out. */
export function runRequest(run: RunTask): RunRequest {
  return {
    taskId: run.taskId,
    attempt: run.attempt,
    cmd: run.cmd,
    params: run.params,
    env: run.env,
    cwd: run.cwd,
    timeoutMs: run.timeout ? Math.max(0, durationMs(run.timeout)) : undefined,
    killTimeoutMs: run.killTimeout ? Math.max(0, durationMs(run.killTimeout)) : undefined,
    ...(run.priority ? { priority: run.priority } : {}),
  };
}

function logBytes(message: Outgoing): number {
  return message.msg?.case === "logChunk" ? message.msg.value.data?.length ?? 0 : 0;
}

/** The queue as the stream's request iterable, calling `onTaken` as the stream takes each one. */
async function* tracked(
  queue: AsyncQueue<Outgoing>,
  onTaken: (message: Outgoing) => void,
): AsyncGenerator<Outgoing> {
  for await (const message of queue) {
    onTaken(message);
    yield message;
  }
}
