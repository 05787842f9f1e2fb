/**
 * What to do when a worker (re)connects and says what it runs: pure, so every case is tested
 * without streams. The worker's word decides about the attempts the manager gave it; the
 * manager's word decides about everything else the worker runs.
 */
import type { TaskRecord } from "../shared/task.ts";

export interface AttemptRef {
  taskId: string;
  attempt: number;
}

export interface ReconcilePlan {
  /** Sent, but the acknowledgement was lost with the old stream: the worker runs them. */
  acknowledge: AttemptRef[];
  /** Given to this worker, but it neither runs them nor holds their results: lost. */
  lost: AttemptRef[];
  /** The worker runs them, but they are not (or no longer) its to run: stop them. */
  cancel: AttemptRef[];
}

/**
 * @param workerId the worker that connected
 * @param assigned the manager's unfinished tasks placed on that worker
 * @param running the attempts the worker runs now
 * @param unreported the attempts that ended whose results are on their way
 */
export function planReconcile(
  workerId: string,
  assigned: TaskRecord[],
  running: AttemptRef[],
  unreported: AttemptRef[],
): ReconcilePlan {
  const key = (ref: AttemptRef) => `${ref.taskId}#${ref.attempt}`;
  const runs = new Set(running.map(key));
  const reports = new Set(unreported.map(key));
  const mine = new Set<string>();
  const plan: ReconcilePlan = { acknowledge: [], lost: [], cancel: [] };
  for (const task of assigned) {
    if (task.workerId !== workerId || task.attempt < 1) continue;
    const ref = { taskId: task.id, attempt: task.attempt };
    mine.add(key(ref));
    if (runs.has(key(ref))) {
      if (task.state === "pending") plan.acknowledge.push(ref);
      if (task.cancelRequestedAt !== undefined) plan.cancel.push(ref);
    } else if (!reports.has(key(ref))) {
      plan.lost.push(ref);
    }
  }
  for (const ref of running) {
    if (!mine.has(key(ref))) plan.cancel.push(ref);
  }
  return plan;
}
