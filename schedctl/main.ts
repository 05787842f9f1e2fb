/**
 * schedctl, the operator's command-line tool: parses the global options, loads the config,
 * and hands the command to its target's module (workers.ts, tasks.ts).
 *
 *     deno run -A schedctl/main.ts [-c FILE] [-v] [-o table|json] TARGET COMMAND [ARGS]
 */
import type { Transport } from "@connectrpc/connect";
import { formatDuration } from "../shared/duration.ts";
import { parseGlobalOptions } from "./args.ts";
import { createManagerTransport, createOperatorClient } from "./client.ts";
import type { InterruptSource, Invocation, Target } from "./command.ts";
import { DEFAULT_CONFIG_PATH, loadSchedctlConfig } from "./config.ts";
import { describeError, type ErrorContext, EXIT_OK, EXIT_USAGE, UsageError } from "./errors.ts";
import { quoted } from "./format.ts";
import { tasksTarget } from "./tasks.ts";
import { workersTarget } from "./workers.ts";

const TARGETS: readonly Target[] = [workersTarget, tasksTarget];

/** The usage text of `schedctl help`. */
export function usage(): string {
  const commands = TARGETS.flatMap((t) => t.summary);
  const width = Math.max(...commands.map(([synopsis]) => synopsis.length));
  return `Usage: schedctl [-c FILE] [-v] [-o table|json] TARGET COMMAND [ARGS]

Operates a go-schedule cluster through its manager.

Options (before the target):
  -c FILE          config file (default ${DEFAULT_CONFIG_PATH}; built-in
                   defaults when that file does not exist)
  -v               print debug detail on stderr: config, manager URL, calls, causes
  -o table|json    output format (default table); json prints the API objects
  -h, --help       print this text

Targets and commands:
${commands.map(([synopsis, summary]) => `  ${synopsis.padEnd(width)}   ${summary}`).join("\n")}

'schedctl TARGET help' shows a target's commands with their options.

Exit status: 0 done; 1 the manager refused or failed, or cannot be reached;
2 usage, config or input file error (nothing was sent). With --wait: the task's
exit code (see 'schedctl tasks help'); 130 when detached with Ctrl-C.
`;
}

/** Options of run: where output goes, and what tests replace. */
export interface RunOptions {
  /** Receives the command's output (tables, JSON, ids). */
  stdout: (text: string) => void;
  /** Receives errors, notes and -v debug lines. */
  stderr: (text: string) => void;
  /** Talk to the manager through this transport instead of dialling the configured one. */
  transport?: Transport;
  /** Reads standard input to its end, for `tasks schedule -f -`. Default: Deno.stdin. */
  readStdin?: () => Promise<string>;
  /** The clock for ages, in milliseconds since the epoch. Default: Date.now. */
  now?: () => number;
  /** The config file read when -c is not given. Default: /etc/go-schedule/schedctl.yaml. */
  defaultConfigPath?: string;
  /**
   * Receives a task's output as bytes, unchanged (`tasks logs`, `--wait`). Default: decoded
   * as UTF-8 and passed to `stdout`, which is not binary-safe; main.ts writes the bytes.
   */
  writeStdout?: (data: Uint8Array) => void;
  /** Receives a task's stderr as bytes, unchanged (`--wait`). Default: like writeStdout. */
  writeStderr?: (data: Uint8Array) => void;
  /** Ctrl-C while `--wait` waits. Default: SIGINT, through Deno.addSignalListener. */
  interrupts?: InterruptSource;
  /**
   * Asks a question (`Cancel task ID? [y/N] `) and returns the answer line, or null at the
   * end of input. Default: the question on stderr, the answer read from stdin.
   */
  prompt?: (question: string) => Promise<string | null>;
  /** Whether stdin and stderr are terminals. Default: Deno.stdin/stderr.isTerminal(). */
  isTerminal?: { stdin: boolean; stderr: boolean };
  /** How long `--wait` waits between polls, in milliseconds. Default: 1000. */
  pollIntervalMs?: number;
}

/** `--wait` polls the manager this often, in milliseconds. */
export const DEFAULT_POLL_INTERVAL_MS = 1000;

/** SIGINT, delivered to the subscribers instead of ending the process while there are any. */
const sigint: InterruptSource = {
  subscribe(onInterrupt) {
    Deno.addSignalListener("SIGINT", onInterrupt);
    return () => Deno.removeSignalListener("SIGINT", onInterrupt);
  },
};

/** Writes the question on stderr and reads one line from stdin. */
function promptOnStdin(stderr: (text: string) => void) {
  return async (question: string): Promise<string | null> => {
    stderr(question);
    const decoder = new TextDecoder();
    const buffer = new Uint8Array(256);
    let line = "";
    for (;;) {
      const n = await Deno.stdin.read(buffer);
      if (n === null) return line === "" ? null : line;
      line += decoder.decode(buffer.subarray(0, n), { stream: true });
      const end = line.indexOf("\n");
      if (end !== -1) return line.slice(0, end).replace(/\r$/, "");
    }
  };
}

/** Passes bytes to a text sink, decoding UTF-8 across chunk boundaries (not binary-safe). */
function decodingTo(sink: (text: string) => void): (data: Uint8Array) => void {
  const decoder = new TextDecoder();
  return (data) => sink(decoder.decode(data, { stream: true }));
}

async function readAllStdin(): Promise<string> {
  return await new Response(Deno.stdin.readable).text();
}

function parseInvocation(rest: readonly string[]): Invocation {
  const [targetName, command, ...args] = rest;
  if (targetName === "help") {
    if (command === undefined) return { help: usage() };
    const target = TARGETS.find((t) => t.name === command);
    if (target === undefined) throw new UsageError(`help: unknown target ${quoted(command)}`);
    return target.parse("help", []);
  }
  const target = TARGETS.find((t) => t.name === targetName);
  if (target === undefined) {
    const near = TARGETS.find((t) => t.name === `${targetName}s`);
    const hint = near ? ` (did you mean ${near.name}?)` : "";
    throw new UsageError(`unknown target ${quoted(targetName)}${hint}`);
  }
  return target.parse(command, args);
}

/**
 * Runs schedctl with the given arguments (without the program name) and returns the exit
 * code: 0 done, 1 the manager refused, failed or cannot be reached, 2 usage, config or
 * input error. Never throws.
 */
export async function run(argv: readonly string[], options: RunOptions): Promise<number> {
  const { stdout, stderr } = options;
  let verbose = false;
  const debug = (line: string) => {
    if (verbose) stderr(`debug: ${line}\n`);
  };
  let errorContext: ErrorContext | undefined;
  let close = () => {};
  try {
    const globals = parseGlobalOptions(argv);
    verbose = globals.verbose;
    if (globals.help || (globals.rest.length === 1 && globals.rest[0] === "help")) {
      stdout(usage());
      return EXIT_OK;
    }
    if (globals.rest.length === 0) {
      stderr(usage());
      return EXIT_USAGE;
    }
    const invocation = parseInvocation(globals.rest);
    if ("help" in invocation) {
      stdout(invocation.help);
      return EXIT_OK;
    }
    const { config, source, tls } = await loadSchedctlConfig(
      globals.configPath,
      options.defaultConfigPath ?? DEFAULT_CONFIG_PATH,
    );
    debug(`config: ${source}`);
    debug(`manager: ${config.manager}, timeout ${formatDuration(config.timeout)}`);
    errorContext = {
      manager: config.manager,
      timeoutMs: config.timeout,
      clientCert: tls?.cert !== undefined,
    };
    let transport = options.transport;
    if (transport === undefined) {
      const managerTransport = createManagerTransport({
        manager: config.manager,
        timeoutMs: config.timeout,
        tls,
      });
      transport = managerTransport.transport;
      close = managerTransport.close;
    } else {
      debug("using the injected transport");
    }
    const context = errorContext;
    return await invocation.run({
      client: createOperatorClient(transport, { timeoutMs: config.timeout, debug }),
      output: globals.output,
      stdout,
      stderr,
      readStdin: options.readStdin ?? readAllStdin,
      now: options.now ?? Date.now,
      writeStdout: options.writeStdout ?? decodingTo(stdout),
      writeStderr: options.writeStderr ?? decodingTo(stderr),
      interrupts: options.interrupts ?? sigint,
      prompt: options.prompt ?? promptOnStdin(stderr),
      stdinIsTerminal: options.isTerminal?.stdin ?? Deno.stdin.isTerminal(),
      stderrIsTerminal: options.isTerminal?.stderr ?? Deno.stderr.isTerminal(),
      pollIntervalMs: options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS,
      explain: (e) => {
        const report = describeError(e, context);
        for (const line of report.detail) debug(line);
        return report.lines.join("; ");
      },
    });
  } catch (e) {
    const report = describeError(e, errorContext);
    for (const line of report.detail) debug(line);
    const hint = report.unexpected && !verbose ? " (run with -v for details)" : "";
    stderr(report.lines.map((line) => `schedctl: ${line}`).join("\n") + `${hint}\n`);
    return report.exitCode;
  } finally {
    close();
  }
}

function writeAll(file: typeof Deno.stdout, text: string): void {
  writeAllBytes(file, new TextEncoder().encode(text));
}

function writeAllBytes(file: typeof Deno.stdout, bytes: Uint8Array): void {
  try {
    for (let offset = 0; offset < bytes.length;) offset += file.writeSync(bytes.subarray(offset));
  } catch (e) {
    // The reader went away (`schedctl tasks ls | head`): stop quietly, like SIGPIPE would.
    if (e instanceof Deno.errors.BrokenPipe) Deno.exit(EXIT_OK);
    throw e;
  }
}

if (import.meta.main) {
  const code = await run(Deno.args, {
    stdout: (text) => writeAll(Deno.stdout, text),
    stderr: (text) => writeAll(Deno.stderr, text),
    writeStdout: (data) => writeAllBytes(Deno.stdout, data),
    writeStderr: (data) => writeAllBytes(Deno.stderr, data),
  });
  Deno.exit(code);
}
