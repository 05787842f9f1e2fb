/**
 * Starts a task's process in its own session and process group (pgid = pid), cheaply.
 *
 * Deno's `detached: true` sets the group up in a pre-exec hook, which makes Rust's spawn fall
 * back from posix_spawn (vfork) to a full fork of the worker: about 5 ms of the worker's CPU
 * per task on our 2-core machines, ten times a plain spawn. So the worker calls glibc's
 * posix_spawn itself, with POSIX_SPAWN_SETSID (`posix_spawn.ts`): one vfork and one exec.
 * Where that cannot be had (no glibc 2.29, no FFI permission) it spawns `setsid` (util-linux,
 * on every Linux we know; busybox has it too), which calls setsid(2) and execs the command in
 * place: the same pid and no fork, but a second exec, about 2 ms more per task. Without
 * `setsid` on the machine either, the worker falls back to `detached: true`.
 *
 * Resolving the command first (on the task's PATH, from its cwd) keeps a missing or
 * non-executable command a start failure with its own message, instead of setsid's exit code
 * 127 with a line on stderr.
 */
import { type GroupChild, posixSpawner } from "./posix_spawn.ts";

export type { GroupChild, StartTimeRange } from "./posix_spawn.ts";

/** How a process is put in its own session; `spawnMethod()` picks the cheapest there is. */
export type SpawnMethod = "posix_spawn" | "setsid" | "detached";

/** Where `setsid` is looked for (the worker's own PATH is not the tasks'). */
const SETSID_CANDIDATES = ["/usr/bin/setsid", "/bin/setsid", "/usr/sbin/setsid", "/sbin/setsid"];

let setsidPath: string | null | undefined;

/** The `setsid` executable, or null when the machine has none (looked up once). */
export function findSetsid(): string | null {
  if (setsidPath === undefined) {
    setsidPath = SETSID_CANDIDATES.find((path) => isExecutableFileSync(path)) ?? null;
  }
  return setsidPath;
}

/** The cheapest way this machine and these permissions allow. */
export function spawnMethod(): SpawnMethod {
  if (posixSpawner() !== null) return "posix_spawn";
  return findSetsid() !== null ? "setsid" : "detached";
}

function isExecutableFileSync(path: string): boolean {
  try {
    const info = Deno.statSync(path);
    return info.isFile && ((info.mode ?? 0) & 0o111) !== 0;
  } catch {
    return false;
  }
}

export interface GroupSpawnOptions {
  args: string[];
  /** Absolute, and known to be a directory. */
  cwd: string;
  /** The whole environment (the worker's own does not leak in); its PATH finds `cmd`. */
  env: Record<string, string>;
  stdout: "piped" | "null";
  stderr: "piped" | "null";
}

/**
 * Spawns `cmd` as the leader of a new session and process group. Throws what Deno's spawn
 * would for a command that cannot start: Deno.errors.NotFound or Deno.errors.PermissionDenied.
 * `method` is for tests; one the machine does not offer throws.
 */
export function spawnInOwnGroup(
  cmd: string,
  options: GroupSpawnOptions,
  method: SpawnMethod = spawnMethod(),
): GroupChild {
  const common = {
    cwd: options.cwd,
    clearEnv: true,
    env: options.env,
    stdin: "null",
    stdout: options.stdout,
    stderr: options.stderr,
  } as const;
  if (method === "detached") {
    return new Deno.Command(cmd, { ...common, args: options.args, detached: true }).spawn();
  }
  const path = resolveCommand(cmd, options.cwd, options.env.PATH ?? "");
  if (method === "posix_spawn") {
    const spawner = posixSpawner();
    if (spawner === null) throw new Error("posix_spawn through FFI is not available here");
    return spawner.spawn({ ...options, path, argv: [cmd, ...options.args] });
  }
  const setsid = findSetsid();
  if (setsid === null) throw new Error("there is no setsid program on this machine");
  // `--`: a command whose name starts with "-" is not one of setsid's options. setsid finds
  // the command on the task's PATH itself (its environment is the task's), as we just did.
  return new Deno.Command(setsid, { ...common, args: ["--", cmd, ...options.args] }).spawn();
}

/**
 * Why the exec failed, when a process that exited with code 127 is setsid saying it could not
 * execute the command (`setsid: failed to execute CMD: REASON`, its only line), in the words
 * describeSpawnError uses; undefined for anything else, such as a task's own exit code 127.
 */
export function setsidExecFailure(cmd: string, stderr: string): string | undefined {
  const match = /^setsid: failed to execute (.*): ([^\n]*)\n?$/.exec(stderr);
  if (!match || match[1] !== cmd) return undefined;
  return `${JSON.stringify(cmd)}: ${match[2].charAt(0).toLowerCase()}${match[2].slice(1)}`;
}

/**
 * The file `cmd` names, as execvp would find it: a name with a slash is a path (from `cwd`
 * when relative), a bare name is looked up on `path`. Throws NotFound when there is none and
 * PermissionDenied when the only ones found cannot be executed.
 */
export function resolveCommand(cmd: string, cwd: string, path: string): string {
  if (cmd === "") throw new Deno.errors.NotFound("empty command");
  const candidates = cmd.includes("/")
    ? [cmd.startsWith("/") ? cmd : `${cwd}/${cmd}`]
    : path.split(":").map((dir) => {
      // An empty PATH entry means the current directory, as in execvp.
      const base = dir === "" ? cwd : dir.startsWith("/") ? dir : `${cwd}/${dir}`;
      return `${base}/${cmd}`;
    });
  let denied = false;
  for (const candidate of candidates) {
    let info: Deno.FileInfo;
    try {
      // Synchronous, like the worker's other per-task file calls (see journal_file.ts).
      info = Deno.statSync(candidate);
    } catch (e) {
      if (e instanceof Deno.errors.PermissionDenied) denied = true;
      continue;
    }
    if (info.isFile && ((info.mode ?? 0) & 0o111) !== 0) return candidate;
    if (info.isFile || cmd.includes("/")) denied = true;
  }
  if (denied) throw new Deno.errors.PermissionDenied(`${cmd}: permission denied`);
  throw new Deno.errors.NotFound(`${cmd}: not found`);
}
