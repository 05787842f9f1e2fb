import assert from "node:assert/strict";
import { formatSize, parseSize } from "./size.ts";

Deno.test("parseSize reads plain bytes and units", () => {
  assert.equal(parseSize("512"), 512);
  assert.equal(parseSize("64KiB"), 65536);
  assert.equal(parseSize("1MiB"), 1048576);
  assert.equal(parseSize("2GB"), 2_000_000_000);
  assert.equal(parseSize("1.5kib"), 1536);
});

Deno.test("parseSize refuses bad text and names it", () => {
  for (const text of ["", "-1", "12 parsecs", "KiB", "1e3"]) {
    assert.throws(() => parseSize(text), new RegExp(`"${text}"`));
  }
});

Deno.test("formatSize picks the largest whole binary unit", () => {
  assert.equal(formatSize(512), "512B");
  assert.equal(formatSize(65536), "64KiB");
  assert.equal(formatSize(1.5 * 1024 ** 3), "1.5GiB");
  assert.equal(formatSize(8 * 1024 ** 3), "8GiB");
});
