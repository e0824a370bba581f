/**
 * Failures of a direct sync session (spec 04 §10). Kept apart from Errors.ts (the replica's) and NetworkErrors.ts.
 * `peer` (a NodeId) and `namespace` (a NamespaceId, set where known) are the 32-byte ids themselves, as in Errors.ts
 * (they cross the RPC boundary as bytes; messages show them as hex); `reason` is a short description of what went
 * wrong (never secrets, never payload bytes).
 */
import { Schema } from "effect"
import { toHex } from "../internal/bytes.js"
import { NamespaceId } from "./Keys.js"
import { NodeId } from "./NodeAddr.js"
import { AbortReason } from "./SyncMessage.js"

const Where = {
  peer: NodeId,
  namespace: Schema.optional(NamespaceId)
}

const at = (e: { readonly peer: NodeId; readonly namespace?: NamespaceId | undefined }) =>
  e.namespace === undefined ? `peer ${toHex(e.peer)}` : `peer ${toHex(e.peer)}, namespace ${toHex(e.namespace)}`

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

/**
 * The peer sent a message over a decoding limit (constants.ts: key length, parts, parts of an Init, size of an Init's
 * frame, values): refused where the count or length was read, and the session ends.
 */
export class SyncLimitExceeded extends Schema.TaggedError<SyncLimitExceeded>()("SyncLimitExceeded", {
  ...Where,
  limit: Schema.Literal("keyLength", "initParts", "initSize", "parts", "values"),
  max: Schema.Number,
  got: Schema.Number
}) {
  override get message() {
    return `sync message over a limit (${at(this)}): ${this.limit} ${this.got} exceeds ${this.max}`
  }
}

/**
 * The peer sent more forged values (bad signature, other namespace) in one session than the bound allows
 * (constants.ts `MAX_INVALID_PER_SESSION`, `MAX_INVALID_FRACTION`): the session ended and the peer is cooled down.
 * `invalid` counts the forged values. Below the bound, and for every other reason, invalid values are only dropped
 * and counted (SyncOutcome.numInvalid, SyncOutcome.invalid).
 */
export class TooManyInvalidEntries extends Schema.TaggedError<TooManyInvalidEntries>()("TooManyInvalidEntries", {
  ...Where,
  invalid: Schema.Number,
  received: Schema.Number,
  first: Schema.String
}) {
  override get message() {
    return `peer sent too many invalid entries (${at(this)}): ${this.invalid} of ${this.received} (first: ${this.first})`
  }
}

/** No session with this peer is started or accepted until `untilMs` (epoch ms): it sent too many invalid entries. */
export class PeerCoolingDown extends Schema.TaggedError<PeerCoolingDown>()("PeerCoolingDown", {
  ...Where,
  untilMs: Schema.Number
}) {
  override get message() {
    return `peer is cooling down after invalid entries (${at(this)}) until ${new Date(this.untilMs).toISOString()}`
  }
}

/** Errors of `Sync.syncWith` (spec 04 §10 `ConnectError`). */
export const ConnectError = Schema.Union(
  SyncConnectError,
  RemoteAbort,
  SyncProtocolError,
  SyncCloseError,
  SyncLimitExceeded,
  TooManyInvalidEntries,
  PeerCoolingDown
)
export type ConnectError = typeof ConnectError.Type

/** Errors of an accepted session (spec 04 §10 `AcceptError`). */
export const AcceptError = Schema.Union(
  SyncRejected,
  SyncProtocolError,
  SyncCloseError,
  SyncLimitExceeded,
  TooManyInvalidEntries,
  PeerCoolingDown
)
export type AcceptError = typeof AcceptError.Type
