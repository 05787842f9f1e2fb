/**
 * SIMULATED workers for the many-workers benchmark: ONE process holding M worker streams to a
 * manager. Each simulated worker speaks the real protocol over gRPC (as the real worker does),
 * framed by hand on node:http2 rather than through Connect's client, whose per-message cost
 * and memory would otherwise make the simulator, not the manager, what is measured:
 * Hello (nothing running, nothing unreported) -> Welcome, Pong for every Ping, a TaskAck for
 * every RunTask followed at once by its report, exit code 0 (on the stream, in the same write,
 * when the Welcome accepts reports there, else by a unary SetTask), and a "no logs"
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
import * as http2 from "node:http2";
import { parseArgs } from "node:util";
import { fromBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import {
  ConnectRequestSchema,
  ConnectResponseSchema,
  SetTaskRequestSchema,
  WorkerService,
} from "../shared/gen/goschedule/v1/goschedule_pb.ts";
import { EnvelopeReader, grpcFrame } from "../shared/grpc_frames.ts";
import { concatBytes } from "../shared/bytes.ts";

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
  pongs: 0,
  runs: 0,
  reports: 0,
  reportFailures: 0,
  firstRunAt: 0,
  lastRunAt: 0,
  lastReportAt: 0,
};
let stopping = false;
/** Dialled when their first worker starts, so that at most `parallel` dials are in flight. */
const connections: http2.ClientHttp2Session[] = [];

function connectionOf(index: number): http2.ClientHttp2Session {
  const n = Math.floor(index / perConnection);
  if (!connections[n]) {
    connections[n] = http2.connect(managerUrl);
    // A connection that fails shows as the streams on it ending.
    connections[n].on("error", () => {});
  }
  return connections[n];
}

const CONNECT_PATH = `/${WorkerService.typeName}/${WorkerService.method.connect.name}`;
const SET_TASK_PATH = `/${WorkerService.typeName}/${WorkerService.method.setTask.name}`;

function emit(event: string, fields: Record<string, unknown> = {}): void {
  const { rss, heapUsed } = Deno.memoryUsage();
  const memory = { rssMiB: Math.round(rss / 2 ** 20), heapMiB: Math.round(heapUsed / 2 ** 20) };
  console.log(JSON.stringify({ event, ...stats, ...memory, ...fields }));
}

/** A gRPC call on `connection`, as a real worker's client makes it. */
function call(connection: http2.ClientHttp2Session, path: string): http2.ClientHttp2Stream {
  return connection.request({
    ":method": "POST",
    ":path": path,
    "content-type": "application/grpc+proto",
    te: "trailers",
  });
}

/** A unary gRPC call; resolves with the error message of a non-OK status, or undefined. */
function unary(
  connection: http2.ClientHttp2Session,
  path: string,
  body: Uint8Array,
): Promise<string | undefined> {
  return new Promise((resolve) => {
    let status: string | undefined;
    let message = "";
    const stream = call(connection, path);
    const take = (headers: http2.IncomingHttpHeaders) => {
      if (headers["grpc-status"] !== undefined) {
        status = String(headers["grpc-status"]);
        message = decodeURIComponent(String(headers["grpc-message"] ?? ""));
      }
    };
    stream.on("response", take);
    stream.on("trailers", take);
    stream.on("data", () => {});
    stream.on("error", (e) => status ??= `stream error: ${e.message}`);
    stream.on(
      "close",
      () => resolve(status === "0" ? undefined : `[${status ?? "no status"}] ${message}`),
    );
    stream.end(body);
  });
}

async function report(
  connection: http2.ClientHttp2Session,
  workerId: string,
  taskId: string,
  attempt: number,
): Promise<void> {
  const now = timestampNow();
  const body = grpcFrame(SetTaskRequestSchema, {
    workerId,
    taskId,
    attempt,
    outcome: { case: "exited", value: { exitCode: 0 } },
    startedAt: now,
    finishedAt: now,
  });
  for (let tries = 1;; tries++) {
    const error = await unary(connection, SET_TASK_PATH, body);
    if (error === undefined) {
      stats.reports++;
      stats.lastReportAt = Date.now();
      return;
    }
    if (stopping || tries >= 5) {
      stats.reportFailures++;
      if (!stopping && stats.reportFailures <= 5) {
        console.error(`sim ${workerId}: SetTask failed (only the first 5 are shown): ${error}`);
      }
      return;
    }
    await new Promise((r) => setTimeout(r, 100 * tries));
  }
}

/** One simulated worker's stream; resolves once it has been welcomed (the stream stays open). */
function runWorker(index: number): Promise<void> {
  const workerId = `${values.prefix}${String(index).padStart(5, "0")}`;
  const connection = connectionOf(index);
  const stream = call(connection, CONNECT_PATH);
  const send = (...messages: Outgoing[]) => {
    if (!stream.writableEnded && !stream.destroyed) {
      stream.write(concatBytes(messages.map((m) => grpcFrame(ConnectRequestSchema, m))));
    }
  };
  send({
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
  const reader = new EnvelopeReader();
  let failure = "";
  /** As a real worker: reports go on the stream when the manager's Welcome takes them there. */
  let reportOnStream = false;
  stream.on("data", (chunk: Uint8Array) => {
    for (const bytes of reader.push(chunk)) {
      const msg = fromBinary(ConnectResponseSchema, bytes).msg;
      switch (msg.case) {
        case "welcome":
          stats.welcomed++;
          reportOnStream = msg.value.acceptsReports;
          welcomed();
          break;
        case "reportAnswer":
          if (msg.value.code === 0) {
            stats.reports++;
            stats.lastReportAt = Date.now();
          } else {
            stats.reportFailures++;
            if (stats.reportFailures <= 5) {
              console.error(
                `sim ${workerId}: report refused (only the first 5 are shown): ${msg.value.message}`,
              );
            }
          }
          break;
        case "ping":
          stats.pings++;
          if (msg.value.noPong) break;
          stats.pongs++;
          send({ msg: { case: "pong", value: { seq: msg.value.seq } } });
          break;
        case "run": {
          stats.runs++;
          stats.lastRunAt = Date.now();
          stats.firstRunAt ||= stats.lastRunAt;
          const ack: Outgoing = {
            msg: { case: "ack", value: { taskId: msg.value.taskId, attempt: msg.value.attempt } },
          };
          if (reportOnStream) {
            const now = timestampNow();
            // A task that takes no time: its acknowledgement and report go in one write.
            send(ack, {
              msg: {
                case: "report",
                value: {
                  workerId,
                  taskId: msg.value.taskId,
                  attempt: msg.value.attempt,
                  outcome: { case: "exited", value: { exitCode: 0 } },
                  startedAt: now,
                  finishedAt: now,
                },
              },
            });
          } else {
            send(ack);
            report(connection, workerId, msg.value.taskId, msg.value.attempt);
          }
          break;
        }
        case "logRequest":
          send({
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
  });
  const onHeaders = (headers: http2.IncomingHttpHeaders) => {
    const status = headers["grpc-status"];
    if (status !== undefined && status !== "0") {
      failure = `[${status}] ${decodeURIComponent(String(headers["grpc-message"] ?? ""))}`;
    }
  };
  stream.on("response", onHeaders);
  stream.on("trailers", onHeaders);
  stream.on("error", (e) => failure ||= e.message);
  stream.on("close", () => {
    if (!stopping) {
      if (stats.streamsEnded < 5) {
        console.error(
          `sim ${workerId}: stream ended (only the first 5 are shown): ${
            failure || "by the manager"
          }`,
        );
      }
      stats.streamsEnded++;
    }
    welcomed();
  });
  return welcome;
}

async function shutdown(): Promise<never> {
  stopping = true;
  for (const connection of connections) connection.destroy();
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
