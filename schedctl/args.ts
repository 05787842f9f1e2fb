/**
 * Command-line parsing: the global options before the target, and the options of one
 * command. Pure; every mistake is a UsageError naming the bad value.
 */
import { UsageError } from "./errors.ts";
import { quoted } from "./format.ts";

/** The output formats of `-o`. */
export const OUTPUT_FORMATS = ["table", "json"] as const;
export type OutputFormat = typeof OUTPUT_FORMATS[number];

/** The global options and what follows them. */
export interface GlobalOptions {
  /** -c FILE: the config file; undefined when not given. */
  configPath?: string;
  /** -v: print debug detail on stderr. */
  verbose: boolean;
  /** -o table|json. */
  output: OutputFormat;
  /** -h / --help was given. */
  help: boolean;
  /** The target and everything after it, untouched. */
  rest: string[];
}

/**
 * Parses the global options, which come before the target: `-c FILE` (also `-cFILE`,
 * `--config FILE`, `--config=FILE`), `-v` (`--verbose`), `-o FORMAT` (`-oFORMAT`,
 * `--output FORMAT`, `--output=FORMAT`), `-h` (`--help`). `--` ends them.
 */
export function parseGlobalOptions(argv: readonly string[]): GlobalOptions {
  const options: GlobalOptions = { verbose: false, output: "table", help: false, rest: [] };
  let i = 0;
  const valueOf = (name: string, inline: string | undefined, what: string): string => {
    if (inline !== undefined) return inline;
    i++;
    if (i >= argv.length) throw new UsageError(`option ${name} needs ${what}`);
    return argv[i];
  };
  for (; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--") {
      i++;
      break;
    }
    if (!arg.startsWith("-") || arg === "-") break;
    const eq = arg.startsWith("--") ? arg.indexOf("=") : -1;
    const name = eq === -1 ? arg : arg.slice(0, eq);
    const inline = eq === -1 ? undefined : arg.slice(eq + 1);
    if (name === "-h" || name === "--help") {
      options.help = true;
    } else if (name === "-v" || name === "--verbose") {
      if (inline !== undefined) throw new UsageError(`option --verbose takes no value`);
      options.verbose = true;
    } else if (name === "-c" || name === "--config" || /^-c./.test(name)) {
      const path = name.length > 2 && !name.startsWith("--")
        ? name.slice(2)
        : valueOf(name, inline, "a file name");
      if (path === "") throw new UsageError(`option ${name} needs a file name`);
      options.configPath = path;
    } else if (name === "-o" || name === "--output" || /^-o./.test(name)) {
      const format = name.length > 2 && !name.startsWith("--")
        ? name.slice(2)
        : valueOf(name, inline, "a format (table or json)");
      if (!(OUTPUT_FORMATS as readonly string[]).includes(format)) {
        throw new UsageError(`unknown output format ${quoted(format)}: use table or json`);
      }
      options.output = format as OutputFormat;
    } else {
      throw new UsageError(`unknown option ${quoted(arg)}`);
    }
  }
  options.rest = argv.slice(i);
  return options;
}

/** The options one command accepts: each a flag or an option that takes a value. */
export interface OptionSpec {
  /** The option's names, long first: ["--file", "-f"]. */
  names: string[];
  /** True when the option takes a value (`--limit 5`, `--limit=5`, `-f FILE`). */
  takesValue: boolean;
  /** What the value is, for the message when it is missing: "a number". */
  valueHint?: string;
  /** True when the option may be given more than once (`--env A=1 --env B=2`). */
  repeatable?: boolean;
}

/** How parseCommandArgs reads a command line beyond its options. */
export interface ParseSettings {
  /**
   * The first positional ends the options: it and everything after it are positionals,
   * unchanged (`tasks add --env A=1 ls -la` runs `ls -la`).
   */
  stopAtPositional?: boolean;
  /** Added to the message about an unknown option, e.g. how to pass a CMD starting with '-'. */
  unknownOptionHint?: string;
}

/** What parseCommandArgs found: values by the option's first name, and the positionals. */
export interface ParsedArgs {
  /** An option's value, or true for a flag; absent when not given. */
  options: Map<string, string | true>;
  /** Every value of a repeatable option, in command-line order; absent when not given. */
  repeated: Map<string, string[]>;
  positionals: string[];
  /** -h / --help was given. */
  help: boolean;
}

/** Options that go before the target; named when they turn up after it. */
const GLOBAL_NAMES = ["-c", "--config", "-v", "--verbose", "-o", "--output"];

/**
 * Parses a command's arguments against its options. `--` ends the options; `-` is a
 * positional (stdin). `where` ("tasks ls") and `target` ("tasks") go into the messages.
 */
export function parseCommandArgs(
  args: readonly string[],
  specs: readonly OptionSpec[],
  where: string,
  target: string,
  settings: ParseSettings = {},
): ParsedArgs {
  const parsed: ParsedArgs = {
    options: new Map(),
    repeated: new Map(),
    positionals: [],
    help: false,
  };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--") {
      parsed.positionals.push(...args.slice(i + 1));
      break;
    }
    if (!arg.startsWith("-") || arg === "-") {
      if (settings.stopAtPositional) {
        parsed.positionals.push(...args.slice(i));
        break;
      }
      parsed.positionals.push(arg);
      continue;
    }
    if (arg === "-h" || arg === "--help") {
      parsed.help = true;
      continue;
    }
    const eq = arg.startsWith("--") ? arg.indexOf("=") : -1;
    const name = eq === -1 ? arg : arg.slice(0, eq);
    const spec = specs.find((s) => s.names.includes(name));
    if (spec === undefined) {
      if (GLOBAL_NAMES.includes(name) || /^-[co]./.test(name)) {
        const takesValue = ["-c", "--config", "-o", "--output"].includes(name) && eq === -1;
        const example = takesValue && i + 1 < args.length ? `${arg} ${args[i + 1]}` : arg;
        throw new UsageError(
          `${where}: ${name} is a global option and goes before the target: 'schedctl ${example} ${where} ...'`,
          target,
        );
      }
      const hint = settings.unknownOptionHint ? ` ${settings.unknownOptionHint}` : "";
      throw new UsageError(`${where}: unknown option ${quoted(arg)}${hint}`, target);
    }
    const key = spec.names[0];
    if (parsed.options.has(key) && !spec.repeatable) {
      throw new UsageError(`${where}: option ${name} is given twice`, target);
    }
    if (!spec.takesValue) {
      if (eq !== -1) throw new UsageError(`${where}: option ${name} takes no value`, target);
      parsed.options.set(key, true);
      continue;
    }
    let value: string;
    if (eq !== -1) {
      value = arg.slice(eq + 1);
    } else {
      i++;
      if (i >= args.length) {
        throw new UsageError(
          `${where}: option ${name} needs ${spec.valueHint ?? "a value"}`,
          target,
        );
      }
      value = args[i];
    }
    parsed.options.set(key, value);
    if (spec.repeatable) parsed.repeated.set(key, [...parsed.repeated.get(key) ?? [], value]);
  }
  return parsed;
}
