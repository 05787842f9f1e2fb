/**
 * schedctl.yaml: where the manager is and how long to wait for it. Every key is optional;
 * a missing default file means the built-in defaults.
 */
import { z } from "zod";
import { ConfigError, durationSchema, loadConfigFile } from "../shared/config.ts";
import { type ClientTls, clientTlsSchema, readClientTls } from "../shared/tls.ts";

/** The file read when -c is not given; when it does not exist the defaults apply. */
export const DEFAULT_CONFIG_PATH = "/etc/go-schedule/schedctl.yaml";
export const DEFAULT_MANAGER = "http://127.0.0.1:7070";
export const DEFAULT_TIMEOUT_MS = 10_000;

/**
 * Reads a manager address into the base URL of its API: `host:port` gets `http://`, only
 * http and https are accepted, and a trailing slash is dropped. Throws a RangeError naming
 * the value.
 */
export function parseManagerUrl(text: string): string {
  const trimmed = text.trim();
  if (trimmed === "") throw new RangeError(`must not be empty; use e.g. ${DEFAULT_MANAGER}`);
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(trimmed)?.[1];
  if (scheme !== undefined && !/^https?$/i.test(scheme)) {
    throw new RangeError(`"${text}" uses the scheme ${scheme}: use http:// or https://`);
  }
  let url: URL;
  try {
    url = new URL(scheme === undefined ? `http://${trimmed}` : trimmed);
  } catch {
    throw new RangeError(`"${text}" is not a URL or host:port, e.g. ${DEFAULT_MANAGER}`);
  }
  if (url.search !== "" || url.hash !== "" || url.username !== "" || url.password !== "") {
    throw new RangeError(`"${text}" must not have credentials, a query or a fragment`);
  }
  return url.href.replace(/\/+$/, "");
}

const managerSchema = z.string().transform((text, ctx) => {
  try {
    return parseManagerUrl(text);
  } catch (e) {
    ctx.addIssue({ code: "custom", message: (e as Error).message });
    return z.NEVER;
  }
});

/** schedctl.yaml. */
export const schedctlConfigSchema = z.strictObject({
  /** The manager's URL, or host:port (http is assumed). */
  manager: managerSchema.default(DEFAULT_MANAGER),
  /** How long each call may take, e.g. "10s". */
  timeout: durationSchema
    .refine((ms) => ms > 0, { message: "must be longer than 0, e.g. 10s" })
    .default(DEFAULT_TIMEOUT_MS),
  /** For an https:// manager: the CA to trust, and a certificate if the manager asks for one. */
  tls: clientTlsSchema.optional(),
});

export type SchedctlConfig = z.output<typeof schedctlConfigSchema>;

/** The config in force and where it came from. */
export interface LoadedConfig {
  config: SchedctlConfig;
  /** The file read, or a note that the defaults apply. */
  source: string;
  /** The TLS files the config names, read. */
  tls?: ClientTls;
}

/**
 * Loads the config: the file given with -c (which must be readable), or else the default
 * file when it exists, or else the defaults. Throws ConfigError (exit code 2).
 */
export async function loadSchedctlConfig(
  explicitPath: string | undefined,
  defaultPath: string = DEFAULT_CONFIG_PATH,
): Promise<LoadedConfig> {
  if (explicitPath === undefined) {
    try {
      await Deno.stat(defaultPath);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        return {
          config: schedctlConfigSchema.parse({}),
          source: `built-in defaults (${defaultPath} does not exist)`,
        };
      }
      throw new ConfigError(`${defaultPath}: cannot read the config file: ${(e as Error).message}`);
    }
  }
  const path = explicitPath ?? defaultPath;
  const config = await loadConfigFile(path, schedctlConfigSchema);
  const tls = config.tls && await readClientTls(path, config.manager, config.tls);
  return { config, source: path, tls };
}
