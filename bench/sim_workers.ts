/**
 * SIMULATED workers for the many-workers benchmark: ONE process holding M worker streams to a
 * manager. Each simulated worker speaks the real protocol over gRPC (as the real worker does):
 * Hello (nothing running, nothing unreported) -> Welcome, Pong for every Ping, a TaskAck for
 * every RunTask followed at once by a unary SetTask reporting exit code 0, and a "no logs"
 * LogChunk for a log request. It never starts a process: it measures the manager, not process
 * starts. These are not real workers and their figures say nothing about running tasks.
 *
 * Usage: deno run -A bench/sim_workers.ts --manager URL --count M [--streams-per-connection S]
 *        [--prefix ID_PREFIX] [--parallel P]
 *
 * Stdout carries one JSON object per line: `{"event":"connected",...}` once every stream is
 * welcomed; `{"event":"stats",...}` for every `stats` line written to stdin. SIGTERM, or the
 * end of stdin, closes every stream and exits.
 */
import { parseArgs } from "node:util";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { type Client, createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { AsyncQueue } from "../shared/async_queue.ts";
import {
  type ConnectRequestSchema,
  WorkerService,
} from "../shared/gen/goschedule/v1/goschedule_pb.ts";

type Outgoing = MessageInitShape<typeof ConnectRequestSchema>;

const { values } = parseArgs({
  args: Deno.args,
  options: {
    manager: { type: "string" },
    count: { type: "string", default: "5000" },
    "streams-per-connection": { type: "string", default: "1" },
    prefix: { type: "string", default: "sim-" },
    parallel: { type: "string", default: "100" },
  },
});
if (!values.manager) {
  console.error("sim_workers.ts: --manager URL is required");
  Deno.exit(2);
}
const managerUrl = values.manager;
const count = Number(values.count);
const perConnection = Math.max(1, Number(values["streams-per-connection"]));
const parallel = Math.max(1, Number(values.parallel));

const stats = {
  connected: 0,
  welcomed: 0,
  streamsEnded: 0,
  pings: 0,
  runs: 0,
  reports: 0,
  reportFailures: 0,
  firstRunAt: 0,
  lastRunAt: 0,
  lastReportAt: 0,
};
const stop = new AbortController();
const sessions: Http2SessionManager[] = [];
const clients: Client<typeof WorkerService>[] = [];
for (let i = 0; i < Math.ceil(count / perConnection); i++) {
  const sessionManager = new Http2SessionManager(managerUrl, { connectTimeoutMs: 30_000 });
  sessions.push(sessionManager);
  clients.push(
    createClient(WorkerService, createGrpcTransport({ baseUrl: managerUrl, sessionManager })),
  );
}

function emit(event: string, fields: Record<string, unknown> = {}): void {
  console.log(JSON.stringify({ event, ...stats, ...fields }));
}

async function report(
  client: Client<typeof WorkerService>,
  workerId: string,
  taskId: string,
  attempt: number,
): Promise<void> {
  const now = timestampNow();
  for (let tries = 1;; tries++) {
    try {
      await client.setTask({
        workerId,
        taskId,
        attempt,
        outcome: { case: "exited", value: { exitCode: 0 } },
        startedAt: now,
        finishedAt: now,
      });
      stats.reports++;
      stats.lastReportAt = Date.now();
      return;
    } catch (e) {
      if (stop.signal.aborted || tries >= 5) {
        stats.reportFailures++;
        if (!stop.signal.aborted && stats.reportFailures <= 5) {
          console.error(`sim ${workerId}: SetTask failed (only the first 5 are shown): ${e}`);
        }
        return;
      }
      await new Promise((r) => setTimeout(r, 100 * tries));
    }
  }
}

/** One simulated worker's stream; resolves once it has been welcomed (the stream stays open). */
function runWorker(index: number): Promise<void> {
  const workerId = `${values.prefix}${String(index).padStart(5, "0")}`;
  const client = clients[Math.floor(index / perConnection)];
  const outgoing = new AsyncQueue<Outgoing>();
  outgoing.push({
    msg: {
      case: "hello",
      value: {
        workerId,
        hostname: "simulated",
        capabilities: { cpuCores: 1, memoryBytes: 1n << 30n, os: "linux", arch: "x86_64" },
        version: "simulated",
        running: [],
        unreported: [],
      },
    },
  });
  let welcomed: () => void = () => {};
  const welcome = new Promise<void>((resolve) => welcomed = resolve);
  (async () => {
    try {
      for await (const message of client.connect(outgoing, { signal: stop.signal })) {
        const msg = message.msg;
        switch (msg.case) {
          case "welcome":
            stats.welcomed++;
            welcomed();
            break;
          case "ping":
            stats.pings++;
            outgoing.push({ msg: { case: "pong", value: { seq: msg.value.seq } } });
            break;
          case "run":
            stats.runs++;
            stats.lastRunAt = Date.now();
            stats.firstRunAt ||= stats.lastRunAt;
            outgoing.push({
              msg: { case: "ack", value: { taskId: msg.value.taskId, attempt: msg.value.attempt } },
            });
            report(client, workerId, msg.value.taskId, msg.value.attempt);
            break;
          case "logRequest":
            outgoing.push({
              msg: {
                case: "logChunk",
                value: {
                  requestId: msg.value.requestId,
                  eof: true,
                  error: "a simulated worker keeps no logs",
                },
              },
            });
            break;
          default:
            break;
        }
      }
    } catch (e) {
      if (!stop.signal.aborted && stats.streamsEnded < 5) {
        console.error(`sim ${workerId}: stream failed (only the first 5 are shown): ${e}`);
      }
    } finally {
      outgoing.close();
      if (!stop.signal.aborted) stats.streamsEnded++;
      welcomed();
    }
  })();
  return welcome;
}

async function shutdown(): Promise<never> {
  stop.abort();
  for (const session of sessions) session.abort();
  // Give the aborted streams a moment to unwind before the process ends.
  await new Promise((r) => setTimeout(r, 100));
  Deno.exit(0);
}

Deno.addSignalListener("SIGTERM", shutdown);
Deno.addSignalListener("SIGINT", shutdown);

// Commands from the parent on stdin; its end (the parent went away) stops everything.
(async () => {
  const decoder = new TextDecoderStream();
  let buffered = "";
  for await (const text of Deno.stdin.readable.pipeThrough(decoder)) {
    buffered += text;
    let newline;
    while ((newline = buffered.indexOf("\n")) >= 0) {
      const command = buffered.slice(0, newline).trim();
      buffered = buffered.slice(newline + 1);
      if (command === "stats") emit("stats");
    }
  }
  await shutdown();
})();

const started = performance.now();
let next = 0;
await Promise.all(Array.from({ length: Math.min(parallel, count) }, async () => {
  while (next < count) {
    const index = next++;
    await runWorker(index);
    stats.connected++;
  }
}));
emit("connected", { ms: performance.now() - started });
