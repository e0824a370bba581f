/**
 * The gossip gap after a join (finding 8): a session can announce a peer before gossip knows it, and what a node gets
 * from others after that session reaches the peer neither through the session (its snapshot is older) nor through
 * gossip (the peer was no topic peer yet, so our Put or SyncReport went to the others). The engine syncs with such a
 * peer again when gossip announces it, if entries came in since from anyone but that peer; otherwise not (one session
 * per join). Real nodes on 127.0.0.1; gossip's events are held back or filtered by wrappers to fix the order.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Stream } from "effect"
import * as Capability from "../../../src/schema/Capability.js"
import { Author, NamespaceSecret } from "../../../src/schema/Keys.js"
import { Query } from "../../../src/schema/Query.js"
import * as Docs from "../../../src/services/Docs.js"
import type * as Gossip from "../../../src/services/Gossip.js"
import { entryAt } from "../../utils/entries.js"
import { eventually, type TestNode } from "../../utils/nodes.js"
import { bareSyncPeer } from "../../utils/peers.js"
import { startWrappedMemoryNode } from "../../utils/wrappedNode.js"

const text = (s: string) => new TextEncoder().encode(s)
const realWait = (ms: number) => Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, ms)))
const keysOf = (node: TestNode, ns: NamespaceSecret) =>
  Effect.map(
    Stream.runCollect(node.docs.get(ns.id, Query.all())),
    (entries) => [...entries].map((e) => new TextDecoder().decode(e.key)).sort()
  )

/** Gossip whose events reach the engine only once `release` is done. */
const heldUntil = (release: Deferred.Deferred<void>) => (gossip: Gossip.GossipService): Gossip.GossipService => ({
  ...gossip,
  intake: (ns) =>
    Effect.map(gossip.intake(ns), (intake) => ({ ...intake, take: Effect.zipRight(Deferred.await(release), intake.take) }))
})

/** Gossip that hands the engine no message, only neighbour changes: entries reach the node by sessions alone. */
const deaf = (gossip: Gossip.GossipService): Gossip.GossipService => ({
  ...gossip,
  intake: (ns) =>
    Effect.map(gossip.intake(ns), (intake) => ({
      ...intake,
      take: Effect.map(intake.take, (events) => events.filter((e) => e._tag !== "Received"))
    }))
})

describe("LiveSync: the gossip gap after a join", () => {
  it.scopedLive("entries A got from another peer after its session with B reach B when gossip announces B to A", () =>
    Effect.gen(function*() {
      const ns = NamespaceSecret.generate()
      const release = yield* Deferred.make<void>()
      const a = yield* startWrappedMemoryNode({ gossip: heldUntil(release) })
      const b = yield* startWrappedMemoryNode({ gossip: deaf })
      // D: a bare sync peer (no gossip, no membership) holding one entry A does not have; only A reaches it.
      const d = yield* bareSyncPeer(ns, [entryAt(ns, Author.generate(), "from-d", 5n)])

      const docA = yield* Docs.importNamespace(a.docs, new Capability.Write({ secret: ns }))
      yield* docA.setBytes(yield* a.docs.authorGetDefault, text("from-a"), text("a"))
      yield* docA.startSync([])
      // B joins through A's ticket: one session, which announces B to A before A's gossip does (held).
      yield* Docs.importTicket(b.docs, yield* docA.share("Write", "Addresses"))
      yield* eventually(Effect.map(keysOf(b, ns), (keys) => keys.includes("from-a")), 15_000, "B has A's entry")
      // A gets D's entry; A's SyncReport about it does not reach B's engine (deaf), as when B was no topic peer.
      yield* docA.startSync([d])
      yield* eventually(Effect.map(keysOf(a, ns), (keys) => keys.includes("from-d")), 15_000, "A has D's entry")
      yield* realWait(500)
      assert.notInclude(yield* keysOf(b, ns), "from-d", "nothing else brought it to B")
      // Gossip announces B to A: A syncs with B again, for the entry B cannot have.
      yield* Deferred.succeed(release, undefined)
      yield* eventually(Effect.map(keysOf(b, ns), (keys) => keys.includes("from-d")), 10_000, "B has D's entry")
    }), { timeout: 60_000 })
})
