/** Fixtures for tests with several peers. */
import { Context, Effect, Layer } from "effect"
import * as Capability from "../../src/schema/Capability.js"
import type { SignedEntry } from "../../src/schema/Entry.js"
import type { NamespaceSecret } from "../../src/schema/Keys.js"
import * as Crypto from "../../src/services/Crypto.js"
import * as Network from "../../src/services/Network.js"
import * as Ranger from "../../src/services/Ranger.js"
import * as Replica from "../../src/services/Replica.js"
import * as Store from "../../src/services/Store.js"
import * as Sync from "../../src/services/Sync.js"

/** The document `namespace` holds `entries` (put straight into the store) and is open for sync. */
export const openWithEntries = (namespace: NamespaceSecret, entries: ReadonlyArray<SignedEntry>) =>
  Effect.gen(function*() {
    const store = yield* Store.Store
    const replica = yield* Replica.Replica
    yield* replica.importNamespace(new Capability.Write({ secret: namespace }))
    yield* store.putMany(entries)
    yield* replica.open(namespace.id, { sync: true })
  })

/**
 * A bare sync peer on 127.0.0.1 (no gossip, no membership, no live engine) whose document `namespace` holds `entries`
 * as given (unchecked: forged ones too): it accepts every session and starts none. Returns its address.
 */
export const bareSyncPeer = (namespace: NamespaceSecret, entries: ReadonlyArray<SignedEntry>) =>
  Effect.gen(function*() {
    const peer = yield* Layer.build(
      Sync.layerServing({ readTimeout: "5 seconds" }).pipe(
        Layer.provideMerge(Ranger.layer(Ranger.defaultConfig)),
        Layer.provideMerge(Replica.layer),
        Layer.provideMerge(Store.layerMemory),
        Layer.provideMerge(Network.layer()),
        Layer.provide(Crypto.layerInline)
      )
    )
    yield* Effect.provide(openWithEntries(namespace, entries), peer)
    return yield* Context.get(peer, Network.Network).addr
  })
