/**
 * Finding 4, the engine's inbox: gossiped ContentReady and SyncReport Ops are posted to the actor by the receive loop,
 * which never waits for it; while the inbox holds `inboxGossipMax` commands they are dropped, counted, and their
 * publisher is synced with instead (what a dropped SyncReport announced arrives by that sync).
 */
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect } from "effect"
import { blake3 } from "../../../src/internal/blake3.js"
import { Hash } from "../../../src/schema/Keys.js"
import * as Op from "../../../src/schema/Op.js"
import * as Docs from "../../../src/services/Docs.js"
import * as ContentQueue from "../../../src/services/LiveSync/ContentQueue.js"
import * as Gossip from "../../../src/services/Gossip.js"
import { eventually, startMemoryNode } from "../../utils/nodes.js"

describe("LiveSync flood: the inbox", () => {
  it.scopedLive("finding 4: gossiped ContentReady and SyncReport Ops beyond the inbox bound are dropped, counted, and their publisher resynced", () =>
    Effect.gen(function*() {
      // A bound of 0: every such Op finds the inbox "full".
      const victim = yield* startMemoryNode({ live: { inboxGossipMax: 0 } })
      const peer = yield* startMemoryNode()
      const doc = yield* Docs.createDoc(victim.docs)
      const ticket = yield* doc.share("Write", "Addresses")
      yield* Docs.importAndSubscribe(peer.docs, ticket)
      const gossip = Context.get(peer.context, Gossip.Gossip)
      const victimGossip = Context.get(victim.context, Gossip.Gossip)
      yield* eventually(
        Effect.map(Effect.all([victimGossip.neighbors(doc.id), gossip.neighbors(doc.id)]), ([v, p]) => v.length >= 1 && p.length >= 1),
        15_000,
        "gossip neighbors"
      )
      const before = yield* victim.docs.stats
      for (let i = 0; i < 10; i++) {
        yield* gossip.broadcast(doc.id, new Op.ContentReady({ hash: Hash.make(blake3(new Uint8Array([i]))) }))
      }
      yield* eventually(
        Effect.map(victim.docs.stats, (s) => s["gossip_ops_dropped"]! - before["gossip_ops_dropped"]! === 10),
        15_000,
        "10 Ops dropped"
      )
      const after = yield* victim.docs.stats
      expect(after["gossip_lag_resyncs"]! - before["gossip_lag_resyncs"]!).toBeGreaterThan(0)
    }), 60_000)

  it("finding 4: a writer whose claims to have content failed distrustAfter downloads in a row starts no more downloads; a success clears it", () => {
    const q = ContentQueue.make<string>({ ...ContentQueue.defaultConfig, maxInFlight: 1, distrustAfter: 3 })
    const hash = (i: number) => Hash.make(blake3(new Uint8Array([i, i >> 8])))
    const downloads = (decisions: ReadonlyArray<ContentQueue.Decision>) => decisions.filter((d) => d._tag === "Download").length
    let i = 0
    // The liar's entries, each claimed (a Put straight from its writer): each download fails.
    for (; i < 3; i++) {
      expect(downloads(ContentQueue.want(q, "doc", hash(i), ["liar", "liar"], true))).toBe(1)
      ContentQueue.downloaded(q, hash(i), false)
    }
    expect(ContentQueue.distrusted(q, "liar")).toBe(true)
    // Its earlier hashes, parked with it as their only provider, are not tried again by a timed retry.
    expect(ContentQueue.retry(q, hash(0))).toEqual({ decisions: [], held: false })
    // Its further claims start nothing, are counted, and the hash is still remembered (the store keeps it).
    const next = ContentQueue.want(q, "doc", hash(i), ["liar", "liar"], true)
    expect(downloads(next)).toBe(0)
    expect(next.some((d) => d._tag === "Remember")).toBe(true)
    expect(q.claimsIgnored).toBe(1)
    // Nor is it offered our wanted content after a sync (an offer: `onlyIfWanted` false).
    expect(downloads(ContentQueue.provide(q, "doc", hash(i), ["liar", "liar"], false))).toBe(0)
    expect(q.claimsIgnored).toBe(2)
    // Another sender's claim still downloads; an honest provider's claim is acted on for the same hash.
    expect(downloads(ContentQueue.want(q, "doc", hash(++i), ["honest", "honest"], true))).toBe(1)
    ContentQueue.downloaded(q, hash(i), true)
    expect(ContentQueue.distrusted(q, "honest")).toBe(false)
    // A download that succeeds with the liar among its providers (it announced one we want: ContentReady) clears it.
    ContentQueue.want(q, "doc", hash(++i), undefined, false)
    expect(downloads(ContentQueue.provide(q, "doc", hash(i), ["liar", "liar"], true))).toBe(1)
    ContentQueue.downloaded(q, hash(i), true)
    expect(ContentQueue.distrusted(q, "liar")).toBe(false)
    expect(downloads(ContentQueue.want(q, "doc", hash(++i), ["liar", "liar"], true))).toBe(1)
  })

  it("finding 4: the failure counts are bounded (MAX_FAILING_PROVIDERS peers, the oldest makes room)", () => {
    const q = ContentQueue.make<string>({ ...ContentQueue.defaultConfig, maxInFlight: 1 })
    for (let i = 0; i < ContentQueue.MAX_FAILING_PROVIDERS + 10; i++) {
      const h = Hash.make(blake3(new Uint8Array([i & 255, i >> 8])))
      ContentQueue.want(q, "doc", h, [`p${i}`, `p${i}`], true)
      ContentQueue.downloaded(q, h, false)
    }
    expect(q.failures.size).toBe(ContentQueue.MAX_FAILING_PROVIDERS)
    expect(q.failures.has("p0")).toBe(false)
  })
})
