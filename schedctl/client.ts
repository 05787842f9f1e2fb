/**
 * The connection to the manager: a Connect transport over HTTP/2, and a wrapper that gives
 * every call the configured timeout and reports calls in debug output.
 */
import { type Client, createClient, type Transport } from "@connectrpc/connect";
import { type ClientTls, nodeTlsOptions } from "../shared/tls.ts";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { formatDuration } from "../shared/duration.ts";
import { OperatorService } from "../shared/gen/goschedule/v1/goschedule_pb.ts";

/** A transport and the way to close its connection. */
export interface ManagerTransport {
  transport: Transport;
  /** Closes the HTTP/2 connection, if one was opened. */
  close(): void;
}

/** While a stream is open, the connection is checked with an HTTP/2 PING this often. */
const PING_INTERVAL_MS = 15_000;

/** Options of createManagerTransport. */
export interface ManagerTransportOptions {
  /** The manager's base URL, e.g. "http://127.0.0.1:7070". */
  manager: string;
  /** Also the time allowed to open the connection, in milliseconds. */
  timeoutMs: number;
  /** For an https:// manager (PEM texts). */
  tls?: ClientTls;
}

/** Creates the transport (gRPC over HTTP/2) to the manager; nothing is dialled until a call. */
export function createManagerTransport(options: ManagerTransportOptions): ManagerTransport {
  const sessionManager = new Http2SessionManager(options.manager, {
    connectTimeoutMs: options.timeoutMs,
    // A log stream may stay quiet for as long as its task: PINGs notice a manager that went
    // away without closing the connection, within PING_INTERVAL_MS plus the timeout.
    pingIntervalMs: PING_INTERVAL_MS,
    pingTimeoutMs: options.timeoutMs,
  }, nodeTlsOptions(options.tls));
  // The gRPC protocol, not Connect's: under Deno 2.9's node:http2, a Connect server stream
  // whose messages pass a few KiB ends with "Premature close" (seen on tasks logs), while gRPC
  // framing of the same messages arrives whole (scratch repro: 40/40 failures vs 0/40).
  const transport = createGrpcTransport({ baseUrl: options.manager, sessionManager });
  return { transport, close: () => sessionManager.abort() };
}

/** Options of withCallDefaults. */
export interface CallDefaults {
  /** Applied to every call that does not set its own, in milliseconds. */
  timeoutMs: number;
  /** Receives a line per call and per outcome; omit for silence. */
  debug?: (line: string) => void;
}

function describeInput(input: unknown): string {
  try {
    return JSON.stringify(input, (_, v) => typeof v === "bigint" ? v.toString() : v) ?? "";
  } catch {
    return "(not printable)";
  }
}

/**
 * How long a request asks the manager to wait before answering (GetTask's `wait`). The
 * input is a message or the plain object it was made from: either has seconds and nanos.
 */
function askedWaitMs(input: unknown): number {
  const wait = (input as { wait?: { seconds?: bigint; nanos?: number } }).wait;
  if (!wait) return 0;
  return Math.max(0, Number(wait.seconds ?? 0n) * 1000 + (wait.nanos ?? 0) / 1e6);
}

/**
 * Wraps a transport so that every unary call gets the timeout (on top of the wait it asks
 * the manager for, if any), and every call is reported to `debug`. Streams (TaskLogs) get
 * no deadline unless the caller sets one: following a task's output lasts as long as the
 * task; opening the connection is still bounded by the transport's connect timeout, and a
 * dead connection by its PINGs.
 */
export function withCallDefaults(transport: Transport, defaults: CallDefaults): Transport {
  const { debug } = defaults;
  return {
    async unary(method, signal, timeoutMs, header, input, contextValues) {
      const name = `${method.parent.typeName}/${method.name}`;
      const timeout = (timeoutMs ?? defaults.timeoutMs) + askedWaitMs(input);
      debug?.(`calling ${name} ${describeInput(input)} (timeout ${formatDuration(timeout)})`);
      const started = performance.now();
      try {
        const response = await transport.unary(
          method,
          signal,
          timeout,
          header,
          input,
          contextValues,
        );
        debug?.(`${name} answered in ${formatDuration(performance.now() - started)}`);
        return response;
      } catch (e) {
        debug?.(`${name} failed after ${formatDuration(performance.now() - started)}`);
        throw e;
      }
    },
    stream(method, signal, timeoutMs, header, input, contextValues) {
      const name = `${method.parent.typeName}/${method.name}`;
      const timeout = timeoutMs === undefined
        ? "no timeout"
        : `timeout ${formatDuration(timeoutMs)}`;
      debug?.(`opening the stream ${name} (${timeout})`);
      return transport.stream(method, signal, timeoutMs, header, input, contextValues);
    },
  };
}

/** The OperatorService client schedctl's commands use. */
export type OperatorClient = Client<typeof OperatorService>;

/** Creates the OperatorService client on a transport, with the call defaults applied. */
export function createOperatorClient(transport: Transport, defaults: CallDefaults): OperatorClient {
  return createClient(OperatorService, withCallDefaults(transport, defaults));
}
