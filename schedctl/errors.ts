/**
 * schedctl's errors and the one place that turns any error into what the operator sees: one
 * line (never a stack trace for a user mistake or an unreachable manager) and an exit code.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { formatDuration } from "../shared/duration.ts";
import { ConfigError } from "../shared/config.ts";

/** Exit codes, as documented in the usage text. */
export const EXIT_OK = 0;
/** The manager refused the request, failed, or could not be reached; or an unexpected error. */
export const EXIT_FAILURE = 1;
/** The command line, the config file or an input file is wrong; nothing was sent. */
export const EXIT_USAGE = 2;

/** Input the operator gave that cannot be used; `message` is what to show. Exit code 2. */
export class InputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "InputError";
  }
}

/** A command line that cannot be used; the message ends by pointing at the right help. */
export class UsageError extends InputError {
  constructor(problem: string, target?: string) {
    super(`${problem}; see 'schedctl ${target ? `${target} ` : ""}help'`);
    this.name = "UsageError";
  }
}

/** What the error is about: the manager the call went to. */
export interface ErrorContext {
  /** The manager's URL, as configured. */
  manager: string;
  /** The timeout applied to each call, in milliseconds. */
  timeoutMs: number;
  /** Whether schedctl's config gives it a client certificate (tls.cert). */
  clientCert?: boolean;
}

/** What to show for an error. */
export interface ErrorReport {
  /** The lines to print on stderr, each without the "schedctl: " prefix. */
  lines: string[];
  exitCode: number;
  /** Detail for -v: error codes, causes, stacks. */
  detail: string[];
  /** True for errors schedctl did not expect (a bug, or an answer it cannot read). */
  unexpected: boolean;
}

// Network failures found in the cause chain, in the operator's words.
const NETWORK_CAUSES: Record<string, string> = {
  ECONNREFUSED: "connection refused",
  ECONNRESET: "the connection was reset",
  EPIPE: "the connection was closed",
  ENOTFOUND: "unknown host",
  EAI_AGAIN: "the host name could not be resolved (temporary failure)",
  EAI_NONAME: "unknown host",
  EHOSTUNREACH: "no route to host",
  ENETUNREACH: "the network is unreachable",
  ETIMEDOUT: "the connection timed out",
  ECONNABORTED: "the connection was aborted",
  EADDRNOTAVAIL: "the address is not available",
};

function causeChain(err: unknown): unknown[] {
  const chain: unknown[] = [];
  let current: unknown = err;
  while (current !== undefined && current !== null && !chain.includes(current)) {
    chain.push(current);
    current = current instanceof Error ? current.cause : undefined;
  }
  return chain;
}

function nodeCode(err: unknown): string | undefined {
  if (err instanceof Error && "code" in err && typeof err.code === "string") return err.code;
  return undefined;
}

/**
 * A TLS manager that wants client certificates closes, without a word node can read, the
 * connection of a client that has none: say what to check.
 */
function tlsHint(network: string, context: ErrorContext | undefined): string {
  if (!context?.manager.startsWith("https://") || context.clientCert) return "";
  if (network !== NETWORK_CAUSES.EPIPE && network !== NETWORK_CAUSES.ECONNRESET) return "";
  return " (a manager that asks for client certificates does this to a client without one: " +
    "set tls.cert and tls.key in schedctl's config)";
}

/** The network failure behind an error, in plain words, if that is what it is. */
function networkCause(err: unknown): string | undefined {
  for (const e of causeChain(err)) {
    // connect-node's words when the server closed the connection as the call was sent.
    if (
      e instanceof ConnectError && e.rawMessage === "expected open session, but it is destroyed"
    ) {
      return NETWORK_CAUSES.EPIPE;
    }
    const code = nodeCode(e);
    if (code === undefined) continue;
    if (code in NETWORK_CAUSES) return NETWORK_CAUSES[code];
    if (code.startsWith("ERR_SSL") || code.startsWith("ERR_TLS") || code.includes("CERT")) {
      return `TLS failed: ${(e as Error).message}`;
    }
  }
  return undefined;
}

/** The error and its causes for -v; stacks only for errors schedctl did not expect. */
function describeDetail(err: unknown): string[] {
  const withStack = !(err instanceof ConnectError);
  return causeChain(err).map((e, i) => {
    const prefix = i === 0 ? "error" : "caused by";
    if (e instanceof ConnectError) {
      return `${prefix}: ConnectError [${Code[e.code]}] ${e.rawMessage}`;
    }
    if (e instanceof Error) {
      const code = nodeCode(e);
      const text = withStack && e.stack ? e.stack : `${e.name}: ${e.message}`;
      return `${prefix}: ${text}${code ? ` (code ${code})` : ""}`;
    }
    return `${prefix}: ${String(e)}`;
  });
}

/** Maps any error to the lines and exit code to show. */
export function describeError(err: unknown, context: ErrorContext | undefined): ErrorReport {
  if (err instanceof ConfigError || err instanceof InputError) {
    return { lines: err.message.split("\n"), exitCode: EXIT_USAGE, detail: [], unexpected: false };
  }
  const detail = describeDetail(err);
  if (err instanceof ConnectError) {
    const line = describeConnectError(err, context);
    return { lines: [line], exitCode: EXIT_FAILURE, detail, unexpected: false };
  }
  const message = err instanceof Error ? err.message.split("\n")[0] : String(err);
  return {
    lines: [`unexpected error: ${message}`],
    exitCode: EXIT_FAILURE,
    detail,
    unexpected: true,
  };
}

function describeConnectError(err: ConnectError, context: ErrorContext | undefined): string {
  const manager = context ? `the manager at ${context.manager}` : "the manager";
  const network = networkCause(err);
  if (network !== undefined) {
    return `cannot reach ${manager}: ${network}${tlsHint(network, context)}`;
  }
  switch (err.code) {
    case Code.NotFound:
    case Code.InvalidArgument:
    case Code.FailedPrecondition:
    case Code.AlreadyExists:
    case Code.OutOfRange:
    case Code.PermissionDenied:
    case Code.Unauthenticated:
    case Code.ResourceExhausted:
    case Code.Aborted:
      return err.rawMessage;
    case Code.DeadlineExceeded:
      return context
        ? `${manager} did not answer within ${formatDuration(context.timeoutMs)}`
        : `${manager} did not answer in time`;
    case Code.Unavailable:
      return `${manager} is unavailable: ${err.rawMessage}`;
    case Code.Unimplemented:
      return `${manager} does not offer this call (${err.rawMessage}); is it a go-schedule manager of the same version?`;
    case Code.Canceled:
      return "the call was cancelled";
    case Code.Internal:
      return `${manager} failed: ${err.rawMessage}`;
    default:
      return `unexpected answer from ${manager}: ${err.rawMessage}`;
  }
}
