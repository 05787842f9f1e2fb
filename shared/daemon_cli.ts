/**
 * The start of both daemons' main: `-f FILE`, `-v`, `-h`, then the config file. Either the
 * loaded config and a logger, or the exit code already decided (0 for help, 2 for a bad
 * argument or config, with the one line already printed).
 */
import { parseArgs } from "node:util";
import { ConfigError } from "./config.ts";
import { createLogger, type Logger } from "./log.ts";

export interface DaemonStart<C> {
  config: C;
  log: Logger;
}

export async function startDaemon<C>(
  program: string,
  usage: string,
  args: string[],
  load: (path: string) => Promise<C>,
): Promise<DaemonStart<C> | number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: {
        file: { type: "string", short: "f", default: `/etc/go-schedule/${program}.yaml` },
        verbose: { type: "boolean", short: "v", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
      strict: true,
      allowPositionals: false,
    });
  } catch (e) {
    console.error(`${program}: ${(e as Error).message}\n\n${usage}`);
    return 2;
  }
  if (parsed.values.help) {
    console.log(usage);
    return 0;
  }
  try {
    const config = await load(parsed.values.file);
    return { config, log: createLogger({ verbose: parsed.values.verbose }) };
  } catch (e) {
    if (e instanceof ConfigError) {
      console.error(`${program}: ${e.message}`);
      return 2;
    }
    throw e;
  }
}
