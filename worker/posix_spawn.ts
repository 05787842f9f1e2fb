/**
 * Starts a process as the leader of a new session with glibc's posix_spawn and its
 * POSIX_SPAWN_SETSID flag, called through Deno's FFI: one vfork and one exec, where spawning
 * the `setsid` program costs a second exec (about 2 ms on our machines, the largest part of a
 * short task's start), and Deno's `detached: true` a full fork of the worker.
 *
 * Deno cannot adopt a file descriptor as a ReadableStream, but node:net can (`{ fd }`), and it
 * reads through the event loop, not a blocked thread per pipe. Such a socket costs the worker
 * more than the spawn itself, and most tasks are short: so output is left in the pipes (which
 * hold 64 KiB) until the process ends, then read at once without blocking; only a process that
 * is still running after PIPE_WATCH_DELAY_MS, or that left a writer behind, gets its pipes
 * watched by sockets. Exit statuses are collected on SIGCHLD with waitpid(pid, WNOHANG) for
 * our own pids only, as tokio does for Deno's children.
 *
 * Anything missing (not glibc, glibc before 2.29, no FFI permission) makes `posixSpawner()`
 * return null, and the caller uses the `setsid` program instead.
 */
import net from "node:net";
import { SIGNAL_NUMBERS, signalName } from "../shared/signals.ts";

/** What the executor needs of a child: Deno.ChildProcess has the same shape. */
export interface GroupChild {
  readonly pid: number;
  readonly stdout: ReadableStream<Uint8Array>;
  readonly stderr: ReadableStream<Uint8Array>;
  readonly status: Promise<ChildStatus>;
  /**
   * Signals the process group, if anything is left in it. Where absent, the caller uses
   * Deno.kill, which throws for an empty group: the worker signals every task's group once it
   * ended, usually empty, and the error it builds each time is measurable.
   */
  readonly signalGroup?: (signal: Deno.Signal) => void;
  /** When the process started, to within the spawn call; absent where it is not known. */
  readonly startTime?: StartTimeRange;
}

/**
 * The clock ticks since boot a process's start time lies between, both included: the count
 * /proc/<pid>/stat's field 22 gives, which tells a pid's process from a later one that reuses
 * the number. The boot clock, read before and after the spawn, gives this for the cost of two
 * calls into libc; reading /proc for it was a few percent of a short task's cost at the worker,
 * and found nothing when the process had already ended.
 */
export interface StartTimeRange {
  earliest: number;
  latest: number;
}

export interface ChildStatus {
  success: boolean;
  code: number;
  signal: Deno.Signal | null;
}

export interface PosixSpawnOptions {
  /** The executable's path, already resolved. */
  path: string;
  /** argv, argv[0] included. */
  argv: string[];
  cwd: string;
  env: Record<string, string>;
  stdout: "piped" | "null";
  stderr: "piped" | "null";
}

export interface PosixSpawner {
  /** Throws Deno.errors.NotFound or PermissionDenied, as Deno's spawn would. */
  spawn(options: PosixSpawnOptions): GroupChild;
}

const SYMBOLS = {
  posix_spawn: {
    parameters: ["buffer", "buffer", "buffer", "buffer", "buffer", "buffer"],
    result: "i32",
  },
  posix_spawnattr_init: { parameters: ["buffer"], result: "i32" },
  posix_spawnattr_setflags: { parameters: ["buffer", "i16"], result: "i32" },
  posix_spawnattr_setsigmask: { parameters: ["buffer", "buffer"], result: "i32" },
  posix_spawnattr_setsigdefault: { parameters: ["buffer", "buffer"], result: "i32" },
  posix_spawn_file_actions_init: { parameters: ["buffer"], result: "i32" },
  posix_spawn_file_actions_destroy: { parameters: ["buffer"], result: "i32" },
  posix_spawn_file_actions_adddup2: { parameters: ["buffer", "i32", "i32"], result: "i32" },
  posix_spawn_file_actions_addopen: {
    parameters: ["buffer", "i32", "buffer", "i32", "u32"],
    result: "i32",
  },
  posix_spawn_file_actions_addchdir_np: { parameters: ["buffer", "buffer"], result: "i32" },
  // glibc 2.34 and later; without it a task inherits what the worker inherited without
  // close-on-exec (from the shell or supervisor that started it).
  posix_spawn_file_actions_addclosefrom_np: {
    parameters: ["buffer", "i32"],
    result: "i32",
    optional: true,
  },
  sigemptyset: { parameters: ["buffer"], result: "i32" },
  sigfillset: { parameters: ["buffer"], result: "i32" },
  pipe2: { parameters: ["buffer", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  waitpid: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  strerror: { parameters: ["i32"], result: "pointer" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
  kill: { parameters: ["i32", "i32"], result: "i32" },
  clock_gettime: { parameters: ["i32", "buffer"], result: "i32" },
  sysconf: { parameters: ["i32"], result: "i64" },
} as const;

type Libc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

// glibc's values (musl's are the same; other libcs are not loaded).
const POSIX_SPAWN_SETSIGDEF = 0x04;
const POSIX_SPAWN_SETSIGMASK = 0x08;
const POSIX_SPAWN_SETSID = 0x80;
const O_RDONLY = 0;
const O_WRONLY = 1;
const O_CLOEXEC = 0o2000000;
const O_NONBLOCK = 0o4000;
const F_GETFL = 3;
const F_SETFL = 4;
const WNOHANG = 1;
const EPERM = 1;
const ENOENT = 2;
const ENOEXEC = 8;
const EACCES = 13;
const ENOTDIR = 20;
const CLOCK_BOOTTIME = 7;
const _SC_CLK_TCK = 2;

/** Larger than glibc's posix_spawnattr_t (336 bytes), posix_spawn_file_actions_t (80), sigset_t (128). */
const OPAQUE_BYTES = 512;

/**
 * How long a running process's output may wait in its pipes before sockets watch them: long
 * enough that a short task's pipes are read once, after its end; short enough that output
 * followed live, or more than a pipe holds, is hardly held up.
 */
export const PIPE_WATCH_DELAY_MS = 20;

/** Where pipes are read into, one read at a time (a pipe holds 64 KiB unless resized). */
const readBuffer = new Uint8Array(65_536);

/** How often the reaper asks anyway, were a SIGCHLD ever missed. */
const KEEP_ALIVE_MS = 1_000;

let spawner: PosixSpawner | null | undefined;

/** The posix_spawn spawner, or null when this machine or these permissions do not allow it. */
export function posixSpawner(): PosixSpawner | null {
  if (spawner === undefined) {
    // Asked first: without the permission, dlopen would prompt on a terminal and wait.
    if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") return spawner = null;
    try {
      spawner = createSpawner(Deno.dlopen("libc.so.6", SYMBOLS).symbols);
    } catch {
      spawner = null;
    }
  }
  return spawner;
}

function createSpawner(libc: Libc): PosixSpawner | null {
  if (Deno.build.os !== "linux") return null;
  // One attribute set for every spawn: a new session, no blocked signals, and every signal's
  // default action (the runtime ignores SIGPIPE; a task must not inherit that), as Deno's
  // own spawn does.
  const attr = new Uint8Array(OPAQUE_BYTES);
  const empty = new Uint8Array(OPAQUE_BYTES);
  const all = new Uint8Array(OPAQUE_BYTES);
  const flags = POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  if (
    libc.posix_spawnattr_init(attr) !== 0 || libc.sigemptyset(empty) !== 0 ||
    libc.sigfillset(all) !== 0 || libc.posix_spawnattr_setsigmask(attr, empty) !== 0 ||
    libc.posix_spawnattr_setsigdefault(attr, all) !== 0 ||
    // A glibc before 2.26 refuses the flag.
    libc.posix_spawnattr_setflags(attr, flags) !== 0
  ) {
    return null;
  }
  const reaper = new ChildReaper(libc);
  const clock = new BootClock(libc);
  return { spawn: (options) => spawnChild(libc, attr, reaper, clock, options) };
}

function spawnChild(
  libc: Libc,
  attr: Uint8Array,
  reaper: ChildReaper,
  clock: BootClock,
  options: PosixSpawnOptions,
): GroupChild {
  const env = Object.entries(options.env).map(([name, value]) => `${name}=${value}`);
  let stdout: [number, number] | undefined;
  let stderr: [number, number] | undefined;
  let pid: number;
  let before: number | undefined;
  try {
    if (options.stdout === "piped") stdout = openPipe(libc);
    if (options.stderr === "piped") stderr = openPipe(libc);
    before = clock.ticks();
    try {
      pid = spawnOnce(libc, attr, options.path, options.argv, env, options, stdout, stderr);
    } catch (e) {
      // As execvp does: a file the kernel cannot execute is a script for the shell.
      if (!(e instanceof NoExecFormat)) throw e;
      const argv = ["/bin/sh", options.path, ...options.argv.slice(1)];
      pid = spawnOnce(libc, attr, "/bin/sh", argv, env, options, stdout, stderr);
    }
  } catch (e) {
    // Closed once, here: a number closed twice may by then be another thread's file.
    for (const fd of [...(stdout ?? []), ...(stderr ?? [])]) libc.close(fd);
    throw e;
  }
  const after = clock.ticks();
  const status = reaper.wait(pid);
  // The child has its copies; ours would keep the pipes from ever ending.
  if (stdout) libc.close(stdout[1]);
  if (stderr) libc.close(stderr[1]);
  const pipes = [stdout, stderr].map((pipe) => pipe && new OutputPipe(libc, pipe[0]));
  const live = pipes.filter((pipe) => pipe !== undefined);
  if (live.length > 0) {
    const watchTimer = setTimeout(() => live.forEach((pipe) => pipe.watch()), PIPE_WATCH_DELAY_MS);
    status.then(() => {
      clearTimeout(watchTimer);
      live.forEach((pipe) => pipe.drain());
    });
  }
  return {
    pid,
    status,
    signalGroup: (signal) => {
      const number = SIGNAL_NUMBERS[signal];
      if (number === undefined) throw new TypeError(`unknown signal ${signal}`);
      libc.kill(-pid, number);
    },
    stdout: pipes[0]?.stream ?? emptyStream(),
    stderr: pipes[1]?.stream ?? emptyStream(),
    // A tick more each way: the kernel and the vDSO read the boot clock on different paths,
    // and a range a tick too wide could only matter to a pid reused within 20 ms.
    startTime: before !== undefined && after !== undefined
      ? { earliest: before - 1, latest: after + 1 }
      : undefined,
  };
}

/** CLOCK_BOOTTIME in the clock ticks /proc counts start times in. */
class BootClock {
  readonly #libc: Libc;
  readonly #timespec = new BigInt64Array(2);
  readonly #bytes = new Uint8Array(this.#timespec.buffer);
  /** 0 when the tick is unknown, or not a whole number of nanoseconds (then nothing is said). */
  readonly #perSecond: number;
  readonly #tickNs: number;

  constructor(libc: Libc) {
    this.#libc = libc;
    const perSecond = Number(libc.sysconf(_SC_CLK_TCK));
    this.#perSecond = perSecond > 0 && 1e9 % perSecond === 0 ? perSecond : 0;
    this.#tickNs = this.#perSecond && 1e9 / this.#perSecond;
  }

  /** Now, as the kernel counts a start time: whole ticks, rounded down. */
  ticks(): number | undefined {
    if (this.#perSecond === 0 || this.#libc.clock_gettime(CLOCK_BOOTTIME, this.#bytes) !== 0) {
      return undefined;
    }
    const [seconds, nanos] = this.#timespec;
    return Number(seconds) * this.#perSecond + Math.floor(Number(nanos) / this.#tickNs);
  }
}

class NoExecFormat extends Error {}

/** The strings a posix_spawn call in progress points to. */
const pinned: Uint8Array[] = [];

function spawnOnce(
  libc: Libc,
  attr: Uint8Array,
  path: string,
  argv: string[],
  env: string[],
  options: PosixSpawnOptions,
  stdout: [number, number] | undefined,
  stderr: [number, number] | undefined,
): number {
  const actions = new Uint8Array(OPAQUE_BYTES);
  check(libc, libc.posix_spawn_file_actions_init(actions), "posix_spawn_file_actions_init");
  try {
    const add = (rc: number) => check(libc, rc, "posix_spawn_file_actions");
    add(libc.posix_spawn_file_actions_addchdir_np(actions, cString(options.cwd)));
    add(libc.posix_spawn_file_actions_addopen(actions, 0, DEV_NULL, O_RDONLY, 0));
    for (const [fd, pipe] of [[1, stdout], [2, stderr]] as const) {
      add(
        pipe
          ? libc.posix_spawn_file_actions_adddup2(actions, pipe[1], fd)
          : libc.posix_spawn_file_actions_addopen(actions, fd, DEV_NULL, O_WRONLY, 0),
      );
    }
    // A task gets stdin, stdout and stderr, nothing else of the worker's.
    const closeFrom = libc.posix_spawn_file_actions_addclosefrom_np;
    if (closeFrom) add(closeFrom(actions, 3));
    // The arrays hold only the strings' addresses: the strings are pinned until the call has
    // returned, or the collector could free them while nothing in JS seems to use them.
    const argvStrings = cStringArray(argv);
    const envStrings = cStringArray(env);
    pinned.push(argvStrings.strings, envStrings.strings);
    const pid = new Int32Array(1);
    let rc: number;
    try {
      rc = libc.posix_spawn(
        new Uint8Array(pid.buffer),
        cString(path),
        actions,
        attr,
        argvStrings.pointers,
        envStrings.pointers,
      );
    } finally {
      pinned.length = 0;
    }
    if (rc === ENOEXEC && path !== "/bin/sh") throw new NoExecFormat();
    if (rc === ENOENT || rc === ENOTDIR) {
      throw new Deno.errors.NotFound(`${argv[0]}: ${errorText(libc, rc)}`);
    }
    if (rc === EACCES || rc === EPERM) {
      throw new Deno.errors.PermissionDenied(`${argv[0]}: ${errorText(libc, rc)}`);
    }
    check(libc, rc, "posix_spawn");
    return pid[0];
  } finally {
    libc.posix_spawn_file_actions_destroy(actions);
  }
}

function check(libc: Libc, rc: number, what: string): void {
  if (rc !== 0) throw new Error(`${what}: ${errorText(libc, rc)}`);
}

function errorText(libc: Libc, errno: number): string {
  const text = libc.strerror(errno);
  const message = text === null ? `error ${errno}` : Deno.UnsafePointerView.getCString(text);
  return message.charAt(0).toLowerCase() + message.slice(1);
}

/** A pipe whose ends close on exec (the child gets the write end as a copy, by dup2). */
function openPipe(libc: Libc): [number, number] {
  const fds = new Int32Array(2);
  if (libc.pipe2(new Uint8Array(fds.buffer), O_CLOEXEC) !== 0) {
    throw new Error("cannot create a pipe for the task's output");
  }
  return [fds[0], fds[1]];
}

const encoder = new TextEncoder();

/** Encoded once: every spawn opens it for stdin (and for output not piped). */
const DEV_NULL = cString("/dev/null");

function cString(text: string): Uint8Array<ArrayBuffer> {
  checkNoNul(text);
  return encoder.encode(`${text}\0`);
}

/** A C string ends at its first NUL: text holding one would reach the child cut short. */
function checkNoNul(text: string): void {
  if (text.includes("\0")) {
    throw new Deno.errors.InvalidData(`${JSON.stringify(text)} contains a NUL character`);
  }
}

/**
 * The strings NUL-terminated one after another in one buffer, and the NULL-terminated array of
 * their addresses that argv and envp are: one address lookup through FFI per array rather than
 * one per string (an environment has several).
 */
function cStringArray(texts: string[]): { strings: Uint8Array; pointers: Uint8Array } {
  texts.forEach(checkNoNul);
  const strings = encoder.encode(texts.map((text) => `${text}\0`).join(""));
  const base = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(strings)));
  const addresses = new BigUint64Array(texts.length + 1);
  let start = 0;
  for (let i = 0; i < texts.length; i++) {
    addresses[i] = base + BigInt(start);
    start = strings.indexOf(0, start) + 1;
  }
  return { strings, pointers: new Uint8Array(addresses.buffer) };
}

/**
 * The read end of a pipe as a stream (the stream owns the fd). It is read once, without
 * blocking, when the process has ended (`drain`), or through the event loop by a socket from
 * `watch` on: the pipe's other writers (a process that left the group) may keep it open.
 */
class OutputPipe {
  readonly stream: ReadableStream<Uint8Array>;
  readonly #libc: Libc;
  #fd: number | undefined;
  #socket: net.Socket | undefined;
  #controller!: ReadableStreamDefaultController<Uint8Array>;

  constructor(libc: Libc, fd: number) {
    this.#libc = libc;
    this.#fd = fd;
    // Ours alone (the child's copy is the write end), so the flag changes nothing for the task.
    libc.fcntl(fd, F_SETFL, libc.fcntl(fd, F_GETFL, 0) | O_NONBLOCK);
    this.stream = new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.#controller = controller;
      },
      pull: () => {
        this.#socket?.resume();
      },
      cancel: () => {
        if (this.#socket) this.#socket.destroy();
        else this.#close();
      },
    }, { highWaterMark: 4 });
  }

  /**
   * Reads what the pipe holds. The end of the data ends the stream; a pipe still open for
   * writing elsewhere (or any error, which the socket will report) is watched from then on.
   */
  drain(): void {
    const fd = this.#fd;
    if (fd === undefined || this.#socket) return;
    for (;;) {
      const count = Number(this.#libc.read(fd, readBuffer, BigInt(readBuffer.length)));
      if (count > 0) {
        this.#controller.enqueue(readBuffer.slice(0, count));
        continue;
      }
      if (count === 0) {
        this.#close();
        this.#controller.close();
      } else {
        this.watch();
      }
      return;
    }
  }

  /** Hands the pipe to a socket, which reads it through the event loop until it ends. */
  watch(): void {
    const fd = this.#fd;
    if (fd === undefined || this.#socket) return;
    const controller = this.#controller;
    const socket = this.#socket = new net.Socket({ fd, readable: true, writable: false });
    socket.on("data", (chunk: Uint8Array) => {
      controller.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
      if ((controller.desiredSize ?? 1) <= 0) socket.pause();
    });
    socket.on("end", () => controller.close());
    socket.on("error", (e) => controller.error(e));
    socket.on("close", () => {
      this.#fd = undefined;
      try {
        controller.close();
      } catch {
        // Closed or errored already.
      }
    });
  }

  #close(): void {
    if (this.#fd === undefined) return;
    this.#libc.close(this.#fd);
    this.#fd = undefined;
  }
}

function emptyStream(): ReadableStream<Uint8Array> {
  return new ReadableStream({ start: (controller) => controller.close() });
}

/**
 * Collects our children's exit statuses: on every SIGCHLD (signals merge, so every pid is
 * asked), and once right after a pid is added, in case it ended first. A signal listener does
 * not keep Deno's event loop alive, so while a child runs a slow interval does (and asks
 * too); both are gone when nobody waits.
 */
class ChildReaper {
  readonly #libc: Libc;
  readonly #waiting = new Map<number, (status: ChildStatus) => void>();
  readonly #status = new Int32Array(1);
  readonly #statusBytes = new Uint8Array(this.#status.buffer);
  readonly #onSignal = () => this.#collect();
  #keepAlive: ReturnType<typeof setInterval> | undefined;

  constructor(libc: Libc) {
    this.#libc = libc;
  }

  wait(pid: number): Promise<ChildStatus> {
    const status = new Promise<ChildStatus>((resolve) => this.#waiting.set(pid, resolve));
    if (this.#waiting.size === 1) {
      Deno.addSignalListener("SIGCHLD", this.#onSignal);
      this.#keepAlive = setInterval(this.#onSignal, KEEP_ALIVE_MS);
    }
    this.#collect();
    return status;
  }

  #collect(): void {
    for (const [pid, resolve] of this.#waiting) {
      const rc = this.#libc.waitpid(pid, this.#statusBytes, WNOHANG);
      if (rc === 0) continue;
      this.#waiting.delete(pid);
      // -1 (ECHILD): something else reaped it. Only our own pids are ever waited for, here
      // and in Deno, so this does not happen; a code nobody's exit has says so if it does.
      resolve(
        rc === pid ? decodeStatus(this.#status[0]) : { success: false, code: -1, signal: null },
      );
    }
    if (this.#waiting.size === 0 && this.#keepAlive !== undefined) {
      Deno.removeSignalListener("SIGCHLD", this.#onSignal);
      clearInterval(this.#keepAlive);
      this.#keepAlive = undefined;
    }
  }
}

/** A wait status as Deno reports it: a signal's death is code 128 + its number. */
export function decodeStatus(status: number): ChildStatus {
  const termSignal = status & 0x7f;
  if (termSignal === 0) {
    const code = (status >> 8) & 0xff;
    return { success: code === 0, code, signal: null };
  }
  return { success: false, code: 128 + termSignal, signal: signalName(termSignal) ?? null };
}
