/** The engine's per-peer sync state (spec 05 §6, 04 §7): properties over random event sequences. */
import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import * as SyncState from "../../../src/services/LiveSync/SyncState.js"

const NS = "ab".repeat(32)
const A = "01".repeat(32)
const B = "02".repeat(32)

/** A session in flight between A and B, started by `from`. */
interface Session {
  readonly from: string
  readonly to: string
  readonly id: number
  phase: "requested" | "running" | "done"
}

type Step =
  | { readonly _tag: "connect"; readonly from: 0 | 1; readonly reason: "DirectJoin" | "NewNeighbor" | "SyncReport" }
  | { readonly _tag: "deliver"; readonly pick: number }
  | { readonly _tag: "finish"; readonly pick: number; readonly ok: boolean }

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  fc.record({
    _tag: fc.constant("connect" as const),
    from: fc.constantFrom(0 as const, 1 as const),
    reason: fc.constantFrom("DirectJoin" as const, "NewNeighbor" as const, "SyncReport" as const)
  }),
  fc.record({ _tag: fc.constant("deliver" as const), pick: fc.nat() }),
  fc.record({ _tag: fc.constant("finish" as const), pick: fc.nat(), ok: fc.boolean() })
)

/**
 * Two nodes, one document, and the wire between them: a request reaches the other node (its accept decision) at a
 * random later step, a running session ends on both sides at once. Returns the most sessions that ran at once.
 */
const run = (steps: ReadonlyArray<Step>) => {
  const nodes = { [A]: SyncState.make(A), [B]: SyncState.make(B) }
  for (const s of Object.values(nodes)) SyncState.insert(s, NS)
  const sessions: Array<Session> = []
  let most = 0
  let now = 0
  const end = (session: Session, result: SyncState.Result) => {
    session.phase = "done"
    SyncState.finish(nodes[session.from]!, NS, session.to, session.id, result, now)
    if (result !== "Aborted") SyncState.finish(nodes[session.to]!, NS, session.from, "accept", result, now)
  }
  const deliver = (session: Session) => {
    const outcome = SyncState.acceptRequest(nodes[session.to]!, NS, session.from, now)
    if (outcome === "Allow") session.phase = "running"
    else end(session, "Aborted")
  }
  for (const step of steps) {
    now++
    const open = sessions.filter((s) => s.phase === "requested")
    const running = sessions.filter((s) => s.phase === "running")
    switch (step._tag) {
      case "connect": {
        const [from, to] = step.from === 0 ? [A, B] : [B, A]
        const id = SyncState.startConnect(nodes[from]!, NS, to, step.reason, now)
        if (id !== undefined) sessions.push({ from, to, id, phase: "requested" })
        break
      }
      case "deliver":
        if (open.length > 0) deliver(open[step.pick % open.length]!)
        break
      case "finish":
        if (running.length > 0) end(running[step.pick % running.length]!, step.ok ? "Ok" : "Failed")
        break
    }
    most = Math.max(most, sessions.filter((s) => s.phase === "running").length)
  }
  // Drain: every request reaches its peer, every session ends.
  for (const s of sessions) if (s.phase === "requested") deliver(s)
  for (const s of sessions) if (s.phase === "running") end(s, "Ok")
  return { nodes, sessions, most }
}

describe("LiveSync/SyncState", () => {
  it("exactly one session per pair: random connects on both sides never run two at once, and no state is left running", () => {
    fc.assert(
      fc.property(fc.array(stepArb, { maxLength: 60 }), (steps) => {
        const { nodes, most } = run(steps)
        assert.isAtMost(most, 1)
        for (const [me, other] of [[A, B], [B, A]] as const) {
          const state = SyncState.peer(nodes[me]!, NS, other)
          if (state !== undefined) assert.strictEqual(state.sync._tag, "Idle", `${me.slice(0, 2)} idle at the end`)
        }
      }),
      { numRuns: 500 }
    )
  })

  it("both dial at once: the session started by the smaller node id survives, in either delivery order", () => {
    for (const first of [0, 1]) {
      const a = SyncState.make(A)
      const b = SyncState.make(B)
      SyncState.insert(a, NS)
      SyncState.insert(b, NS)
      const fromA = SyncState.startConnect(a, NS, B, "DirectJoin", 1)
      const fromB = SyncState.startConnect(b, NS, A, "DirectJoin", 1)
      assert.isDefined(fromA)
      assert.isDefined(fromB)
      const atB = () => SyncState.acceptRequest(b, NS, A, 2)
      const atA = () => SyncState.acceptRequest(a, NS, B, 2)
      const outcomes = first === 0 ? [atB(), atA()] : [atA(), atB()].reverse()
      assert.deepStrictEqual(outcomes, ["Allow", "AlreadySyncing"], `A's session runs (order ${first})`)
      // B's own session was taken over: its abort by A neither frees nor reports B's state.
      assert.isUndefined(SyncState.finish(b, NS, A, fromB!, "Aborted", 3))
      assert.strictEqual(SyncState.peer(b, NS, A)?.sync._tag, "Running")
      assert.isDefined(SyncState.finish(b, NS, A, "accept", "Ok", 4))
      assert.isDefined(SyncState.finish(a, NS, B, fromA!, "Ok", 4))
    }
  })

  it("a SyncReport while running asks for one resync; a failed session we started asks for a retry, counting failures", () => {
    const s = SyncState.make(A)
    SyncState.insert(s, NS)
    const first = SyncState.startConnect(s, NS, B, "DirectJoin", 1)!
    assert.isUndefined(SyncState.startConnect(s, NS, B, "SyncReport", 2))
    assert.deepStrictEqual(SyncState.finish(s, NS, B, first, "Failed", 3), { started: 1, resync: true, retry: 1 })
    const second = SyncState.startConnect(s, NS, B, "Retry", 4)!
    assert.deepStrictEqual(SyncState.finish(s, NS, B, second, "Failed", 5), { started: 4, resync: false, retry: 2 })
    const third = SyncState.startConnect(s, NS, B, "Retry", 6)!
    assert.deepStrictEqual(SyncState.finish(s, NS, B, third, "Ok", 7), { started: 6, resync: false, retry: undefined })
    assert.strictEqual(SyncState.peer(s, NS, B)?.failures, 0)
    // An accepted session that fails is the peer's to retry.
    assert.strictEqual(SyncState.acceptRequest(s, NS, B, 8), "Allow")
    assert.deepStrictEqual(SyncState.finish(s, NS, B, "accept", "Failed", 9), { started: 8, resync: false, retry: undefined })
  })

  it("nothing for documents that are not live; leaving drops their states and ignores later completions", () => {
    const s = SyncState.make(A)
    assert.isUndefined(SyncState.startConnect(s, NS, B, "DirectJoin", 1))
    assert.strictEqual(SyncState.acceptRequest(s, NS, B, 1), "NotFound")
    SyncState.insert(s, NS)
    const id = SyncState.startConnect(s, NS, B, "DirectJoin", 1)!
    SyncState.remove(s, NS)
    assert.isUndefined(SyncState.finish(s, NS, B, id, "Ok", 2))
    assert.isUndefined(SyncState.startConnect(s, NS, A, "DirectJoin", 3), "never with itself")
  })

  it("NeighborUp is news once until NeighborDown", () => {
    const s = SyncState.make(A)
    SyncState.insert(s, NS)
    assert.isTrue(SyncState.neighborUp(s, NS, B, 1))
    assert.isFalse(SyncState.neighborUp(s, NS, B, 2))
    assert.isTrue(SyncState.neighborDown(s, NS, B))
    assert.isFalse(SyncState.neighborDown(s, NS, B))
    assert.isTrue(SyncState.neighborUp(s, NS, B, 3))
  })

  it("peer states stay within their bound under random peers: idle ones are evicted, running ones never", () => {
    const peerArb = fc.integer({ min: 2, max: 40 }).map((n) => n.toString(16).padStart(64, "0"))
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 8 }),
        fc.array(fc.tuple(fc.constantFrom("connect", "accept", "finish", "up"), peerArb), { maxLength: 200 }),
        (max, events) => {
          const s = SyncState.make(A, max)
          SyncState.insert(s, NS)
          const running = new Map<string, number | "accept">()
          let now = 0
          for (const [what, peer] of events) {
            now++
            if (what === "connect") {
              const id = SyncState.startConnect(s, NS, peer, "NewNeighbor", now)
              if (id !== undefined) running.set(peer, id)
            } else if (what === "accept") {
              if (SyncState.acceptRequest(s, NS, peer, now) === "Allow") running.set(peer, "accept")
            } else if (what === "up") SyncState.neighborUp(s, NS, peer, now)
            else {
              const id = running.get(peer)
              if (id !== undefined && SyncState.finish(s, NS, peer, id, "Ok", now) !== undefined) running.delete(peer)
            }
            const doc = s.docs.get(NS)!
            assert.isAtMost(doc.peers.size, max)
            for (const [p] of running) assert.strictEqual(doc.peers.get(p)?.sync._tag, "Running", "a running state is kept")
          }
        }
      ),
      { numRuns: 300 }
    )
  })
})
