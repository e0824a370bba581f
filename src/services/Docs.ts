/**
 * The embedded Docs API (spec 06 §3–§5): `DocsService` over the node's replica, live engine, blobs and default author.
 * The API's types, the `Docs` tag, the `Doc` handle and its helpers live in `DocsApi.ts` (no node imports) and are
 * re-exported here; the RPC client implements the same interface (`DocsRpcClient.layerClient`), so a program can
 * switch between them by changing one layer, and `Doc` works over both.
 */
import { Clock, Effect, Layer, Option, Stream } from "effect"
import { toHex } from "../internal/bytes.js"
import * as Blobs from "./Blobs.js"
import * as DefaultAuthor from "./DefaultAuthor.js"
import * as LiveSync from "./LiveSync.js"
import * as Network from "./Network.js"
import * as Replica from "./Replica.js"
import * as Capability from "../schema/Capability.js"
import { type ApiError, DefaultAuthorDelete, ReadAccessOnly } from "../schema/DocsErrors.js"
import type { AuthorId, NamespaceId } from "../schema/Keys.js"
import type { LiveEvent } from "../schema/LiveEvent.js"
import type { NodeId } from "../schema/NodeAddr.js"
import { BlobListItem, DocListItem, GcReport, NodeInfo, SetOutcome } from "../schema/Rpc.js"
import { type AddrInfoOptions, DocTicket, filterAddrs, type ShareMode } from "../schema/Ticket.js"
import { Docs, type DocsService, RpcAddress } from "./DocsApi.js"

export * from "./DocsApi.js"

export const make = Effect.gen(function*() {
  const replica = yield* Replica.Replica
  const live = yield* LiveSync.LiveSync
  const blobs = yield* Blobs.Blobs
  const defaultAuthor = yield* DefaultAuthor.DefaultAuthor
  const network = yield* Network.Network

  const set = (docId: NamespaceId, authorId: AuthorId, key: Uint8Array, value: Uint8Array) =>
    Effect.scoped(Effect.gen(function*() {
      // The blob stays protected from GC (a temporary tag) until the entry that references it is stored.
      const added = yield* blobs.addBytes(value)
      // The outcome carries the stored entry: no read back (the reference reads it again).
      const outcome = yield* replica.insertLocal(docId, authorId, key, added.hash, BigInt(added.size))
      return new SetOutcome({ entry: outcome.entry, removed: outcome.removed })
    }))

  const setStream = <E>(docId: NamespaceId, authorId: AuthorId, key: Uint8Array, data: Stream.Stream<Uint8Array, E>) =>
    Effect.scoped(Effect.gen(function*() {
      const added = yield* blobs.addStream(data)
      const outcome = yield* replica.insertLocal(docId, authorId, key, added.hash, BigInt(added.size))
      return new SetOutcome({ entry: outcome.entry, removed: outcome.removed })
    }))

  const share = (docId: NamespaceId, mode: ShareMode, addrOptions: AddrInfoOptions) =>
    Effect.gen(function*() {
      const capability: Capability.Capability = mode === "Read"
        ? new Capability.Read({ id: docId })
        : new Capability.Write({
          secret: yield* replica.exportSecretKey(docId).pipe(
            Effect.catchTag("ReadOnly", () => Effect.fail(new ReadAccessOnly({ namespace: docId })))
          )
        })
      yield* live.startSync(docId, [])
      const me = filterAddrs(yield* network.addr, addrOptions)
      return new DocTicket({ capability, nodes: [me] })
    })

  const drop = (docId: NamespaceId) =>
    Effect.gen(function*() {
      yield* live.leave(docId, true)
      yield* replica.dropReplica(docId)
    })

  const subscribe = (docId: NamespaceId) =>
    Effect.map(live.subscribe(docId), (events): Stream.Stream<LiveEvent, ApiError> => events)

  const authorDelete = (authorId: AuthorId) =>
    Effect.gen(function*() {
      const current = yield* defaultAuthor.get
      if (current.length === authorId.length && current.every((b, i) => b === authorId[i])) {
        return yield* new DefaultAuthorDelete({ author: authorId })
      }
      yield* replica.deleteAuthor(authorId)
    })

  const importFile = (
    docId: NamespaceId,
    authorId: AuthorId,
    key: Uint8Array,
    path: string,
    onProgress?: (bytes: number) => Effect.Effect<void>
  ) =>
    Effect.scoped(Effect.gen(function*() {
      const added = yield* blobs.addFile(path, onProgress === undefined ? {} : { onProgress })
      yield* replica.insertLocal(docId, authorId, key, added.hash, BigInt(added.size))
      return { hash: added.hash, size: added.size, key }
    }))

  // Blob GC keeps every entry's content (spec 05 §12), read anew at each run (Blobs' gcInterval schedules runs).
  yield* blobs.addGcProtector(replica.contentHashes)

  const startedAt = yield* Clock.currentTimeMillis
  const nodeStatus = Effect.gen(function*() {
    const addr = yield* network.addr
    const uptimeMs = (yield* Clock.currentTimeMillis) - startedAt
    const relays = (yield* network.relays).map((r) => ({
      relay: r.relay,
      status: r.status,
      ...(r.reason === undefined ? {} : { reason: r.reason })
    }))
    const peers = new Map<string, { readonly nodeId: NodeId; via: "direct" | "relayed" }>()
    for (const c of yield* network.connections) {
      const key = toHex(c.peer)
      const known = peers.get(key)
      if (known === undefined) peers.set(key, { nodeId: c.peer, via: c.kind })
      else if (c.kind === "direct") known.via = "direct"
    }
    return new NodeInfo({
      nodeId: addr.nodeId,
      addrs: addr.addrs,
      rpcAddress: yield* RpcAddress,
      uptimeMs,
      relays,
      peers: [...peers.values()].map((p) => ({ nodeId: p.nodeId, via: p.via }))
    })
  })

  const service: DocsService = {
    create: replica.createReplica(),
    open: (docId) => replica.open(docId),
    close: (docId) => Effect.asVoid(replica.close(docId)),
    status: replica.state,
    list: Stream.flatMap(
      Stream.fromIterableEffect(replica.listReplicas),
      ([id, capability]) => Stream.make(new DocListItem({ id, capability }))
    ),
    drop,
    import: (capability) =>
      Effect.tap(replica.importNamespace(capability), (docId) => replica.open(docId)),
    set,
    setStream,
    setHash: (docId, authorId, key, hash, size) =>
      Effect.map(
        replica.insertLocal(docId, authorId, key, hash, size),
        (outcome) => new SetOutcome({ entry: outcome.entry, removed: outcome.removed })
      ),
    get: replica.getMany,
    getExact: (docId, key, authorId, includeEmpty) => replica.getExact(docId, authorId, key, includeEmpty),
    del: (docId, authorId, prefix) => Effect.map(replica.deletePrefix(docId, authorId, prefix), (o) => o.removed),
    startSync: live.startSync,
    leave: (docId) => live.leave(docId, false),
    share,
    subscribe,
    getDownloadPolicy: replica.getDownloadPolicy,
    setDownloadPolicy: replica.setDownloadPolicy,
    getSyncPeers: (docId) =>
      Effect.map(replica.getSyncPeers(docId), Option.map((peers) => peers as ReadonlyArray<NodeId>)),
    authorList: Stream.fromIterableEffect(replica.listAuthors),
    authorCreate: Effect.map(replica.createAuthor, (a) => a.id),
    authorGetDefault: defaultAuthor.get,
    authorSetDefault: defaultAuthor.set,
    authorImport: replica.importAuthor,
    authorExport: replica.exportAuthor,
    authorDelete,
    importFile,
    exportFile: (hash, path, onProgress) =>
      onProgress === undefined ? blobs.exportFile(hash, path) : Effect.gen(function*() {
        const size = Option.match(yield* blobs.info(hash), { onNone: () => 0, onSome: (b) => b.size })
        yield* blobs.exportFile(hash, path, { onProgress: (bytes) => onProgress(bytes, size) })
      }),
    readContent: blobs.read,
    blobList: Stream.map(blobs.list, (b) => new BlobListItem(b)),
    blobRead: blobs.readStream,
    blobGc: Effect.map(blobs.collect, (r) => new GcReport(r)),
    nodeStatus,
    stats: live.metrics
  }
  return Docs.of(service)
})

/**
 * The embedded API over the node's replica, live engine, blobs and default author; while it is up, the documents'
 * entries protect their content from blob GC.
 */
export const layer: Layer.Layer<
  Docs,
  never,
  Replica.Replica | LiveSync.LiveSync | Blobs.Blobs | DefaultAuthor.DefaultAuthor | Network.Network
> = Layer.scoped(Docs, make)
