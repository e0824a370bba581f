/**
 * Tagged errors that cross boundaries (RPC, storage, logs). Named as in spec 01 §10 and 03. They carry ids and
 * timestamps a caller needs, never secret keys.
 */
import { Schema } from "effect"
import { toHex } from "../internal/bytes.js"
import { AuthorId, NamespaceId } from "./Keys.js"

const Ns = { namespace: NamespaceId }

/** A JSON form that `JSON.stringify` accepts: bigints as decimal strings, bytes as hex. */
const jsonSafe = (tag: string, fields: object) => ({
  _tag: tag,
  ...Object.fromEntries(
    Object.entries(fields).map(([k, v]) => [k, typeof v === "bigint" ? v.toString() : v instanceof Uint8Array ? toHex(v) : v])
  )
})

/** Local insert with empty content (`len == 0` or the empty hash): tombstones come only from deletePrefix. */
export class EntryIsEmpty extends Schema.TaggedError<EntryIsEmpty>()("EntryIsEmpty", Ns) {
  override get message() {
    return "Attempted to insert an empty entry"
  }
}

/** An entry at the same key or at a prefix of it is newer (or equal): the insert was refused (spec 01 §9). */
export class NewerEntryExists extends Schema.TaggedError<NewerEntryExists>()("NewerEntryExists", {
  ...Ns,
  author: AuthorId,
  key: Schema.Uint8ArrayFromSelf,
  timestamp: Schema.BigIntFromSelf
}) {
  override get message() {
    return "A newer entry exists for either this entry's key or a prefix of the key."
  }
  override toJSON() {
    return jsonSafe(this._tag, { namespace: this.namespace, author: this.author, key: this.key, timestamp: this.timestamp })
  }
}

export class ReadOnly extends Schema.TaggedError<ReadOnly>()("ReadOnly", Ns) {
  override get message() {
    return "Attempted to insert to read only replica"
  }
}

export class NamespaceMismatch extends Schema.TaggedError<NamespaceMismatch>()("NamespaceMismatch", Ns) {
  override get message() {
    return "The capabilities do not match: different namespaces"
  }
}

export class InvalidNamespace extends Schema.TaggedError<InvalidNamespace>()("InvalidNamespace", {
  ...Ns,
  got: NamespaceId
}) {
  override get message() {
    return "Entry namespace does not match the current replica"
  }
}

export class BadSignature extends Schema.TaggedError<BadSignature>()("BadSignature", {
  ...Ns,
  author: AuthorId,
  reason: Schema.Literal("key", "signature")
}) {
  override get message() {
    return this.reason === "key" ? "Entry has an invalid author or namespace key" : "Entry signature is invalid"
  }
}

export class TooFarInTheFuture extends Schema.TaggedError<TooFarInTheFuture>()("TooFarInTheFuture", {
  ...Ns,
  timestamp: Schema.BigIntFromSelf,
  now: Schema.BigIntFromSelf
}) {
  override get message() {
    return "Entry timestamp is too far in the future."
  }
  override toJSON() {
    return jsonSafe(this._tag, { namespace: this.namespace, timestamp: this.timestamp, now: this.now })
  }
}

export class InvalidEmptyEntry extends Schema.TaggedError<InvalidEmptyEntry>()("InvalidEmptyEntry", Ns) {
  override get message() {
    return "Entry has length 0 but not the empty hash, or the empty hash but not length 0"
  }
}

/** An entry whose key is longer than `MAX_KEY_LENGTH` (constants.ts), refused on every path (local, sync, gossip). */
export class KeyTooLong extends Schema.TaggedError<KeyTooLong>()("KeyTooLong", {
  ...Ns,
  length: Schema.Number,
  max: Schema.Number
}) {
  override get message() {
    return `Entry key of ${this.length} bytes exceeds the maximum of ${this.max} bytes`
  }
}

export class ReplicaNotFound extends Schema.TaggedError<ReplicaNotFound>()("ReplicaNotFound", Ns) {
  override get message() {
    return "Replica not found"
  }
}

export class ReplicaNotOpen extends Schema.TaggedError<ReplicaNotOpen>()("ReplicaNotOpen", Ns) {
  override get message() {
    return "replica not open"
  }
}

export class ReplicaNotClosed extends Schema.TaggedError<ReplicaNotClosed>()("ReplicaNotClosed", Ns) {
  override get message() {
    return "replica is not closed"
  }
}

export class SyncNotEnabled extends Schema.TaggedError<SyncNotEnabled>()("SyncNotEnabled", Ns) {
  override get message() {
    return "sync is not enabled for replica"
  }
}

export class AuthorNotFound extends Schema.TaggedError<AuthorNotFound>()("AuthorNotFound", { author: AuthorId }) {
  override get message() {
    return "author not found"
  }
}

export class DocumentNotCreated extends Schema.TaggedError<DocumentNotCreated>()("DocumentNotCreated", Ns) {
  override get message() {
    return "document not created"
  }
}

/** A reconciliation session exchanged more messages than its cap allows (a runaway or hostile peer). */
export class RunawaySession extends Schema.TaggedError<RunawaySession>()("RunawaySession", {
  ...Ns,
  messages: Schema.Number
}) {
  override get message() {
    return `sync session exceeded ${this.messages} messages`
  }
}

/**
 * A peer sent too many forged entries in one session (bad signature, other namespace): past the bound of
 * constants.ts (`MAX_INVALID_PER_SESSION`, or `MAX_INVALID_FRACTION` of the values received). Below it invalid values
 * are dropped and counted and the session goes on (spec 02 §5); the other invalid values (future timestamp, bad empty
 * entry, key too long) never count here. `count` is the session's forged values so far, `first` the tag of the first.
 */
export class InvalidEntriesFromPeer extends Schema.TaggedError<InvalidEntriesFromPeer>()("InvalidEntriesFromPeer", {
  ...Ns,
  count: Schema.Number,
  first: Schema.String
}) {
  override get message() {
    return `peer sent ${this.count} invalid entries (first: ${this.first})`
  }
}

/** A failure of the storage layer, wrapped once at the Store boundary. */
export class StoreError extends Schema.TaggedError<StoreError>()("StoreError", {
  method: Schema.String,
  cause: Schema.Defect
}) {}

/** Validation failures of spec 01 §10. */
export const ValidationFailure = Schema.Union(
  InvalidNamespace,
  BadSignature,
  TooFarInTheFuture,
  InvalidEmptyEntry,
  KeyTooLong
)
export type ValidationFailure = typeof ValidationFailure.Type

/** What a replica insert can fail with (spec 01 §10). */
export const InsertError = Schema.Union(
  EntryIsEmpty,
  NewerEntryExists,
  ReadOnly,
  InvalidNamespace,
  BadSignature,
  TooFarInTheFuture,
  InvalidEmptyEntry,
  KeyTooLong,
  ReplicaNotOpen,
  AuthorNotFound,
  StoreError
)
export type InsertError = typeof InsertError.Type
