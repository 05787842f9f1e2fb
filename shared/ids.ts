/**
 * Task ids that sort by creation time, so that listing in key order is listing oldest first,
 * and are short enough to type: 10 characters of milliseconds and 6 of randomness, in
 * Crockford's base32 (no i, l, o, u), lowercase.
 */

const ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz";

export function createTaskId(now: number, random: () => number = Math.random): string {
  let time = "";
  let ms = Math.floor(now);
  for (let i = 0; i < 10; i++) {
    time = ALPHABET[ms % 32] + time;
    ms = Math.floor(ms / 32);
  }
  let tail = "";
  for (let i = 0; i < 6; i++) tail += ALPHABET[Math.floor(random() * 32)];
  return time + tail;
}

/** Ids for tasks created in one call, strictly increasing even within one millisecond. */
export function createTaskIds(
  count: number,
  now: number,
  random: () => number = Math.random,
): string[] {
  const ids = Array.from({ length: count }, () => createTaskId(now, random));
  // Same-millisecond ids differ only in randomness; sorting keeps the batch's order stable.
  return ids.sort();
}

/** Worker ids are chosen once by the worker and kept in its state_dir. */
export function createWorkerId(random: () => number = Math.random): string {
  let id = "w-";
  for (let i = 0; i < 10; i++) id += ALPHABET[Math.floor(random() * 32)];
  return id;
}
