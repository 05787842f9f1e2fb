/**
 * `workers rm` and `tasks rm`: one call per id, in turn. An id the manager refuses (unknown,
 * or not in a state to be removed) does not stop the others; anything else (the manager out
 * of reach) stops the command, as every command does.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { type CommandContext, printJson } from "./command.ts";
import { EXIT_FAILURE } from "./errors.ts";
import { visible } from "./format.ts";

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
