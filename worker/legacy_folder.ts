/**
 * The layout of the worker's bookkeeping before its journals: one JSON file per attempt in a
 * folder (state_dir/running, state_dir/outbox). A worker upgraded in place moves what it finds
 * there into the journal that replaced the folder, at start, before anything else uses the
 * journal; then it removes each file, and the folder once it is empty. A crash half-way leaves
 * files whose entries are in the journal already: the next start puts them again, unchanged.
 */
import type { Logger } from "../shared/log.ts";
import { JournalFile } from "./journal_file.ts";

export interface LegacyFolder<V> {
  dir: string;
  /** The entry a file holds, or undefined when it holds none. */
  parse: (data: unknown) => V | undefined;
  keyOf: (value: V) => string;
  /**
   * A `.json` file that holds no entry: removed with a warning (a running record nobody can
   * use), or kept with a warning for a person to look at (a report), as the old worker did.
   */
  unreadable: "remove" | "keep";
  log: Logger;
}

/**
 * Opens the journal at `path` (its values checked as the folder's are) and moves the folder's
 * entries into it. A journal that cannot take them is closed again.
 */
export async function openJournalFrom<V>(
  path: string,
  folder: LegacyFolder<V>,
): Promise<JournalFile<V>> {
  const journal = await JournalFile.open({ path, parse: folder.parse, log: folder.log });
  try {
    await moveIntoJournal(folder, journal);
  } catch (e) {
    journal.close();
    throw e;
  }
  return journal;
}

/** Puts the folder's entries into the journal and removes their files; how many it moved. */
export async function moveIntoJournal<V>(
  folder: LegacyFolder<V>,
  journal: JournalFile<V>,
): Promise<number> {
  const names: string[] = [];
  try {
    for await (const entry of Deno.readDir(folder.dir)) if (entry.isFile) names.push(entry.name);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return 0;
    throw e;
  }
  let moved = 0;
  for (const name of names.sort()) {
    const path = `${folder.dir}/${name}`;
    if (name.endsWith(".json.tmp")) {
      // A write cut before its rename: the entry was never kept (its attempt's running record
      // outlived it, and the attempt was reported from that).
      await Deno.remove(path).catch(() => {});
      continue;
    }
    if (!name.endsWith(".json")) continue;
    let value: V | undefined;
    try {
      value = folder.parse(JSON.parse(await Deno.readTextFile(path)));
    } catch {
      // Not an entry; said below.
    }
    if (value === undefined) {
      if (folder.unreadable === "remove") {
        folder.log.warn("removing an unreadable file of the old state_dir layout", { path });
        await Deno.remove(path).catch(() => {});
      } else {
        folder.log.warn("ignoring an unreadable file of the old state_dir layout", { path });
      }
      continue;
    }
    journal.put(folder.keyOf(value), value);
    // Not best effort: a file left here would bring its entry back at every start, after the
    // journal has forgotten it.
    await Deno.remove(path);
    moved++;
  }
  // Kept when something is left in it (an unreadable report, a file that is not ours).
  await Deno.remove(folder.dir).catch(() => {});
  return moved;
}
