import assert from "node:assert/strict";
import { OutputTail } from "./output_tail.ts";

const bytes = (s: string) => new TextEncoder().encode(s);

Deno.test("OutputTail keeps everything under the limit", () => {
  const tail = new OutputTail(10);
  tail.write(bytes("abc"));
  tail.write(bytes("def"));
  assert.equal(tail.text(), "abcdef");
  assert.equal(tail.truncated, false);
});

Deno.test("OutputTail keeps the last bytes and says it dropped some", () => {
  const tail = new OutputTail(5);
  tail.write(bytes("abc"));
  tail.write(bytes("defg"));
  assert.equal(tail.text(), "cdefg");
  assert.equal(tail.truncated, true);
  tail.write(bytes("0123456789"));
  assert.equal(tail.text(), "56789");
});

Deno.test("OutputTail of exactly the limit is not truncated", () => {
  const tail = new OutputTail(4);
  tail.write(bytes("abcd"));
  assert.equal(tail.text(), "abcd");
  assert.equal(tail.truncated, false);
});

Deno.test("OutputTail turns invalid UTF-8 into replacement characters", () => {
  const tail = new OutputTail(16);
  tail.write(new Uint8Array([0x68, 0x69, 0xff, 0xfe, 0x00]));
  assert.equal(tail.text(), "hi\uFFFD\uFFFD\u0000");
});
