import assert from "node:assert/strict";
import { Code } from "@connectrpc/connect";
import { createLogger } from "../shared/log.ts";
import { StoreFullError, StoreUnavailableError } from "../shared/store/store.ts";
import { toConnectError } from "./errors.ts";
import { LogSourceLostError } from "./log_relay.ts";

function mapped(error: unknown) {
  const lines: string[] = [];
  const log = createLogger({ write: (line) => lines.push(line), now: () => 0 });
  return { error: toConnectError(error, log, "ScheduleTasks"), lines };
}

Deno.test("a full store is resource_exhausted, says nothing was written, and logs why", () => {
  const full = new StoreFullError(
    "etcd at 127.0.0.1:2379 is full (etcdserver: mvcc: database space exceeded): ...",
  );
  const { error, lines } = mapped(full);
  assert.equal(error.code, Code.ResourceExhausted);
  assert.match(
    error.rawMessage,
    /^the manager's store is full and refuses writes; nothing was written/,
  );
  assert.equal(lines.length, 1);
  assert.match(lines[0], /ERROR store full rpc=ScheduleTasks cause=.*database space exceeded/);
  assert.doesNotMatch(lines[0], /\bat .*\.ts:\d+/, "no stack trace");
});

Deno.test("a worker lost while its logs are read is aborted: the manager is not unavailable", () => {
  const lost = new LogSourceLostError("worker w1 disconnected while its logs were being read");
  const { error, lines } = mapped(lost);
  assert.equal(error.code, Code.Aborted);
  assert.equal(error.rawMessage, "worker w1 disconnected while its logs were being read");
  assert.deepEqual(lines, []);
});

Deno.test("an unavailable store is unavailable, and an unknown error internal with its stack", () => {
  assert.equal(mapped(new StoreUnavailableError("etcd is down")).error.code, Code.Unavailable);
  const { error, lines } = mapped(new Error("boom"));
  assert.equal(error.code, Code.Internal);
  assert.match(lines[0], /ERROR internal error rpc=ScheduleTasks error=.*boom/);
});
