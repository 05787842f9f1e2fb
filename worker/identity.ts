/**
 * The worker's id: chosen once and kept in state_dir, so that a restarted worker is the same
 * worker to the manager.
 */
import { createWorkerId } from "../shared/ids.ts";

const ID_FILE = "worker-id";

export async function loadOrCreateWorkerId(
  stateDir: string,
  random: () => number = Math.random,
): Promise<string> {
  const path = `${stateDir}/${ID_FILE}`;
  try {
    const id = (await Deno.readTextFile(path)).trim();
    if (id !== "") return id;
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  const id = createWorkerId(random);
  // Written to a temporary file first so a crash never leaves a half-written id behind.
  await Deno.writeTextFile(`${path}.tmp`, `${id}\n`);
  await Deno.rename(`${path}.tmp`, path);
  return id;
}
