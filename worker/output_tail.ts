/**
 * Keeps the last `limit` bytes of a stream, so that a task printing gigabytes costs the
 * worker a fixed amount of memory; the end of the output is where errors usually are.
 */
export class OutputTail {
  readonly #limit: number;
  #chunks: Uint8Array[] = [];
  #size = 0;
  #truncated = false;

  constructor(limit: number) {
    this.#limit = limit;
  }

  /** True once bytes were dropped from the head. */
  get truncated(): boolean {
    return this.#truncated;
  }

  write(chunk: Uint8Array): void {
    if (chunk.length >= this.#limit) {
      this.#truncated ||= this.#size > 0 || chunk.length > this.#limit;
      this.#chunks = [chunk.slice(chunk.length - this.#limit)];
      this.#size = this.#limit;
      return;
    }
    this.#chunks.push(chunk);
    this.#size += chunk.length;
    while (this.#size > this.#limit) {
      const head = this.#chunks[0];
      const excess = this.#size - this.#limit;
      this.#truncated = true;
      if (head.length <= excess) {
        this.#chunks.shift();
        this.#size -= head.length;
      } else {
        this.#chunks[0] = head.slice(excess);
        this.#size -= excess;
      }
    }
  }

  /**
   * The kept bytes as text. Invalid UTF-8 (binary output, or a character cut at the head)
   * becomes U+FFFD rather than breaking the report.
   */
  text(): string {
    if (this.#size === 0) return "";
    const all = new Uint8Array(this.#size);
    let offset = 0;
    for (const chunk of this.#chunks) {
      all.set(chunk, offset);
      offset += chunk.length;
    }
    return decoder.decode(all);
  }
}

/** Shared: a decode without `stream` keeps no state between calls. */
const decoder = new TextDecoder("utf-8", { fatal: false });
