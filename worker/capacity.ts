/**
 * What the worker offers to tasks: cpu cores, bytes of memory and slots (how many tasks it
 * runs at once). Each is detected unless worker.yaml sets it under `capacity`.
 */

/**
 * Tasks waiting on the worker per slot by default. With one, two slots freed together still
 * left one waiting for the manager; with two, no slot waits between short tasks, and a task
 * waits behind at most two others (the manager moves one that waits too long: see
 * manager.ts #rebalanceQueues). In throughput runs of /bin/true taken in turn, the ratio to
 * the process-start ceiling was 0.43-0.46 with no queue, 0.47-0.52 with one per slot and
 * 0.51-0.54 with two (bench/README.md).
 */
export const QUEUE_PER_SLOT = 2;

/** A worker's capacity, every field known. */
export interface Capacity {
  /** Cores; fractions allowed. */
  cpu: number;
  memoryBytes: number;
  /** How many tasks run at once. */
  slots: number;
  /**
   * How many more tasks the manager may send, held here until a slot frees: a slot then starts
   * its next task without waiting for the manager (one stream round trip and a store write).
   */
  queue: number;
}

/** What the machine has, as detected. */
export interface Machine {
  /** Logical processors (navigator.hardwareConcurrency). */
  cpuCores: number;
  /** Total memory in bytes (Deno.systemMemoryInfo().total). */
  memoryBytes: number;
}

/** Reads the machine's logical processors and total memory. */
export function detectMachine(): Machine {
  return {
    cpuCores: navigator.hardwareConcurrency,
    memoryBytes: Deno.systemMemoryInfo().total,
  };
}

/**
 * The capacity the worker reports: what worker.yaml sets, the rest detected. cpu defaults to
 * the machine's logical processors (at least 1), memory to its total memory, and slots to the
 * cpu capacity (as set or detected) rounded down, at least 1: one task per core; the queue to
 * QUEUE_PER_SLOT tasks per slot.
 */
export function resolveCapacity(configured: Partial<Capacity>, machine: Machine): Capacity {
  const cpu = configured.cpu ?? Math.max(1, machine.cpuCores);
  const slots = configured.slots ?? Math.max(1, Math.floor(cpu));
  return {
    cpu,
    memoryBytes: configured.memoryBytes ?? machine.memoryBytes,
    slots,
    queue: configured.queue ?? QUEUE_PER_SLOT * slots,
  };
}
