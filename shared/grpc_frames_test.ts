import assert from "node:assert/strict";
import { grpcStatus } from "./grpc_frames.ts";

Deno.test("a call's status comes from its trailers, or from headers alone", () => {
  const none = new Map<string, string>();
  assert.deepEqual(
    grpcStatus({
      headers: new Map([["grpc-status", "9"]]),
      trailers: new Map([["grpc-status", "0"], ["grpc-message", "caf%C3%A9%20ok"]]),
    }),
    { status: "0", message: "café ok" },
  );
  assert.deepEqual(
    grpcStatus({
      headers: new Map([["grpc-status", "14"], ["grpc-message", "gone"]]),
      trailers: none,
    }),
    { status: "14", message: "gone" },
  );
  assert.deepEqual(grpcStatus({ headers: none, trailers: none }), {
    status: undefined,
    message: "",
  });
});

Deno.test("a message that is not percent-encoded after all is kept as sent", () => {
  assert.deepEqual(
    grpcStatus({
      headers: new Map(),
      trailers: new Map([["grpc-status", "3"], ["grpc-message", "100% bad"]]),
    }),
    { status: "3", message: "100% bad" },
  );
});
