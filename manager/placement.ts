/**
 * Placement: which connected worker gets a task. A pipeline of filters (yes, or no with a
 * reason) and a scorer chosen by the `scheduler` setting. A task that cannot be placed is
 * told why, per reason and count.
 */
import type { SchedulerName } from "./config.ts";

/** What placement needs to know about a worker. */
export interface Candidate {
  id: string;
  connected: boolean;
  runningTasks: number;
}

/** A filter returns undefined when the worker may take the task, else why not. */
export type Filter = (worker: Candidate) => string | undefined;

/** Picks one worker among those that passed every filter. */
export interface Scorer {
  pick(workers: Candidate[]): Candidate;
}

export type Placement =
  | { ok: true; workerId: string }
  | { ok: false; reason: string };

export const isConnected: Filter = (w) => w.connected ? undefined : "are disconnected";

const DEFAULT_FILTERS: Filter[] = [isConnected];

/** Round-robin over the eligible workers in id order, so the rotation is stable. */
export function createRoundRobin(): Scorer {
  let last = "";
  return {
    pick(workers) {
      const sorted = [...workers].sort((a, b) => a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
      const next = sorted.find((w) => w.id > last) ?? sorted[0];
      last = next.id;
      return next;
    },
  };
}

export function createRandom(random: () => number = Math.random): Scorer {
  return { pick: (workers) => workers[Math.floor(random() * workers.length)] };
}

export function createScorer(name: SchedulerName, random?: () => number): Scorer {
  switch (name) {
    case "round-robin":
      return createRoundRobin();
    case "random":
      return createRandom(random);
  }
}

export interface Placer {
  place(workers: Candidate[]): Placement;
}

export function createPlacer(scorer: Scorer, filters: Filter[] = DEFAULT_FILTERS): Placer {
  return {
    place(workers) {
      if (workers.length === 0) return { ok: false, reason: "no worker is connected" };
      const eligible: Candidate[] = [];
      const rejections = new Map<string, number>();
      for (const worker of workers) {
        const why = firstRejection(filters, worker);
        if (why === undefined) eligible.push(worker);
        else rejections.set(why, (rejections.get(why) ?? 0) + 1);
      }
      if (eligible.length > 0) return { ok: true, workerId: scorer.pick(eligible).id };
      return { ok: false, reason: diagnose(workers.length, rejections) };
    },
  };
}

function firstRejection(filters: Filter[], worker: Candidate): string | undefined {
  for (const filter of filters) {
    const why = filter(worker);
    if (why !== undefined) return why;
  }
  return undefined;
}

/** "0/5 workers fit: 3 are disconnected, 2 are draining" */
export function diagnose(total: number, rejections: Map<string, number>): string {
  const parts = [...rejections].sort((a, b) => b[1] - a[1]).map(([why, n]) => `${n} ${why}`);
  return `0/${total} workers fit: ${parts.join(", ")}`;
}
