/**
 * Placement: which worker gets a task. A pipeline of filters (yes, or no with a reason) and
 * one scorer chosen by the `scheduler` setting, assembled in one place (`createPlacer`). A task
 * that cannot be placed is told why, per reason and count: "0/5 workers fit: 3 lack memory,
 * 1 is draining, 1 lacks label gpu=true".
 */
import { formatSize } from "../shared/size.ts";
import type { Capacity, LabelConstraint, WorkerRecord } from "../shared/task.ts";
import type { SchedulerName } from "./config.ts";

/** What placement needs to know about a worker. */
export interface Candidate {
  id: string;
  connected: boolean;
  draining: boolean;
  labels: Record<string, string>;
  capacity: Capacity;
  /** What its unfinished tasks take. */
  used: Capacity;
}

/** What a task asks of its worker. */
export interface TaskNeeds {
  cpu?: number;
  memoryBytes?: number;
  labels?: LabelConstraint[];
  pinWorkerId?: string;
}

/** Why a worker was turned down, said of one worker and of several. */
export interface Rejection {
  one: string;
  many: string;
}

/** A filter returns undefined when the worker may take the task, else why not. */
export type Filter = (worker: Candidate, task: TaskNeeds) => Rejection | undefined;

/**
 * Picks one worker among those that pass every filter. `choose` finds the pick without
 * listing the fitting workers first, so that most placements look at a few workers, not all.
 */
export interface Scorer {
  /** The pick among `workers`, which all fit. */
  pick(workers: Candidate[], task: TaskNeeds): Candidate;
  /** The pick among the workers of `pool` that `fits`; undefined when none does. */
  choose(
    pool: CandidatePool,
    task: TaskNeeds,
    fits: (w: Candidate) => boolean,
  ): Candidate | undefined;
}

export type Placement =
  | { ok: true; workerId: string }
  | { ok: false; reason: string };

const rejection = (one: string, many: string): Rejection => ({ one, many });

export const isConnected: Filter = (w) =>
  w.connected ? undefined : rejection("is disconnected", "are disconnected");

export const isNotDraining: Filter = (w) =>
  w.draining ? rejection("is draining", "are draining") : undefined;

export const isPinnedWorker: Filter = (w, task) =>
  !task.pinWorkerId || task.pinWorkerId === w.id
    ? undefined
    : rejection(`is not worker ${task.pinWorkerId}`, `are not worker ${task.pinWorkerId}`);

export const hasLabels: Filter = (w, task) => {
  for (const c of task.labels ?? []) {
    const value = w.labels[c.key];
    if (c.op === "exists" && value === undefined) {
      return rejection(`lacks label ${c.key}`, `lack label ${c.key}`);
    }
    if (c.op === "=" && value !== c.value) {
      return rejection(`lacks label ${c.key}=${c.value}`, `lack label ${c.key}=${c.value}`);
    }
    if (c.op === "!=" && value === c.value) {
      return rejection(`has label ${c.key}=${c.value}`, `have label ${c.key}=${c.value}`);
    }
  }
  return undefined;
};

/** A slot, or a place in the worker's queue (see `roomOf`). */
export const hasFreeSlot: Filter = (w) =>
  w.used.slots < roomOf(w) ? undefined : rejection("has no free slot", "have no free slot");

/**
 * How many unfinished tasks a worker takes: its slots, and as many more as its queue holds
 * (acknowledged, started as slots free, so that a slot does not wait for the manager between
 * two tasks).
 */
export function roomOf(w: Candidate): number {
  return w.capacity.slots + (w.capacity.queue ?? 0);
}

/** Whether a task placed on the worker would start at once rather than wait in its queue. */
function hasIdleSlot(w: Candidate): boolean {
  return w.used.slots < w.capacity.slots;
}

export const hasCpu: Filter = (w, task) =>
  (task.cpu ?? 0) <= w.capacity.cpu - w.used.cpu + 1e-9
    ? undefined
    : rejection("lacks cpu", "lack cpu");

export const hasMemory: Filter = (w, task) =>
  (task.memoryBytes ?? 0) <= w.capacity.memoryBytes - w.used.memoryBytes
    ? undefined
    : rejection("lacks memory", "lack memory");

/** Every filter, in the order their reasons are most useful to an operator. */
export const FILTERS: Filter[] = [
  isConnected,
  isPinnedWorker,
  hasLabels,
  isNotDraining,
  hasFreeSlot,
  hasCpu,
  hasMemory,
];

/**
 * The filters about what a worker is, not what it is doing now: a task failing them on every
 * worker ever seen can never run (unless such a worker comes).
 */
export const STATIC_FILTERS: Filter[] = [isPinnedWorker, hasLabels, fitsAtAll];

function fitsAtAll(w: Candidate, task: TaskNeeds): Rejection | undefined {
  if ((task.cpu ?? 0) > w.capacity.cpu + 1e-9) {
    return rejection(`offers ${w.capacity.cpu} cpu`, "offer less cpu");
  }
  if ((task.memoryBytes ?? 0) > w.capacity.memoryBytes) {
    return rejection(`offers ${formatSize(w.capacity.memoryBytes)} memory`, "offer less memory");
  }
  return undefined;
}

/** How loaded a worker is, 0 to 1, by its busiest dimension; with `adding` placed on it too. */
export function load(w: Candidate, adding?: TaskNeeds): number {
  return Math.max(
    share(w.used.slots + (adding ? 1 : 0), w.capacity.slots),
    share(w.used.cpu + (adding?.cpu ?? 0), w.capacity.cpu),
    share(w.used.memoryBytes + (adding?.memoryBytes ?? 0), w.capacity.memoryBytes),
  );
}

function share(used: number, total: number): number {
  return total > 0 ? used / total : used > 0 ? 1 : 0;
}

const byId = (a: Candidate, b: Candidate) => a.id < b.id ? -1 : a.id > b.id ? 1 : 0;

/**
 * Workers as one round of placement sees them: sorted by id once, found by id at once, and
 * charged for each task placed, so that a batch does not rebuild or sort the list per task.
 */
export class CandidatePool {
  /** In id order, which every scorer's tie-break and the round-robin rotation follow. */
  readonly workers: readonly Candidate[];
  readonly #byId = new Map<string, Candidate>();
  /** Workers that may take tasks (connected, not draining), and their free slots in all. */
  readonly openCount: number;
  #freeSlots = 0;
  /** Of those, the slots where a task would start at once, not wait in a queue. */
  #idleSlots = 0;

  constructor(workers: Candidate[]) {
    const sorted = workers.every((w, i) => i === 0 || workers[i - 1].id < w.id);
    this.workers = sorted ? workers : [...workers].sort(byId);
    let open = 0;
    for (const w of this.workers) {
      this.#byId.set(w.id, w);
      if (isOpen(w)) open++;
      this.#count(w, 1);
    }
    this.openCount = open;
  }

  /**
   * Free slots on the open workers, kept as room is taken and given back: with every slot
   * taken, a queue need not be tried task by task against every worker.
   */
  get freeSlots(): number {
    return this.#freeSlots;
  }

  /** Free slots where a task starts at once (free slots less free places in queues). */
  get idleSlots(): number {
    return this.#idleSlots;
  }

  #count(w: Candidate, sign: 1 | -1): void {
    if (!isOpen(w)) return;
    this.#freeSlots += sign * Math.max(0, roomOf(w) - w.used.slots);
    this.#idleSlots += sign * Math.max(0, w.capacity.slots - w.used.slots);
  }

  get size(): number {
    return this.workers.length;
  }

  get(id: string): Candidate | undefined {
    return this.#byId.get(id);
  }

  /** The index of the first worker whose id sorts after `id` (the size when none does). */
  indexAfter(id: string): number {
    let low = 0;
    let high = this.workers.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (this.workers[mid].id <= id) low = mid + 1;
      else high = mid;
    }
    return low;
  }

  /** Counts a task just placed, so the next placement in the round sees it. */
  takeRoom(workerId: string, task: TaskNeeds): void {
    const worker = this.#byId.get(workerId);
    if (!worker) return;
    this.#count(worker, -1);
    charge(worker, task);
    this.#count(worker, 1);
    this.#charged.add(workerId);
  }

  /** Workers charged by takeRoom since the last settle. */
  readonly #charged = new Set<string>();

  /**
   * Brings a pool kept between rounds up to date: the workers whose tasks changed, and those
   * charged for a placement since (whether or not it was stored), take their usage as it is.
   */
  settle(changed: Iterable<string>, usageOf: (workerId: string) => Readonly<Capacity>): void {
    for (const id of changed) this.#setUsed(id, usageOf(id));
    for (const id of this.#charged) this.#setUsed(id, usageOf(id));
    this.#charged.clear();
  }

  #setUsed(workerId: string, used: Readonly<Capacity>): void {
    const worker = this.#byId.get(workerId);
    if (!worker) return;
    this.#count(worker, -1);
    worker.used = { ...used };
    this.#count(worker, 1);
  }
}

function isOpen(w: Candidate): boolean {
  return w.connected && !w.draining;
}

const everyone = () => true;

/** A scorer whose `pick` is its `choose` over workers that all fit. */
function scorer(choose: Scorer["choose"]): Scorer {
  return { choose, pick: (workers, task) => choose(new CandidatePool(workers), task, everyone)! };
}

/** Round-robin over the eligible workers in id order, so the rotation is stable. */
export function createRoundRobin(): Scorer {
  let last = "";
  return scorer((pool, _task, fits) => {
    // The first fitting worker after the last one picked, wrapping around: usually the next.
    const n = pool.size;
    const start = pool.indexAfter(last);
    for (let k = 0; k < n; k++) {
      const w = pool.workers[(start + k) % n];
      if (fits(w)) {
        last = w.id;
        return w;
      }
    }
    return undefined;
  });
}

/** Every eligible worker equally likely. */
export function createRandom(random: () => number = Math.random): Scorer {
  return scorer((pool, _task, fits) => {
    // Drawing among all workers until one fits is still uniform among those that fit, and
    // needs no list of them while most fit; when few do, list them after all.
    const all = pool.workers;
    for (let tries = 0; tries < 8 && all.length > 0; tries++) {
      const w = all[Math.floor(random() * all.length)];
      if (fits(w)) return w;
    }
    const fit = all.filter(fits);
    return fit.length > 0 ? fit[Math.floor(random() * fit.length)] : undefined;
  });
}

/** The worker with the most room left: spreads load evenly. */
export function createLeastLoaded(): Scorer {
  return scorer((pool, _task, fits) => {
    let best: Candidate | undefined;
    let bestLoad = Infinity;
    // In id order, so the first of equally loaded workers is the one the tie-break wants.
    for (const w of pool.workers) {
      const l = load(w);
      if (l < bestLoad && fits(w)) {
        best = w;
        bestLoad = l;
      }
    }
    return best;
  });
}

/** The fullest worker that still fits: packs tasks tight and leaves whole workers free. */
export function createBinPack(): Scorer {
  return scorer((pool, task, fits) => {
    let best: Candidate | undefined;
    let bestLoad = -Infinity;
    for (const w of pool.workers) {
      const l = load(w, task);
      if (l > bestLoad && fits(w)) {
        best = w;
        bestLoad = l;
      }
    }
    return best;
  });
}

/**
 * Spreads tasks across the values of a label (racks, zones): the value with the fewest
 * running tasks wins, then the least loaded worker within it. Workers without the label form
 * one group of their own.
 */
export function createSpread(label: string): Scorer {
  return scorer((pool, _task, fits) => {
    const fit = pool.workers.filter(fits);
    const perValue = new Map<string, number>();
    for (const w of fit) {
      const value = w.labels[label] ?? "";
      perValue.set(value, (perValue.get(value) ?? 0) + w.used.slots);
    }
    let best: Candidate | undefined;
    let bestCount = Infinity;
    let bestLoad = Infinity;
    for (const w of fit) {
      const count = perValue.get(w.labels[label] ?? "")!;
      const l = load(w);
      if (count < bestCount || (count === bestCount && l < bestLoad)) {
        best = w;
        bestCount = count;
        bestLoad = l;
      }
    }
    return best;
  });
}

export function createScorer(
  name: SchedulerName,
  options: { random?: () => number; spreadLabel?: string } = {},
): Scorer {
  switch (name) {
    case "round-robin":
      return createRoundRobin();
    case "random":
      return createRandom(options.random);
    case "least-loaded":
      return createLeastLoaded();
    case "bin-pack":
      return createBinPack();
    case "spread":
      return createSpread(options.spreadLabel ?? "rack");
  }
}

export interface Placer {
  /** Places on one of `workers`; a pool lets a batch of placements share its index. */
  place(workers: Candidate[] | CandidatePool, task: TaskNeeds): Placement;
  /** The worker the scorer picks among those with an idle slot that fit, if any. */
  idleSlotFor(pool: CandidatePool, task: TaskNeeds): string | undefined;
}

export function createPlacer(scorer: Scorer, filters: Filter[] = FILTERS): Placer {
  return {
    place(workers, task) {
      const pool = workers instanceof CandidatePool ? workers : new CandidatePool(workers);
      if (pool.size === 0) return { ok: false, reason: "no worker is connected" };
      const fits = (w: Candidate) => firstRejection(filters, w, task) === undefined;
      // A worker with a slot free first: a queue is for when every fitting slot is taken.
      const chosen =
        (pool.idleSlots > 0
          ? scorer.choose(pool, task, (w) => hasIdleSlot(w) && fits(w))
          : undefined) ?? scorer.choose(pool, task, fits);
      if (chosen) return { ok: true, workerId: chosen.id };
      return {
        ok: false,
        reason: diagnose(pool.size, sift(pool.workers, task, filters).rejections),
      };
    },
    idleSlotFor(pool, task) {
      if (pool.idleSlots === 0) return undefined;
      return scorer.choose(
        pool,
        task,
        (w) => hasIdleSlot(w) && firstRejection(filters, w, task) === undefined,
      )?.id;
    },
  };
}

/**
 * Why a task could never run on any of `workers` (every worker ever seen), or undefined when
 * some worker could run it once it has room.
 */
export function neverFits(
  workers: Candidate[] | CandidatePool,
  task: TaskNeeds,
): string | undefined {
  const all = workers instanceof CandidatePool ? workers.workers : workers;
  if (all.length === 0) return undefined;
  // One worker that could run it settles it; only a refusal needs every worker's reason.
  if (all.some((w) => firstRejection(STATIC_FILTERS, w, task) === undefined)) return undefined;
  return diagnose(all.length, sift(all, task, STATIC_FILTERS).rejections);
}

/** Whether the worker, connected and in service, could run the task once it has room. */
export function couldRunOn(w: Candidate, task: TaskNeeds): boolean {
  return w.connected && !w.draining && firstRejection(STATIC_FILTERS, w, task) === undefined;
}

/** Whether a worker other than `workerId`, connected and in service, could run the task. */
export function fitsElsewhere(pool: CandidatePool, task: TaskNeeds, workerId: string): boolean {
  return pool.workers.some((w) => w.id !== workerId && couldRunOn(w, task));
}

function sift(workers: readonly Candidate[], task: TaskNeeds, filters: Filter[]) {
  const fit: Candidate[] = [];
  const rejections = new Map<string, { rejection: Rejection; count: number }>();
  for (const worker of workers) {
    const why = firstRejection(filters, worker, task);
    if (why === undefined) {
      fit.push(worker);
      continue;
    }
    const seen = rejections.get(why.many);
    if (seen) seen.count++;
    else rejections.set(why.many, { rejection: why, count: 1 });
  }
  return { fit, rejections };
}

function firstRejection(filters: Filter[], worker: Candidate, task: TaskNeeds) {
  for (const filter of filters) {
    const why = filter(worker, task);
    if (why !== undefined) return why;
  }
  return undefined;
}

/** "0/5 workers fit: 3 lack memory, 1 is draining" */
export function diagnose(
  total: number,
  rejections: Map<string, { rejection: Rejection; count: number }>,
): string {
  const parts = [...rejections.values()].sort((a, b) => b.count - a.count).map((
    { rejection, count },
  ) => `${count} ${count === 1 ? rejection.one : rejection.many}`);
  return `0/${total} workers fit: ${parts.join(", ")}`;
}

/**
 * What a worker offers. Workers that never said (older ones) offer their cores and memory and
 * one slot per core.
 */
export function capacityOf(worker: WorkerRecord): Capacity {
  const caps = worker.capabilities;
  return caps.capacity ?? {
    cpu: caps.cpuCores,
    memoryBytes: caps.memoryBytes,
    slots: Math.max(1, caps.cpuCores),
  };
}

export function candidateOf(worker: WorkerRecord, connected: boolean, used?: Capacity): Candidate {
  return {
    id: worker.id,
    connected,
    draining: worker.draining ?? false,
    labels: worker.capabilities.labels ?? {},
    capacity: capacityOf(worker),
    used: used ? { ...used } : { cpu: 0, memoryBytes: 0, slots: 0 },
  };
}

/** Counts a task just placed on a candidate, so the next placement in a batch sees it. */
export function takeRoom(candidates: Candidate[], workerId: string, task: TaskNeeds): void {
  const worker = candidates.find((c) => c.id === workerId);
  if (worker) charge(worker, task);
}

function charge(worker: Candidate, task: TaskNeeds): void {
  worker.used.slots += 1;
  worker.used.cpu += task.cpu ?? 0;
  worker.used.memoryBytes += task.memoryBytes ?? 0;
}
