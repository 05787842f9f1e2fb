/**
 * What the worker offers to tasks: cpu cores, bytes of memory and slots (how many tasks it
 * runs at once). Each is detected unless worker.yaml sets it under `capacity`.
 */

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
 * the slots: one task waiting per slot, so that no slot waits for the manager between two
 * short tasks, and a task waits behind at most one other.
 */
export function resolveCapacity(configured: Partial<Capacity>, machine: Machine): Capacity {
  const cpu = configured.cpu ?? Math.max(1, machine.cpuCores);
  const slots = configured.slots ?? Math.max(1, Math.floor(cpu));
  return {
    cpu,
    memoryBytes: configured.memoryBytes ?? machine.memoryBytes,
    slots,
    queue: configured.queue ?? slots,
  };
}
