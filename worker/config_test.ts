import assert from "node:assert/strict";
import { ConfigError } from "../shared/config.ts";
import { loadWorkerConfig, parseWorkerConfig } from "./config.ts";

Deno.test("an empty worker.yaml gives the documented defaults", () => {
  assert.deepEqual(parseWorkerConfig("w.yaml", {}), {
    manager: "http://127.0.0.1:7070",
    stateDir: "/var/lib/go-schedule/worker",
    id: undefined,
    hostname: undefined,
    outputLimit: 65536,
    logLimit: 10 * 1024 * 1024,
    logRetentionMs: 24 * 3_600_000,
    reconnectMaxDelayMs: 10_000,
    capacity: {},
    labels: {},
  });
});

Deno.test("worker.yaml capacity and labels are read; each capacity key is optional", () => {
  const config = parseWorkerConfig("w.yaml", {
    capacity: { cpu: 0.5, memory: "8GiB", slots: 2 },
    labels: { zone: "a", gpu: "true", "example.com/rack": "r-01", ssd: "" },
  });
  assert.deepEqual(config.capacity, { cpu: 0.5, memoryBytes: 8 * 1024 ** 3, slots: 2 });
  assert.deepEqual(config.labels, {
    zone: "a",
    gpu: "true",
    "example.com/rack": "r-01",
    ssd: "",
  });
  assert.deepEqual(parseWorkerConfig("w.yaml", { capacity: { slots: 3 } }).capacity, { slots: 3 });
  assert.deepEqual(parseWorkerConfig("w.yaml", { capacity: { queue: 0 } }).capacity, { queue: 0 });
  assert.deepEqual(parseWorkerConfig("w.yaml", { capacity: { memory: 1024 } }).capacity, {
    memoryBytes: 1024,
  });
  // `capacity:` and `labels:` with nothing under them.
  const empty = parseWorkerConfig("w.yaml", { capacity: null, labels: null });
  assert.deepEqual([empty.capacity, empty.labels], [{}, {}]);
});

Deno.test("worker.yaml capacity and label mistakes name the key", () => {
  const cases: [unknown, RegExp][] = [
    [{ capacity: { cpus: 4 } }, /^w\.yaml: unknown key "capacity\.cpus"$/],
    [{ capacity: 4 }, /^w\.yaml: capacity: expected object, not number$/],
    [{ capacity: { cpu: 0 } }, /^w\.yaml: capacity\.cpu: 0 is not a number of cores above 0/],
    [{ capacity: { cpu: -2 } }, /^w\.yaml: capacity\.cpu: -2 is not a number of cores above 0/],
    [{ capacity: { cpu: "four" } }, /^w\.yaml: capacity\.cpu: expected number, not string$/],
    [{ capacity: { memory: "lots" } }, /^w\.yaml: capacity\.memory: Invalid size "lots"/],
    [
      { capacity: { memory: 0 } },
      /^w\.yaml: capacity\.memory: must be a size above 0, e\.g\. 8GiB$/,
    ],
    [
      { capacity: { slots: 0 } },
      /^w\.yaml: capacity\.slots: 0 is not a whole number of tasks from 1 up/,
    ],
    [{ capacity: { slots: 1.5 } }, /^w\.yaml: capacity\.slots: 1\.5 is not a whole number/],
    [
      { capacity: { queue: -1 } },
      /^w\.yaml: capacity\.queue: -1 is not a whole number of tasks from 0 up \(how many wait here for a free slot\)$/,
    ],
    [{ capacity: { queue: 0.5 } }, /^w\.yaml: capacity\.queue: 0\.5 is not a whole number/],
    [
      { labels: ["zone=a"] },
      /^w\.yaml: labels: expected a mapping of label keys to texts, not a list, e\.g\. labels: \{zone: a, gpu: "true"\}$/,
    ],
    [
      { labels: "zone=a" },
      /^w\.yaml: labels: expected a mapping of label keys to texts, not string/,
    ],
    [
      { labels: { "Zone A": "x" } },
      /^w\.yaml: labels: the label key "Zone A" is not valid: use 1 to 63 letters, digits/,
    ],
    [{ labels: { "-zone": "x" } }, /^w\.yaml: labels: the label key "-zone" is not valid/],
    [{ labels: { ["k".repeat(64)]: "x" } }, /^w\.yaml: labels: the label key "k{64}" is not valid/],
    [
      { labels: { "Example.com/rack": "x" } },
      /^w\.yaml: labels: the label key "Example\.com\/rack" has a bad prefix "Example\.com": before "\/" use a lowercase DNS name/,
    ],
    [{ labels: { "/rack": "x" } }, /^w\.yaml: labels: the label key "\/rack" has a bad prefix ""/],
    [
      { labels: { "example.com/": "x" } },
      /^w\.yaml: labels: the label key "example\.com\/" is not valid/,
    ],
    [
      { labels: { zone: "a b" } },
      /^w\.yaml: labels: the value "a b" of label zone is not valid: use 1 to 63 letters.*, or nothing$/,
    ],
    [
      { labels: { zone: "v".repeat(64) } },
      /^w\.yaml: labels: the value "v{64}" of label zone is not valid/,
    ],
    [
      { labels: { gpu: true } },
      /^w\.yaml: labels: gpu: the value must be text, not boolean: quote it, e\.g\. gpu: "true"$/,
    ],
    [
      { labels: { rack: 1 } },
      /^w\.yaml: labels: rack: the value must be text, not number: quote it, e\.g\. rack: "1"$/,
    ],
    [
      { labels: { ssd: null } },
      /^w\.yaml: labels: ssd has no value: write ssd: "" for a label without one$/,
    ],
    [{ labels: { zone: ["a"] } }, /^w\.yaml: labels: zone: the value must be text, not a list$/],
  ];
  for (const [data, expected] of cases) {
    assert.throws(() => parseWorkerConfig("w.yaml", data), (e: Error) => {
      assert.ok(e instanceof ConfigError, `${JSON.stringify(data)}: ${e}`);
      assert.match(e.message, expected, JSON.stringify(data));
      return true;
    });
  }
});

Deno.test("worker.yaml values are read, host:port gets http://", () => {
  const config = parseWorkerConfig("w.yaml", {
    manager: "10.0.0.1:7070",
    state_dir: "/srv/w",
    id: "build-01",
    output_limit: "1MiB",
    log_limit: "100MiB",
    log_retention: "168h",
    reconnect_max_delay: "30s",
  });
  assert.equal(config.manager, "http://10.0.0.1:7070");
  assert.equal(config.id, "build-01");
  assert.equal(config.outputLimit, 1048576);
  assert.equal(config.logLimit, 100 * 1048576);
  assert.equal(config.logRetentionMs, 7 * 24 * 3_600_000);
  assert.equal(config.reconnectMaxDelayMs, 30_000);
});

Deno.test("worker.yaml mistakes name the file and the key", () => {
  const cases: [unknown, RegExp][] = [
    [{ manger: "x" }, /^w\.yaml: unknown key "manger"$/],
    [{ manager: "ftp://m" }, /^w\.yaml: manager: "ftp:\/\/m" is not an http/],
    [{ id: "../x" }, /^w\.yaml: id: use 1 to 63 letters/],
    [{ output_limit: "lots" }, /^w\.yaml: output_limit: Invalid size "lots"/],
    [{ output_limit: 10 }, /^w\.yaml: output_limit: must be at least 1KiB$/],
    [{ log_limit: "12 parsecs" }, /^w\.yaml: log_limit: Invalid size "12 parsecs"/],
    [{ log_limit: 100 }, /^w\.yaml: log_limit: must be at least 1KiB$/],
    [{ log_retention: "a day" }, /^w\.yaml: log_retention: Invalid duration "a day"/],
    [{ log_retention: "30s" }, /^w\.yaml: log_retention: must be at least 1m, or logs could/],
    [{ reconnect_max_delay: "1ms" }, /^w\.yaml: reconnect_max_delay: must be at least 100ms$/],
    [{ state_dir: 3 }, /^w\.yaml: state_dir: expected string, not number$/],
  ];
  for (const [data, expected] of cases) {
    assert.throws(() => parseWorkerConfig("w.yaml", data), (e: Error) => {
      assert.ok(e instanceof ConfigError, `${JSON.stringify(data)}: ${e}`);
      assert.match(e.message, expected, JSON.stringify(data));
      return true;
    });
  }
});

Deno.test("the shipped worker.yaml is valid", async () => {
  const config = await loadWorkerConfig(new URL("./worker.yaml", import.meta.url).pathname);
  assert.equal(config.manager, "http://127.0.0.1:7070");
  assert.equal(config.logLimit, 10 * 1024 * 1024);
  assert.equal(config.logRetentionMs, 24 * 3_600_000);
  // Commented out: detected.
  assert.deepEqual(config.capacity, {});
  assert.deepEqual(config.labels, {});
});

Deno.test("the capacity and labels commented in worker.yaml are valid when uncommented", async () => {
  const text = await Deno.readTextFile(new URL("./worker.yaml", import.meta.url));
  const start = text.indexOf("# capacity:");
  assert.ok(start !== -1);
  // Up to the tls section, whose files a test machine does not have (shared/tls_test.ts).
  const end = text.indexOf("# tls:");
  assert.ok(end > start);
  const uncommented = text.slice(start, end).split("\n").filter((l) =>
    /^# {0,3}[a-z]/.test(l) &&
    /^# ( {2})?[a-z]+:/.test(l)
  ).map((l) => l.slice(2)).join("\n");
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/w.yaml`, uncommented);
    const config = await loadWorkerConfig(`${dir}/w.yaml`);
    assert.deepEqual(config.capacity, { cpu: 4, memoryBytes: 8 * 1024 ** 3, slots: 2, queue: 4 });
    assert.deepEqual(config.labels, { zone: "a", gpu: "true" });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
