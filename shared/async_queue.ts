/**
 * An unbounded queue that is also an async iterable: the outgoing half of a bidi stream.
 * Producers push without waiting; the stream's writer pulls. `close()` ends the iteration
 * after what is queued has been taken.
 */
export class AsyncQueue<T> implements AsyncIterable<T> {
  #items: T[] = [];
  #waiter: ((result: IteratorResult<T>) => void) | undefined;
  #closed = false;

  get closed(): boolean {
    return this.#closed;
  }

  /** Queues an item; returns false when the queue is already closed (the item is dropped). */
  push(item: T): boolean {
    if (this.#closed) return false;
    const waiter = this.#waiter;
    if (waiter) {
      this.#waiter = undefined;
      waiter({ value: item, done: false });
    } else {
      this.#items.push(item);
    }
    return true;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return {
      next: () => {
        if (this.#items.length > 0) {
          return Promise.resolve({ value: this.#items.shift() as T, done: false });
        }
        if (this.#closed) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => this.#waiter = resolve);
      },
      return: () => {
        this.close();
        return Promise.resolve({ value: undefined, done: true });
      },
      // Connect's client calls throw() on the request stream when the call fails.
      throw: (error?: unknown) => {
        this.close();
        return Promise.reject(error);
      },
    };
  }
}
