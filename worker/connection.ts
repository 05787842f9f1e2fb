/**
 * The worker's one stream to the manager. It dials out (so it works behind NAT), introduces
 * itself, answers pings, acknowledges and starts tasks; when the stream drops, or the manager
 * goes quiet for three ping intervals, it reconnects with capped exponential backoff and jitter.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import { type Client, ConnectError } from "@connectrpc/connect";
import { AsyncQueue } from "../shared/async_queue.ts";
import type {
  ConnectRequestSchema,
  WorkerService,
} from "../shared/gen/goschedule/v1/goschedule_pb.ts";
import type { Logger } from "../shared/log.ts";
import type { Agent } from "./agent.ts";
import { backoffDelay } from "./backoff.ts";

type Outgoing = MessageInitShape<typeof ConnectRequestSchema>;

export interface Introduction {
  workerId: string;
  hostname: string;
  capabilities: { cpuCores: number; memoryBytes: bigint; os: string; arch: string };
  version: string;
}

export interface ConnectionOptions {
  client: Client<typeof WorkerService>;
  managerUrl: string;
  intro: Introduction;
  agent: Agent;
  log: Logger;
  reconnectMaxDelayMs: number;
  /** Called each time a stream is established (the outbox retries at once). */
  onConnected?: () => void;
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
  const abort = new AbortController();
  const onStop = () => abort.abort();
  stop.addEventListener("abort", onStop);
  let quietLimit = FIRST_WORD_TIMEOUT_MS;
  let watchdog: ReturnType<typeof setTimeout> | undefined;
  const rearm = () => {
    clearTimeout(watchdog);
    watchdog = setTimeout(() => abort.abort(new Error("the manager went quiet")), quietLimit);
  };
  try {
    outgoing.push({ msg: { case: "hello", value: options.intro } });
    rearm();
    const responses = options.client.connect(outgoing, { signal: abort.signal });
    for await (const message of responses) {
      rearm();
      const msg = message.msg;
      switch (msg.case) {
        case "welcome":
          quietLimit = Math.max(3 * msg.value.pingIntervalMs, 1000);
          rearm();
          onWelcome();
          options.onConnected?.();
          break;
        case "ping":
          outgoing.push({ msg: { case: "pong", value: { seq: msg.value.seq } } });
          break;
        case "run": {
          const run = msg.value;
          outgoing.push({
            msg: { case: "ack", value: { taskId: run.taskId, attempt: run.attempt } },
          });
          options.agent.run(run);
          break;
        }
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
    outgoing.close();
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done);
  });
}
