/** Durations as operators write them in config files and flags: "500ms", "5s", "2m", "1h30m". */

const UNIT_MS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

const PART = /(\d+(?:\.\d+)?)(ms|s|m|h)/y;

/**
 * Parses a duration into milliseconds. Throws a RangeError naming the text when it is not a
 * non-negative duration with units (a bare number is refused: "5" could mean anything).
 */
export function parseDuration(text: string): number {
  const trimmed = text.trim();
  if (trimmed === "") {
    throw new RangeError(`Invalid duration "${text}": expected a number with a unit, e.g. 5s`);
  }
  let total = 0;
  PART.lastIndex = 0;
  while (PART.lastIndex < trimmed.length) {
    const start = PART.lastIndex;
    const match = PART.exec(trimmed);
    if (!match) {
      const hint = trimmed.startsWith("-") ? " (durations cannot be negative)" : "";
      throw new RangeError(
        `Invalid duration "${text}"${hint}: use a number with a unit (ms, s, m, h), e.g. 500ms, 5s, 2m`,
      );
    }
    total += Number(match[1]) * UNIT_MS[match[2]];
    if (PART.lastIndex === start) break;
  }
  return Math.round(total);
}

/** Formats milliseconds for people: "850ms", "5s", "2m30s", "1h2m". */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) {
    const s = ms / 1000;
    return `${Number.isInteger(s) ? s : s.toFixed(1)}s`;
  }
  const totalSeconds = Math.round(ms / 1000);
  const h = Math.floor(totalSeconds / 3600);
  const m = Math.floor((totalSeconds % 3600) / 60);
  const s = totalSeconds % 60;
  if (h > 0) return m > 0 ? `${h}h${m}m` : `${h}h`;
  return s > 0 ? `${m}m${s}s` : `${m}m`;
}
