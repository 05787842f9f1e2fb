/**
 * Placement: which worker gets a task. A pipeline of filters (yes, or no with a reason) and
 * one scorer chosen by the `scheduler` setting, assembled in one place (`createPlacer`). A task
 * that cannot be placed is told why, per reason and count: "0/5 workers fit: 3 lack memory,
 * 1 is draining, 1 lacks label gpu=true".
 */
import { formatSize } from "../shared/size.ts";
import type { Capacity, LabelConstraint, TaskRecord, WorkerRecord } from "../shared/task.ts";
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

/** Picks one worker among those that passed every filter. */
export interface Scorer {
  pick(workers: Candidate[], task: TaskNeeds): Candidate;
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

export const hasFreeSlot: Filter = (w) =>
  w.used.slots < w.capacity.slots ? undefined : rejection("has no free slot", "have no free slot");

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
  const share = (used: number, total: number) => total > 0 ? used / total : used > 0 ? 1 : 0;
  return Math.max(
    share(w.used.slots + (adding ? 1 : 0), w.capacity.slots),
    share(w.used.cpu + (adding?.cpu ?? 0), w.capacity.cpu),
    share(w.used.memoryBytes + (adding?.memoryBytes ?? 0), w.capacity.memoryBytes),
  );
}

const byId = (a: Candidate, b: Candidate) => a.id < b.id ? -1 : a.id > b.id ? 1 : 0;

/** Round-robin over the eligible workers in id order, so the rotation is stable. */
export function createRoundRobin(): Scorer {
  let last = "";
  return {
    pick(workers) {
      const sorted = [...workers].sort(byId);
      const next = sorted.find((w) => w.id > last) ?? sorted[0];
      last = next.id;
      return next;
    },
  };
}

export function createRandom(random: () => number = Math.random): Scorer {
  return { pick: (workers) => workers[Math.floor(random() * workers.length)] };
}

/** The worker with the most room left: spreads load evenly. */
export function createLeastLoaded(): Scorer {
  return {
    pick: (workers) => [...workers].sort((a, b) => load(a) - load(b) || byId(a, b))[0],
  };
}

/** The fullest worker that still fits: packs tasks tight and leaves whole workers free. */
export function createBinPack(): Scorer {
  return {
    pick: (workers, task) =>
      [...workers].sort((a, b) => load(b, task) - load(a, task) || byId(a, b))[0],
  };
}

/**
 * Spreads tasks across the values of a label (racks, zones): the value with the fewest
 * running tasks wins, then the least loaded worker within it. Workers without the label form
 * one group of their own.
 */
export function createSpread(label: string): Scorer {
  return {
    pick(workers) {
      const perValue = new Map<string, number>();
      for (const w of workers) {
        const value = w.labels[label] ?? "";
        perValue.set(value, (perValue.get(value) ?? 0) + w.used.slots);
      }
      return [...workers].sort((a, b) =>
        (perValue.get(a.labels[label] ?? "")! - perValue.get(b.labels[label] ?? "")!) ||
        load(a) - load(b) || byId(a, b)
      )[0];
    },
  };
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
  place(workers: Candidate[], task: TaskNeeds): Placement;
}

export function createPlacer(scorer: Scorer, filters: Filter[] = FILTERS): Placer {
  return {
    place(workers, task) {
      if (workers.length === 0) return { ok: false, reason: "no worker is connected" };
      const { fit, rejections } = sift(workers, task, filters);
      if (fit.length > 0) return { ok: true, workerId: scorer.pick(fit, task).id };
      return { ok: false, reason: diagnose(workers.length, rejections) };
    },
  };
}

/**
 * Why a task could never run on any of `workers` (every worker ever seen), or undefined when
 * some worker could run it once it has room.
 */
export function neverFits(workers: Candidate[], task: TaskNeeds): string | undefined {
  if (workers.length === 0) return undefined;
  const { fit, rejections } = sift(workers, task, STATIC_FILTERS);
  return fit.length > 0 ? undefined : diagnose(workers.length, rejections);
}

function sift(workers: Candidate[], task: TaskNeeds, filters: Filter[]) {
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

/** What each worker's unfinished tasks take of it. */
export function usageByWorker(tasks: TaskRecord[]): Map<string, Capacity> {
  const usage = new Map<string, Capacity>();
  for (const task of tasks) {
    if (!task.workerId || task.attempt < 1 || task.state === "done" || task.state === "dead") {
      continue;
    }
    const used = usage.get(task.workerId) ?? { cpu: 0, memoryBytes: 0, slots: 0 };
    used.cpu += task.cpu ?? 0;
    used.memoryBytes += task.memoryBytes ?? 0;
    used.slots += 1;
    usage.set(task.workerId, used);
  }
  return usage;
}

/** Counts a task just placed on a candidate, so the next placement in a batch sees it. */
export function takeRoom(candidates: Candidate[], workerId: string, task: TaskNeeds): void {
  const worker = candidates.find((c) => c.id === workerId);
  if (!worker) return;
  worker.used.slots += 1;
  worker.used.cpu += task.cpu ?? 0;
  worker.used.memoryBytes += task.memoryBytes ?? 0;
}
