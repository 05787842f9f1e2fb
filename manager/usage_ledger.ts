/**
 * What tasks take of each worker (slots, cpu, memory), kept by adding and taking back each
 * task's share as it comes and goes, with the workers whose share changed since last asked.
 */
import type { Capacity } from "../shared/task.ts";

/** cpu is kept in millionths of a core, so that adding and taking back stays exact. */
const MICRO = 1e6;
const NOTHING: Readonly<Capacity> = Object.freeze({ cpu: 0, memoryBytes: 0, slots: 0 });

export interface Needs {
  cpu?: number;
  memoryBytes?: number;
}

export class UsageLedger {
  readonly #usage = new Map<string, Capacity>();
  #changed = new Set<string>();

  /** Adds (sign 1) or takes back (-1) one task's share of a worker. */
  add(workerId: string, needs: Needs, sign: 1 | -1): void {
    let used = this.#usage.get(workerId);
    if (!used) this.#usage.set(workerId, used = { cpu: 0, memoryBytes: 0, slots: 0 });
    used.slots += sign;
    used.cpu += sign * Math.round((needs.cpu ?? 0) * MICRO);
    used.memoryBytes += sign * (needs.memoryBytes ?? 0);
    // A share may be taken back before it is added (see the manager's #reserved), so an entry
    // goes only once all of it is back to nothing.
    if (used.slots === 0 && used.cpu === 0 && used.memoryBytes === 0) this.#usage.delete(workerId);
    this.#changed.add(workerId);
  }

  of(workerId: string): Readonly<Capacity> {
    const used = this.#usage.get(workerId);
    return used ? { ...used, cpu: used.cpu / MICRO } : NOTHING;
  }

  /** The workers whose share changed since this was last called. */
  takeChanges(): Set<string> {
    const changed = this.#changed;
    this.#changed = new Set();
    return changed;
  }
}
