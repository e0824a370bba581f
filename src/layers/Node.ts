/**
 * The stacks people run: a whole node (libp2p host, gossip, storage, blob transfer, live engine, default author, the
 * Docs API) in memory or in a data directory. Composition only.
 */
import { Context, Effect, Exit, Layer, type Redacted, Scope } from "effect"
import { privateDir } from "../internal/files.js"
import type { BlobStoreError } from "../schema/BlobErrors.js"
import { DocsError } from "../schema/DocsErrors.js"
import type { StoreError } from "../schema/Errors.js"
import type { NetworkError } from "../schema/NetworkErrors.js"
import type { NodeAddr, NodeId } from "../schema/NodeAddr.js"
import * as AddressBook from "../services/AddressBook.js"
import type * as Blobs from "../services/Blobs.js"
import * as BlobTransfer from "../services/BlobTransfer.js"
import * as DefaultAuthor from "../services/DefaultAuthor.js"
import * as Docs from "../services/Docs.js"
import * as Gossip from "../services/Gossip.js"
import * as LiveSync from "../services/LiveSync.js"
import * as Membership from "../services/Membership.js"
import * as Network from "../services/Network.js"
import type { GossipRouter } from "../services/Network/router.js"
import * as Sync from "../services/Sync.js"
import type * as Ranger from "../services/Ranger.js"
import type * as Replica from "../services/Replica.js"
import type * as Store from "../services/Store.js"
import { MemoryStorage, PersistentStorage } from "./Stores.js"

export interface NodeOptions {
  /** Listen multiaddrs; default loopback on a random port. */
  readonly listen?: ReadonlyArray<string>
  /**
   * The 32-byte Ed25519 seed of a memory node's identity (its node id is the public key), e.g. to seed node ids in
   * tests; default a fresh one per start. A persistent node's identity is its `<dataDir>/node-key` file.
   */
  readonly identity?: Redacted.Redacted<Uint8Array>
  /**
   * Relays to hold reservations on (multiaddrs ending in `/p2p/<peer id>`): the node is then reachable through
   * them from behind a NAT, and announces `<relay>/p2p-circuit` addresses (see `Network.NetworkConfig.relays`).
   */
  readonly relays?: ReadonlyArray<string>
  /** Serve as a relay for other nodes (`true`: limits that carry a whole sync; see `Network.RelayServiceConfig`). */
  readonly relayService?: boolean | Network.RelayServiceConfig
  /** Nodes dialed when the node starts (a failed dial is logged). */
  readonly bootstrap?: ReadonlyArray<NodeAddr>
  readonly network?: Omit<Network.NetworkConfig, "listen" | "identity">
  readonly gossip?: Gossip.GossipConfig
  /** The document swarms' membership: target degree, view sizes, shuffle interval (defaults in Membership.ts). */
  readonly membership?: Membership.MembershipConfig
  readonly blobs?: Blobs.BlobsConfig
  readonly transfer?: BlobTransfer.BlobTransferConfig
  readonly live?: LiveSync.LiveSyncConfig
  /** The sync protocol's timeouts and session caps (spec 04). */
  readonly sync?: Sync.SyncConfig
  readonly ranger?: Partial<Ranger.RangerConfig>
}

/** What a node provides: the Docs API and the services under it. */
export type NodeServices =
  | Docs.Docs
  | LiveSync.LiveSync
  | DefaultAuthor.DefaultAuthor
  | Network.Network
  | Gossip.Gossip
  | Membership.Membership
  | BlobTransfer.BlobTransfer
  | Blobs.Blobs
  | Replica.Replica
  | Store.Store

export type NodeError = StoreError | BlobStoreError | NetworkError | DocsError

const dialBootstrap = (peers: ReadonlyArray<NodeAddr>) =>
  Layer.effectDiscard(Effect.gen(function*() {
    const network = yield* Network.Network
    yield* Effect.forEach(
      peers,
      (peer) => network.dial(peer).pipe(Effect.catchAll((e) => Effect.logWarning(`bootstrap: ${e.message}`))),
      { concurrency: "unbounded", discard: true }
    )
  }))

/**
 * A node downloads up to `maxDownloads` blobs at once, often all from the one peer it synced with; a provider that
 * served fewer per peer would answer the rest `Busy`, and they would wait out the downloader's backoff.
 */
const TRANSFER_DEFAULTS: BlobTransfer.BlobTransferConfig = {
  maxTransfersPerPeer: Math.max(BlobTransfer.DEFAULT_MAX_TRANSFERS_PER_PEER, BlobTransfer.DEFAULT_MAX_DOWNLOADS)
}

/** The network options of a node: `options.network` with the top-level reach options. */
const networkConfig = (options: NodeOptions): Omit<Network.NetworkConfig, "identity"> => ({
  ...options.network,
  ...(options.listen === undefined ? {} : { listen: options.listen }),
  ...(options.relays === undefined ? {} : { relays: options.relays }),
  ...(options.relayService === undefined ? {} : { relayService: options.relayService })
})

const build = <E1, E2>(
  storage: Layer.Layer<Replica.Replica | Store.Store | Blobs.Blobs, E1>,
  network: Layer.Layer<Network.Network | GossipRouter, NetworkError>,
  defaultAuthor: Layer.Layer<DefaultAuthor.DefaultAuthor, E2, Replica.Replica>,
  addressBook: Layer.Layer<AddressBook.AddressBook>,
  options: NodeOptions
): Layer.Layer<NodeServices, E1 | E2 | NetworkError> => {
  const base = Layer.mergeAll(storage, network)
  const gossip = Gossip.layer(options.gossip).pipe(Layer.provideMerge(base))
  const membership = Membership.layer(options.membership).pipe(Layer.provide(addressBook), Layer.provideMerge(gossip))
  const transfer = BlobTransfer.layer({ ...TRANSFER_DEFAULTS, ...options.transfer }).pipe(
    Layer.provideMerge(membership)
  )
  const live = LiveSync.layer(options.live).pipe(
    Layer.provide(Sync.layer(options.sync)),
    Layer.provide(LiveSync.rangerLayer(options.ranger)),
    Layer.provide(addressBook),
    Layer.provideMerge(transfer)
  )
  const withAuthor = defaultAuthor.pipe(Layer.provideMerge(live))
  return Docs.layer.pipe(
    Layer.provideMerge(withAuthor),
    (node) => Layer.provideMerge(dialBootstrap(options.bootstrap ?? []), node)
  )
}

/** A node whose documents, blobs, identity and default author live in memory only. */
export const memoryNode = (options: NodeOptions = {}): Layer.Layer<NodeServices, NodeError> =>
  build(
    MemoryStorage(options.blobs),
    Network.layer({
      ...networkConfig(options),
      ...(options.identity === undefined ? {} : { identity: options.identity })
    }),
    DefaultAuthor.layerMemory,
    AddressBook.layerMemory,
    options
  )

/**
 * A node in `dataDir` (created if missing): `docs.sqlite` (documents and the blob index), `blobs/`, `node-key`
 * (the node identity), `default-author`, `peers.json` (addresses of useful peers), `listen-ports.json` (the ports
 * it listened on, taken again at the next start when free).
 *
 * The directory is 0700 and every file holding a secret (`docs.sqlite` with its -wal/-shm, `node-key`,
 * `default-author`, `rpc-token`) 0600 from its creation; any of them found looser at start is tightened, with one
 * warning line each.
 */
export const persistentNode = (dataDir: string, options: NodeOptions = {}): Layer.Layer<NodeServices, NodeError> =>
  Layer.unwrapEffect(Effect.gen(function*() {
    yield* privateDir(dataDir).pipe(Effect.mapError((error) => new DocsError({ message: error.message })))
    return build(
      PersistentStorage(dataDir, options.blobs),
      Network.layerPersistent(dataDir, networkConfig(options)),
      DefaultAuthor.layerFile(dataDir),
      AddressBook.layerFile(dataDir),
      options
    )
  }))

/** A running node with an explicit end: for programs that run several nodes, or start and stop one at will. */
export interface NodeHandle {
  readonly nodeId: NodeId
  readonly docs: Docs.DocsService
  /** Every service of the node, for code that needs more than Docs. */
  readonly context: Context.Context<NodeServices>
  /** Stops the node: its streams and sessions end, its store is flushed and closed. Idempotent. */
  readonly shutdown: Effect.Effect<void>
}

/**
 * Starts `node` (e.g. `memoryNode()` or `persistentNode(dir)`) in a scope of its own, which only `shutdown` closes:
 * the node outlives the caller's scope. A node that fails to start leaves nothing running.
 */
export const start = (node: Layer.Layer<NodeServices, NodeError>): Effect.Effect<NodeHandle, NodeError> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const context = yield* restore(Layer.buildWithScope(node, scope)).pipe(
        Effect.onError((cause) => Scope.close(scope, Exit.failCause(cause)))
      )
      return {
        nodeId: Context.get(context, Network.Network).nodeId,
        docs: Context.get(context, Docs.Docs),
        context,
        shutdown: Scope.close(scope, Exit.void)
      }
    })
  )
