import assert from "node:assert/strict";
import { parseProcStat, readBootId, readProcStat } from "./proc.ts";

Deno.test("a stat line is read past a command name with spaces and parentheses", () => {
  // Fields 1..22 of /proc/<pid>/stat, and a few more.
  const line = "4242 (a) b (c) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 " +
    "2269184 193 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 3 0 0 0 0 0\n";
  assert.deepEqual(parseProcStat(4242, line), {
    pid: 4242,
    state: "S",
    pgrp: 4242,
    session: 4242,
    startTime: 987654,
  });
  assert.equal(parseProcStat(1, "1 (x) S 0"), undefined);
});

Deno.test("this process has a stat and the machine a boot id", async () => {
  const stat = await readProcStat(Deno.pid);
  assert.ok(stat && stat.startTime > 0);
  assert.equal(await readProcStat(0), undefined);
  assert.match((await readBootId()) ?? "", /^[0-9a-f-]{36}$/);
});
