/**
 * Task ids that sort by creation time, so that listing in key order is listing oldest first,
 * and are short enough to type: 10 characters of milliseconds and 6 of randomness, in
 * Crockford's base32 (no i, l, o, u), lowercase.
 */

const ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz";

export function createTaskId(now: number, random: () => number = Math.random): string {
  const time = encode(Math.floor(now), 10);
  let tail = "";
  for (let i = 0; i < 6; i++) tail += ALPHABET[Math.floor(random() * 32)];
  return time + tail;
}

/**
 * Ids for tasks created in one call: distinct and strictly increasing. After a random first
 * tail the rest count up from it, as ULIDs do, so a batch of 10,000 in one millisecond cannot
 * collide with itself (random tails alone would, about once in twenty such batches).
 */
export function createTaskIds(
  count: number,
  now: number,
  random: () => number = Math.random,
): string[] {
  const first = createTaskId(now, random);
  const time = first.slice(0, 10);
  // Start low enough in the tail's range that counting up never overflows it.
  let tail = Math.floor(random() * (32 ** 6 - count));
  return Array.from({ length: count }, () => time + encode(tail++, 6));
}

function encode(value: number, width: number): string {
  let out = "";
  for (let i = 0; i < width; i++) {
    out = ALPHABET[value % 32] + out;
    value = Math.floor(value / 32);
  }
  return out;
}

/** Worker ids are chosen once by the worker and kept in its state_dir. */
export function createWorkerId(random: () => number = Math.random): string {
  let id = "w-";
  for (let i = 0; i < 10; i++) id += ALPHABET[Math.floor(random() * 32)];
  return id;
}
