/**
 * The aligned-column table of `ls` commands. Pure: rows in, string out. Cells never break a
 * row (control characters are shown as escapes) and columns line up by display width, so
 * wide characters (CJK, emoji) and combining marks keep the columns straight.
 */
import { visible } from "./format.ts";

/** One column of a table. */
export interface Column {
  /** The header, in capitals by convention: "ID", "LAST SEEN". */
  header: string;
  /** Cells wider than this many terminal columns are cut and end with "…". */
  maxWidth?: number;
}

/** The space between two columns. */
const GAP = "   ";

const segmenter = new Intl.Segmenter(undefined, { granularity: "grapheme" });

// East Asian Wide and Fullwidth ranges: these take two terminal columns.
const WIDE_RANGES: ReadonlyArray<readonly [number, number]> = [
  [0x1100, 0x115f],
  [0x231a, 0x231b],
  [0x2e80, 0x303e],
  [0x3041, 0x33ff],
  [0x3400, 0x4dbf],
  [0x4e00, 0x9fff],
  [0xa000, 0xa4cf],
  [0xa960, 0xa97f],
  [0xac00, 0xd7a3],
  [0xf900, 0xfaff],
  [0xfe10, 0xfe19],
  [0xfe30, 0xfe6f],
  [0xff00, 0xff60],
  [0xffe0, 0xffe6],
  [0x1f300, 0x1f64f],
  [0x1f900, 0x1f9ff],
  [0x20000, 0x2fffd],
  [0x30000, 0x3fffd],
];

const ZERO_WIDTH = /^[\p{Mn}\p{Me}\p{Cf}]/u;
const EMOJI_PRESENTATION = /\p{Emoji_Presentation}|\ufe0f/u;

function graphemeWidth(grapheme: string): number {
  const cp = grapheme.codePointAt(0)!;
  if (ZERO_WIDTH.test(grapheme)) return 0;
  if (EMOJI_PRESENTATION.test(grapheme)) return 2;
  for (const [lo, hi] of WIDE_RANGES) {
    if (cp >= lo && cp <= hi) return 2;
  }
  return 1;
}

/** How many terminal columns a one-line text takes. */
export function displayWidth(text: string): number {
  let width = 0;
  for (const { segment } of segmenter.segment(text)) width += graphemeWidth(segment);
  return width;
}

/** Cuts a one-line text to at most `max` terminal columns, ending it with "…" when cut. */
export function truncateToWidth(text: string, max: number): string {
  if (displayWidth(text) <= max) return text;
  let out = "";
  let width = 0;
  for (const { segment } of segmenter.segment(text)) {
    const w = graphemeWidth(segment);
    if (width + w > max - 1) break;
    out += segment;
    width += w;
  }
  return `${out}…`;
}

/**
 * Formats rows under their headers, columns left-aligned and separated by three spaces, each
 * line ending with "\n" and without trailing spaces. An empty table is its header line.
 * Missing cells count as empty; extra cells are ignored.
 */
export function formatTable(
  columns: readonly Column[],
  rows: readonly (readonly string[])[],
): string {
  const cells = [
    columns.map((c) => c.header),
    ...rows.map((row) =>
      columns.map((c, i) => {
        const text = visible(row[i] ?? "");
        return c.maxWidth === undefined ? text : truncateToWidth(text, c.maxWidth);
      })
    ),
  ];
  const widths = columns.map((_, i) => Math.max(...cells.map((line) => displayWidth(line[i]))));
  return cells.map((line) =>
    line.map((cell, i) => cell + " ".repeat(widths[i] - displayWidth(cell))).join(GAP).trimEnd() +
    "\n"
  ).join("");
}
