/**
 * The worker's per-task bookkeeping files (state_dir/running, state_dir/outbox): small, local,
 * written and removed once per task. They are written synchronously on purpose: each call takes
 * microseconds, while Deno's async file calls go through its blocking thread pool and cost
 * several times as much CPU per call, which on a busy 2-core machine showed as a tenth of the
 * worker's time per task. Nothing here fsyncs: the files must survive the worker's death, not
 * the machine's.
 */

/** Writes the whole file under a temporary name and renames it: a crash leaves old or new. */
export function writeFileAtomicSync(path: string, text: string): void {
  Deno.writeTextFileSync(`${path}.tmp`, text);
  Deno.renameSync(`${path}.tmp`, path);
}

/** Removes the file; one that is already gone is fine. */
export function removeFileSync(path: string): void {
  try {
    Deno.removeSync(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}
