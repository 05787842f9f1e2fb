/**
 * What Linux's /proc says about processes: enough to tell whether a process id still names the
 * process we started (a pid is reused once its process is gone) and which processes are left
 * in a task's process group.
 */

export interface ProcStat {
  pid: number;
  /** One letter: R running, S sleeping, Z zombie, ... */
  state: string;
  /** The process group. */
  pgrp: number;
  /** The session. */
  session: number;
  /**
   * When the process started, in clock ticks since boot (field 22). With the pid and the boot
   * id it names one process for good: a reused pid has a later start time.
   */
  startTime: number;
}

/** The process's /proc/<pid>/stat, or undefined when there is no such process (any more). */
export async function readProcStat(pid: number): Promise<ProcStat | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(`/proc/${pid}/stat`);
  } catch {
    return undefined;
  }
  return parseProcStat(pid, text);
}

/** readProcStat without the trip through Deno's thread pool: /proc answers from memory. */
export function readProcStatSync(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = Deno.readTextFileSync(`/proc/${pid}/stat`);
  } catch {
    return undefined;
  }
  return parseProcStat(pid, text);
}

/** Parses "pid (comm) state ppid pgrp session ..."; comm may hold spaces and parentheses. */
export function parseProcStat(pid: number, text: string): ProcStat | undefined {
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  // fields[0] is field 3 (state), so field n is fields[n - 3].
  const startTime = Number(fields[22 - 3]);
  if (fields.length < 20 || !Number.isFinite(startTime)) return undefined;
  return {
    pid,
    state: fields[0],
    pgrp: Number(fields[5 - 3]),
    session: Number(fields[6 - 3]),
    startTime,
  };
}

/**
 * This boot of the machine; start times are counted from it. Undefined without /proc. Read
 * once: it cannot change while this process lives, and every task's record needs it.
 */
export function readBootId(): Promise<string | undefined> {
  bootId ??= Deno.readTextFile("/proc/sys/kernel/random/boot_id").then(
    (text) => text.trim(),
    () => undefined,
  );
  return bootId;
}

let bootId: Promise<string | undefined> | undefined;

/** The living processes (zombies left out) whose process group is `pgid`. */
export async function groupMembers(pgid: number): Promise<ProcStat[]> {
  return (await livingProcesses()).filter((stat) => stat.pgrp === pgid);
}

/** Every living process (zombies left out) of the machine, as /proc shows it now. */
export async function livingProcesses(): Promise<ProcStat[]> {
  const living: ProcStat[] = [];
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    const stat = await readProcStat(Number(entry.name)); // Undefined when gone meanwhile.
    if (stat && stat.state !== "Z") living.push(stat);
  }
  return living;
}

/** The process's environment, or undefined when it cannot be read (gone, or not ours). */
export async function readEnviron(pid: number): Promise<Map<string, string> | undefined> {
  let data: Uint8Array;
  try {
    data = await Deno.readFile(`/proc/${pid}/environ`);
  } catch {
    return undefined;
  }
  const env = new Map<string, string>();
  for (const entry of new TextDecoder().decode(data).split("\0")) {
    const eq = entry.indexOf("=");
    if (eq > 0) env.set(entry.slice(0, eq), entry.slice(eq + 1));
  }
  return env;
}
