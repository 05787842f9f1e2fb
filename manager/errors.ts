/**
 * The manager's typed errors, and their one mapping to Connect codes at the RPC edge. The
 * message is for the client and says what was wrong in plain words; causes go to the log.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { ConflictError, StoreFullError, StoreUnavailableError } from "../shared/store/store.ts";
import type { Logger } from "../shared/log.ts";
import { LogSourceLostError } from "./log_relay.ts";

export class NotFoundError extends Error {
  override name = "NotFoundError";
}

export class InvalidArgumentError extends Error {
  override name = "InvalidArgumentError";
}

/** The request is well formed but the state of things refuses it (a stale report, say). */
export class FailedPreconditionError extends Error {
  override name = "FailedPreconditionError";
}

/** Maps any error to the ConnectError the client sees. */
export function toConnectError(error: unknown, log: Logger, rpc: string): ConnectError {
  if (error instanceof ConnectError) return error;
  if (error instanceof NotFoundError) return new ConnectError(error.message, Code.NotFound);
  if (error instanceof InvalidArgumentError) {
    return new ConnectError(error.message, Code.InvalidArgument);
  }
  if (error instanceof FailedPreconditionError) {
    return new ConnectError(error.message, Code.FailedPrecondition);
  }
  if (error instanceof LogSourceLostError) {
    // Not unavailable, which clients read as the manager being away: the manager is fine,
    // the worker that has the logs is not.
    return new ConnectError(error.message, Code.Aborted);
  }
  if (error instanceof StoreUnavailableError) {
    log.warn("store unavailable", { rpc, cause: error.message });
    return new ConnectError("the manager's store is unavailable; try again", Code.Unavailable);
  }
  if (error instanceof StoreFullError) {
    // An error, not a warning: nothing can be written until an operator frees space.
    log.error("store full", { rpc, cause: error.message });
    return new ConnectError(
      "the manager's store is full and refuses writes; nothing was written. " +
        "An operator must free space (README: Stores)",
      Code.ResourceExhausted,
    );
  }
  if (error instanceof ConflictError) {
    log.warn("write conflict", { rpc, key: error.key });
    return new ConnectError("a concurrent change won; try again", Code.Aborted);
  }
  log.error("internal error", { rpc, error: error instanceof Error ? error.stack : error });
  return new ConnectError("internal error; see the manager's log", Code.Internal);
}
