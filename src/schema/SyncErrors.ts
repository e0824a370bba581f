/**
 * Failures of a direct sync session (spec 04 §10). Kept apart from Errors.ts (the replica's) and NetworkErrors.ts.
 * `peer` and `namespace` are lowercase hex of the 32-byte ids, set where known; `reason` is a short description of
 * what went wrong (never secrets, never payload bytes).
 */
import { Schema } from "effect"
import { AbortReason } from "./SyncMessage.js"

const Where = {
  peer: Schema.String,
  namespace: Schema.optional(Schema.String)
}

const at = (e: { readonly peer: string; readonly namespace?: string | undefined }) =>
  e.namespace === undefined ? `peer ${e.peer}` : `peer ${e.peer}, namespace ${e.namespace}`

/** Dialing the peer or opening the sync stream failed or timed out (`Connect`). */
export class SyncConnectError extends Schema.TaggedError<SyncConnectError>()("SyncConnectError", {
  ...Where,
  reason: Schema.String
}) {
  override get message() {
    return `sync connect failed (${at(this)}): ${this.reason}`
  }
}

/** The acceptor refused the session with `Abort { reason }` (initiator side, `RemoteAbort`). */
export class RemoteAbort extends Schema.TaggedError<RemoteAbort>()("RemoteAbort", {
  ...Where,
  reason: AbortReason
}) {
  override get message() {
    return `sync aborted by remote (${at(this)}): ${this.reason}`
  }
}

/** We (the acceptor) refused the session and sent `Abort { reason }` (acceptor side, `Abort`). */
export class SyncRejected extends Schema.TaggedError<SyncRejected>()("SyncRejected", {
  ...Where,
  reason: AbortReason
}) {
  override get message() {
    return `sync rejected (${at(this)}): ${this.reason}`
  }
}

/**
 * The session broke: framing or decoding error, unexpected message, inactivity timeout, stream reset, or a replica
 * error while processing (`Sync`).
 */
export class SyncProtocolError extends Schema.TaggedError<SyncProtocolError>()("SyncProtocolError", {
  ...Where,
  reason: Schema.String
}) {
  override get message() {
    return `sync failed (${at(this)}): ${this.reason}`
  }
}

/** The close handshake failed: half-close failed, the peer sent bytes after the end, or the drain timed out. */
export class SyncCloseError extends Schema.TaggedError<SyncCloseError>()("SyncCloseError", {
  ...Where,
  reason: Schema.String
}) {
  override get message() {
    return `sync close failed (${at(this)}): ${this.reason}`
  }
}

/** Errors of `Sync.syncWith` (spec 04 §10 `ConnectError`). */
export const ConnectError = Schema.Union(SyncConnectError, RemoteAbort, SyncProtocolError, SyncCloseError)
export type ConnectError = typeof ConnectError.Type

/** Errors of an accepted session (spec 04 §10 `AcceptError`). */
export const AcceptError = Schema.Union(SyncRejected, SyncProtocolError, SyncCloseError)
export type AcceptError = typeof AcceptError.Type
