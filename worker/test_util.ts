/** Helpers for the worker's tests that run real processes. Not used by the worker itself. */
import { concatBytes } from "../shared/bytes.ts";
import { silentLogger } from "../shared/log.ts";
import type { OutputSink } from "./executor.ts";
import { JournalFile } from "./journal_file.ts";
import { groupMembers as livingGroup } from "./proc.ts";

/** The processes (not zombies) whose process group is `pgid`, from /proc. */
export async function groupMembers(pgid: number): Promise<number[]> {
  return (await livingGroup(pgid)).map((p) => p.pid);
}

/** The entries a journal file holds, as the worker's next life would read them. */
export async function readJournal(path: string): Promise<Map<string, unknown>> {
  const journal = await JournalFile.open({ path, parse: (value) => value, log: silentLogger });
  try {
    return new Map(journal.entries());
  } finally {
    journal.close();
  }
}

/** Kills whatever is left of a process group (test cleanup). */
export function killGroup(pgid: number | undefined): void {
  if (pgid === undefined) return;
  try {
    Deno.kill(-pgid, "SIGKILL");
  } catch {
    // Nothing left.
  }
}

/** An output sink that keeps every byte and lets a test wait for some text to appear. */
export class RecordingSink implements OutputSink {
  readonly chunks: Uint8Array[] = [];
  #waiters: { text: string; resolve: () => void }[] = [];

  write(chunk: Uint8Array): Promise<void> {
    this.chunks.push(chunk);
    const text = this.text();
    this.#waiters = this.#waiters.filter((w) => {
      if (!text.includes(w.text)) return true;
      w.resolve();
      return false;
    });
    return Promise.resolve();
  }

  bytes(): Uint8Array {
    return concatBytes(this.chunks);
  }

  text(): string {
    return new TextDecoder().decode(this.bytes());
  }

  /** Resolves once the output contains `text`. */
  waitFor(text: string): Promise<void> {
    if (this.text().includes(text)) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push({ text, resolve }));
  }
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `check` every 20 ms until it holds or `timeoutMs` passes. */
export async function eventually(
  check: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 5000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(20);
  }
}

/** Runs `fn` with a new temporary folder, removed afterwards whatever happens. */
export async function withTempDir(
  prefix: string,
  fn: (dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
