/**
 * Compacts the store's history (etcd's past versions of every key) on a timer, as
 * Kubernetes' API server does for its etcd. etcd keeps every version until told otherwise,
 * and a task is written three or more times, so without this its database reaches its quota
 * (2 GiB by default) after about 1.4 million tasks and then refuses every write.
 *
 * Each round compacts to the revision the round before saw, so at least one interval of
 * history stays for whoever reads it (etcdctl, a watch). The manager itself never reads an
 * old version: its compares look only at the latest.
 */
import type { Clock } from "../shared/clock.ts";
import { systemClock } from "../shared/clock.ts";
import type { Logger } from "../shared/log.ts";
import type { StoreHistory } from "../shared/store/store.ts";

export interface HistoryCompactorOptions {
  history: StoreHistory;
  intervalMs: number;
  log: Logger;
  clock?: Clock;
}

export class HistoryCompactor {
  readonly #options: HistoryCompactorOptions;
  readonly #clock: Clock;
  #timer: unknown;
  /** The revision the last round saw: the next round compacts to it. */
  #seen: bigint | undefined;
  /** The highest revision compacted to (by us, or found compacted already). */
  #compacted = 0n;
  #round: Promise<void> | undefined;
  #failing = false;

  constructor(options: HistoryCompactorOptions) {
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
  }

  /** Starts the rounds: the first one an interval from now, and one every interval after. */
  start(): void {
    this.#timer ??= this.#clock.setInterval(() => {
      // A round that outlives its interval (a slow store) is not run twice at once.
      this.#round ??= this.#compactOnce().finally(() => this.#round = undefined);
    }, this.#options.intervalMs);
  }

  /** Stops the rounds and waits for one under way. */
  async stop(): Promise<void> {
    if (this.#timer !== undefined) this.#clock.clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#round;
  }

  async #compactOnce(): Promise<void> {
    const { history, log } = this.#options;
    try {
      const now = await history.revision();
      const target = this.#seen;
      this.#seen = now;
      if (target !== undefined && target > this.#compacted) {
        const compacted = await history.compact(target);
        this.#compacted = target;
        if (compacted) log.info("compacted the store's history", { revision: target });
        else log.debug("the store's history was compacted already", { revision: target });
      }
      if (this.#failing) log.info("compacting the store's history again");
      this.#failing = false;
    } catch (cause) {
      // Once per outage: the store's unavailability is told elsewhere too.
      if (!this.#failing) log.warn("cannot compact the store's history yet; will retry", { cause });
      this.#failing = true;
    }
  }
}
