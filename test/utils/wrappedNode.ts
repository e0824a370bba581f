/**
 * A memory node whose blob store or gossip service is wrapped by the test (to slow down or record calls), composed
 * like `memoryNode` in src/layers/Node.ts (whose `build` takes no wrappers). Keep the two in step.
 */
import { Context, Effect, Layer, type Scope } from "effect"
import type { NodeServices } from "../../src/layers/Node.js"
import { MemoryStore } from "../../src/layers/Stores.js"
import * as AddressBook from "../../src/services/AddressBook.js"
import * as Blobs from "../../src/services/Blobs.js"
import * as BlobTransfer from "../../src/services/BlobTransfer.js"
import * as DefaultAuthor from "../../src/services/DefaultAuthor.js"
import * as Docs from "../../src/services/Docs.js"
import * as Gossip from "../../src/services/Gossip.js"
import * as LiveSync from "../../src/services/LiveSync.js"
import * as Membership from "../../src/services/Membership.js"
import * as Network from "../../src/services/Network.js"
import * as Sync from "../../src/services/Sync.js"
import type { TestNode } from "./nodes.js"

export interface Wrappers {
  readonly blobs?: (blobs: Blobs.BlobsService) => Blobs.BlobsService
  readonly gossip?: (gossip: Gossip.GossipService) => Gossip.GossipService
  readonly live?: LiveSync.LiveSyncConfig
  readonly transfer?: BlobTransfer.BlobTransferConfig
}

const TRANSFER_DEFAULTS: BlobTransfer.BlobTransferConfig = {
  maxTransfersPerPeer: Math.max(BlobTransfer.DEFAULT_MAX_TRANSFERS_PER_PEER, BlobTransfer.DEFAULT_MAX_DOWNLOADS)
}

export const wrappedMemoryNode = (wrappers: Wrappers) => {
  const blobs = Layer.effect(
    Blobs.Blobs,
    Effect.map(Blobs.makeMemory(), (b) => (wrappers.blobs === undefined ? b : wrappers.blobs(b)))
  )
  const storage = Layer.merge(MemoryStore, blobs)
  const network = Network.layer({ listen: ["/ip4/127.0.0.1/tcp/0"] })
  const base = Layer.mergeAll(storage, network)
  const gossip = Gossip.layer().pipe(
    Layer.provideMerge(base),
    Layer.map((context) =>
      wrappers.gossip === undefined
        ? context
        : Context.add(context, Gossip.Gossip, wrappers.gossip(Context.get(context, Gossip.Gossip)))
    )
  )
  const membership = Membership.layer().pipe(Layer.provide(AddressBook.layerMemory), Layer.provideMerge(gossip))
  const transfer = BlobTransfer.layer({ ...TRANSFER_DEFAULTS, ...wrappers.transfer }).pipe(Layer.provideMerge(membership))
  const live = LiveSync.layer(wrappers.live).pipe(
    Layer.provide(Sync.layer()),
    Layer.provide(LiveSync.rangerLayer()),
    Layer.provide(AddressBook.layerMemory),
    Layer.provideMerge(transfer)
  )
  const node: Layer.Layer<NodeServices, unknown> = Docs.layer.pipe(
    Layer.provideMerge(DefaultAuthor.layerMemory.pipe(Layer.provideMerge(live)))
  )
  return node
}

export const startWrappedMemoryNode = (wrappers: Wrappers): Effect.Effect<TestNode, never, Scope.Scope> =>
  Effect.gen(function*() {
    const context = yield* Layer.build(wrappedMemoryNode(wrappers)).pipe(Effect.orDie)
    return { context, docs: Context.get(context, Docs.Docs), network: Context.get(context, Network.Network) }
  })
