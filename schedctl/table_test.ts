import assert from "node:assert/strict";
import { displayWidth, formatTable, truncateToWidth } from "./table.ts";

const COLUMNS = [{ header: "ID" }, { header: "STATE" }, { header: "COMMAND" }];

Deno.test("formatTable aligns columns under their headers, three spaces apart", () => {
  const out = formatTable(COLUMNS, [
    ["t-1", "pending", "sleep 30"],
    ["t-1000", "done", "ls -la"],
  ]);
  assert.equal(
    out,
    "ID       STATE     COMMAND\n" +
      "t-1      pending   sleep 30\n" +
      "t-1000   done      ls -la\n",
  );
});

Deno.test("formatTable of no rows is its header line", () => {
  assert.equal(formatTable(COLUMNS, []), "ID   STATE   COMMAND\n");
});

Deno.test("formatTable leaves no trailing spaces, even for an empty last cell", () => {
  const out = formatTable(COLUMNS, [["t-1", "done", ""]]);
  for (const line of out.split("\n")) assert.equal(line, line.trimEnd());
});

Deno.test("formatTable shows control characters as escapes, so a row never breaks", () => {
  const out = formatTable(COLUMNS, [["t-1", "done", "echo a\nb\tc\r\x1b[31mred\u202e"]]);
  assert.equal(out.split("\n").length, 3); // header, row, and the empty string after "\n"
  assert.match(out, /echo a\\nb\\tc\\r\\x1b\[31mred\\u\{202e\}/);
});

Deno.test("formatTable treats missing cells as empty and ignores extra ones", () => {
  const out = formatTable(COLUMNS, [["t-1"], ["t-2", "done", "ls", "extra"]]);
  assert.equal(out, "ID    STATE   COMMAND\nt-1\nt-2   done    ls\n");
});

Deno.test("formatTable aligns wide characters by display width", () => {
  const out = formatTable([{ header: "HOST" }, { header: "STATE" }], [
    ["東京", "connected"],
    ["abcd", "connected"],
    ["e\u0301t\u00e9", "connected"], // "été" with a combining accent: 3 columns
  ]);
  const lines = out.trimEnd().split("\n");
  const starts = lines.map((line) => displayWidth(line.slice(0, line.indexOf("connected"))));
  assert.deepEqual(starts.slice(1), [7, 7, 7]);
});

Deno.test("formatTable cuts cells wider than maxWidth with an ellipsis", () => {
  const out = formatTable([{ header: "ID" }, { header: "COMMAND", maxWidth: 10 }], [
    ["t-1", "echo 0123456789abcdef"],
    ["t-2", "short"],
  ]);
  assert.equal(out, "ID    COMMAND\nt-1   echo 0123…\nt-2   short\n");
});

Deno.test("displayWidth counts wide characters and emoji as two columns, marks as none", () => {
  assert.equal(displayWidth("abc"), 3);
  assert.equal(displayWidth("日本語"), 6);
  assert.equal(displayWidth("😀"), 2);
  assert.equal(displayWidth("👍🏽"), 2);
  assert.equal(displayWidth("👨‍👩‍👧"), 2);
  assert.equal(displayWidth("e\u0301"), 1);
  assert.equal(displayWidth(""), 0);
});

Deno.test("truncateToWidth never splits a wide character or exceeds the width", () => {
  assert.equal(truncateToWidth("日本語テキスト", 6), "日本…");
  assert.equal(displayWidth(truncateToWidth("日本語テキスト", 6)), 5);
  assert.equal(truncateToWidth("abcdef", 6), "abcdef");
  assert.equal(truncateToWidth("abcdefg", 6), "abcde…");
});
