import assert from "node:assert/strict";
import { z } from "zod";
import { ConfigError, durationSchema, loadConfigFile, sizeSchema } from "./config.ts";

const schema = z.strictObject({
  every: durationSchema.default(1000),
  limit: sizeSchema.default(10),
  name: z.string().optional(),
});

async function withFile(text: string, fn: (path: string) => Promise<void>): Promise<void> {
  const path = await Deno.makeTempFile({ suffix: ".yaml" });
  try {
    await Deno.writeTextFile(path, text);
    await fn(path);
  } finally {
    await Deno.remove(path);
  }
}

Deno.test("loadConfigFile reads durations and sizes", async () => {
  await withFile("every: 2m\nlimit: 1KiB\n", async (path) => {
    assert.deepEqual(await loadConfigFile(path, schema), { every: 120_000, limit: 1024 });
  });
});

Deno.test("an empty file means every default", async () => {
  await withFile("# nothing set\n", async (path) => {
    assert.deepEqual(await loadConfigFile(path, schema), { every: 1000, limit: 10 });
  });
});

Deno.test("loadConfigFile names the file in every refusal", async () => {
  const cases: [string, RegExp][] = [
    ["every: [\n", /: not valid YAML: /],
    ["- a\n- b\n", /: expected a mapping of keys to values at the top level$/],
    ["every: soon\n", /: every: Invalid duration "soon"/],
    ["limit: -5\n", /: limit: /],
    ["nmae: x\n", /: unknown key "nmae"$/],
  ];
  for (const [text, expected] of cases) {
    await withFile(text, async (path) => {
      await assert.rejects(loadConfigFile(path, schema), (e: Error) => {
        assert.ok(e instanceof ConfigError);
        assert.ok(e.message.startsWith(`${path}: `), e.message);
        assert.match(e.message, expected);
        assert.equal(e.message.split("\n").length, 1, "one line");
        return true;
      });
    });
  }
});

Deno.test("a missing file says so", async () => {
  await assert.rejects(
    loadConfigFile("/nonexistent/go-schedule.yaml", schema),
    /^ConfigError: \/nonexistent\/go-schedule\.yaml: cannot read the config file: no such file$/,
  );
});
