/** For tests: assertions about Connect errors, shared by the manager's and the worker's tests. */
import assert from "node:assert/strict";
import { Code, ConnectError } from "@connectrpc/connect";

/**
 * Asserts that `promise` fails with a ConnectError of `code` and, when given, whose own
 * message is `message` (or matches it); returns the error.
 */
export async function rejectsWithCode(
  promise: Promise<unknown>,
  code: Code,
  message?: string | RegExp,
): Promise<ConnectError> {
  let caught: unknown;
  try {
    await promise;
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof ConnectError, `expected a ConnectError, got ${caught}`);
  assert.equal(Code[caught.code], Code[code]);
  if (typeof message === "string") assert.equal(caught.rawMessage, message);
  else if (message) assert.match(caught.rawMessage, message);
  return caught;
}
