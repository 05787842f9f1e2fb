import assert from "node:assert/strict";
import { labelKeyProblem, labelValueProblem } from "./labels.ts";

Deno.test("label keys: a name, optionally after a DNS prefix and /", () => {
  const valid = [
    "zone",
    "gpu",
    "Zone",
    "a",
    "k8s.io_x-y",
    "9",
    "example.com/rack",
    "a-b.c/d",
    "k".repeat(63),
    `${"p".repeat(253)}/x`,
  ];
  for (const key of valid) assert.equal(labelKeyProblem(key), undefined, key);
  const invalid: Array<[string, RegExp]> = [
    ["", /^a label key is empty$/],
    ["zone a", /^the label key "zone a" is not valid: use 1 to 63 letters/],
    ["-zone", /is not valid/],
    ["zone-", /is not valid/],
    [".zone", /is not valid/],
    ["k".repeat(64), /is not valid/],
    ["zone=a", /is not valid/],
    ["é", /is not valid/],
    ["example.com/", /^the label key "example\.com\/" is not valid/],
    ["/rack", /^the label key "\/rack" has a bad prefix "": before "\/" use a lowercase DNS name/],
    ["Example.com/rack", /has a bad prefix "Example\.com"/],
    ["a..b/rack", /has a bad prefix "a\.\.b"/],
    [`${"p".repeat(254)}/x`, /has a bad prefix/],
    ["a/b/c", /^the label key "a\/b\/c" is not valid/],
  ];
  for (const [key, problem] of invalid) {
    assert.match(labelKeyProblem(key) ?? "(valid)", problem, key);
  }
});

Deno.test("label values: empty, or up to 63 characters spelt as a name", () => {
  for (const value of ["", "true", "a", "r-01", "us-east-1a", "1.2_3", "v".repeat(63)]) {
    assert.equal(labelValueProblem("k", value), undefined, value);
  }
  for (const value of ["a b", "-a", "a-", "v".repeat(64), "a/b", "x=y", "\n"]) {
    assert.match(
      labelValueProblem("k", value) ?? "(valid)",
      /^the value ".*" of label k is not valid: use 1 to 63 letters, digits, "-", "_" or "\.", beginning and ending with a letter or digit, or nothing$/s,
      value,
    );
  }
});
