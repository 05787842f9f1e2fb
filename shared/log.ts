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
 * Lines kept for one sink and written together, at most `holdMs` after the first of them or
 * once they reach `maxChars`: a busy manager logs a line per finished task, and each result
 * comes in on its own worker's stream, so writing what one run of code logged was still a
 * system call (and a wake-up of whoever reads the pipe) per task. A warning or an error is
 * written at once, with the lines before it. What is held is written when the process exits
 * or crashes (see stderrLines); only a SIGKILL loses it.
 */
export class LineBuffer {
  readonly #sink: (text: string) => void;
  readonly #holdMs: number;
  readonly #maxChars: number;
  #pending: string[] = [];
  #chars = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(sink: (text: string) => void, options: { holdMs?: number; maxChars?: number } = {}) {
    this.#sink = sink;
    this.#holdMs = options.holdMs ?? 50;
    this.#maxChars = options.maxChars ?? 64 * 1024;
  }

  write(line: string, level: Level = "info"): void {
    this.#pending.push(line);
    this.#chars += line.length;
    if (level === "warn" || level === "error" || this.#chars >= this.#maxChars) this.flush();
    else if (this.#timer === undefined) {
      const timer = this.#timer = setTimeout(() => this.flush(), this.#holdMs);
      // Held lines alone do not keep a process alive: its exit writes them.
      Deno.unrefTimer(timer);
    }
  }

  flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#pending.length === 0) return;
    const text = this.#pending.join("");
    this.#pending = [];
    this.#chars = 0;
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
    // A Date as the line's own time is written: String() would give a local, spaced form.
    const text = value instanceof Error
      ? value.message
      : value instanceof Date
      ? value.toISOString()
      : String(value);
    out += ` ${key}=${/[\s"=]/.test(text) || text === "" ? JSON.stringify(text) : text}`;
  }
  return out;
}
