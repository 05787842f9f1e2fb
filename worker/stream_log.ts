/**
 * One output stream of one attempt, kept in a file as the task writes it, bounded: when the
 * file passes the limit, it is rewritten with only its newest half and a first line saying how
 * many bytes were dropped in all. Each byte is copied at most once per rewrite and a rewrite
 * follows at least limit/2 new bytes, so the cost stays proportional to the output.
 *
 * Readers attach to take what the file holds and, when following, every later write as it
 * happens. Writes, rewrites and attaching take turns, so a reader sees each byte exactly once
 * and a rewrite does not disturb a follower.
 */
import type { Logger } from "../shared/log.ts";
import type { OutputSink } from "./executor.ts";

export interface LogReader {
  /** What the file holds when the reader attaches, drop marker included. */
  snapshot(data: Uint8Array): void;
  /** Bytes written after the snapshot, as they are written (followers only). */
  data(chunk: Uint8Array): void;
  /** Nothing more will come: the stream ended, or the reader did not follow. */
  end(): void;
  /**
   * Instead of a snapshot and end, to a follower of an attempt waiting in the worker's queue:
   * it was given back unstarted, and will print nothing here.
   */
  givenBack?(): void;
}

export interface StreamLogOptions {
  path: string;
  /** Bytes of output the file may hold before its oldest half is dropped. */
  limit: number;
  log: Logger;
}

/** The first line of a file whose oldest output was dropped to stay within the limit. */
export function dropMarker(droppedBytes: number): string {
  return `[go-schedule: ${droppedBytes} bytes dropped]\n`;
}

/** The kept end of a log file, for a report. */
export interface LogTail {
  text: string;
  /** True when output before the kept part exists, or existed and was dropped. */
  truncated: boolean;
}

const MARKER = /^\[go-schedule: \d+ bytes dropped\]\n/;

/**
 * The last `limit` bytes of output of a log file as text (no drop marker), reading only that
 * much; invalid UTF-8 becomes U+FFFD, as in a report's tail. A missing file is empty.
 */
export async function readLogTail(path: string, limit: number): Promise<LogTail> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return { text: "", truncated: false };
    throw e;
  }
  try {
    const size = (await file.stat()).size;
    const head = new Uint8Array(Math.min(size, 64));
    await readFull(file, head);
    const marker = new TextDecoder().decode(head).match(MARKER)?.[0].length ?? 0;
    const output = size - marker;
    const keep = Math.min(limit, output);
    const tail = new Uint8Array(keep);
    await file.seek(size - keep, Deno.SeekMode.Start);
    await readFull(file, tail);
    return {
      text: new TextDecoder("utf-8", { fatal: false }).decode(tail),
      truncated: marker > 0 || output > limit,
    };
  } finally {
    file.close();
  }
}

export class StreamLog implements OutputSink {
  readonly #options: StreamLogOptions;
  #file: Deno.FsFile | undefined;
  /** Bytes in the file, marker included. */
  #fileSize = 0;
  /** Bytes of output in the file (the file without its marker). */
  #outputSize = 0;
  #dropped = 0;
  #closed = false;
  /** Set when the file cannot be written (disk full, say): followers still get the output. */
  #broken = false;
  readonly #followers = new Set<LogReader>();
  #turn: Promise<unknown> = Promise.resolve();

  private constructor(options: StreamLogOptions) {
    this.#options = options;
  }

  /**
   * A stream whose file is created (or emptied) by its first output: a task that prints
   * nothing costs no file. Creating a file is a journaled change of its folder, which on a
   * disk shared with etcd's fsyncs can take milliseconds; readers take a missing file as
   * empty.
   */
  static create(options: StreamLogOptions): StreamLog {
    return new StreamLog(options);
  }

  get path(): string {
    return this.#options.path;
  }

  /** Appends output; never rejects (a file that cannot be written is logged once). */
  write(chunk: Uint8Array): Promise<void> {
    return this.#exclusive(async () => {
      if (this.#closed) return;
      if (!this.#broken) {
        try {
          // Synchronous: small, and the async call costs more than the open itself.
          this.#file ??= Deno.openSync(this.#options.path, {
            write: true,
            create: true,
            truncate: true,
          });
          await writeAll(this.#file, chunk);
          this.#fileSize += chunk.length;
          this.#outputSize += chunk.length;
          if (this.#outputSize > this.#options.limit) await this.#dropOldest();
        } catch (e) {
          this.#fail(e);
        }
      }
      for (const reader of this.#followers) reader.data(chunk);
    });
  }

  /** Ends the stream: followers get their end. */
  close(): Promise<void> {
    return this.#exclusive(() => {
      if (this.#closed) return;
      this.#closed = true;
      this.#file?.close();
      this.#file = undefined;
      for (const reader of this.#followers) reader.end();
      this.#followers.clear();
    });
  }

  /**
   * Gives the reader what the file holds now and, with `follow` while the stream is open,
   * every later write until close. Resolves to a function that detaches the reader.
   */
  attach(reader: LogReader, follow: boolean): Promise<() => void> {
    return this.#exclusive(async () => {
      let data: Uint8Array<ArrayBuffer> = new Uint8Array(0);
      try {
        data = await Deno.readFile(this.#options.path);
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
      }
      reader.snapshot(data);
      if (!follow || this.#closed) {
        reader.end();
        return () => {};
      }
      this.#followers.add(reader);
      return () => this.#followers.delete(reader);
    });
  }

  /** Rewrites the file with its newest limit/2 bytes of output under an updated marker. */
  async #dropOldest(): Promise<void> {
    const keep = Math.floor(this.#options.limit / 2);
    const path = this.#options.path;
    const kept = new Uint8Array(keep);
    const reader = await Deno.open(path, { read: true });
    try {
      await reader.seek(this.#fileSize - keep, Deno.SeekMode.Start);
      await readFull(reader, kept);
    } finally {
      reader.close();
    }
    const dropped = this.#dropped + this.#outputSize - keep;
    const marker = new TextEncoder().encode(dropMarker(dropped));
    const rewritten = new Uint8Array(marker.length + keep);
    rewritten.set(marker);
    rewritten.set(kept, marker.length);
    // A new file renamed over the old one: a crash leaves either the old file or the new one.
    await Deno.writeFile(`${path}.tmp`, rewritten);
    await Deno.rename(`${path}.tmp`, path);
    this.#file?.close();
    this.#file = undefined;
    this.#file = await Deno.open(path, { write: true, append: true });
    this.#dropped = dropped;
    this.#fileSize = rewritten.length;
    this.#outputSize = keep;
  }

  #fail(cause: unknown): void {
    this.#broken = true;
    try {
      this.#file?.close();
    } catch {
      // Already closed by the failed rewrite.
    }
    this.#file = undefined;
    this.#options.log.warn("cannot write a task's log file; its output is no longer kept", {
      path: this.#options.path,
      cause,
    });
  }

  /** Runs `fn` once every operation queued before it has finished. */
  #exclusive<T>(fn: () => T | Promise<T>): Promise<T> {
    const result = this.#turn.then(fn);
    this.#turn = result.catch(() => {});
    return result;
  }
}

async function writeAll(file: Deno.FsFile, data: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < data.length) offset += await file.write(data.subarray(offset));
}

async function readFull(file: Deno.FsFile, into: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < into.length) {
    const n = await file.read(into.subarray(offset));
    if (n === null) throw new Error("the log file is shorter than expected");
    offset += n;
  }
}
