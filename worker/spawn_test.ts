import assert from "node:assert/strict";
import { BASE_PATH } from "./executor.ts";
import { eventually, groupMembers, withTempDir } from "./test_util.ts";
import { readProcStat } from "./proc.ts";
import { decodeStatus, type GroupChild, posixSpawner } from "./posix_spawn.ts";
import {
  resolveCommand,
  setsidExecFailure,
  spawnInOwnGroup,
  type SpawnMethod,
  spawnMethod,
} from "./spawn.ts";

const withSpawnDir = (fn: (dir: string) => Promise<void>) => withTempDir("goschedule-spawn-", fn);

async function writeScript(path: string, mode: number): Promise<void> {
  await Deno.writeTextFile(path, "#!/bin/sh\necho hi\n");
  await Deno.chmod(path, mode);
}

Deno.test("resolveCommand finds a bare name on PATH in order, skipping what cannot run", async () => {
  await withSpawnDir(async (dir) => {
    await Deno.mkdir(`${dir}/a`);
    await Deno.mkdir(`${dir}/b`);
    await Deno.mkdir(`${dir}/c`);
    await writeScript(`${dir}/a/tool`, 0o644);
    await Deno.mkdir(`${dir}/b/tool`);
    await writeScript(`${dir}/c/tool`, 0o755);
    const path = `${dir}/missing:${dir}/a:${dir}/b:${dir}/c`;
    assert.equal(resolveCommand("tool", "/", path), `${dir}/c/tool`);
  });
});

Deno.test("resolveCommand resolves a relative path from the task's cwd", async () => {
  await withSpawnDir(async (dir) => {
    await writeScript(`${dir}/run.sh`, 0o755);
    assert.equal(resolveCommand("./run.sh", dir, BASE_PATH), `${dir}/./run.sh`);
    // A relative PATH entry counts from the cwd too.
    assert.equal(resolveCommand("run.sh", dir, "."), `${dir}/./run.sh`);
  });
});

Deno.test("resolveCommand says NotFound or PermissionDenied, as Deno's spawn would", async () => {
  await withSpawnDir(async (dir) => {
    await writeScript(`${dir}/plain`, 0o644);
    assert.throws(
      () => resolveCommand("no-such-command-here", "/", BASE_PATH),
      Deno.errors.NotFound,
    );
    assert.throws(() => resolveCommand(`${dir}/nothing`, "/", BASE_PATH), Deno.errors.NotFound);
    assert.throws(() => resolveCommand("", "/", BASE_PATH), Deno.errors.NotFound);
    assert.throws(
      () => resolveCommand(`${dir}/plain`, "/", BASE_PATH),
      Deno.errors.PermissionDenied,
    );
    assert.throws(() => resolveCommand("plain", "/", dir), Deno.errors.PermissionDenied);
    // A directory is not a command.
    assert.throws(() => resolveCommand(dir, "/", BASE_PATH), Deno.errors.PermissionDenied);
  });
});

/** The process's group and session ids and its command line, from /proc. */
async function processIds(pid: number): Promise<{ pgrp: number; session: number; argv: string[] }> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const cmdline = await Deno.readTextFile(`/proc/${pid}/cmdline`);
  // fields[0] is field 3; pgrp and session are fields 5 and 6.
  return {
    pgrp: Number(fields[2]),
    session: Number(fields[3]),
    argv: cmdline.split("\0").filter((a) => a !== ""),
  };
}

const METHODS: SpawnMethod[] = ["posix_spawn", "setsid", "detached"];

Deno.test("this machine offers the cheapest spawn, posix_spawn (glibc, FFI allowed)", () => {
  assert.equal(spawnMethod(), "posix_spawn");
});

Deno.test("a worker without FFI permission spawns through setsid, and asks for nothing", async () => {
  await withSpawnDir(async (dir) => {
    await Deno.writeTextFile(
      `${dir}/method.ts`,
      `import { spawnMethod } from ${JSON.stringify(import.meta.resolve("./spawn.ts"))};
console.log(spawnMethod());`,
    );
    // On a terminal (util-linux's script makes one), dlopen without the permission would ask
    // for it and wait for an answer.
    const { stdout } = await new Deno.Command("script", {
      args: [
        "-qec",
        `${Deno.execPath()} run --no-check --allow-read --allow-run ${dir}/method.ts`,
        "/dev/null",
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(20_000),
    }).output();
    assert.equal(new TextDecoder().decode(stdout).trim(), "setsid");
  });
});

for (const how of METHODS) {
  Deno.test(`a process spawned with ${how} leads its own session and group, its args unchanged`, async () => {
    const child = spawnInOwnGroup(
      "sleep",
      { args: ["30"], cwd: "/", env: { PATH: BASE_PATH }, stdout: "null", stderr: "null" },
      how,
    );
    try {
      // setsid execs in place: by the time /proc shows sleep, the ids are final. (A loaded
      // machine can take more than a second to get there: a CI run once did.)
      let ids = await processIds(child.pid);
      for (let i = 0; i < 2000 && !ids.argv[0]?.endsWith("sleep"); i++) {
        await new Promise((r) => setTimeout(r, 5));
        ids = await processIds(child.pid);
      }
      assert.deepEqual({ pgrp: ids.pgrp, session: ids.session }, {
        pgrp: child.pid,
        session: child.pid,
      });
      // Deno's own spawn passes the resolved path as argv[0]; the others pass the name.
      assert.match(ids.argv[0], /(^|\/)sleep$/);
      assert.deepEqual(ids.argv.slice(1), ["30"]);
      assert.notEqual(ids.pgrp, Deno.pid);
    } finally {
      Deno.kill(-child.pid, "SIGKILL");
      await child.status;
    }
  });
}

/** Everything a task could tell about how it was started, and how it ended. */
async function observe(how: SpawnMethod, cmd: string, args: string[], cwd = "/") {
  const child: GroupChild = spawnInOwnGroup(cmd, {
    args,
    cwd,
    env: { PATH: BASE_PATH, LANG: "C.UTF-8" },
    stdout: "piped",
    stderr: "piped",
  }, how);
  const [status, stdout, stderr] = await Promise.all([
    child.status,
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
  ]);
  // Deno's statuses have no prototype; ours are plain objects.
  return { status: { ...status }, stdout, stderr };
}

const PROBE = [
  // Blocked signals, stdin, the open descriptors, cwd, env.
  "grep SigBlk /proc/self/status",
  "readlink /proc/self/fd/0",
  // (A glob in a subshell: a pipeline would show its own pipes while the shell builds it.)
  "(cd /proc/$$/fd && echo *)",
  "pwd; env | sort",
  "printf 'bin\\0\\377ary' >&2",
  "kill -TERM $$",
].join("; ");

Deno.test("the three spawn methods start a task alike and report its end alike", async () => {
  const seen = [];
  for (const how of METHODS) {
    seen.push({
      probe: await observe(how, "sh", ["-c", PROBE], "/tmp"),
      exit: await observe(how, "sh", ["-c", "echo out; echo err >&2; exit 7"]),
      signal: await observe(how, "sh", ["-c", "kill -KILL $$"]),
    });
    // The runtime ignores SIGPIPE; a task must not inherit that (glibc's own two stay).
    const ignored = await observe(how, "sh", ["-c", "grep SigIgn /proc/self/status"]);
    const mask = BigInt(`0x${ignored.stdout.split("\t")[1].trim()}`);
    assert.equal(mask & (1n << 12n), 0n, `${how}: SIGPIPE ignored (SigIgn ${ignored.stdout})`);
  }
  // The open descriptors differ: posix_spawn closes all but 0, 1 and 2; the programs started
  // through Deno's spawn get whatever the worker has open without close-on-exec.
  const fdLine = /\n0 1( \d+)+\n/; // in the glob's order: 0 1 10 2 ...
  assert.match(seen[0].probe.stdout, /\n0 1 2\n/);
  for (const s of seen) s.probe.stdout = s.probe.stdout.replace(fdLine, "\n(descriptors)\n");
  const [posix] = seen;
  assert.deepEqual(posix.probe.status, { success: false, code: 143, signal: "SIGTERM" });
  assert.match(posix.probe.stdout, /^SigBlk:\t0+\n\/dev\/null\n\(descriptors\)\n\/tmp\n/);
  assert.match(posix.probe.stdout, /\nLANG=C.UTF-8\nPATH=[^\n]*\nPWD=\/tmp\n$/);
  assert.equal(posix.probe.stderr, "bin\0\xffary".replace("\xff", "\ufffd"));
  assert.deepEqual(posix.exit, {
    status: { success: false, code: 7, signal: null },
    stdout: "out\n",
    stderr: "err\n",
  });
  assert.deepEqual(posix.signal.status, { success: false, code: 137, signal: "SIGKILL" });
  assert.deepEqual(seen[1], posix, "setsid");
  assert.deepEqual(seen[2], posix, "detached");
});

Deno.test("a task started with posix_spawn gets no descriptor of the worker's but 0, 1 and 2", async () => {
  // dup() makes a descriptor without close-on-exec, as a worker may inherit from its parent.
  const libc = Deno.dlopen("libc.so.6", {
    dup: { parameters: ["i32"], result: "i32" },
    close: { parameters: ["i32"], result: "i32" },
  });
  const inherited = libc.symbols.dup(2);
  try {
    assert.ok(inherited > 2);
    const seen = await observe("posix_spawn", "ls", ["/proc/self/fd"]);
    // ls itself has the folder open as 3.
    assert.deepEqual(seen.stdout.trim().split("\n").map(Number), [0, 1, 2, 3]);
  } finally {
    libc.symbols.close(inherited);
    libc.close();
  }
});

Deno.test("posix_spawn collects every status when many children end at once", async () => {
  // SIGCHLDs merge: one signal can stand for many ended children, and each must be found.
  const children = Array.from({ length: 40 }, (_, i) =>
    spawnInOwnGroup("sh", {
      args: ["-c", `exit ${i}`],
      cwd: "/",
      env: { PATH: BASE_PATH },
      stdout: "null",
      stderr: "null",
    }, "posix_spawn"));
  const codes = await Promise.all(children.map(async (child) => (await child.status).code));
  assert.deepEqual(codes, Array.from({ length: 40 }, (_, i) => i));
});

/** Starts `sh -c script` with posix_spawn, both outputs piped. */
function posixShell(script: string): GroupChild {
  const spawner = posixSpawner();
  assert.ok(spawner);
  return spawner.spawn({
    path: "/bin/sh",
    argv: ["sh", "-c", script],
    cwd: "/",
    env: { PATH: BASE_PATH },
    stdout: "piped",
    stderr: "piped",
  });
}

Deno.test("posix_spawn hands every argument and variable over whole, multi-byte ones too", async () => {
  const spawner = posixSpawner();
  assert.ok(spawner);
  const args = ["", "plain", "ünïcödé ✓ 𝄞", "with space", "x".repeat(5000)];
  const child = spawner.spawn({
    path: "/bin/sh",
    argv: ["sh", "-c", 'printf "%s|" "$@"; printf "%s|%s|%s" "$A" "$EMPTY" "$B"', "sh", ...args],
    cwd: "/",
    env: { PATH: BASE_PATH, A: "ß".repeat(300), EMPTY: "", B: "=b=" },
    stdout: "piped",
    stderr: "null",
  });
  const [text, status] = await Promise.all([new Response(child.stdout).text(), child.status]);
  assert.equal(status.code, 0);
  assert.equal(text, args.map((a) => `${a}|`).join("") + `${"ß".repeat(300)}||=b=`);
});

Deno.test("posix_spawn's output of a running process arrives before the process ends", async () => {
  // Pipes are read after the end unless the process outlives PIPE_WATCH_DELAY_MS.
  const child = posixShell("echo first; exec sleep 30");
  const reader = child.stdout.getReader();
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const { value } = await Promise.race([
      reader.read(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error("no output while the process runs")), 5_000);
      }),
    ]);
    assert.equal(new TextDecoder().decode(value), "first\n");
  } finally {
    clearTimeout(timer);
    Deno.kill(-child.pid, "SIGKILL");
    await Promise.all([child.status, reader.cancel(), child.stderr.cancel()]);
  }
});

Deno.test("posix_spawn's output written after the end, by what the process left behind, is kept", async () => {
  // The main process ends first: the pipe is read once and found still open for writing.
  const child = posixShell("(sleep 0.3; echo late; echo err >&2) & echo early");
  const [status, stdout, stderr] = await Promise.all([
    child.status,
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
  ]);
  assert.equal(status.code, 0);
  assert.equal(stdout, "early\nlate\n");
  assert.equal(stderr, "err\n");
});

Deno.test("posix_spawn leaves no pipe open once a process's output is read", async () => {
  const openFiles = () => [...Deno.readDirSync("/proc/self/fd")].length;
  const before = openFiles();
  const children = Array.from({ length: 20 }, (_, i) => posixShell(`echo ${i}; echo ${i} >&2`));
  const outputs = await Promise.all(children.map(async (child) => {
    const [, stdout, stderr] = await Promise.all([
      child.status,
      new Response(child.stdout).text(),
      new Response(child.stderr).text(),
    ]);
    return stdout + stderr;
  }));
  assert.deepEqual(outputs, Array.from({ length: 20 }, (_, i) => `${i}\n${i}\n`));
  assert.equal(openFiles(), before);
});

Deno.test("posix_spawn's signalGroup reaches the group's members, and an empty group is fine", async () => {
  const child = posixShell("sleep 30 & echo $!; wait");
  const reader = child.stdout.getReader();
  const { value } = await reader.read();
  assert.match(new TextDecoder().decode(value), /^\d+\n$/, "the member's pid");
  assert.ok(child.signalGroup);
  child.signalGroup("SIGKILL");
  const [status] = await Promise.all([child.status, reader.cancel(), child.stderr.cancel()]);
  assert.equal(status.signal, "SIGKILL");
  await eventually(async () => (await groupMembers(child.pid)).length === 0, "the group gone");
  child.signalGroup("SIGKILL");
  child.signalGroup("SIGTERM");
});

Deno.test("posix_spawn tells the start time /proc gives, to within the spawn call", async () => {
  for (let i = 0; i < 20; i++) {
    // stdin is /dev/null: the process must wait on something else to be there to read.
    const child = posixShell("exec sleep 30");
    try {
      const stat = await readProcStat(child.pid);
      assert.ok(stat, "the process runs until it is killed");
      const range = child.startTime;
      assert.ok(range, "posix_spawn knows it");
      assert.ok(
        range.earliest <= stat.startTime && stat.startTime <= range.latest,
        `${stat.startTime} in ${range.earliest}..${range.latest}`,
      );
      // Two ticks of margin, and the call itself: far less than a second (100 ticks).
      assert.ok(range.latest - range.earliest < 100, `${range.latest - range.earliest} ticks`);
    } finally {
      child.signalGroup?.("SIGKILL");
      await Promise.all([child.status, child.stdout.cancel(), child.stderr.cancel()]);
    }
  }
});

Deno.test("posix_spawn runs a file without #! with sh, as execvp does", async () => {
  await withSpawnDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/plain`, 'echo from sh "$1"\n');
    await Deno.chmod(`${dir}/plain`, 0o755);
    for (const how of METHODS) {
      const { status, stdout } = await observe(how, "./plain", ["arg"], dir);
      assert.deepEqual({ status, stdout }, {
        status: { success: true, code: 0, signal: null },
        stdout: "from sh arg\n",
      }, how);
    }
  });
});

Deno.test("posix_spawn says NotFound or PermissionDenied for a path it cannot execute", async () => {
  const spawner = posixSpawner();
  assert.ok(spawner);
  await withSpawnDir(async (dir) => {
    await writeScript(`${dir}/not-executable`, 0o644);
    const spawn = (path: string) =>
      spawner.spawn({
        path,
        argv: [path],
        cwd: "/",
        env: {},
        stdout: "piped",
        stderr: "piped",
      });
    const openFiles = () => [...Deno.readDirSync("/proc/self/fd")].length;
    const before = openFiles();
    assert.throws(() => spawn(`${dir}/gone`), Deno.errors.NotFound);
    assert.throws(() => spawn(`${dir}/not-executable`), Deno.errors.PermissionDenied);
    assert.throws(() => spawn(`${dir}/not-executable/x`), Deno.errors.NotFound);
    assert.equal(openFiles(), before, "the pipes of a spawn that failed are closed");
  });
});

Deno.test("decodeStatus reads a wait status as Deno reports it", () => {
  assert.deepEqual(decodeStatus(0), { success: true, code: 0, signal: null });
  assert.deepEqual(decodeStatus(3 << 8), { success: false, code: 3, signal: null });
  assert.deepEqual(decodeStatus(255 << 8), { success: false, code: 255, signal: null });
  assert.deepEqual(decodeStatus(9), { success: false, code: 137, signal: "SIGKILL" });
  // A core dump sets 0x80; the signal is the low seven bits.
  assert.deepEqual(decodeStatus(0x80 | 11), { success: false, code: 139, signal: "SIGSEGV" });
  assert.deepEqual(decodeStatus(40), { success: false, code: 168, signal: null });
});

Deno.test("spawnInOwnGroup refuses a command that cannot start before spawning anything", () => {
  assert.throws(() =>
    spawnInOwnGroup("no-such-command-here", {
      args: [],
      cwd: "/",
      env: { PATH: BASE_PATH },
      stdout: "null",
      stderr: "null",
    }), Deno.errors.NotFound);
});

Deno.test("setsidExecFailure reads setsid's exec error, and nothing else", () => {
  assert.equal(
    setsidExecFailure(
      "/x/run.sh",
      "setsid: failed to execute /x/run.sh: No such file or directory\n",
    ),
    '"/x/run.sh": no such file or directory',
  );
  assert.equal(
    setsidExecFailure("tool", "setsid: failed to execute tool: Exec format error\n"),
    '"tool": exec format error',
  );
  // Another command's name, more output, or the task's own words: the task's own exit.
  assert.equal(setsidExecFailure("a", "setsid: failed to execute b: No such file\n"), undefined);
  assert.equal(
    setsidExecFailure("a", "started\nsetsid: failed to execute a: No such file\n"),
    undefined,
  );
  assert.equal(setsidExecFailure("a", "a: not found\n"), undefined);
});
