/**
 * Reconnect delays: capped exponential backoff with full jitter, so that many workers cut off
 * at once do not come back at once.
 */
export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
}

/** The delay before reconnect attempt `attempt` (0 for the first retry). */
export function backoffDelay(
  attempt: number,
  options: BackoffOptions,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(options.maxMs, options.initialMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * ceiling);
}
