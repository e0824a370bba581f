/** Replica events (spec 01 §11): published after the entry is stored, never for refused entries. */
import { Schema } from "effect"
import { ContentStatus, SignedEntry } from "./Entry.js"
import { NamespaceId } from "./Keys.js"

export class LocalInsert extends Schema.TaggedClass<LocalInsert>()("LocalInsert", {
  namespace: NamespaceId,
  entry: SignedEntry
}) {}

export class RemoteInsert extends Schema.TaggedClass<RemoteInsert>()("RemoteInsert", {
  namespace: NamespaceId,
  entry: SignedEntry,
  /** The 32-byte node id of the peer it came from. */
  from: Schema.Uint8ArrayFromSelf,
  /** Whether the document's download policy wants the content (spec 03 §3). */
  shouldDownload: Schema.Boolean,
  /** The sender's claim about holding the content. */
  remoteContentStatus: ContentStatus
}) {}

export const ReplicaEvent = Schema.Union(LocalInsert, RemoteInsert)
export type ReplicaEvent = typeof ReplicaEvent.Type

/** `{ sync, subscribers, handles }` of an open replica (spec 03 §6). */
export class OpenState extends Schema.Class<OpenState>("OpenState")({
  sync: Schema.Boolean,
  subscribers: Schema.Number,
  handles: Schema.Number
}) {}
