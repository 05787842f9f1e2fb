import assert from "node:assert/strict";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import type { ConnectRequestSchema } from "../shared/gen/goschedule/v1/goschedule_pb.ts";
import type { ProcessResult } from "./executor.ts";
import { rejectsWithCode } from "../shared/connect_test_util.ts";
import { ReportChannel } from "./report_channel.ts";
import type { TaskReport } from "./report_outbox.ts";

type Outgoing = MessageInitShape<typeof ConnectRequestSchema>;

const RESULT: ProcessResult = {
  outcome: { kind: "exited", exitCode: 3 },
  output: { stdout: "out", stderr: "", stdoutTruncated: false, stderrTruncated: false },
  startedAt: 1,
  finishedAt: 2,
};
const report = (taskId: string): TaskReport => ({ taskId, attempt: 1, result: RESULT });

function channel(answerTimeoutMs?: number) {
  const calls: TaskReport[] = [];
  const sent: Outgoing[] = [];
  const reports = new ReportChannel("w1", (r) => {
    calls.push(r);
    return Promise.resolve();
  }, answerTimeoutMs);
  return { reports, calls, sent, send: (m: Outgoing) => sent.push(m) };
}

Deno.test("without a stream that takes reports, a report is a SetTask call", async () => {
  const { reports, calls } = channel();
  await reports.send(report("t1"));
  assert.deepEqual(calls.map((r) => r.taskId), ["t1"]);
});

Deno.test("on the stream, a report waits for its answer: stored, or refused with its code", async () => {
  const { reports, calls, sent, send } = channel();
  reports.attach(send);
  const stored = reports.send(report("t1"));
  const refused = reports.send(report("t2"));
  assert.deepEqual(calls, [], "no SetTask call");
  assert.deepEqual(sent.map((m) => m.msg?.case), ["report", "report"]);
  const first = sent[0].msg?.value as { workerId: string; taskId: string; attempt: number };
  assert.deepEqual([first.workerId, first.taskId, first.attempt], ["w1", "t1", 1]);

  reports.answer({ taskId: "t2", attempt: 1, code: Code.FailedPrecondition, message: "stale" });
  reports.answer({ taskId: "t1", attempt: 1, code: 0, message: "" });
  await stored;
  await rejectsWithCode(refused, Code.FailedPrecondition, "stale");
  // A late or unknown answer changes nothing.
  reports.answer({ taskId: "t1", attempt: 1, code: 0, message: "" });
});

Deno.test("the same report twice before its answer is settled by the one answer", async () => {
  const { reports, sent, send } = channel();
  reports.attach(send);
  const first = reports.send(report("t1"));
  const second = reports.send(report("t1"));
  assert.equal(sent.length, 1);
  reports.answer({ taskId: "t1", attempt: 1, code: 0, message: "" });
  await Promise.all([first, second]);
});

Deno.test("reports waiting when the stream ends are not delivered; later ones use SetTask", async () => {
  const { reports, calls, send } = channel();
  reports.attach(send);
  const waiting = reports.send(report("t1"));
  reports.detach();
  await rejectsWithCode(waiting, Code.Unavailable);
  await reports.send(report("t2"));
  assert.deepEqual(calls.map((r) => r.taskId), ["t2"]);
});

Deno.test("a report with no answer in time is not delivered (the outbox sends it again)", async () => {
  const { reports, send } = channel(5);
  reports.attach(send);
  await rejectsWithCode(reports.send(report("t1")), Code.DeadlineExceeded);
});
