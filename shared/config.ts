/**
 * Loading the YAML config files of all three programs: one place that turns a file into a
 * validated object, or into one line naming the file and the key that is wrong.
 */
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { parseDuration } from "./duration.ts";
import { parseSize } from "./size.ts";

/** A config file that cannot be used; `message` is the one line to show. Exit code 2. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/** A duration string ("500ms", "5s", "2m") read into milliseconds. */
export const durationSchema = z.string().transform((text, ctx) => {
  try {
    return parseDuration(text);
  } catch (e) {
    ctx.addIssue({ code: "custom", message: (e as Error).message });
    return z.NEVER;
  }
});

/** A size ("64KiB", "1MiB", or a number of bytes) read into bytes. */
export const sizeSchema = z.union([z.number().int().nonnegative(), z.string()]).transform(
  (value, ctx) => {
    if (typeof value === "number") return value;
    try {
      return parseSize(value);
    } catch (e) {
      ctx.addIssue({ code: "custom", message: (e as Error).message });
      return z.NEVER;
    }
  },
);

/** Validates already-parsed data; `source` names where it came from in messages. */
export function validateConfig<S extends z.ZodType>(
  source: string,
  data: unknown,
  schema: S,
): z.output<S> {
  const result = schema.safeParse(data ?? {});
  if (result.success) return result.data;
  // An unknown key usually explains the other issues (a misspelt key is also a missing one).
  const issue = result.error.issues.find((i) => i.code === "unrecognized_keys") ??
    result.error.issues[0];
  throw new ConfigError(`${source}: ${describeIssue(issue)}`);
}

/** Reads and validates a YAML config file. */
export async function loadConfigFile<S extends z.ZodType>(
  path: string,
  schema: S,
): Promise<z.output<S>> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    const why = e instanceof Deno.errors.NotFound ? "no such file" : (e as Error).message;
    throw new ConfigError(`${path}: cannot read the config file: ${why}`);
  }
  let data: unknown;
  try {
    data = parseYaml(text);
  } catch (e) {
    const first = (e as Error).message.split("\n")[0];
    throw new ConfigError(`${path}: not valid YAML: ${first}`);
  }
  if (data !== null && data !== undefined && (typeof data !== "object" || Array.isArray(data))) {
    throw new ConfigError(`${path}: expected a mapping of keys to values at the top level`);
  }
  return validateConfig(path, data, schema);
}

function describeIssue(issue: z.core.$ZodIssue): string {
  const key = issue.path.map(String).join(".");
  if (issue.code === "unrecognized_keys") {
    const where = key ? `${key}.` : "";
    return `unknown key ${issue.keys.map((k) => `"${where}${k}"`).join(", ")}`;
  }
  const at = key ? `${key}: ` : "";
  if (issue.code === "invalid_type") {
    const received = issue.message.split("received ")[1];
    if (received === "undefined") return `${at}required, but missing`;
    return `${at}expected ${issue.expected}${received ? `, not ${received}` : ""}`;
  }
  return `${at}${issue.message}`;
}
