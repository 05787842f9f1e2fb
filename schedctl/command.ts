/**
 * What a target module (workers, tasks) offers main.ts, and what its commands get to run.
 */
import type { JsonWriteOptions } from "@bufbuild/protobuf";
import type { OutputFormat } from "./args.ts";
import type { OperatorClient } from "./client.ts";

/** What a command runs with. */
export interface CommandContext {
  /** The manager's OperatorService, with the timeout applied to every call. */
  client: OperatorClient;
  /** -o: table (for people) or json (for scripts). */
  output: OutputFormat;
  /** Writes the command's result. */
  stdout(text: string): void;
  /** Writes notes and warnings (a line each, ending with "\n"). */
  stderr(text: string): void;
  /** Reads standard input to its end (`tasks schedule -f -`). */
  readStdin(): Promise<string>;
  /** The local clock, in milliseconds since the epoch, for ages ("2s ago"). */
  now(): number;
  /** Writes bytes to stdout exactly as given: a task's output (`tasks logs`, `--wait`). */
  writeStdout(data: Uint8Array): void;
  /** Writes bytes to stderr exactly as given: a task's stderr (`--wait`). */
  writeStderr(data: Uint8Array): void;
  /** Ctrl-C (SIGINT), for commands that wait and handle it themselves. */
  interrupts: InterruptSource;
  /**
   * Asks the operator a question on the terminal and returns the line answered (without the
   * newline), or null when the input ended. Only called when `stdinIsTerminal`.
   */
  prompt(question: string): Promise<string | null>;
  /** True when stdin is a terminal, so there is someone to ask. */
  stdinIsTerminal: boolean;
  /** True when stderr is a terminal, so a progress line may be rewritten in place. */
  stderrIsTerminal: boolean;
  /** How long `--wait` waits between two polls of the manager, in milliseconds. */
  pollIntervalMs: number;
  /** One line saying what went wrong, as schedctl prints errors (without "schedctl: "). */
  explain(error: unknown): string;
}

/** Where interrupts (Ctrl-C) come from; while subscribed, they do not end the process. */
export interface InterruptSource {
  /** Calls `onInterrupt` on each interrupt until the returned function is called. */
  subscribe(onInterrupt: () => void): () => void;
}

/**
 * A parsed command line: either the help text to print, or the command ready to run.
 * Parsing happens before the config is read or the manager is called, so a usage mistake
 * is reported without any of that.
 */
export type Invocation =
  | { help: string }
  | { run(context: CommandContext): Promise<number> };

/** A target of the command line ("workers", "tasks") and its commands. */
export interface Target {
  name: string;
  /** One line per command for the top-level usage text: [synopsis, summary]. */
  summary: ReadonlyArray<readonly [string, string]>;
  /** Parses `COMMAND [ARGS]` (command undefined when missing); throws UsageError. */
  parse(command: string | undefined, args: readonly string[]): Invocation;
}

/**
 * How API objects become JSON (`toJson(Schema, message, JSON_OPTIONS)`): the canonical
 * protobuf JSON mapping (lowerCamelCase names, enum value names, RFC 3339 times), with every
 * field present even when it holds its zero value, so scripts see the same keys every time.
 * Fields with explicit presence (exitCode) appear only when set.
 */
export const JSON_OPTIONS: Partial<JsonWriteOptions> = { alwaysEmitImplicit: true };

/** Prints an API object, or a list of them, as JSON: pretty, two spaces, one trailing newline. */
export function printJson(context: CommandContext, value: unknown): void {
  context.stdout(`${JSON.stringify(value, null, 2)}\n`);
}
