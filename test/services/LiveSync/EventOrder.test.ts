/**
 * The live engine's event order (issue 15, finding 8), made deterministic instead of left to a race:
 * - the joiner's blob store answers `status` slowly (every call but the first per hash, which the subscriber's own
 *   event conversion makes): the engine's per-document intake then lags the session by seconds, so an engine that
 *   posts a session's completion without waiting for that intake emits `PendingContentReady` before the session's
 *   downloads were queued;
 * - both nodes' gossip hands NeighborUp to its subscribers late: an engine that learns of a neighbour only from gossip
 *   emits it after the `SyncFinished` of the join's session, and then starts a second, useless session.
 * Real nodes on 127.0.0.1, real clock.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { toHex } from "../../../src/internal/bytes.js"
import type * as LiveEvent from "../../../src/schema/LiveEvent.js"
import type * as Blobs from "../../../src/services/Blobs.js"
import * as Docs from "../../../src/services/Docs.js"
import type { GossipEvent } from "../../../src/schema/Op.js"
import type * as Gossip from "../../../src/services/Gossip.js"
import { eventually, record, type TestNode } from "../../utils/nodes.js"
import { startWrappedMemoryNode } from "../../utils/wrappedNode.js"

const ENTRIES = 32
const SLOW_STATUS_MS = 120
const NEIGHBOR_DELAY_MS = 1_500

const text = (s: string) => new TextEncoder().encode(s)

/** `status` answers after `ms`, except the first call for each hash. */
const slowStatus = (ms: number) => (blobs: Blobs.BlobsService): Blobs.BlobsService => {
  const asked = new Set<string>()
  return {
    ...blobs,
    status: (hash) =>
      Effect.suspend(() => {
        const key = toHex(hash)
        if (!asked.has(key)) {
          asked.add(key)
          return blobs.status(hash)
        }
        return Effect.zipRight(Effect.sleep(ms), blobs.status(hash))
      })
  }
}

/**
 * Gossip's NeighborUp events reach the subscribers `ms` late — the live engine (`intake`) and membership
 * (`neighborEvents`); `delivered` counts the late deliveries to the engine.
 */
const lateNeighbors = (ms: number) => {
  const late = { delivered: 0 }
  const delayed = (pull: Effect.Effect<ReadonlyArray<GossipEvent>>, count: boolean) =>
    Effect.tap(pull, (events) =>
      events.some((e) => e._tag === "NeighborUp")
        ? Effect.zipRight(Effect.sleep(ms), Effect.sync(() => void (count && late.delivered++)))
        : Effect.void)
  const wrap = (gossip: Gossip.GossipService): Gossip.GossipService => ({
    ...gossip,
    intake: (ns) => Effect.map(gossip.intake(ns), (intake) => ({ ...intake, take: delayed(intake.take, true) })),
    neighborEvents: (ns) => Effect.map(gossip.neighborEvents(ns), (pull) => delayed(pull, false))
  })
  return { late, wrap }
}

const stats = (node: TestNode) => node.docs.stats

describe("LiveSync event order", () => {
  it.scopedLive("finding 8: NeighborUp precedes SyncFinished on both sides, one session per join, PendingContentReady after every insert of the session and its content", () =>
    Effect.gen(function*() {
      const gossipA = lateNeighbors(NEIGHBOR_DELAY_MS)
      const gossipB = lateNeighbors(NEIGHBOR_DELAY_MS)
      const live = { inlineContentMax: 0 }
      const a = yield* startWrappedMemoryNode({ gossip: gossipA.wrap, live })
      const b = yield* startWrappedMemoryNode({ gossip: gossipB.wrap, blobs: slowStatus(SLOW_STATUS_MS), live })
      const author = yield* a.docs.authorGetDefault
      const docA = yield* Docs.createDoc(a.docs)
      const keys = Array.from({ length: ENTRIES }, (_, i) => `k${i}`)
      for (const key of keys) yield* docA.setBytes(author, text(key), text(`content of ${key}`))
      const ticket = yield* docA.share("Write", "Addresses")
      const seenA = yield* record(yield* docA.subscribe())
      const [, events] = yield* Docs.importAndSubscribe(b.docs, ticket)
      const seenB = yield* record(events)

      yield* seenB.until((e): e is LiveEvent.PendingContentReady => e._tag === "PendingContentReady", 30_000)
      // Both late NeighborUps were handed to the engines, and whatever they started has ended.
      yield* eventually(Effect.sync(() => gossipA.late.delivered >= 1 && gossipB.late.delivered >= 1), 15_000, "late NeighborUps")
      yield* Effect.sleep("1500 millis")

      const peerA = toHex(a.network.nodeId)
      const peerB = toHex(b.network.nodeId)
      const sessionsWith = (seen: ReadonlyArray<LiveEvent.LiveEvent>, peer: string) =>
        seen.flatMap((e, i) => e._tag === "SyncFinished" && toHex(e.event.peer) === peer ? [i] : [])
      const upOf = (seen: ReadonlyArray<LiveEvent.LiveEvent>, peer: string) =>
        seen.findIndex((e) => e._tag === "NeighborUp" && toHex(e.peer) === peer)

      // One session per join: B connects, A accepts, and nothing else runs.
      const sa = yield* stats(a)
      const sb = yield* stats(b)
      assert.deepStrictEqual(
        [sb.sync_via_connect_success, sb.sync_via_connect_failure, sb.sync_via_accept_success, sb.sync_via_accept_failure],
        [1, 0, 0, 0],
        "B: one session, which it started"
      )
      assert.deepStrictEqual(
        [sa.sync_via_accept_success, sa.sync_via_accept_failure, sa.sync_via_connect_success, sa.sync_via_connect_failure],
        [1, 0, 0, 0],
        "A: one session, which it accepted"
      )
      for (const [name, seen, peer] of [["A", seenA.seen, peerB], ["B", seenB.seen, peerA]] as const) {
        const finished = sessionsWith(seen, peer)
        assert.strictEqual(finished.length, 1, `${name}: one SyncFinished`)
        const up = upOf(seen, peer)
        assert.isAtLeast(up, 0, `${name}: NeighborUp seen`)
        assert.isBelow(up, finished[0]!, `${name}: NeighborUp before SyncFinished`)
      }

      // The joiner: every insert of the session before its end; PendingContentReady once, after all the content.
      const seen = seenB.seen
      const finished = sessionsWith(seen, peerA)[0]!
      const event = seen[finished]
      assert(event?._tag === "SyncFinished" && event.event.result._tag === "Ok")
      assert.strictEqual(event.event.result.details.entriesReceived, ENTRIES)
      const inserts = seen.flatMap((e, i) => e._tag === "InsertRemote" ? [i] : [])
      assert.strictEqual(inserts.length, ENTRIES)
      for (const i of inserts) assert.isBelow(i, finished, "InsertRemote before the session's SyncFinished")
      const pending = seen.flatMap((e, i) => e._tag === "PendingContentReady" ? [i] : [])
      assert.strictEqual(pending.length, 1, "one PendingContentReady")
      assert.isAbove(pending[0]!, finished)
      const ready = seen.flatMap((e, i) => e._tag === "ContentReady" ? [i] : [])
      const readyHashes = new Set(ready.map((i) => {
        const e = seen[i]
        return e?._tag === "ContentReady" ? toHex(e.hash) : ""
      }))
      assert.strictEqual(readyHashes.size, ENTRIES, "every content downloaded")
      for (const i of ready) assert.isBelow(i, pending[0]!, "ContentReady before PendingContentReady")
    }), 60_000)
})
