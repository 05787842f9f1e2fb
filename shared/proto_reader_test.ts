import assert from "node:assert/strict";
import { ProtoReader, ProtoReadError } from "./proto_reader.ts";

Deno.test("a malformed message is a ProtoReadError naming its sender", () => {
  const cases: [Uint8Array, (r: ProtoReader) => unknown, RegExp][] = [
    [
      new Uint8Array([0x0a, 0x05, 0x61]),
      (r) => (r.tag(), r.bytes()),
      /^etcd sent a truncated protobuf message$/,
    ],
    [new Uint8Array(11).fill(0x80), (r) => r.varint(), /^etcd sent a malformed protobuf varint$/],
    [
      new Uint8Array([0x02, 0xff, 0x41]),
      (r) => r.string(),
      /^etcd sent a protobuf string that is not UTF-8$/,
    ],
    [
      new Uint8Array([0x0b]),
      (r) => r.skip(r.tag()![1]),
      /^etcd sent a protobuf field of wire type 3$/,
    ],
  ];
  for (const [bytes, read, message] of cases) {
    assert.throws(() => read(new ProtoReader(bytes, "etcd")), (e: unknown) => {
      assert.ok(e instanceof ProtoReadError);
      assert.match(e.message, message);
      return true;
    });
  }
});

Deno.test("int64 varints stay exact as strings, and strings decode as UTF-8", () => {
  // 2^63 - 1, then -1 (ten bytes), then 300.
  const bytes = new Uint8Array([
    ...[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f],
    ...[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
    0xac,
    0x02,
  ]);
  const r = new ProtoReader(bytes, "etcd");
  assert.deepEqual([r.varintString(), r.varintString(), r.varintString()], [
    "9223372036854775807",
    "-1",
    "300",
  ]);
  assert.ok(r.done);
  const text = "\ufeffünïcödé ✓ 𝄞 " + "a".repeat(70);
  const encoded = new TextEncoder().encode(text);
  for (const s of ["id-123", text]) {
    const e = new TextEncoder().encode(s);
    assert.equal(new ProtoReader(new Uint8Array([e.length, ...e]), "x").string(), s);
  }
  assert.ok(encoded.length > 64);
});
