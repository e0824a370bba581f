/**
 * The Docs RPC group: the 26 requests of spec 06 §3, then the node program's own: `ImportFile`/`ExportFile` (spec 06 §5
 * done on the node, so the CLI can pass paths), `ReadContent`, `NodeStatus` and `Stats`. Every RPC fails with `ApiError`. Field names: `docId` (NamespaceId), `authorId` (AuthorId), `author` (an Author secret).
 *
 * Serialization is msgpack (`layerMsgPack` below: @effect/rpc's, with a decoder that copies less), which carries
 * `Uint8Array` and `bigint` (u64 values go as msgpack uint64 and come back as bigint), so entries travel as the domain
 * schemas. Secrets are the exception: their seeds are `Redacted`, which msgpack writes as an empty map, so Author,
 * NamespaceSecret, Capability and DocTicket travel through the `…FromRpc` schemas below, whose encoded side holds the
 * 32 seed bytes.
 */
import { Rpc, RpcGroup, RpcSerialization } from "@effect/rpc"
import { Layer, ParseResult, Redacted, Schema } from "effect"
import { Packr, Unpackr } from "msgpackr"
import { MsgpackStreamDecoder } from "../internal/msgpackStream.js"
import { Capability, CapabilityKind, Read, Write } from "./Capability.js"
import { ApiError } from "./DocsErrors.js"
import { DownloadPolicy } from "./DownloadPolicy.js"
import { SignedEntry, U64 } from "./Entry.js"
import { OpenState } from "./Events.js"
import { Author, AuthorId, Hash, NamespaceId, NamespaceSecret, secretSeed } from "./Keys.js"
import { LiveEvent } from "./LiveEvent.js"
import { MultiaddrString, NodeAddr, NodeId } from "./NodeAddr.js"
import { Query } from "./Query.js"
import { AddrInfoOptions, DocTicket, ShareMode } from "./Ticket.js"

const seedFromRpc = <A extends Author | NamespaceSecret, I>(
  what: string,
  make: (seed: Uint8Array) => A,
  to: Schema.Schema<A, I>
) =>
  Schema.transformOrFail(Schema.Uint8ArrayFromSelf, Schema.typeSchema(to), {
    strict: true,
    decode: (b, _, ast) =>
      b.length === 32
        ? ParseResult.succeed(make(b))
        : ParseResult.fail(new ParseResult.Type(ast, Redacted.make(b), `${what}: expected 32 bytes, got ${b.length}`)),
    encode: (a) => ParseResult.succeed(Uint8Array.from(secretSeed(a)))
  })

/** An author secret over RPC: its 32 seed bytes. */
export const AuthorFromRpc = seedFromRpc("Author", Author.fromSeed, Author)
/** A namespace secret over RPC: its 32 seed bytes. */
export const NamespaceSecretFromRpc = seedFromRpc("NamespaceSecret", NamespaceSecret.fromSeed, NamespaceSecret)

const WriteFromRpc = Schema.transform(
  Schema.TaggedStruct("Write", { secret: NamespaceSecretFromRpc }),
  Schema.typeSchema(Write),
  {
    strict: true,
    decode: ({ secret }) => new Write({ secret }),
    encode: (w) => ({ _tag: "Write" as const, secret: w.secret })
  }
)

/** A capability over RPC: `{ _tag: "Write", secret: bytes }` or `{ _tag: "Read", id: bytes }`. */
export const CapabilityFromRpc: Schema.Schema<Capability, typeof WriteFromRpc.Encoded | typeof Read.Encoded> = Schema
  .Union(WriteFromRpc, Read)

/** A ticket over RPC: its capability (as above) and nodes; unlike the string form, an empty node list is allowed. */
export const DocTicketFromRpc = Schema.transform(
  Schema.Struct({ capability: CapabilityFromRpc, nodes: Schema.Array(NodeAddr) }),
  Schema.typeSchema(DocTicket),
  {
    strict: true,
    decode: (t) => new DocTicket(t),
    encode: (t) => ({ capability: t.capability, nodes: t.nodes })
  }
)

/** One document of `List`. */
export class DocListItem extends Schema.Class<DocListItem>("DocListItem")({
  id: NamespaceId,
  capability: CapabilityKind
}) {}

/** What `NodeStatus` reports: our node id, the addresses we listen on, and where the RPC server listens (if it does). */
export class NodeInfo extends Schema.Class<NodeInfo>("NodeInfo")({
  nodeId: NodeId,
  addrs: Schema.Array(MultiaddrString),
  rpcAddress: Schema.Option(Schema.String),
  /** Milliseconds since the node's API started (absent from nodes before it was added). */
  uptimeMs: Schema.optional(Schema.Number),
  /** The configured relays and what the node holds on each (`start --relay`). */
  relays: Schema.optional(Schema.Array(Schema.Struct({
    relay: Schema.String,
    status: Schema.Literal("reserved", "connecting", "unreachable", "refused"),
    reason: Schema.optional(Schema.String)
  }))),
  /** The nodes connected now, and how: straight or through a relay (one entry per node; direct wins). */
  peers: Schema.optional(Schema.Array(Schema.Struct({ nodeId: NodeId, via: Schema.Literal("direct", "relayed") })))
}) {}

/** Items of `ImportFile`: bytes read so far, then the stored entry's content hash, size and key. */
export const ImportFileProgress = Schema.Union(
  Schema.TaggedStruct("Progress", { bytes: Schema.Number }),
  Schema.TaggedStruct("Done", { hash: Hash, size: Schema.Number, key: Schema.Uint8ArrayFromSelf })
)
export type ImportFileProgress = typeof ImportFileProgress.Type

/**
 * The largest chunk of an upload (`UploadChunk`): a value of whatever size travels as many of these, never whole.
 * 4 MiB, as `BLOB_READ_MAX`: 100 MiB piped to `doc set` took 1.75 s and 1.4 s of the client's CPU (medians of 5),
 * against 2.25 and 2.0 s in 1 MiB chunks; the node's CPU and peak RSS stayed the same (1.25 s, 197–201 MB).
 */
export const UPLOAD_CHUNK_MAX = 4 * 1024 * 1024

/**
 * The largest request body the node's RPC server reads (413 beyond it): an `UploadChunk` and room to spare. A value
 * larger than `UPLOAD_CHUNK_MAX` travels as an upload (`DocsService.set` over RPC does so by itself), never in one
 * `Set`.
 */
export const REQUEST_BODY_MAX = 2 * UPLOAD_CHUNK_MAX

/** One chunk of an upload: at most UPLOAD_CHUNK_MAX bytes. */
export const UploadChunkBytes = Schema.Uint8ArrayFromSelf.pipe(
  Schema.filter((b) => b.length <= UPLOAD_CHUNK_MAX || `a chunk holds at most ${UPLOAD_CHUNK_MAX} bytes`)
)

/** An upload session's id (16 random bytes, hex). */
export const UploadId = Schema.String.pipe(Schema.pattern(/^[0-9a-f]{32}$/))

/** A write's outcome: the stored entry and how many of the author's entries it removed (at the key or below it). */
export class SetOutcome extends Schema.Class<SetOutcome>("SetOutcome")({
  entry: SignedEntry,
  removed: Schema.Number
}) {}

/** Items of `ExportFile`: the bytes written so far, of `size`. */
export const ExportFileProgress = Schema.TaggedStruct("Progress", { bytes: Schema.Number, size: Schema.Number })
export type ExportFileProgress = typeof ExportFileProgress.Type

/** One blob of `BlobList`: its size, the bytes present (== size when Complete) and its status. */
export class BlobListItem extends Schema.Class<BlobListItem>("BlobListItem")({
  hash: Hash,
  size: Schema.Number,
  have: Schema.Number,
  status: Schema.Literal("Complete", "Incomplete", "Missing")
}) {}

/**
 * The largest piece `BlobRead` returns: a blob of whatever size is read as many of these. 4 MiB: a call costs the node
 * ~6 ms of CPU beside its bytes, and a 100 MiB `doc get` in 4 MiB pieces took 0.97 s of the node's CPU and 1.75 s of
 * the client's, against 1.40 and 2.22 s in 1 MiB pieces (medians of 5). Each call holds its piece a few times over
 * on each side (the read, the encoded reply, msgpackr's pack buffer, which grows to a few times the largest message
 * and is kept): bounded, and the reply well below the RPC layer's 16 MiB message bound.
 */
export const BLOB_READ_MAX = 4 * 1024 * 1024

/** What a blob garbage collection did. */
export class GcReport extends Schema.Class<GcReport>("GcReport")({
  deleted: Schema.Number,
  kept: Schema.Number
}) {}

/** Metric counters by name (spec 05 §14 plus sync traffic). */
export const Stats = Schema.Record({ key: Schema.String, value: Schema.Number })
export type Stats = typeof Stats.Type

const DocId = { docId: NamespaceId }

export class DocsRpcs extends RpcGroup.make(
  /** Open the replica (+1 handle); unknown → ReplicaNotFound. */
  Rpc.make("Open", { payload: DocId, error: ApiError }),
  /** Close one handle; closing a document that is not open succeeds. */
  Rpc.make("Close", { payload: DocId, error: ApiError }),
  /** The open replica's OpenState; not open → ReplicaNotOpen. */
  Rpc.make("Status", { payload: DocId, success: OpenState, error: ApiError }),
  /** Every namespace in the store with its capability kind. */
  Rpc.make("List", { success: DocListItem, error: ApiError, stream: true }),
  /** A new document with a random namespace secret, opened (handles = 1). */
  Rpc.make("Create", { success: NamespaceId, error: ApiError }),
  /** Leave, close one handle, delete the namespace; other handles open → ReplicaNotClosed. */
  Rpc.make("Drop", { payload: DocId, error: ApiError }),
  /** Import (or upgrade Read→Write) a capability and open it (+1 handle); does not start sync. */
  Rpc.make("Import", { payload: { capability: CapabilityFromRpc }, success: NamespaceId, error: ApiError }),
  /**
   * Store `value` as a blob and insert `(authorId, key)` → its hash; returns the stored signed entry and how many of
   * the author's entries the write removed (the prefix rule).
   */
  Rpc.make("Set", {
    payload: { ...DocId, authorId: AuthorId, key: Schema.Uint8ArrayFromSelf, value: Schema.Uint8ArrayFromSelf },
    success: SetOutcome,
    error: ApiError
  }),
  /** Insert `(authorId, key)` → `hash` of `size` bytes without touching the blob store; the outcome as for Set. */
  Rpc.make("SetHash", {
    payload: { ...DocId, authorId: AuthorId, key: Schema.Uint8ArrayFromSelf, hash: Hash, size: U64 },
    success: SetOutcome,
    error: ApiError
  }),
  /** The entries matching `query` (get many). */
  Rpc.make("Get", { payload: { ...DocId, query: Query }, success: SignedEntry, error: ApiError, stream: true }),
  /** The entry of `(authorId, key)`, if any; tombstones only with `includeEmpty`. */
  Rpc.make("GetExact", {
    payload: { ...DocId, key: Schema.Uint8ArrayFromSelf, authorId: AuthorId, includeEmpty: Schema.Boolean },
    success: Schema.Option(SignedEntry),
    error: ApiError
  }),
  /** Insert a tombstone at `prefix` for `authorId`; returns how many of that author's entries it removed. */
  Rpc.make("Del", {
    payload: { ...DocId, authorId: AuthorId, prefix: Schema.Uint8ArrayFromSelf },
    success: Schema.Number,
    error: ApiError
  }),
  /** Start live sync with `peers` (and the stored useful peers); unknown document → ReplicaNotFound. */
  Rpc.make("StartSync", { payload: { ...DocId, peers: Schema.Array(NodeAddr) }, error: ApiError }),
  /** Stop live sync (subscribers are kept). */
  Rpc.make("Leave", { payload: DocId, error: ApiError }),
  /** A ticket with our address filtered by `addrOptions`; also starts live sync. Write of a Read doc → ReadAccessOnly. */
  Rpc.make("Share", {
    payload: { ...DocId, mode: ShareMode, addrOptions: AddrInfoOptions },
    success: DocTicketFromRpc,
    error: ApiError
  }),
  /** The document's live events; a setup failure (e.g. ReplicaNotOpen) fails the stream. */
  Rpc.make("Subscribe", { payload: DocId, success: LiveEvent, error: ApiError, stream: true }),
  /** The stored download policy or the default; works for any id. */
  Rpc.make("GetDownloadPolicy", { payload: DocId, success: DownloadPolicy, error: ApiError }),
  /** Persist a download policy; unknown namespace → DocumentNotCreated. */
  Rpc.make("SetDownloadPolicy", { payload: { ...DocId, policy: DownloadPolicy }, error: ApiError }),
  /** Up to 5 useful peers, newest first; None when there are none. */
  Rpc.make("GetSyncPeers", { payload: DocId, success: Schema.Option(Schema.Array(NodeId)), error: ApiError }),
  /** Every author whose secret the store holds (including the default). */
  Rpc.make("AuthorList", { success: AuthorId, error: ApiError, stream: true }),
  /** A new random author, stored. */
  Rpc.make("AuthorCreate", { success: AuthorId, error: ApiError }),
  /** The default author. */
  Rpc.make("AuthorGetDefault", { success: AuthorId, error: ApiError }),
  /** Make `authorId` the default; unknown → AuthorNotExists. */
  Rpc.make("AuthorSetDefault", { payload: { authorId: AuthorId }, error: ApiError }),
  /** Store an author secret (idempotent); returns its id. */
  Rpc.make("AuthorImport", { payload: { author: AuthorFromRpc }, success: AuthorId, error: ApiError }),
  /** The author's secret, None when unknown. */
  Rpc.make("AuthorExport", { payload: { authorId: AuthorId }, success: Schema.Option(AuthorFromRpc), error: ApiError }),
  /** Delete an author; the default → DefaultAuthorDelete; unknown succeeds. */
  Rpc.make("AuthorDelete", { payload: { authorId: AuthorId }, error: ApiError }),
  /** Import the file at `path` on the node's file system as the content of `(authorId, key)` (spec 06 §5, node-side). */
  Rpc.make("ImportFile", {
    payload: { ...DocId, authorId: AuthorId, key: Schema.Uint8ArrayFromSelf, path: Schema.String },
    success: ImportFileProgress,
    error: ApiError,
    stream: true
  }),
  /** Write the blob `hash` to `path` on the node's file system, creating parent directories; the bytes written so far. */
  Rpc.make("ExportFile", {
    payload: { hash: Hash, path: Schema.String },
    success: ExportFileProgress,
    error: ApiError,
    stream: true
  }),
  /** The bytes of the complete blob `hash`, at most CONTENT_REPLY_MAX (larger: DocsError; read those by BlobRead). */
  Rpc.make("ReadContent", { payload: { hash: Hash }, success: Schema.Uint8ArrayFromSelf, error: ApiError }),
  /** Every blob the node stores, complete or partial, in hash order. */
  Rpc.make("BlobList", { success: BlobListItem, error: ApiError, stream: true }),
  /**
   * `length` (≤ BLOB_READ_MAX) bytes of the complete blob `hash` from `offset`, fewer at its end (none at it; past it:
   * BlobRangeError). A blob is read in pieces, one request each: over HTTP a streamed response is not paced by its
   * reader, so the node would buffer a whole blob for a slow one.
   */
  Rpc.make("BlobRead", {
    payload: {
      hash: Hash,
      offset: Schema.NonNegativeInt,
      length: Schema.NonNegativeInt.pipe(Schema.lessThanOrEqualTo(BLOB_READ_MAX))
    },
    success: Schema.Uint8ArrayFromSelf,
    error: ApiError
  }),
  /** Deletes every blob no document references (spec 05 §12) and nothing in use (downloads, uploads, adds). */
  Rpc.make("BlobGc", { success: GcReport, error: ApiError }),
  /**
   * Upload a value in chunks (issue 16, finding 3): `BeginUpload` opens a session on the node that hashes incrementally
   * into the blob store; `UploadChunk`s (each at most UPLOAD_CHUNK_MAX bytes, in order) feed it; `CommitUpload` sets
   * `(authorId, key)` to the content and returns the outcome; `AbortUpload` drops it. An idle session expires.
   */
  Rpc.make("BeginUpload", {
    payload: { ...DocId, authorId: AuthorId, key: Schema.Uint8ArrayFromSelf },
    success: UploadId,
    error: ApiError
  }),
  Rpc.make("UploadChunk", {
    payload: {
      uploadId: UploadId,
      bytes: UploadChunkBytes
    },
    error: ApiError
  }),
  Rpc.make("CommitUpload", { payload: { uploadId: UploadId }, success: SetOutcome, error: ApiError }),
  Rpc.make("AbortUpload", { payload: { uploadId: UploadId }, error: ApiError }),
  /** Our node id, listen addresses and RPC address. */
  Rpc.make("NodeStatus", { success: NodeInfo, error: ApiError }),
  /** The node's metric counters. */
  Rpc.make("Stats", { success: Stats, error: ApiError })
) {}

/** The largest unfinished message a decoder holds: @effect/rpc's own bound (a reply of more fails the call). */
const MAX_PENDING = 16 * 1024 * 1024

/**
 * The largest content one reply carries (`ReadContent`): the decoder's bound less room for the message around it.
 * Larger content is read in `BlobRead` pieces (`doc get`, `blob get`) or exported by the node.
 */
export const CONTENT_REPLY_MAX = MAX_PENDING - 64 * 1024

/**
 * The serialization of the node's RPC server and of its clients: @effect/rpc's msgpack (`RpcSerialization.msgPack`),
 * byte for byte: the same content type, options (records) and encoding, so a client built on
 * `RpcSerialization.layerMsgPack` talks to a node and back. Only the decoding of a reply differs: it copies each byte
 * about twice (internal/msgpackStream.ts) where @effect/rpc's copies an unfinished message again with every piece.
 */
export const msgPack: RpcSerialization.RpcSerialization["Type"] = RpcSerialization.RpcSerialization.of({
  contentType: "application/msgpack",
  includesFraming: true,
  unsafeMake: () => {
    const options = { useRecords: true }
    const packr = new Packr(options)
    const decoder = new MsgpackStreamDecoder(
      new Unpackr(options),
      MAX_PENDING,
      (bufferSize) =>
        new RpcSerialization.RpcSerializationError({
          reason: "BufferSizeExceeded",
          maxBufferSize: MAX_PENDING,
          bufferSize
        })
    )
    const encoder = new TextEncoder()
    return {
      decode: (bytes) => decoder.push(typeof bytes === "string" ? encoder.encode(bytes) : bytes),
      encode: (message) => packr.pack(message)
    }
  }
})

/** `msgPack` as the layer `RpcServer` and `RpcClient` read it from. */
export const layerMsgPack: Layer.Layer<RpcSerialization.RpcSerialization> = Layer.succeed(
  RpcSerialization.RpcSerialization,
  msgPack
)
