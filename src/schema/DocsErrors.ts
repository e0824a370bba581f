/**
 * The public API's error catalogue (spec 06 §7). The replica, blob, sync and network errors are reused as they are;
 * this module adds the API-level ones and `ApiError`, the union every API call (and so every RPC) can fail with.
 * Messages are the spec's texts; no error carries secret keys.
 */
import { Schema } from "effect"
import * as BlobErrors from "./BlobErrors.js"
import * as Errors from "./Errors.js"
import { AuthorId, NamespaceId } from "./Keys.js"
import * as NetworkErrors from "./NetworkErrors.js"
import * as SyncErrors from "./SyncErrors.js"

const Ns = { namespace: NamespaceId }

/** A failure known only by its message (spec 06 §7 `RpcError`): what a client sees for errors without a tag. */
export class DocsError extends Schema.TaggedError<DocsError>()("DocsError", { message: Schema.String }) {}

/** An operation raced with the replica's close. */
export class ReplicaClosed extends Schema.TaggedError<ReplicaClosed>()("ReplicaClosed", Ns) {
  override get message() {
    return "replica is closed"
  }
}

/** Share in Write mode of a document we hold only the Read capability of. */
export class ReadAccessOnly extends Schema.TaggedError<ReadAccessOnly>()("ReadAccessOnly", Ns) {
  override get message() {
    return "Replica allows read access only."
  }
}

/** Setting the default author to one the store has no secret key of. */
export class AuthorNotExists extends Schema.TaggedError<AuthorNotExists>()("AuthorNotExists", { author: AuthorId }) {
  override get message() {
    return "The author does not exist"
  }
}

/** Deleting the current default author. */
export class DefaultAuthorDelete extends Schema.TaggedError<DefaultAuthorDelete>()("DefaultAuthorDelete", {
  author: AuthorId
}) {
  override get message() {
    return "Deleting the default author is not supported"
  }
}

/** A method called on a `Doc` handle after its `close()` (client-side, spec 06 §4.2). */
export class DocClosed extends Schema.TaggedError<DocClosed>()("DocClosed", Ns) {
  override get message() {
    return "document is closed"
  }
}

/** `Set` stored the entry but could not read it back (should not happen). */
export class EntryMissingAfterInsert extends Schema.TaggedError<EntryMissingAfterInsert>()("EntryMissingAfterInsert", {
  ...Ns,
  author: AuthorId,
  key: Schema.Uint8ArrayFromSelf
}) {
  override get message() {
    return "failed to get entry after insertion"
  }
}

/** A ticket string that does not parse (spec 06 §6). `reason` never quotes the input, which may hold a secret. */
export class InvalidTicket extends Schema.TaggedError<InvalidTicket>()("InvalidTicket", { reason: Schema.String }) {
  override get message() {
    return `invalid ticket: ${this.reason}`
  }
}

/** Everything an API call can fail with: the RPC error schema of `DocsRpcs`. */
export const ApiError = Schema.Union(
  DocsError,
  ReplicaClosed,
  ReadAccessOnly,
  AuthorNotExists,
  DefaultAuthorDelete,
  DocClosed,
  EntryMissingAfterInsert,
  InvalidTicket,
  Errors.ReplicaNotOpen,
  Errors.ReplicaNotFound,
  Errors.ReplicaNotClosed,
  Errors.SyncNotEnabled,
  Errors.AuthorNotFound,
  Errors.DocumentNotCreated,
  Errors.ReadOnly,
  Errors.EntryIsEmpty,
  Errors.NewerEntryExists,
  Errors.NamespaceMismatch,
  Errors.InvalidNamespace,
  Errors.BadSignature,
  Errors.TooFarInTheFuture,
  Errors.InvalidEmptyEntry,
  Errors.KeyTooLong,
  Errors.RunawaySession,
  Errors.InvalidEntriesFromPeer,
  Errors.StoreError,
  BlobErrors.BlobNotFound,
  BlobErrors.BlobCorrupt,
  BlobErrors.BlobTooLarge,
  BlobErrors.BlobRangeError,
  BlobErrors.BlobStoreError,
  BlobErrors.GcAborted,
  BlobErrors.DownloadFailed,
  SyncErrors.SyncConnectError,
  SyncErrors.RemoteAbort,
  SyncErrors.SyncRejected,
  SyncErrors.SyncProtocolError,
  SyncErrors.SyncCloseError,
  SyncErrors.SyncLimitExceeded,
  SyncErrors.TooManyInvalidEntries,
  SyncErrors.PeerCoolingDown,
  NetworkErrors.DialError,
  NetworkErrors.NotEd25519Peer,
  NetworkErrors.NetworkError,
  NetworkErrors.StreamError
)
export type ApiError = typeof ApiError.Type
