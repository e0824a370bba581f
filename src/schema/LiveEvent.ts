/**
 * What a document's subscribers see (spec 05 §10.1): a Schema tagged union, so it travels over RPC. Entries are the
 * unsigned `Entry`; `contentStatus` of InsertRemote is our own availability when the event was emitted.
 */
import { Schema } from "effect"
import { ContentStatus, Entry } from "./Entry.js"
import { Hash } from "./Keys.js"
import { NodeId } from "./NodeAddr.js"

/**
 * Why a session was started (spec 05 §6); `Accept` when the remote started it. `Retry`: a session we started failed
 * and is tried again after a backoff (not in the reference).
 */
export const SyncReason = Schema.Literal("DirectJoin", "NewNeighbor", "SyncReport", "Resync", "Retry")
export type SyncReason = typeof SyncReason.Type

export const Origin = Schema.Union(
  Schema.TaggedStruct("Connect", { reason: SyncReason }),
  Schema.TaggedStruct("Accept", {})
)
export type Origin = typeof Origin.Type

/**
 * `bytesReceived`/`bytesSent`: the session's traffic each way, frame headers included (Sync's `Traffic`); optional, so
 * events of nodes that do not report them still decode.
 */
export class SyncDetails extends Schema.Class<SyncDetails>("SyncDetails")({
  entriesReceived: Schema.Number,
  entriesSent: Schema.Number,
  bytesReceived: Schema.optional(Schema.Number),
  bytesSent: Schema.optional(Schema.Number)
}) {}

/** A finished session with one peer: `started`/`finished` are epoch milliseconds; `result` an error text on failure. */
export class SyncEvent extends Schema.Class<SyncEvent>("SyncEvent")({
  peer: NodeId,
  origin: Origin,
  started: Schema.Number,
  finished: Schema.Number,
  result: Schema.Union(
    Schema.TaggedStruct("Ok", { details: SyncDetails }),
    Schema.TaggedStruct("Err", { error: Schema.String })
  ),
  /** How the peer was reached when the session ended: straight, or through a relay (absent: no connection left). */
  via: Schema.optional(Schema.Literal("direct", "relayed"))
}) {}

export class InsertLocal extends Schema.TaggedClass<InsertLocal>()("InsertLocal", { entry: Entry }) {}
export class InsertRemote extends Schema.TaggedClass<InsertRemote>()("InsertRemote", {
  from: NodeId,
  entry: Entry,
  contentStatus: ContentStatus
}) {}
export class ContentReady extends Schema.TaggedClass<ContentReady>()("ContentReady", { hash: Hash }) {}
/** All downloads queued by the last sync of this document finished (successfully or not); spec 05 §10.3. */
export class PendingContentReady extends Schema.TaggedClass<PendingContentReady>()("PendingContentReady", {}) {}
export class NeighborUp extends Schema.TaggedClass<NeighborUp>()("NeighborUp", { peer: NodeId }) {}
export class NeighborDown extends Schema.TaggedClass<NeighborDown>()("NeighborDown", { peer: NodeId }) {}
export class SyncFinished extends Schema.TaggedClass<SyncFinished>()("SyncFinished", { event: SyncEvent }) {}

export const LiveEvent = Schema.Union(
  InsertLocal,
  InsertRemote,
  ContentReady,
  PendingContentReady,
  NeighborUp,
  NeighborDown,
  SyncFinished
)
export type LiveEvent = typeof LiveEvent.Type
