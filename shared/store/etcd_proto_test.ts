import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import {
  decodeRangeResponse,
  decodeTxnResponse,
  encodeRangeRequest,
  encodeTxnRequest,
} from "./etcd_proto.ts";

const b = (s: string) => Buffer.from(s);
const bytes = (...parts: (number | string | number[])[]) =>
  new Uint8Array(
    parts.flatMap((p) => typeof p === "number" ? [p] : typeof p === "string" ? [...b(p)] : p),
  );

Deno.test("etcd proto: a range request is etcd's RangeRequest, zeros left out", () => {
  assert.deepEqual(
    encodeRangeRequest({ key: b("a"), range_end: b("b"), limit: 300, keys_only: true }),
    // key (1), range_end (2), limit (3) as a two-byte varint, keys_only (8).
    bytes(0x0a, 1, "a", 0x12, 1, "b", 0x18, 0xac, 0x02, 0x40, 1),
  );
  assert.deepEqual(
    encodeRangeRequest({ key: b("k"), limit: 0, count_only: false }),
    bytes(0x0a, 1, "k"),
  );
});

Deno.test("etcd proto: a compare with a zero revision still says what it compares", () => {
  // "Create == 0" (the key does not exist) must carry create_revision (5) = 0: it is a field of
  // a oneof, which protobuf writes even when zero.
  const create = encodeTxnRequest({
    compare: [{ key: b("k"), target: "Create", result: "Equal", create_revision: 0 }],
  });
  assert.deepEqual(create, bytes(0x0a, 7, 0x10, 1, 0x1a, 1, "k", 0x28, 0));
  const mod = encodeTxnRequest({
    compare: [{ key: b("k"), target: "Mod", result: "NotEqual", mod_revision: "9007199254740993" }],
  });
  // result NotEqual (1) = 3, target Mod (2) = 2, mod_revision (6) past 2^53, exact.
  assert.deepEqual(
    mod,
    bytes(0x0a, 16, 0x08, 3, 0x10, 2, 0x1a, 1, "k", 0x30, [
      0x81,
      0x80,
      0x80,
      0x80,
      0x80,
      0x80,
      0x80,
      0x10,
    ]),
  );
});

Deno.test("etcd proto: a transaction's operations nest as RequestOps", () => {
  const txn = encodeTxnRequest({
    success: [
      { request_put: { key: b("k"), value: b("v"), prev_kv: true } },
      { request_delete_range: { key: b("d") } },
    ],
    failure: [{ request_range: { key: b("k"), keys_only: true } }],
  });
  assert.deepEqual(
    txn,
    bytes(
      [0x12, 10, 0x12, 8, 0x0a, 1, 107, 0x12, 1, 118, 0x20, 1], // success: put k=v, prev_kv
      [0x12, 5, 0x1a, 3, 0x0a, 1, 100], // success: delete d
      [0x1a, 7, 0x0a, 5, 0x0a, 1, 107, 0x40, 1], // failure: range k, keys_only
    ),
  );
});

Deno.test("etcd proto: a big transaction's bytes are all there, in order", () => {
  // More than the writer's first scratch space, with values written as given between them.
  const value = Buffer.alloc(3000, 0x61);
  const ops = Array.from({ length: 128 }, (_, i) => ({
    request_put: { key: b(`key-${String(i).padStart(4, "0")}`), value },
  }));
  const txn = encodeTxnRequest({ success: ops });
  // Each op: 0x12 len(3) [0x12 len(2)? ...]: walk it back field by field.
  let at = 0;
  const varint = () => {
    let v = 0, scale = 1;
    for (;;) {
      const byte = txn[at++];
      v += (byte & 0x7f) * scale;
      if (byte < 0x80) return v;
      scale *= 128;
    }
  };
  for (let i = 0; i < 128; i++) {
    assert.equal(txn[at++], 0x12, `op ${i} is a success op`);
    const opEnd = varint() + at;
    assert.equal(txn[at++], 0x12, `op ${i} is a put`);
    assert.equal(varint() + at, opEnd);
    assert.equal(txn[at++], 0x0a);
    const keyLength = varint();
    assert.equal(
      Buffer.from(txn.subarray(at, at + keyLength)).toString(),
      `key-${String(i).padStart(4, "0")}`,
    );
    at += keyLength;
    assert.equal(txn[at++], 0x12);
    assert.equal(varint(), 3000);
    assert.ok(txn.subarray(at, at + 3000).every((c) => c === 0x61), `op ${i}'s value`);
    at += 3000;
    assert.equal(at, opEnd);
  }
  assert.equal(at, txn.length);
});

// A KeyValue: key "k", create_revision 2, mod_revision 2^60 (past 2^53), version 1, value "v".
const KV = bytes(
  0x0a,
  1,
  "k",
  0x10,
  2,
  0x18,
  [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10],
  0x20,
  1,
  0x2a,
  1,
  "v",
);
// A ResponseHeader: cluster_id 7 (not read), revision 12, raft_term 3.
const HEADER = bytes(0x08, 7, 0x18, 12, 0x20, 3);

Deno.test("etcd proto: a range response gives its keys, values and exact revisions", () => {
  const response = decodeRangeResponse(
    bytes(0x0a, HEADER.length, [...HEADER], 0x12, KV.length, [...KV], 0x18, 1, 0x20, 5),
  );
  assert.equal(response.header.revision, "12");
  assert.equal(response.count, "5");
  assert.equal(response.more, true);
  assert.equal(response.kvs.length, 1);
  const [kv] = response.kvs;
  assert.equal(kv.key.toString(), "k");
  assert.equal(kv.value.toString(), "v");
  assert.equal(kv.create_revision, "2");
  assert.equal(kv.mod_revision, "1152921504606846976");
  assert.equal(kv.version, "1");
  assert.deepEqual(decodeRangeResponse(new Uint8Array(0)), {
    header: { revision: "0" },
    kvs: [],
    count: "0",
    more: false,
  });
});

Deno.test("etcd proto: a transaction's answers are read by their kind", () => {
  const put = bytes(0x0a, HEADER.length, [...HEADER], 0x12, KV.length, [...KV]);
  const del = bytes(0x0a, HEADER.length, [...HEADER], 0x10, 4);
  const range = bytes(0x12, KV.length, [...KV]);
  const response = decodeTxnResponse(bytes(
    [0x0a, HEADER.length, ...HEADER, 0x10, 1],
    [0x1a, put.length + 2, 0x12, put.length, ...put],
    [0x1a, del.length + 2, 0x1a, del.length, ...del],
    [0x1a, range.length + 2, 0x0a, range.length, ...range],
    // A field this client does not know is passed over.
    [0x7a, 2, 0x01, 0x02],
  ));
  assert.equal(response.header.revision, "12");
  assert.equal(response.succeeded, true);
  assert.equal(response.responses.length, 3);
  const [p, d, r] = response.responses;
  assert.equal(p.response_put.prev_kv.value.toString(), "v");
  assert.equal(p.response_put.header.revision, "12");
  assert.equal(d.response_delete_range.deleted, "4");
  assert.deepEqual(r.response_range.kvs.map((kv) => kv.key.toString()), ["k"]);
  // Another kind reads as empty, as etcd's own clients see an unset oneof.
  assert.equal(d.response_put.prev_kv.value.length, 0);
  assert.deepEqual(p.response_range.kvs, []);
});

Deno.test("etcd proto: a cut-off answer is an error, not a short result", () => {
  assert.throws(() => decodeRangeResponse(bytes(0x12, 20, 0x0a)), /truncated protobuf message/);
  assert.throws(() => decodeTxnResponse(bytes(0x10)), /truncated protobuf message/);
});

Deno.test("etcd proto: room asked for before a message is left free, the message unchanged", () => {
  const request = { success: [{ request_put: { key: b("k"), value: b("v") } }] };
  const plain = encodeTxnRequest(request);
  const roomy = encodeTxnRequest(request, 5);
  assert.deepEqual(roomy.subarray(0, 5), new Uint8Array(5));
  assert.deepEqual(roomy.subarray(5), plain);
  assert.deepEqual(encodeRangeRequest({ key: b("k") }, 5), bytes(0, 0, 0, 0, 0, 0x0a, 1, "k"));
});
