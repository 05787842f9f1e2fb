/** A report as the SetTask call the manager takes. */
import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  type SetTaskRequestSchema,
  Termination,
} from "../shared/gen/goschedule/v1/goschedule_pb.ts";
import type { Termination as StopReason } from "./executor.ts";
import type { TaskReport } from "./report_outbox.ts";

/** How a result's termination travels to the manager. */
const TERMINATIONS: Record<StopReason | "none", Termination> = {
  none: Termination.UNSPECIFIED,
  cancelled: Termination.CANCELLED,
  deadline_exceeded: Termination.DEADLINE_EXCEEDED,
  worker_stopping: Termination.WORKER_STOPPING,
};

export function setTaskRequest(
  workerId: string,
  { taskId, attempt, result }: TaskReport,
): MessageInitShape<typeof SetTaskRequestSchema> {
  const outcome = result.outcome;
  return {
    workerId,
    taskId,
    attempt,
    outcome: outcome.kind === "exited"
      ? { case: "exited", value: { exitCode: outcome.exitCode, signal: outcome.signal ?? "" } }
      : outcome.kind === "start_failed"
      ? { case: "startError", value: outcome.error }
      : outcome.kind === "not_started"
      ? { case: "notStarted", value: outcome.reason }
      : { case: "abandoned", value: outcome.reason },
    ...result.output,
    startedAt: timestampFromMs(result.startedAt),
    finishedAt: timestampFromMs(result.finishedAt),
    termination: TERMINATIONS[result.termination ?? "none"],
  };
}
