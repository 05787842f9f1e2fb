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
  });
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
});
