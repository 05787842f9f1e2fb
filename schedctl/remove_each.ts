/**
 * `workers rm` and `tasks rm`: one call per id, in turn. An id the manager refuses (unknown,
 * or not in a state to be removed) does not stop the others; anything else (the manager out
 * of reach) stops the command, as every command does.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { parseCommandArgs } from "./args.ts";
import type { OperatorClient } from "./client.ts";
import { type CommandContext, type Invocation, printJson } from "./command.ts";
import { EXIT_FAILURE, UsageError } from "./errors.ts";
import { visible } from "./format.ts";

/**
 * Parses `tasks rm ID...` or `workers rm ID...`: at least one ID, none empty, no options; the
 * command then removes each with `remove`.
 */
export function parseRemove(
  args: readonly string[],
  target: "tasks" | "workers",
  help: string,
  remove: (client: OperatorClient, id: string) => Promise<unknown>,
): Invocation {
  const command = `${target} rm`;
  const noun = target.slice(0, -1);
  const parsed = parseCommandArgs(args, [], command, target);
  if (parsed.help) return { help };
  const ids = parsed.positionals;
  if (ids.length === 0) throw new UsageError(`${command}: missing the ${noun} ID`, target);
  if (ids.includes("")) throw new UsageError(`${command}: a ${noun} ID is empty`, target);
  return {
    run: (context) => removeEach(context, command, ids, (id) => remove(context.client, id)),
  };
}

export async function removeEach(
  context: CommandContext,
  command: string,
  ids: readonly string[],
  remove: (id: string) => Promise<unknown>,
): Promise<number> {
  const results: { id: string; removed: boolean; reason?: string }[] = [];
  for (const id of ids) {
    try {
      await remove(id);
      results.push({ id, removed: true });
    } catch (e) {
      const refused = e instanceof ConnectError &&
        (e.code === Code.NotFound || e.code === Code.FailedPrecondition);
      if (!refused) throw e;
      results.push({ id, removed: false, reason: e.rawMessage });
    }
  }
  const refused = results.filter((r) => !r.removed);
  if (context.output === "json") {
    printJson(context, results);
  } else {
    const removed = results.filter((r) => r.removed);
    context.stdout(removed.map((r) => `${visible(r.id)}  removed\n`).join(""));
    for (const r of refused) context.stderr(`schedctl: ${command}: ${r.reason}\n`);
  }
  return refused.length === 0 ? 0 : EXIT_FAILURE;
}
