/**
 * A keyed store kept as an append-only file of JSON lines, for the worker's per-task
 * bookkeeping (state_dir/running.jsonl, state_dir/outbox.jsonl). Each put or delete is one
 * line added with one write() to a file kept open; opening the file replays its lines into
 * memory. It replaced a file per entry (written under a temporary name, renamed, later
 * removed): measured, those calls cost the worker about 0.15 ms of CPU per task, the same
 * records appended as lines to an open file less than 0.01 ms.
 *
 * The calls are synchronous on purpose: each takes microseconds, while Deno's async file calls
 * go through its blocking thread pool and cost several times as much CPU per call, which on a
 * busy 2-core machine showed as a tenth of the worker's time per task.
 *
 * Nothing here fsyncs: the file must survive the worker's death (SIGKILL), not the machine's.
 * A line written by one write() is in the file once the call returns, whatever happens to the
 * process next. Only a machine crash can leave a line cut short or unreadable; such a line is
 * skipped with a warning when the file is replayed, never fatal.
 */
import type { Logger } from "../shared/log.ts";

/**
 * The key of an attempt's entry in the worker's journals, as people read it in the files
 * ("t-1.2"): unique, since an attempt number has no dot.
 */
export function attemptEntryKey(taskId: string, attempt: number): string {
  return `${taskId}.${attempt}`;
}

/** One line of the file (short field names would save little; people read these files). */
type Line = { put: string; value: unknown } | { delete: string };

export interface JournalFileOptions<V> {
  path: string;
  /** The value of a put line as read back, or undefined when it is not one (line skipped). */
  parse: (value: unknown) => V | undefined;
  log: Logger;
}

/**
 * The file is rewritten with only its live entries once it is larger than this and more than
 * COMPACT_RATIO times as large as they are. Counted in bytes, not lines: a report line can hold
 * 128 KiB of output, so a rule in lines alone would let dead reports fill gigabytes.
 */
export const COMPACT_MIN_BYTES = 256 * 1024;
/**
 * A compaction writes the live bytes; it comes after at least (ratio - 1) times as many bytes
 * were appended, so it costs the appends a third of their own writes at most (amortised).
 */
export const COMPACT_RATIO = 4;

const encoder = new TextEncoder();

interface Entry<V> {
  value: V;
  /** Bytes of its put line, counted for the compaction rule. */
  bytes: number;
}

export class JournalFile<V> {
  readonly #options: JournalFileOptions<V>;
  readonly #entries: Map<string, Entry<V>>;
  #file: Deno.FsFile | undefined;
  /** Bytes in the file, and bytes of the live entries' put lines. */
  #fileBytes: number;
  #liveBytes: number;
  /** After a failed compaction, none is tried again before the file reaches this size. */
  #noCompactionBefore = 0;

  private constructor(
    options: JournalFileOptions<V>,
    entries: Map<string, Entry<V>>,
    fileBytes: number,
  ) {
    this.#options = options;
    this.#entries = entries;
    this.#fileBytes = fileBytes;
    this.#liveBytes = 0;
    for (const entry of entries.values()) this.#liveBytes += entry.bytes;
  }

  /** Reads and replays the file (a missing one is empty), then keeps it open for appending. */
  static async open<V>(options: JournalFileOptions<V>): Promise<JournalFile<V>> {
    let data = new Uint8Array();
    try {
      data = await Deno.readFile(options.path);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    const { entries, unreadable } = replay(data, options.parse);
    const journal = new JournalFile(options, entries, data.length);
    // What a compaction cut short left behind; never read.
    await Deno.remove(`${options.path}.tmp`).catch(() => {});
    if (unreadable > 0) {
      options.log.warn("ignoring unreadable lines of a journal (left by a machine crash?)", {
        path: options.path,
        lines: unreadable,
      });
      // Rewritten at once, so that the next line does not continue a cut one.
      journal.#rewrite();
    } else {
      journal.#file = Deno.openSync(options.path, { append: true, create: true });
    }
    return journal;
  }

  get path(): string {
    return this.#options.path;
  }

  get size(): number {
    return this.#entries.size;
  }

  has(key: string): boolean {
    return this.#entries.has(key);
  }

  get(key: string): V | undefined {
    return this.#entries.get(key)?.value;
  }

  /** The live entries, in the order they were first put. */
  *entries(): IterableIterator<[string, V]> {
    for (const [key, entry] of this.#entries) yield [key, entry.value];
  }

  /** Sets `key` to `value`: kept in the file once this returns. */
  put(key: string, value: V): void {
    const bytes = this.#append({ put: key, value });
    this.#liveBytes += bytes - (this.#entries.get(key)?.bytes ?? 0);
    this.#entries.set(key, { value, bytes });
    this.#compactIfWasteful();
  }

  /** Removes `key`; one that is not there is fine (and writes nothing). */
  delete(key: string): void {
    const entry = this.#entries.get(key);
    if (!entry) return;
    this.#append({ delete: key });
    this.#entries.delete(key);
    this.#liveBytes -= entry.bytes;
    this.#compactIfWasteful();
  }

  close(): void {
    this.#file?.close();
    this.#file = undefined;
  }

  /** Appends one whole line; returns its bytes. */
  #append(line: Line): number {
    if (!this.#file) throw new Error(`the journal ${this.#options.path} is closed`);
    const file = this.#file;
    const bytes = encoder.encode(JSON.stringify(line) + "\n");
    try {
      // One call writes it all; the loop is for a short write (a full disk), whose next call
      // writes the rest or throws.
      for (let done = 0; done < bytes.length;) done += file.writeSync(bytes.subarray(done));
    } catch (e) {
      // A part of the line may be in the file: cut it off, or the next line would continue it
      // and be lost with it.
      file.truncateSync(this.#fileBytes);
      throw e;
    }
    this.#fileBytes += bytes.length;
    return bytes.length;
  }

  #compactIfWasteful(): void {
    if (
      this.#fileBytes <= COMPACT_MIN_BYTES || this.#fileBytes <= COMPACT_RATIO * this.#liveBytes ||
      this.#fileBytes < this.#noCompactionBefore
    ) {
      return;
    }
    try {
      this.#rewrite();
    } catch (e) {
      // The lines are all in the old file, which stays open: nothing is lost, it is only longer.
      this.#noCompactionBefore = this.#fileBytes + COMPACT_MIN_BYTES;
      this.#options.log.warn("cannot compact a journal; it keeps its old lines for now", {
        path: this.#options.path,
        cause: e,
      });
    }
  }

  /**
   * Writes the live entries to a new file and renames it over the old: a crash leaves the old
   * file or the new, both whole. The new file is opened before the rename, so a failure at any
   * step leaves the old one in use.
   */
  #rewrite(): void {
    const tmp = `${this.#options.path}.tmp`;
    const lines: string[] = [];
    let liveBytes = 0;
    for (const [key, entry] of this.#entries) {
      const line = JSON.stringify({ put: key, value: entry.value }) + "\n";
      entry.bytes = encoder.encode(line).length;
      liveBytes += entry.bytes;
      lines.push(line);
    }
    Deno.writeTextFileSync(tmp, lines.join(""));
    const file = Deno.openSync(tmp, { append: true });
    try {
      Deno.renameSync(tmp, this.#options.path);
    } catch (e) {
      file.close();
      throw e;
    }
    this.#file?.close();
    this.#file = file;
    this.#fileBytes = liveBytes;
    this.#liveBytes = liveBytes;
  }
}

/** The live entries the lines leave, and how many lines could not be read. */
function replay<V>(
  data: Uint8Array,
  parse: (value: unknown) => V | undefined,
): { entries: Map<string, Entry<V>>; unreadable: number } {
  const entries = new Map<string, Entry<V>>();
  let unreadable = 0;
  let start = 0;
  const decoder = new TextDecoder();
  while (start < data.length) {
    const end = data.indexOf(0x0a, start);
    if (end === -1) {
      // A last line without its newline: its write was cut short.
      unreadable++;
      break;
    }
    const line = readLine(decoder.decode(data.subarray(start, end)));
    const bytes = end + 1 - start;
    start = end + 1;
    if (line && "delete" in line) {
      entries.delete(line.delete);
      continue;
    }
    const value = line ? parse(line.value) : undefined;
    if (line === undefined || value === undefined) {
      unreadable++;
      continue;
    }
    entries.set(line.put, { value, bytes });
  }
  return { entries, unreadable };
}

function readLine(text: string): Line | undefined {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof data !== "object" || data === null) return undefined;
  const line = data as Record<string, unknown>;
  if (typeof line.delete === "string") return { delete: line.delete };
  if (typeof line.put === "string" && "value" in line) return { put: line.put, value: line.value };
  return undefined;
}

/** A record kept per attempt, under its attemptEntryKey. */
export interface AttemptKeyed {
  task_id: string;
  attempt: number;
}

/**
 * A journal of one record per attempt (state_dir/running.jsonl, queued.jsonl): opened once with
 * start(), each record written whole, read back as a list.
 */
export class AttemptJournal<R extends AttemptKeyed> {
  readonly #open: () => Promise<JournalFile<R>>;
  readonly #what: string;
  #journal: JournalFile<R> | undefined;

  /** `open` opens the file (and reads what a previous life left); `what` names it in errors. */
  constructor(readonly path: string, what: string, open: () => Promise<JournalFile<R>>) {
    this.#what = what;
    this.#open = open;
  }

  /** Opens the journal and reads the records a previous life left. Close it with close(). */
  async start(): Promise<void> {
    if (this.#journal) throw new Error(`the ${this.#what} are started already`);
    this.#journal = await this.#open();
  }

  /** Writes a record whole (one line of the journal), in place of any earlier one. */
  write(record: R): void {
    this.#opened().put(attemptEntryKey(record.task_id, record.attempt), record);
  }

  remove(taskId: string, attempt: number): void {
    this.#opened().delete(attemptEntryKey(taskId, attempt));
  }

  /** The records kept: those of a previous life, after start(), and those written since. */
  records(): R[] {
    return [...this.#opened().entries()].map(([, record]) => record);
  }

  close(): void {
    this.#journal?.close();
    this.#journal = undefined;
  }

  #opened(): JournalFile<R> {
    if (!this.#journal) throw new Error(`the ${this.#what} are not started`);
    return this.#journal;
  }
}
