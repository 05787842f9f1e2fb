import assert from "node:assert/strict";
import { BASE_PATH } from "./executor.ts";
import { findSetsid, resolveCommand, setsidExecFailure, spawnInOwnGroup } from "./spawn.ts";

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "goschedule-spawn-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function writeScript(path: string, mode: number): Promise<void> {
  await Deno.writeTextFile(path, "#!/bin/sh\necho hi\n");
  await Deno.chmod(path, mode);
}

Deno.test("resolveCommand finds a bare name on PATH in order, skipping what cannot run", async () => {
  await withTempDir(async (dir) => {
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
  await withTempDir(async (dir) => {
    await writeScript(`${dir}/run.sh`, 0o755);
    assert.equal(resolveCommand("./run.sh", dir, BASE_PATH), `${dir}/./run.sh`);
    // A relative PATH entry counts from the cwd too.
    assert.equal(resolveCommand("run.sh", dir, "."), `${dir}/./run.sh`);
  });
});

Deno.test("resolveCommand says NotFound or PermissionDenied, as Deno's spawn would", async () => {
  await withTempDir(async (dir) => {
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

for (const how of ["setsid", "detached"] as const) {
  Deno.test(`a process spawned with ${how} leads its own session and group, its args unchanged`, async () => {
    const setsid = how === "setsid" ? findSetsid() : null;
    if (how === "setsid") assert.ok(setsid, "setsid is on this machine (util-linux)");
    const child = spawnInOwnGroup(
      "sleep",
      { args: ["30"], cwd: "/", env: { PATH: BASE_PATH }, stdout: "null", stderr: "null" },
      setsid,
    );
    try {
      // setsid execs in place: by the time /proc shows sleep, the ids are final.
      let ids = await processIds(child.pid);
      for (let i = 0; i < 200 && !ids.argv[0]?.endsWith("sleep"); i++) {
        await new Promise((r) => setTimeout(r, 5));
        ids = await processIds(child.pid);
      }
      assert.deepEqual({ pgrp: ids.pgrp, session: ids.session }, {
        pgrp: child.pid,
        session: child.pid,
      });
      // Deno's own spawn passes the resolved path as argv[0]; setsid passes the name.
      assert.match(ids.argv[0], /(^|\/)sleep$/);
      assert.deepEqual(ids.argv.slice(1), ["30"]);
      assert.notEqual(ids.pgrp, Deno.pid);
    } finally {
      Deno.kill(-child.pid, "SIGKILL");
      await child.status;
    }
  });
}

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
