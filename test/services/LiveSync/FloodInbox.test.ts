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
})
