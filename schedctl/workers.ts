/** `schedctl workers`: the workers the manager knows. */
import { toJson } from "@bufbuild/protobuf";
import { WorkerSchema } from "../shared/gen/goschedule/v1/goschedule_pb.ts";
import { parseCommandArgs } from "./args.ts";
import {
  type CommandContext,
  type Invocation,
  JSON_OPTIONS,
  printJson,
  type Target,
} from "./command.ts";
import { UsageError } from "./errors.ts";
import { formatAgo, quoted, workerStateName } from "./format.ts";
import { formatTable } from "./table.ts";

const HELP = `Usage: schedctl [-c FILE] [-v] [-o table|json] workers COMMAND

Commands:
  ls      List the workers the manager knows, connected or not: ID, ADDRESS (as the
          manager sees the connection), HOSTNAME, STATE (connected or disconnected),
          TASKS (tasks placed on it and not yet done or dead), LAST SEEN.
          With -o json: a JSON array of the Worker objects.
  help    Print this text.
`;

const COLUMNS = [
  { header: "ID" },
  { header: "ADDRESS" },
  { header: "HOSTNAME" },
  { header: "STATE" },
  { header: "TASKS" },
  { header: "LAST SEEN" },
];

async function listWorkers(context: CommandContext): Promise<number> {
  const { workers } = await context.client.listWorkers({});
  if (context.output === "json") {
    printJson(context, workers.map((w) => toJson(WorkerSchema, w, JSON_OPTIONS)));
    return 0;
  }
  if (workers.length === 0) {
    context.stderr("No workers: none has connected to the manager yet.\n");
    return 0;
  }
  const now = context.now();
  context.stdout(formatTable(
    COLUMNS,
    workers.map((w) => [
      w.id,
      w.address || "-",
      w.hostname || "-",
      workerStateName(w.state),
      String(w.runningTasks),
      formatAgo(w.lastSeenAt, now),
    ]),
  ));
  return 0;
}

/** The `workers` target. */
export const workersTarget: Target = {
  name: "workers",
  summary: [["workers ls", "list the workers and their state"]],
  parse(command: string | undefined, args: readonly string[]): Invocation {
    switch (command) {
      case "help":
        return { help: HELP };
      case "ls": {
        const parsed = parseCommandArgs(args, [], "workers ls", "workers");
        if (parsed.help) return { help: HELP };
        if (parsed.positionals.length > 0) {
          throw new UsageError(
            `workers ls: unexpected argument ${quoted(parsed.positionals[0])}`,
            "workers",
          );
        }
        return { run: listWorkers };
      }
      case undefined:
        throw new UsageError("workers: missing command", "workers");
      default:
        throw new UsageError(`workers: unknown command ${quoted(command)}`, "workers");
    }
  },
};
