import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { startEtcd } from "../../test/harness/etcd.ts";
import { frameInPlace as frame } from "../grpc_frames.ts";
import { createEtcdGrpc, unframe } from "./etcd_grpc.ts";
import { EtcdRequestError, EtcdUnavailableError } from "./etcd_kv.ts";

const soon = () => ({ deadline: Date.now() + 5_000 });

Deno.test("etcd gRPC: a put and a range through a transaction, against a real etcd", async () => {
  await using etcd = await startEtcd();
  const client = createEtcdGrpc([etcd.endpoint]);
  try {
    const key = Buffer.from("/t/k");
    const put = await client.txn({
      compare: [{ key, target: "Create", result: "Equal", create_revision: 0 }],
      success: [{ request_put: { key, value: Buffer.from("v1") } }],
    }, soon());
    assert.equal(put.succeeded, true);
    // The same compare now fails: the key exists. The failure branch's range answers.
    const again = await client.txn({
      compare: [{ key, target: "Create", result: "Equal", create_revision: 0 }],
      success: [{ request_put: { key, value: Buffer.from("v2") } }],
      failure: [{ request_range: { key } }],
    }, soon());
    assert.equal(again.succeeded, false);
    const [kv] = again.responses[0].response_range.kvs;
    assert.equal(kv.value.toString(), "v1");
    assert.equal(kv.mod_revision, put.header.revision);
    const range = await client.range(
      { key: Buffer.from("/t/"), range_end: Buffer.from("/t0") },
      soon(),
    );
    assert.deepEqual(range.kvs.map((kv) => kv.key.toString()), ["/t/k"]);
    assert.equal(range.count, "1");
  } finally {
    client.close();
  }
});

Deno.test("etcd gRPC: etcd's refusal is a request error with etcd's words", async () => {
  await using etcd = await startEtcd();
  const client = createEtcdGrpc([etcd.endpoint]);
  try {
    // More operations than etcd's --max-txn-ops (128): refused with a status in the headers.
    const tooMany = Array.from({ length: 129 }, (_, i) => ({
      request_put: { key: Buffer.from(`/t/${i}`), value: Buffer.from("v") },
    }));
    await assert.rejects(client.txn({ success: tooMany }, soon()), (error: Error) => {
      assert.ok(error instanceof EtcdRequestError, `expected EtcdRequestError: ${error}`);
      assert.match(error.message, /too many operations in txn request/);
      return true;
    });
    // The client is still good.
    assert.equal((await client.range({ key: Buffer.from("/t/0") }, soon())).kvs.length, 0);
  } finally {
    client.close();
  }
});

Deno.test("etcd gRPC: a transaction of nearly a megabyte waits for etcd's flow control", async () => {
  await using etcd = await startEtcd();
  const client = createEtcdGrpc([etcd.endpoint]);
  try {
    // Past etcd's first 64 KiB window many times over: sent as etcd's window updates allow.
    const value = Buffer.alloc(7_000, 0x61);
    const puts = Array.from({ length: 128 }, (_, i) => ({
      request_put: { key: Buffer.from(`/big/${String(i).padStart(3, "0")}`), value },
    }));
    await Promise.all([1, 2].map(async (n) => {
      const response = await client.txn({ success: puts }, soon());
      assert.equal(response.succeeded, true, `transaction ${n}`);
      assert.equal(response.responses.length, 128);
    }));
    const range = await client.range(
      { key: Buffer.from("/big/"), range_end: Buffer.from("/big0") },
      soon(),
    );
    assert.equal(range.count, "128");
    assert.ok(range.kvs.every((kv) => kv.value.equals(value)));
  } finally {
    client.close();
  }
});

Deno.test("etcd gRPC: an answer is one uncompressed message, or the call failed", () => {
  const message = new Uint8Array([1, 2, 3]);
  // The encoder leaves five bytes free before the message for the frame header.
  const withRoom = () => new Uint8Array([0, 0, 0, 0, 0, ...message]);
  assert.deepEqual(unframe(frame(withRoom()), "Txn"), message);
  assert.deepEqual(frame(withRoom()), new Uint8Array([0, 0, 0, 0, 3, 1, 2, 3]));
  // No message at all: the status was in trailers, which fetch does not show, or the
  // connection broke. The write's fate is unknown.
  assert.throws(
    () => unframe(new Uint8Array(0), "Txn"),
    (e: Error) =>
      e instanceof EtcdUnavailableError && /ended the Txn call without an answer/.test(e.message),
  );
  const compressed = frame(withRoom());
  compressed[0] = 1;
  assert.throws(() => unframe(compressed, "Txn"), EtcdRequestError);
  assert.throws(
    () => unframe(frame(withRoom()).subarray(0, 7), "Range"),
    /7 bytes that are not one/,
  );
});
