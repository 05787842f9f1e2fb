/**
 * Many keyed deadlines on one runtime timer. The manager gives every task it sends a deadline
 * for its acknowledgement: a runtime timer each, set and cleared once per task, was a few
 * percent of its CPU while placing thousands of tasks a second (each timer an object, a
 * closure and a timer-list entry for the collector to trace). Here a deadline is an entry in
 * a binary heap; clearing one only forgets it, and the heap drops forgotten entries as the
 * timer passes them, or all at once when they outnumber the live ones.
 */
import type { Clock } from "./clock.ts";

interface Entry<K> {
  key: K;
  at: number;
  fn: () => void;
  seq: number;
}

export class DeadlineTimers<K> {
  readonly #clock: Clock;
  readonly #live = new Map<K, Entry<K>>();
  #heap: Entry<K>[] = [];
  #seq = 0;
  #timer: unknown;
  /** When the runtime timer is due; undefined when none is set. */
  #timerAt: number | undefined;

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  /** Deadlines set and not yet fired or cleared. */
  get size(): number {
    return this.#live.size;
  }

  has(key: K): boolean {
    return this.#live.has(key);
  }

  /**
   * Calls `fn` once the clock reaches `at` (a time on the clock, not a delay), unless the key
   * is cleared or set again first; a key's new deadline replaces its old one.
   */
  set(key: K, at: number, fn: () => void): void {
    const entry = { key, at, fn, seq: this.#seq++ };
    this.#live.set(key, entry);
    this.#push(entry);
    if (this.#heap.length > 2 * this.#live.size + 1024) this.#compact();
    if (this.#timerAt === undefined || at < this.#timerAt) this.#arm(at);
  }

  clear(key: K): void {
    this.#live.delete(key);
  }

  /** Forgets every deadline and stops the runtime timer. */
  clearAll(): void {
    this.#live.clear();
    this.#heap = [];
    this.#disarm();
  }

  #arm(at: number): void {
    this.#disarm();
    this.#timerAt = at;
    this.#timer = this.#clock.setTimeout(() => this.#fire(), Math.max(0, at - this.#clock.now()));
  }

  #disarm(): void {
    if (this.#timerAt === undefined) return;
    this.#clock.clearTimeout(this.#timer);
    this.#timerAt = undefined;
  }

  #fire(): void {
    this.#timerAt = undefined;
    const now = this.#clock.now();
    // Deadlines set by the callbacks below wait for the next turn of the timer, even when
    // already due, as they would with a runtime timer each.
    const lastSeq = this.#seq;
    let failure: { error: unknown } | undefined;
    for (;;) {
      const head = this.#heap[0];
      if (!head || head.at > now || head.seq >= lastSeq) break;
      this.#pop();
      if (this.#live.get(head.key) !== head) continue;
      this.#live.delete(head.key);
      try {
        head.fn();
      } catch (error) {
        failure ??= { error };
      }
    }
    this.#dropForgottenHead();
    const next = this.#heap[0];
    if (next && this.#timerAt === undefined) this.#arm(next.at);
    // As a runtime timer's callback would, a throwing one surfaces (after the others ran).
    if (failure) throw failure.error;
  }

  #dropForgottenHead(): void {
    while (this.#heap.length > 0 && this.#live.get(this.#heap[0].key) !== this.#heap[0]) {
      this.#pop();
    }
  }

  #compact(): void {
    this.#heap = [...this.#live.values()].sort(before);
  }

  #push(entry: Entry<K>): void {
    const heap = this.#heap;
    let i = heap.length;
    heap.push(entry);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (before(heap[parent], entry) <= 0) break;
      heap[i] = heap[parent];
      i = parent;
    }
    heap[i] = entry;
  }

  #pop(): void {
    const heap = this.#heap;
    const last = heap.pop()!;
    if (heap.length === 0) return;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= heap.length) break;
      const right = left + 1;
      const child = right < heap.length && before(heap[right], heap[left]) < 0 ? right : left;
      if (before(last, heap[child]) <= 0) break;
      heap[i] = heap[child];
      i = child;
    }
    heap[i] = last;
  }
}

/** Earlier deadline first; among equal ones, the one set first. */
function before<K>(a: Entry<K>, b: Entry<K>): number {
  return a.at - b.at || a.seq - b.seq;
}
