/**
 * Gossip payloads and events (spec 05 §8.1): the `Op` a node publishes on a document's topic, with its postcard codec,
 * and the `GossipEvent`s the Gossip service hands to its subscribers.
 *
 * Wire layout (postcard; variant index first, as a varint):
 *
 * | idx | Variant | Fields |
 * |-----|---------|--------|
 * | 0 | `Put` without content | `SignedEntry` (byte-compatible with the reference) |
 * | 1 | `ContentReady` | `Hash` (32 bytes) |
 * | 2 | `SyncReport` | `namespace` (32 bytes), `heads` (varint length + bytes) |
 * | 3 | `Put` with inline content | `SignedEntry`, then `content` (varint length + bytes) |
 *
 * Variant 3 is our own: a writer gossips small content along with its entry so that receivers need no download
 * stream. The codec does not relate `content` to the entry; the receiver checks its length and BLAKE3 hash against
 * the entry's record and ignores content that does not match. A reference node skips variant 3 as undecodable.
 */
import { type Either, ParseResult, Schema } from "effect"
import { PostcardError, type Reader, type Writer } from "../internal/postcard.js"
import { trusted } from "../internal/trusted.js"
import { decodeWith, encodeWith, readSignedEntry, readWhole, SignedEntry, writeSignedEntry } from "./Entry.js"
import { Hash, NamespaceId } from "./Keys.js"
import { NodeId } from "./NodeAddr.js"

/** An entry for the whole swarm; `content`, when present, claims to be the entry's content (variant 3). */
export class Put extends Schema.TaggedClass<Put>()("Put", {
  entry: SignedEntry,
  content: Schema.optional(Schema.Uint8ArrayFromSelf)
}) {}

/** The publisher now has the content of `hash` (a provider hint). */
export class ContentReady extends Schema.TaggedClass<ContentReady>()("ContentReady", { hash: Hash }) {}

/** The publisher's newest timestamp per author after a sync: encoded `AuthorHeads` (spec 01 §12), opaque here. */
export class SyncReport extends Schema.TaggedClass<SyncReport>()("SyncReport", {
  namespace: NamespaceId,
  heads: Schema.Uint8ArrayFromSelf
}) {}

export const Op = Schema.Union(Put, ContentReady, SyncReport)
export type Op = typeof Op.Type

/**
 * Whether encoded Op bytes are a ContentReady or a SyncReport (variant tags 1 and 2): news for the publisher's
 * direct neighbours only (spec 05 §8, the reference's `broadcast_neighbors`), which receivers do not relay. A Put
 * (tags 0 and 3) goes to the whole swarm. Reads the tag alone; the bytes are decoded and checked elsewhere.
 */
export const isNeighborsOnly = (bytes: Uint8Array): boolean => bytes[0] === 1 || bytes[0] === 2

/**
 * Bytes a SyncReport adds around its heads: the variant tag, the 32-byte namespace and a length varint of up to
 * 3 bytes (heads below 2 MiB). Heads of at most `maxMessageSize - SYNC_REPORT_OVERHEAD` bytes keep the report within
 * `maxMessageSize` (the reference truncates the heads alone to the limit, so its full reports can exceed it).
 */
export const SYNC_REPORT_OVERHEAD = 1 + 32 + 3

/** The heads budget of a SyncReport that must fit in `maxMessageSize` bytes. */
export const maxHeadsLength = (maxMessageSize: number): number => Math.max(0, maxMessageSize - SYNC_REPORT_OVERHEAD)

const fixed32 = (what: string, bytes: Uint8Array): Uint8Array => {
  // A class instance is not re-validated on encode; a wrong length here would shift every later byte.
  if (bytes.length !== 32) throw new PostcardError(`${what} of ${bytes.length} bytes, expected 32`)
  return bytes
}

export const writeOp = (w: Writer, op: Op): void => {
  switch (op._tag) {
    case "Put":
      if (op.content === undefined) {
        w.varint(0)
        writeSignedEntry(w, op.entry)
      } else {
        w.varint(3)
        writeSignedEntry(w, op.entry)
        w.bytes(op.content)
      }
      return
    case "ContentReady":
      w.varint(1).raw(fixed32("hash", op.hash))
      return
    case "SyncReport":
      w.varint(2).raw(fixed32("namespace", op.namespace)).bytes(op.heads)
      return
  }
}

export const readOp = (r: Reader): Op => {
  const tag = r.varint()
  switch (tag) {
    case 0:
      return trusted(Put.prototype, { entry: readSignedEntry(r), _tag: "Put" })
    case 1:
      return new ContentReady({ hash: Hash.make(r.raw(32)) }, true)
    case 2: {
      const namespace = NamespaceId.make(r.raw(32))
      return new SyncReport({ namespace, heads: r.bytes() }, true)
    }
    case 3: {
      const entry = readSignedEntry(r)
      return trusted(Put.prototype, { entry, content: r.bytes(), _tag: "Put" })
    }
    default:
      throw new PostcardError(`unknown Op variant ${tag}`)
  }
}

/**
 * The Op in `bytes` (all of them), or why they are not one. This is the receive path of every gossiped write: the
 * reader builds checked instances, so nothing is validated twice (the Schema below re-checks its output).
 */
export const decodeOp: (bytes: Uint8Array) => Either.Either<Op, PostcardError> = readWhole(readOp)

/** Op ⇄ postcard bytes (spec 05 §8.1); malformed input, including trailing bytes, fails with a ParseError. */
export const OpFromBytes = Schema.transformOrFail(Schema.Uint8ArrayFromSelf, Schema.typeSchema(Op), {
  strict: true,
  decode: (bytes, _, ast) => decodeWith(readOp)(bytes, ast),
  encode: (op, _, ast) => {
    try {
      return ParseResult.succeed(encodeWith(writeOp)(op))
    } catch (e) {
      if (e instanceof PostcardError) return ParseResult.fail(new ParseResult.Type(ast, op, e.message))
      throw e
    }
  }
})

// ---------------------------------------------------------------------------------------------------------------
// Events of a gossip topic

/**
 * A decoded Op. `from` is the publisher (the signed `from` of the gossipsub message); `deliveredFrom` is the neighbor
 * that handed it to us (gossipsub's propagation source); `direct` when they are the same node, i.e. the message
 * came straight from its publisher (spec 05 §15: "delivery scope direct").
 */
export class Received extends Schema.TaggedClass<Received>()("Received", {
  op: Op,
  from: NodeId,
  deliveredFrom: NodeId,
  direct: Schema.Boolean
}) {}

/** A connected node subscribed to the topic (or was already subscribed when we joined). */
export class NeighborUp extends Schema.TaggedClass<NeighborUp>()("NeighborUp", { peer: NodeId }) {}

/** A neighbor unsubscribed from the topic or disconnected. */
export class NeighborDown extends Schema.TaggedClass<NeighborDown>()("NeighborDown", { peer: NodeId }) {}

export const GossipEvent = Schema.Union(Received, NeighborUp, NeighborDown)
export type GossipEvent = typeof GossipEvent.Type
