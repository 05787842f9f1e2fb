/** Byte sizes as operators write them: "512", "64KiB", "1MiB", "2GB". */

const UNIT_BYTES: Record<string, number> = {
  "": 1,
  b: 1,
  kb: 1000,
  mb: 1000 ** 2,
  gb: 1000 ** 3,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
};

/** Parses a size into bytes; throws a RangeError naming the text when it is not one. */
export function parseSize(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  const unit = match?.[2].toLowerCase();
  if (!match || unit === undefined || !(unit in UNIT_BYTES)) {
    throw new RangeError(`Invalid size "${text}": use a number with an optional unit, e.g. 64KiB`);
  }
  return Math.floor(Number(match[1]) * UNIT_BYTES[unit]);
}

/** Formats bytes for people with a binary unit: "512B", "64KiB", "1.5GiB". */
export function formatSize(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  const shown = Number.isInteger(value) ? String(value) : value.toFixed(1).replace(/\.0$/, "");
  return `${shown}${units[unit]}`;
}
