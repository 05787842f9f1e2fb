import assert from "node:assert/strict";
import { ConfigError } from "../shared/config.ts";
import { DEFAULT_STORE_PATH, loadManagerConfig, parseManagerConfig } from "./config.ts";

Deno.test("an empty manager.yaml gives the documented defaults and the embedded store", () => {
  assert.deepEqual(parseManagerConfig("m.yaml", {}), {
    listen: { host: "127.0.0.1", port: 7070 },
    store: { kind: "sqlite", path: DEFAULT_STORE_PATH },
    pingIntervalMs: 2000,
    silenceTimeoutMs: 10_000,
    lostTimeoutMs: 120_000,
    ackTimeoutMs: 5000,
    scheduler: "round-robin",
    spreadLabel: "rack",
    scheduleTimeoutMs: 300_000,
    taskRetentionMs: 86_400_000,
  });
});

Deno.test("an etcd section selects etcd with its defaults", () => {
  const config = parseManagerConfig("m.yaml", {
    listen: ":7000",
    etcd: { endpoints: ["http://127.0.0.1:2379"] },
    ping_interval: "500ms",
    silence_timeout: "2s",
    ack_timeout: "1m",
    scheduler: "random",
  });
  assert.deepEqual(config.store, {
    kind: "etcd",
    endpoints: ["http://127.0.0.1:2379"],
    requestTimeoutMs: 5000,
    prefix: "/goschedule/",
    protocol: "grpc",
    compactionIntervalMs: 300_000,
  });
  assert.deepEqual(config.listen, { host: "0.0.0.0", port: 7000 });
  assert.equal(config.pingIntervalMs, 500);
  assert.equal(config.ackTimeoutMs, 60_000);
  assert.equal(config.scheduler, "random");
});

Deno.test("etcd.protocol json chooses etcd's JSON gateway", () => {
  const config = parseManagerConfig("m.yaml", {
    etcd: { endpoints: ["127.0.0.1:2379"], protocol: "json" },
  });
  assert.equal(config.store.kind === "etcd" && config.store.protocol, "json");
});

Deno.test("etcd.compaction_interval sets how often etcd's history is compacted; 0s never", () => {
  const interval = (value: string) => {
    const config = parseManagerConfig("m.yaml", {
      etcd: { endpoints: ["127.0.0.1:2379"], compaction_interval: value },
    });
    return config.store.kind === "etcd" && config.store.compactionIntervalMs;
  };
  assert.equal(interval("1h"), 3_600_000);
  assert.equal(interval("0s"), 0);
});

Deno.test("task_retention: how long finished tasks are kept; a day unless set, 0s forever", () => {
  const retention = (value?: string) =>
    parseManagerConfig("m.yaml", value === undefined ? {} : { task_retention: value })
      .taskRetentionMs;
  assert.equal(retention(), 86_400_000);
  assert.equal(retention("168h"), 7 * 86_400_000);
  assert.equal(retention("0s"), 0);
});

Deno.test("manager.yaml mistakes name the file and the key", () => {
  const cases: [unknown, RegExp][] = [
    [{ bogus: 1 }, /^m\.yaml: unknown key "bogus"$/],
    [{ etcd: { endpoints: [], bogus: 1 } }, /^m\.yaml: unknown key "etcd\.bogus"$/],
    [{ etcd: { endpoints: [] } }, /^m\.yaml: etcd\.endpoints: list at least one endpoint$/],
    [
      { etcd: { endpoints: ["127.0.0.1:2379"], protocol: "http" } },
      /^m\.yaml: etcd\.protocol: unknown etcd protocol "http": use grpc, json$/,
    ],
    [
      { etcd: { endpoints: ["127.0.0.1:2379"], compaction_interval: "-5m" } },
      /^m\.yaml: etcd\.compaction_interval: Invalid duration "-5m" \(durations cannot be negative\)/,
    ],
    [
      { task_retention: "500ms" },
      /^m\.yaml: task_retention: must be at least 1s, or 0s to keep finished tasks forever$/,
    ],
    [{ task_retention: "-1h" }, /^m\.yaml: task_retention: Invalid duration "-1h"/],
    [{ listen: 7070 }, /^m\.yaml: listen: expected string, not number$/],
    [{ listen: "localhost" }, /^m\.yaml: listen: expected host:port/],
    [{ listen: "x:70000" }, /^m\.yaml: listen: port 70000 is above 65535$/],
    [{ ping_interval: "5" }, /^m\.yaml: ping_interval: Invalid duration "5"/],
    [{ ping_interval: "0s" }, /^m\.yaml: ping_interval: must be more than 0s$/],
    [
      { ping_interval: "5s", silence_timeout: "5s" },
      /^m\.yaml: silence_timeout: must be longer than ping_interval/,
    ],
    [{ ack_timeout: "0ms" }, /^m\.yaml: ack_timeout: must be more than 0s$/],
    [{ lost_timeout: "10s" }, /^m\.yaml: lost_timeout: must be longer than silence_timeout/],
    [
      { scheduler: "fastest" },
      /^m\.yaml: scheduler: unknown scheduler "fastest": use round-robin, random, least-loaded, bin-pack, spread$/,
    ],
    [{ schedule_timeout: "0s" }, /^m\.yaml: schedule_timeout: must be more than 0s$/],
    [
      { spread_label: "no spaces" },
      /^m\.yaml: spread_label: the label key "no spaces" is not valid/,
    ],
    [
      { etcd: { endpoints: ["http://e:2379"] }, store_path: "x.db" },
      /^m\.yaml: store_path: cannot be used with etcd/,
    ],
    [{ etcd: { endpoints: ["e"], prefix: "gs" } }, /^m\.yaml: etcd\.prefix: /],
  ];
  for (const [data, expected] of cases) {
    assert.throws(() => parseManagerConfig("m.yaml", data), (e: Error) => {
      assert.ok(e instanceof ConfigError, `${JSON.stringify(data)}: ${e}`);
      assert.match(e.message, expected, JSON.stringify(data));
      return true;
    });
  }
});

Deno.test("the shipped manager.yaml is valid", async () => {
  const config = await loadManagerConfig(new URL("./manager.yaml", import.meta.url).pathname);
  assert.equal(config.store.kind, "etcd");
});
