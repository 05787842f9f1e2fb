import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { LogChunkSchema } from "../shared/gen/goschedule/v1/goschedule_pb.ts";
import { LogRelay, LogSourceLostError, LogsUnavailableError } from "./log_relay.ts";
import { type Outgoing, WorkerSession } from "./worker_session.ts";

const QUERY = { taskId: "t1", attempt: 2, follow: true, stderr: false, tailLines: 0 };

/** Everything sent on the session so far (closing it first, so the read ends). */
async function drainSent(session: WorkerSession): Promise<Outgoing[]> {
  session.outgoing.close();
  const messages: Outgoing[] = [];
  for await (const m of session.outgoing) messages.push(m);
  return messages;
}

async function collect(stream: AsyncIterable<Uint8Array>): Promise<string> {
  let text = "";
  for await (const data of stream) text += new TextDecoder().decode(data);
  return text;
}

function chunk(requestId: bigint, fields: { data?: string; eof?: boolean; error?: string }) {
  return create(LogChunkSchema, {
    requestId,
    data: new TextEncoder().encode(fields.data ?? ""),
    eof: fields.eof ?? false,
    error: fields.error ?? "",
  });
}

Deno.test("LogRelay asks the worker and yields its chunks until eof", async () => {
  const relay = new LogRelay();
  const session = new WorkerSession("w1", "", 0);
  const reading = collect(relay.read(session, QUERY, new AbortController().signal));
  await Promise.resolve();
  relay.deliver(session, chunk(1n, { data: "a" }));
  relay.deliver(new WorkerSession("w2", "", 0), chunk(1n, { data: "not yours" }));
  relay.deliver(session, chunk(1n, { data: "b", eof: true }));
  assert.equal(await reading, "ab");
  const messages = await drainSent(session);
  assert.deepEqual(messages.map((m) => m.msg?.case), ["logRequest"], "no cancel after eof");
});

Deno.test("LogRelay tells the worker to stop when the reader goes away", async () => {
  const relay = new LogRelay();
  const session = new WorkerSession("w1", "", 0);
  const abort = new AbortController();
  const reading = collect(relay.read(session, QUERY, abort.signal));
  await Promise.resolve();
  relay.deliver(session, chunk(1n, { data: "partial" }));
  abort.abort();
  assert.equal(await reading, "partial");
  const messages = await drainSent(session);
  assert.deepEqual(messages.map((m) => m.msg), [
    { case: "logRequest", value: { requestId: 1n, ...QUERY } },
    { case: "logCancel", value: { requestId: 1n } },
  ]);
});

Deno.test("LogRelay ends readers with an error when the worker disconnects", async () => {
  const relay = new LogRelay();
  const session = new WorkerSession("w1", "", 0);
  const reading = collect(relay.read(session, QUERY, new AbortController().signal));
  await Promise.resolve();
  relay.sessionClosed(session);
  await assert.rejects(reading, LogSourceLostError);
  session.close();
});

Deno.test("LogRelay passes on the worker's refusal", async () => {
  const relay = new LogRelay();
  const session = new WorkerSession("w1", "", 0);
  const reading = collect(relay.read(session, QUERY, new AbortController().signal));
  await Promise.resolve();
  relay.deliver(session, chunk(1n, { error: "no logs for task t1 attempt 2 on this worker" }));
  await assert.rejects(reading, (e: Error) => {
    assert.ok(e instanceof LogsUnavailableError);
    assert.match(e.message, /no logs for task t1/);
    return true;
  });
  session.close();
});

Deno.test("LogRelay on a closed session fails at once", async () => {
  const relay = new LogRelay();
  const session = new WorkerSession("w1", "", 0);
  session.close();
  await assert.rejects(
    collect(relay.read(session, QUERY, new AbortController().signal)),
    LogSourceLostError,
  );
});
