import assert from "node:assert/strict";
import { ConfigError } from "../shared/config.ts";
import { loadSchedctlConfig, parseManagerUrl } from "./config.ts";
import { createFakeManager, NO_CONFIG, runCli } from "./test_util.ts";

async function withConfig<T>(text: string, f: (path: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "schedctl_test_" });
  try {
    const path = `${dir}/schedctl.yaml`;
    await Deno.writeTextFile(path, text);
    return await f(path);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("parseManagerUrl adds http:// to host:port and keeps http and https URLs", () => {
  assert.equal(parseManagerUrl("127.0.0.1:7070"), "http://127.0.0.1:7070");
  assert.equal(parseManagerUrl("localhost:7070"), "http://localhost:7070");
  assert.equal(parseManagerUrl("[::1]:7070"), "http://[::1]:7070");
  assert.equal(parseManagerUrl("manager.example"), "http://manager.example");
  assert.equal(parseManagerUrl("http://m:7070/"), "http://m:7070");
  assert.equal(parseManagerUrl("HTTPS://m.example:443/api/"), "https://m.example/api");
});

Deno.test("parseManagerUrl refuses other schemes and non-URLs, naming the value", () => {
  assert.throws(() => parseManagerUrl("ftp://m:7070"), {
    message: `"ftp://m:7070" uses the scheme ftp: use http:// or https://`,
  });
  assert.throws(() => parseManagerUrl("unix:///run/m.sock"), {
    message: /"unix:\/\/\/run\/m.sock" uses the scheme unix/,
  });
  assert.throws(() => parseManagerUrl("m:notaport"), {
    message: /"m:notaport" is not a URL or host:port/,
  });
  assert.throws(() => parseManagerUrl(""), { message: /must not be empty/ });
  assert.throws(() => parseManagerUrl("http://u:p@m:7070"), { message: /credentials/ });
});

Deno.test("the built-in defaults apply, silently, when the default file does not exist", async () => {
  const loaded = await loadSchedctlConfig(undefined, NO_CONFIG);
  assert.deepEqual(loaded.config, { manager: "http://127.0.0.1:7070", timeout: 10_000 });
  assert.match(loaded.source, /built-in defaults/);
});

Deno.test("the default file is read when it exists", async () => {
  await withConfig("manager: m.example:9000\ntimeout: 2s\n", async (path) => {
    const loaded = await loadSchedctlConfig(undefined, path);
    assert.deepEqual(loaded.config, { manager: "http://m.example:9000", timeout: 2_000 });
    assert.equal(loaded.source, path);
  });
});

Deno.test("an empty config file means the defaults", async () => {
  await withConfig("# nothing set\n", async (path) => {
    const { config } = await loadSchedctlConfig(path);
    assert.deepEqual(config, { manager: "http://127.0.0.1:7070", timeout: 10_000 });
  });
});

Deno.test("the example schedctl.yaml is valid and holds the defaults", async () => {
  const { config } = await loadSchedctlConfig(new URL("./schedctl.yaml", import.meta.url).pathname);
  assert.deepEqual(config, { manager: "http://127.0.0.1:7070", timeout: 10_000 });
});

Deno.test("a config file -c names that cannot be read is an error", async () => {
  await assert.rejects(loadSchedctlConfig(NO_CONFIG), {
    name: "ConfigError",
    message: `${NO_CONFIG}: cannot read the config file: no such file`,
  });
});

Deno.test("config errors are one line naming the file and the key", async () => {
  const cases: Array<[string, string]> = [
    [
      "manager: ftp://m:7070\n",
      `manager: "ftp://m:7070" uses the scheme ftp: use http:// or https://`,
    ],
    ["timeout: 5\n", "timeout: expected string, not number"],
    ["timeout: 5x\n", "timeout: Invalid duration"],
    ["timeout: 0s\n", "timeout: must be longer than 0, e.g. 10s"],
    ["manager: m:7070\ntimout: 5s\n", `unknown key "timout"`],
  ];
  for (const [text, message] of cases) {
    await withConfig(text, async (path) => {
      await assert.rejects(loadSchedctlConfig(path), (e) => {
        assert.ok(e instanceof ConfigError);
        assert.ok(e.message.startsWith(`${path}: ${message}`), e.message);
        assert.ok(!e.message.includes("\n"), e.message);
        return true;
      });
    });
  }
});

Deno.test("schedctl exits 2 on a bad config, before calling the manager", async () => {
  await withConfig("manager: ftp://m:7070\n", async (path) => {
    const fake = createFakeManager();
    const r = await runCli(["-c", path, "workers", "ls"], { transport: fake.transport });
    assert.deepEqual(r, {
      code: 2,
      stdout: "",
      stderr:
        `schedctl: ${path}: manager: "ftp://m:7070" uses the scheme ftp: use http:// or https://\n`,
    });
    assert.deepEqual(fake.calls, []);
  });
  const r = await runCli(["-c", NO_CONFIG, "workers", "ls"]);
  assert.deepEqual(r, {
    code: 2,
    stdout: "",
    stderr: `schedctl: ${NO_CONFIG}: cannot read the config file: no such file\n`,
  });
});
