/**
 * The public API's types (spec 06 §3–§5), without any node: `DocsService` (every request of the RPC group as one
 * method), its `Docs` tag, the `Doc` handle over it and the client-side helpers. The embedded node implements it in
 * `Docs.ts` (`Docs.layer`); the RPC client implements it in `DocsRpcClient.ts`. This module imports only schemas, so a
 * client (the CLI) loads neither libp2p nor SQLite.
 *
 * Errors are the API's tagged errors (`ApiError`, spec 06 §7): replica, blob and sync errors pass through as they are.
 */
import { Context, Effect, Option, type Scope, Stream } from "effect"
import type * as Capability from "../schema/Capability.js"
import { type ApiError, DocClosed } from "../schema/DocsErrors.js"
import type { DownloadPolicy } from "../schema/DownloadPolicy.js"
import type { Entry, SignedEntry } from "../schema/Entry.js"
import type { OpenState } from "../schema/Events.js"
import type { Author, AuthorId, Hash, NamespaceId } from "../schema/Keys.js"
import type { LiveEvent } from "../schema/LiveEvent.js"
import type { NodeAddr, NodeId } from "../schema/NodeAddr.js"
import { Query } from "../schema/Query.js"
import type { BlobListItem, DocListItem, GcReport, NodeInfo, SetOutcome, Stats } from "../schema/Rpc.js"
import type { AddrInfoOptions, DocTicket, ShareMode } from "../schema/Ticket.js"

/** The outcome of importing a file as an entry's content. */
export interface ImportFileOutcome {
  readonly hash: Hash
  readonly size: number
  readonly key: Uint8Array
}

export interface DocsService {
  // -- documents
  readonly create: Effect.Effect<NamespaceId, ApiError>
  readonly open: (docId: NamespaceId) => Effect.Effect<void, ApiError>
  readonly close: (docId: NamespaceId) => Effect.Effect<void, ApiError>
  readonly status: (docId: NamespaceId) => Effect.Effect<OpenState, ApiError>
  readonly list: Stream.Stream<DocListItem, ApiError>
  readonly drop: (docId: NamespaceId) => Effect.Effect<void, ApiError>
  readonly import: (capability: Capability.Capability) => Effect.Effect<NamespaceId, ApiError>
  /** Stores `value` and sets `key` to it; the stored entry and how many of the author's entries the write removed. */
  readonly set: (
    docId: NamespaceId,
    authorId: AuthorId,
    key: Uint8Array,
    value: Uint8Array
  ) => Effect.Effect<SetOutcome, ApiError>
  /**
   * Sets `key` to the content of `data`, streamed in bounded memory (over RPC: an upload in chunks); returns the stored
   * entry and how many of the author's entries the write removed (the prefix rule).
   */
  readonly setStream: <E>(
    docId: NamespaceId,
    authorId: AuthorId,
    key: Uint8Array,
    data: Stream.Stream<Uint8Array, E>
  ) => Effect.Effect<SetOutcome, ApiError | E>
  readonly setHash: (
    docId: NamespaceId,
    authorId: AuthorId,
    key: Uint8Array,
    hash: Hash,
    size: bigint
  ) => Effect.Effect<SetOutcome, ApiError>
  readonly get: (docId: NamespaceId, query: Query) => Stream.Stream<SignedEntry, ApiError>
  readonly getExact: (
    docId: NamespaceId,
    key: Uint8Array,
    authorId: AuthorId,
    includeEmpty: boolean
  ) => Effect.Effect<Option.Option<SignedEntry>, ApiError>
  readonly del: (docId: NamespaceId, authorId: AuthorId, prefix: Uint8Array) => Effect.Effect<number, ApiError>
  readonly startSync: (docId: NamespaceId, peers: ReadonlyArray<NodeAddr>) => Effect.Effect<void, ApiError>
  readonly leave: (docId: NamespaceId) => Effect.Effect<void, ApiError>
  readonly share: (
    docId: NamespaceId,
    mode: ShareMode,
    addrOptions: AddrInfoOptions
  ) => Effect.Effect<DocTicket, ApiError>
  /** Subscribed when this returns (no later event is missed); unsubscribes when the scope closes. */
  readonly subscribe: (
    docId: NamespaceId
  ) => Effect.Effect<Stream.Stream<LiveEvent, ApiError>, ApiError, Scope.Scope>
  readonly getDownloadPolicy: (docId: NamespaceId) => Effect.Effect<DownloadPolicy, ApiError>
  readonly setDownloadPolicy: (docId: NamespaceId, policy: DownloadPolicy) => Effect.Effect<void, ApiError>
  readonly getSyncPeers: (docId: NamespaceId) => Effect.Effect<Option.Option<ReadonlyArray<NodeId>>, ApiError>
  // -- authors
  readonly authorList: Stream.Stream<AuthorId, ApiError>
  readonly authorCreate: Effect.Effect<AuthorId, ApiError>
  readonly authorGetDefault: Effect.Effect<AuthorId, ApiError>
  readonly authorSetDefault: (authorId: AuthorId) => Effect.Effect<void, ApiError>
  readonly authorImport: (author: Author) => Effect.Effect<AuthorId, ApiError>
  readonly authorExport: (authorId: AuthorId) => Effect.Effect<Option.Option<Author>, ApiError>
  readonly authorDelete: (authorId: AuthorId) => Effect.Effect<void, ApiError>
  // -- files on the node's machine (spec 06 §5)
  /** Adds the file's content as a blob and sets `key` to it; `onProgress` sees the bytes read so far. */
  readonly importFile: (
    docId: NamespaceId,
    authorId: AuthorId,
    key: Uint8Array,
    path: string,
    onProgress?: (bytes: number) => Effect.Effect<void>
  ) => Effect.Effect<ImportFileOutcome, ApiError>
  /** Writes a blob to `path` (parent directories created); `onProgress` sees the bytes written so far, of `size`. */
  readonly exportFile: (
    hash: Hash,
    path: string,
    onProgress?: (bytes: number, size: number) => Effect.Effect<void>
  ) => Effect.Effect<void, ApiError>
  /** The content of a blob (complete only). */
  readonly readContent: (hash: Hash) => Effect.Effect<Uint8Array, ApiError>
  // -- blobs
  /** Every blob the node stores, complete or partial, in hash order. */
  readonly blobList: Stream.Stream<BlobListItem, ApiError>
  /**
   * The content of a complete blob from `offset` (default 0), `length` bytes of it (default: to the end), in pieces of
   * at most `chunkSize` bytes (default 64 KiB embedded, 4 MiB over RPC), read as the stream is pulled: bounded memory
   * at any size.
   */
  readonly blobRead: (
    hash: Hash,
    options?: { readonly offset?: number; readonly length?: number; readonly chunkSize?: number }
  ) => Stream.Stream<Uint8Array, ApiError>
  /**
   * Deletes the blobs nothing needs: protected are the content of every document's entries (spec 05 §12), downloads
   * and uploads in progress, and adds whose entry is not stored yet.
   */
  readonly blobGc: Effect.Effect<GcReport, ApiError>
  // -- node
  readonly nodeStatus: Effect.Effect<NodeInfo, ApiError>
  readonly stats: Effect.Effect<Stats, ApiError>
}

export class Docs extends Context.Tag("docs/Docs")<Docs, DocsService>() {}

/** Where the RPC server listens, when the node runs one (NodeStatus reports it). */
export class RpcAddress extends Context.Reference<RpcAddress>()("docs/RpcAddress", {
  defaultValue: () => Option.none<string>()
}) {}

// ---------------------------------------------------------------------------------------------------------------
// Doc handle (spec 06 §4.2)

/**
 * A handle on one open document, over any `DocsService` (embedded or RPC). Each handle counts one replica handle on
 * the node; `close` marks the handle closed first, then releases it. Other methods of a closed handle fail with
 * DocClosed without contacting the node; other handles of the same document are unaffected.
 */
export class Doc {
  #closed = false
  constructor(readonly api: DocsService, readonly id: NamespaceId) {}

  get isClosed(): boolean {
    return this.#closed
  }

  private guard<A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | DocClosed, R> {
    return Effect.suspend((): Effect.Effect<A, E | DocClosed, R> =>
      this.#closed ? Effect.fail(new DocClosed({ namespace: this.id })) : effect
    )
  }

  private guardStream<A, E>(stream: Stream.Stream<A, E>): Stream.Stream<A, E | DocClosed> {
    return Stream.unwrap(Effect.sync((): Stream.Stream<A, E | DocClosed> =>
      this.#closed ? Stream.fail(new DocClosed({ namespace: this.id })) : stream
    ))
  }

  readonly close: Effect.Effect<void, ApiError> = Effect.suspend(() => {
    if (this.#closed) return Effect.void
    this.#closed = true
    return this.api.close(this.id)
  })

  /** Stores `value` as a blob and sets `key` to it; returns the content hash. */
  setBytes(author: AuthorId, key: Uint8Array, value: Uint8Array): Effect.Effect<Hash, ApiError> {
    return this.guard(Effect.map(this.api.set(this.id, author, key, value), (o) => o.entry.contentHash))
  }
  /** Sets `key` to existing content; the stored entry and how many of the author's entries it removed. */
  setHash(author: AuthorId, key: Uint8Array, hash: Hash, size: bigint): Effect.Effect<SetOutcome, ApiError> {
    return this.guard(this.api.setHash(this.id, author, key, hash, size))
  }
  /** Deletes the author's entries at and below `prefix`; returns how many were removed. */
  del(author: AuthorId, prefix: Uint8Array): Effect.Effect<number, ApiError> {
    return this.guard(this.api.del(this.id, author, prefix))
  }
  getExact(author: AuthorId, key: Uint8Array, includeEmpty = false): Effect.Effect<Option.Option<Entry>, ApiError> {
    return this.guard(
      Effect.map(this.api.getExact(this.id, key, author, includeEmpty), Option.map((e) => e.entry))
    )
  }
  getMany(query: Query = Query.all()): Stream.Stream<Entry, ApiError> {
    return this.guardStream(Stream.map(this.api.get(this.id, query), (e) => e.entry))
  }
  getOne(query: Query = Query.all()): Effect.Effect<Option.Option<Entry>, ApiError> {
    return Stream.runHead(this.getMany(new Query({ ...query, limit: 1 })))
  }
  /**
   * A ticket for this document (our addresses per `addrOptions`, by default every address, direct and relayed:
   * `Ticket.DEFAULT_ADDR_INFO_OPTIONS`, written out so that the client path does not load the ticket codec); also
   * starts live sync.
   */
  share(mode: ShareMode, addrOptions: AddrInfoOptions = "RelayAndAddresses"): Effect.Effect<DocTicket, ApiError> {
    return this.guard(this.api.share(this.id, mode, addrOptions))
  }
  startSync(peers: ReadonlyArray<NodeAddr>): Effect.Effect<void, ApiError> {
    return this.guard(this.api.startSync(this.id, peers))
  }
  readonly leave: Effect.Effect<void, ApiError> = Effect.suspend(() => this.guard(this.api.leave(this.id)))
  subscribe(): Effect.Effect<Stream.Stream<LiveEvent, ApiError>, ApiError, Scope.Scope> {
    return this.guard(this.api.subscribe(this.id))
  }
  readonly status: Effect.Effect<OpenState, ApiError> = Effect.suspend(() => this.guard(this.api.status(this.id)))
  setDownloadPolicy(policy: DownloadPolicy): Effect.Effect<void, ApiError> {
    return this.guard(this.api.setDownloadPolicy(this.id, policy))
  }
  readonly getDownloadPolicy: Effect.Effect<DownloadPolicy, ApiError> = Effect.suspend(() =>
    this.guard(this.api.getDownloadPolicy(this.id))
  )
  readonly getSyncPeers: Effect.Effect<Option.Option<ReadonlyArray<NodeId>>, ApiError> = Effect.suspend(() =>
    this.guard(this.api.getSyncPeers(this.id))
  )
  importFile(
    author: AuthorId,
    key: Uint8Array,
    path: string,
    onProgress?: (bytes: number) => Effect.Effect<void>
  ): Effect.Effect<ImportFileOutcome, ApiError> {
    return this.guard(this.api.importFile(this.id, author, key, path, onProgress))
  }
  /** Writes the content of `entry` to `path`, creating parent directories. */
  exportFile(entry: Entry, path: string): Effect.Effect<void, ApiError> {
    return this.guard(this.api.exportFile(entry.record.hash, path))
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Client-side helpers of spec 06 §4.1, over any DocsService

/** A new document, open with one handle. */
export const createDoc = (api: DocsService): Effect.Effect<Doc, ApiError> =>
  Effect.map(api.create, (id) => new Doc(api, id))

/** Opens an existing document (+1 handle); unknown → ReplicaNotFound. */
export const openDoc = (api: DocsService, id: NamespaceId): Effect.Effect<Doc, ApiError> =>
  Effect.as(api.open(id), new Doc(api, id))

/** Imports a capability and opens the document; does not start sync. */
export const importNamespace = (api: DocsService, capability: Capability.Capability): Effect.Effect<Doc, ApiError> =>
  Effect.map(api.import(capability), (id) => new Doc(api, id))

/** Imports the ticket's capability, then syncs with its nodes. */
export const importTicket = (api: DocsService, ticket: DocTicket): Effect.Effect<Doc, ApiError> =>
  Effect.tap(importNamespace(api, ticket.capability), (doc) => doc.startSync(ticket.nodes))

/** Imports, subscribes, then starts sync: no early event is missed. The subscription ends with the scope. */
export const importAndSubscribe = (
  api: DocsService,
  ticket: DocTicket
): Effect.Effect<readonly [Doc, Stream.Stream<LiveEvent, ApiError>], ApiError, Scope.Scope> =>
  Effect.gen(function*() {
    const doc = yield* importNamespace(api, ticket.capability)
    const events = yield* doc.subscribe()
    yield* doc.startSync(ticket.nodes)
    return [doc, events] as const
  })

/** The content of an entry (empty for an empty entry); BlobNotFound while it has not arrived. */
export const readContent = (api: DocsService, entry: Entry): Effect.Effect<Uint8Array, ApiError> =>
  api.readContent(entry.record.hash)
