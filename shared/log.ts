/**
 * Logging for the daemons: one line per event on stderr, `time level message key=value...`,
 * so that it reads well in a terminal and greps well in a journal.
 */

export type Level = "debug" | "info" | "warn" | "error";

export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

export interface LoggerOptions {
  /** Log debug lines too (the programs' -v). */
  verbose?: boolean;
  /** Where lines go; stderr by default. */
  write?: (line: string) => void;
  /** The clock; injected in tests. */
  now?: () => number;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const encoder = new TextEncoder();
  const write = options.write ?? ((line: string) => Deno.stderr.writeSync(encoder.encode(line)));
  const now = options.now ?? Date.now;
  const log = (level: Level) => (message: string, fields?: Record<string, unknown>) => {
    if (level === "debug" && !options.verbose) return;
    const time = new Date(now()).toISOString();
    write(`${time} ${level.toUpperCase().padEnd(5)} ${message}${formatFields(fields)}\n`);
  };
  return { debug: log("debug"), info: log("info"), warn: log("warn"), error: log("error") };
}

/** A logger that drops everything; for tests. */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
};

function formatFields(fields?: Record<string, unknown>): string {
  if (!fields) return "";
  let out = "";
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    const text = value instanceof Error ? value.message : String(value);
    out += ` ${key}=${/[\s"=]/.test(text) || text === "" ? JSON.stringify(text) : text}`;
  }
  return out;
}
