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
  /** Where lines go; stderr by default, a few at a time (see LineBuffer). */
  write?: (line: string, level: Level) => void;
  /** The clock; injected in tests. */
  now?: () => number;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const write = options.write ?? ((line: string, level: Level) => stderrLines().write(line, level));
  const now = options.now ?? Date.now;
  const log = (level: Level) => (message: string, fields?: Record<string, unknown>) => {
    if (level === "debug" && !options.verbose) return;
    const time = new Date(now()).toISOString();
    write(`${time} ${level.toUpperCase().padEnd(5)} ${message}${formatFields(fields)}\n`, level);
  };
  return { debug: log("debug"), info: log("info"), warn: log("warn"), error: log("error") };
}

/**
 * Lines kept for one sink and written together once the code running now has finished
 * (a microtask): a busy manager logs a line per finished task, and results are finished a
 * group at a time, so a write per line was a system call per task. A warning or an error is
 * written at once, with the lines before it.
 */
export class LineBuffer {
  readonly #sink: (text: string) => void;
  #pending: string[] = [];
  #scheduled = false;

  constructor(sink: (text: string) => void) {
    this.#sink = sink;
  }

  write(line: string, level: Level = "info"): void {
    this.#pending.push(line);
    if (level === "warn" || level === "error") this.flush();
    else if (!this.#scheduled) {
      this.#scheduled = true;
      queueMicrotask(() => this.flush());
    }
  }

  flush(): void {
    this.#scheduled = false;
    if (this.#pending.length === 0) return;
    const text = this.#pending.join("");
    this.#pending = [];
    this.#sink(text);
  }
}

let stderrBuffer: LineBuffer | undefined;

/** The process's one buffer for stderr; what it holds is written before the process ends. */
function stderrLines(): LineBuffer {
  if (stderrBuffer) return stderrBuffer;
  const encoder = new TextEncoder();
  const buffer = stderrBuffer = new LineBuffer((text) => {
    const bytes = encoder.encode(text);
    for (let done = 0; done < bytes.length;) done += Deno.stderr.writeSync(bytes.subarray(done));
  });
  // Deno.exit and a normal end (unload), and a crash (before Deno prints it and exits).
  for (const event of ["unload", "error", "unhandledrejection"]) {
    globalThis.addEventListener(event, () => buffer.flush());
  }
  return buffer;
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
