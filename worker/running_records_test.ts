import assert from "node:assert/strict";
import { withTempDir } from "./test_util.ts";
import type { Logger } from "../shared/log.ts";
import { type RunningRecord, RunningRecords } from "./running_records.ts";

function record(taskId: string, attempt = 1): RunningRecord {
  return {
    task_id: taskId,
    attempt,
    pid: 4242,
    start_time: 123,
    boot_id: "00000000-0000-0000-0000-000000000000",
    kill_timeout_ms: 10_000,
    started_at: 1_700_000_000_000,
  };
}

/** A logger that keeps its warnings as "message path". */
function warnings(): { log: Logger; warned: string[] } {
  const warned: string[] = [];
  const ignore = () => {};
  return {
    warned,
    log: {
      debug: ignore,
      info: ignore,
      error: ignore,
      warn: (message, fields) => warned.push(`${message} ${fields?.path}`),
    },
  };
}

const withStateDir = (fn: (dir: string) => Promise<void>) => withTempDir("goschedule-running-", fn);

/** What a new life of the worker finds in the state_dir. */
async function nextLife(dir: string, log = warnings().log): Promise<RunningRecord[]> {
  const records = new RunningRecords({ stateDir: dir, log });
  await records.start();
  try {
    return await records.list();
  } finally {
    records.close();
  }
}

Deno.test("a new life finds the records the last one wrote and did not remove", async () => {
  await withStateDir(async (dir) => {
    const records = new RunningRecords({ stateDir: dir, log: warnings().log });
    await records.start();
    try {
      records.write(record("t-1"));
      records.write(record("t-2"));
      records.write({ ...record("t-2"), pid: 4343 });
      records.write(record("t-2", 2));
      records.remove("t-1", 1);
      records.remove("t-9", 1);
      assert.equal((await records.list()).length, 2);
    } finally {
      records.close();
    }
    assert.equal(records.path, `${dir}/running.jsonl`);
    assert.deepEqual(await nextLife(dir), [{ ...record("t-2"), pid: 4343 }, record("t-2", 2)]);
  });
});

Deno.test("a record begun before the spawn has no pid until the spawn's record replaces it", async () => {
  await withStateDir(async (dir) => {
    const records = new RunningRecords({ stateDir: dir, log: warnings().log });
    await records.start();
    const begun = { taskId: "t-1", attempt: 2, startedAt: 1_700_000_000_000, killTimeoutMs: 500 };
    try {
      records.begin(begun);
      records.begin({ ...begun, taskId: "t-2" });
      await records.add({ ...begun, taskId: "t-2", pid: 4242 });
    } finally {
      records.close();
    }
    const [t1, t2] = await nextLife(dir);
    assert.deepEqual(t1, {
      task_id: "t-1",
      attempt: 2,
      pid: null,
      start_time: null,
      boot_id: null,
      kill_timeout_ms: 500,
      started_at: 1_700_000_000_000,
    });
    assert.equal(t2.task_id, "t-2");
    assert.equal(t2.pid, 4242);
  });
});

Deno.test("records used before start, or started twice, are refused", async () => {
  await withStateDir(async (dir) => {
    const records = new RunningRecords({ stateDir: dir, log: warnings().log });
    assert.throws(() => records.write(record("t-1")), /not started/);
    await records.start();
    try {
      await assert.rejects(records.start(), /started already/);
    } finally {
      records.close();
    }
  });
});

Deno.test("an upgraded worker moves the records of state_dir/running/ into the journal", async () => {
  await withStateDir(async (dir) => {
    // The journal holds t-a already: a start cut short after it was moved, before its file
    // was removed.
    await Deno.writeTextFile(
      `${dir}/running.jsonl`,
      JSON.stringify({ put: "t-a.1", value: record("t-a") }) + "\n",
    );
    await Deno.mkdir(`${dir}/running`);
    const write = (name: string, text: string) =>
      Deno.writeTextFile(`${dir}/running/${name}`, text);
    await write("t-a.1.json", JSON.stringify(record("t-a")) + "\n");
    await write("t%2Fb.2.json", JSON.stringify(record("t/b", 2)) + "\n");
    await write("t-c.1.json.tmp", JSON.stringify(record("t-c")).slice(0, 20));
    await write("junk.json", "{not json");
    await write("t-d.1.json", JSON.stringify({ ...record("t-d"), pid: 1 }));

    const { log, warned } = warnings();
    assert.deepEqual(await nextLife(dir, log), [record("t-a"), record("t/b", 2)]);
    assert.deepEqual(warned.sort(), [
      `removing an unreadable file of the old state_dir layout ${dir}/running/junk.json`,
      `removing an unreadable file of the old state_dir layout ${dir}/running/t-d.1.json`,
    ]);
    await assert.rejects(Deno.stat(`${dir}/running`), Deno.errors.NotFound, "folder removed");
    // And the life after finds them in the journal alone.
    assert.deepEqual(await nextLife(dir), [record("t-a"), record("t/b", 2)]);
  });
});

Deno.test("a file of state_dir/running/ that is not a record's is left, with its folder", async () => {
  await withStateDir(async (dir) => {
    await Deno.mkdir(`${dir}/running`);
    await Deno.writeTextFile(`${dir}/running/t-a.1.json`, JSON.stringify(record("t-a")));
    await Deno.writeTextFile(`${dir}/running/README`, "an operator's note\n");
    assert.deepEqual(await nextLife(dir), [record("t-a")]);
    const left = [];
    for await (const entry of Deno.readDir(`${dir}/running`)) left.push(entry.name);
    assert.deepEqual(left, ["README"]);
  });
});
