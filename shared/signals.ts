/**
 * Linux's signal numbers (x86 and ARM), both ways: a task a signal ended exits with code
 * 128 + n, and a wait status holds only n.
 */

/** By name. */
export const SIGNAL_NUMBERS: Readonly<Partial<Record<Deno.Signal, number>>> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGQUIT: 3,
  SIGILL: 4,
  SIGTRAP: 5,
  SIGABRT: 6,
  SIGBUS: 7,
  SIGFPE: 8,
  SIGKILL: 9,
  SIGUSR1: 10,
  SIGSEGV: 11,
  SIGUSR2: 12,
  SIGPIPE: 13,
  SIGALRM: 14,
  SIGTERM: 15,
  SIGSTKFLT: 16,
  SIGCHLD: 17,
  SIGCONT: 18,
  SIGSTOP: 19,
  SIGTSTP: 20,
  SIGTTIN: 21,
  SIGTTOU: 22,
  SIGURG: 23,
  SIGXCPU: 24,
  SIGXFSZ: 25,
  SIGVTALRM: 26,
  SIGPROF: 27,
  SIGWINCH: 28,
  SIGIO: 29,
  SIGPWR: 30,
  SIGSYS: 31,
};

const NAMES = new Map<number, Deno.Signal>(
  Object.entries(SIGNAL_NUMBERS).map(([name, n]) => [n, name as Deno.Signal]),
);

/** The name of signal `n`, or undefined for one without a name here (a real-time signal). */
export function signalName(n: number): Deno.Signal | undefined {
  return NAMES.get(n);
}
