/**
 * The live engine's other timers on the TestClock: the timed retries of a failed download (jittered exponential
 * backoff, `LiveSyncConfig.downloadRetryDelay` / `downloadRetries`) and the redials of a neighbour that went away
 * (`REDIAL_DELAY`, `REDIAL_ATTEMPTS`). Real nodes on 127.0.0.1; only the engines' sleeps follow the TestClock, so the
 * tests wait for network work in real time and move the clock only while nothing is in flight, in small increments
 * around each expected attempt. Attempts are seen where they start, in memory: the joiner's blob store protecting
 * the blob a transfer fetches, the gossip join of a redial.
 */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Context, Effect, Option, Redacted, TestClock } from "effect"
import { toHex } from "../../../src/internal/bytes.js"
import type * as Blobs from "../../../src/services/Blobs.js"
import * as Docs from "../../../src/services/Docs.js"
import * as Gossip from "../../../src/services/Gossip.js"
import * as LiveSync from "../../../src/services/LiveSync.js"
import { record, startMemoryNode, startStoppable, type TestNode } from "../../utils/nodes.js"
import { startWrappedMemoryNode } from "../../utils/wrappedNode.js"

const text = (s: string) => new TextEncoder().encode(s)

/** Real time (the TestClock does not move by itself; `record(…).until` and `eventually` sleep on it). */
const realWait = (ms: number) => Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, ms)))

const until = <E>(check: Effect.Effect<boolean, E>, what: string, ms = 15_000) =>
  Effect.gen(function*() {
    const deadline = Date.now() + ms
    while (!(yield* check)) {
      if (Date.now() > deadline) return yield* Effect.dieMessage(`${what} not met within ${ms} ms`)
      yield* realWait(25)
    }
  })

const advanceTo = (t: number) =>
  Effect.flatMap(Clock.currentTimeMillis, (now) => (t > now ? TestClock.adjust(t - now) : Effect.void))

/**
 * Moves the clock a minute ahead in steps, giving whatever a step wakes real time to act. An attempt after the last
 * one would come within 1.2 × twice the last step (19.2 s for both the 8 s retry and the 8 s redial), so a minute
 * shows it. Not more: every simulated second wakes the nodes' periodic sleeps (the gossip stream check each second,
 * the membership shuffle), one at a time and each after TestClock waits for the fibers to settle, so ten simulated
 * minutes took 7–10 s of real time per test.
 */
const farAhead = Effect.gen(function*() {
  for (let i = 0; i < 3; i++) {
    yield* TestClock.adjust("20 seconds")
    yield* realWait(200)
  }
})

const stat = (node: TestNode, name: string) => Effect.orDie(Effect.map(node.docs.stats, (s) => s[name] ?? 0))

/** The clock moves in increments of this fraction of a step between 0.8 and 1.2 of it. */
const INCREMENT = 0.04

/** When attempt k happened: in `(lo, hi]` (TestClock ms); the clock moves in increments, so it is known to one. */
interface Window {
  readonly lo: number
  readonly hi: number
}

/**
 * Checks `steps` attempts against their nominal delays, each ×[0.8, 1.2] from the attempt before it (from `t0` for
 * the first): none before its lower bound; then the clock moves by {@link INCREMENT} of the step at a time, with a
 * pause in real time, until `attempts()` (a count of attempts, read where they start) grows. `settled(k)` is true
 * once attempt k's outcome was handled; the clock moves on only then. Returns each attempt's delay window.
 */
const checkSteps = (
  attempts: () => number,
  t0: number,
  steps: ReadonlyArray<number>,
  settled: (k: number) => Effect.Effect<boolean>
) =>
  Effect.gen(function*() {
    const delays: Array<Window> = []
    let prev: Window = { lo: t0, hi: t0 }
    for (let k = 1; k <= steps.length; k++) {
      const step = steps[k - 1]!
      const inc = INCREMENT * step
      yield* advanceTo(prev.lo + 0.8 * step - 5)
      yield* realWait(150)
      assert.strictEqual(attempts(), k - 1, `attempt ${k} not before 0.8 × ${step} ms`)
      let now = yield* Clock.currentTimeMillis
      while (attempts() < k) {
        assert.isAtMost(now, prev.hi + 1.2 * step + inc, `attempt ${k} by 1.2 × ${step} ms`)
        yield* TestClock.adjust(inc)
        now += inc
        yield* realWait(25)
      }
      yield* until(settled(k), `attempt ${k} handled`)
      const at: Window = { lo: now - inc, hi: now }
      const delay = { lo: at.lo - prev.hi, hi: at.hi - prev.lo }
      assert.isAtLeast(delay.hi, 0.8 * step, `attempt ${k}: at least 0.8 × ${step} ms`)
      assert.isAtMost(delay.lo, 1.2 * step, `attempt ${k}: at most 1.2 × ${step} ms`)
      delays.push(delay)
      prev = at
    }
    return delays
  })

/** Some delay was surely not its nominal step (jitter), as far as the increments tell. */
const jittered = (delays: ReadonlyArray<Window>, steps: ReadonlyArray<number>) =>
  delays.some((d, i) => steps[i]! <= d.lo || steps[i]! > d.hi)

const show = (delays: ReadonlyArray<Window>) => delays.map((d) => `${d.lo}..${d.hi}`).join(", ")

// -- downloads

interface Serve {
  readonly at: number
  readonly response: string
}

/**
 * A provider that answers NotFound while `serving.on` is false (its blob store hides the blob from the transfer
 * service; sync still reports the content Complete), recording when it answered each request.
 */
const provider = Effect.gen(function*() {
  const serving = { on: false }
  const serves: Array<Serve> = []
  const node = yield* startWrappedMemoryNode({
    blobs: (blobs: Blobs.BlobsService): Blobs.BlobsService => ({
      ...blobs,
      info: (hash) => (serving.on ? blobs.info(hash) : Effect.succeed(Option.none()))
    }),
    transfer: {
      onServe: (event) =>
        Effect.flatMap(Clock.currentTimeMillis, (at) => Effect.sync(() => void serves.push({ at, response: event.response })))
    }
  })
  return { node, serving, serves }
})

const RETRY_DELAY = 1000
const RETRIES = 4

/**
 * The joiner: one round per download (no downloader backoff in between), `RETRIES` timed retries from 1 s. Its blob
 * store counts the transfers it starts (each protects the blob it fetches first, in memory, before any I/O).
 */
const downloader = Effect.gen(function*() {
  const fetches = { started: 0 }
  const node = yield* startWrappedMemoryNode({
    blobs: (blobs: Blobs.BlobsService): Blobs.BlobsService => ({
      ...blobs,
      protect: (hash) => Effect.zipRight(Effect.sync(() => void fetches.started++), blobs.protect(hash))
    }),
    live: { downloadRetryDelay: `${RETRY_DELAY} millis`, downloadRetries: RETRIES },
    transfer: { maxRounds: 1 }
  })
  return { node, fetches }
})

/** A writes one entry, B joins and fails its first download of the content (A does not serve it yet). */
const failedDownload = Effect.gen(function*() {
  const a = yield* provider
  const { node: b, fetches } = yield* downloader
  const author = yield* a.node.docs.authorGetDefault
  const docA = yield* Docs.createDoc(a.node.docs)
  yield* docA.setBytes(author, text("key"), text("content that takes the download path"))
  const ticket = yield* docA.share("Write", "Addresses")
  const [docB, events] = yield* Docs.importAndSubscribe(b.docs, ticket)
  const seenB = yield* record(events)
  yield* until(Effect.map(stat(b, "downloads_failure"), (n) => n === 1), "first download failed")
  assert.strictEqual(a.serves.length, 1)
  assert.strictEqual(a.serves[0]!.response, "NotFound")
  assert.strictEqual(fetches.started, 1)
  return { a, b, docB, seenB, fetches, t0: yield* Clock.currentTimeMillis }
})

describe("LiveSync timers (TestClock)", () => {
  it.scoped("download retry: a failed download is retried after 1, 2, 4, 8 s (each ×0.8–1.2), downloadRetries times, then no more", () =>
    Effect.gen(function*() {
      const { a, b, fetches, t0 } = yield* failedDownload
      const steps = Array.from({ length: RETRIES }, (_, i) => RETRY_DELAY * 2 ** i)
      const delays = yield* checkSteps(
        () => fetches.started - 1,
        t0,
        steps,
        (k) => Effect.map(stat(b, "downloads_failure"), (n) => n === k + 1)
      )
      assert.isTrue(jittered(delays, steps), `jittered: ${show(delays)}`)
      // Only a new provider retries it now.
      yield* farAhead
      assert.strictEqual(fetches.started, 1 + RETRIES, "no attempt after the last retry")
      assert.strictEqual(a.serves.length, 1 + RETRIES)
      assert.strictEqual(yield* stat(b, "downloads_failure"), 1 + RETRIES)
    }), 60_000)

  it.scoped("download retry: the retry that gets the content ends the retries", () =>
    Effect.gen(function*() {
      const { a, b, seenB, t0 } = yield* failedDownload
      yield* advanceTo(t0 + 1.2 * RETRY_DELAY + 5)
      yield* until(Effect.map(stat(b, "downloads_failure"), (n) => n === 2), "first retry failed")
      a.serving.on = true
      yield* advanceTo((yield* Clock.currentTimeMillis) + 2.4 * RETRY_DELAY + 5)
      yield* until(Effect.map(stat(b, "downloads_success"), (n) => n === 1), "second retry got the content")
      yield* until(Effect.sync(() => seenB.seen.some((e) => e._tag === "ContentReady")), "ContentReady")
      yield* farAhead
      assert.strictEqual(a.serves.length, 3, "no attempt after the success")
      assert.deepStrictEqual(a.serves.map((s) => s.response), ["NotFound", "NotFound", "Complete"])
    }), 60_000)

  it.scoped("download retry: leaving the document ends its retries", () =>
    Effect.gen(function*() {
      const { a, docB, t0 } = yield* failedDownload
      yield* advanceTo(t0 + 1.2 * RETRY_DELAY + 5)
      yield* until(Effect.sync(() => a.serves.length === 2), "first retry")
      yield* docB.leave
      yield* farAhead
      assert.strictEqual(a.serves.length, 2)
    }), 60_000)
})

// -- redials

/**
 * A gossip service that records (TestClock ms) each join that names nodes to dial: the engine's redials. With
 * `blind.neighbours` set it reports no neighbours, as gossip does before a peer's subscription arrives.
 */
const recordingJoins = () => {
  const joins: Array<{ readonly at: number; readonly peers: ReadonlyArray<string> }> = []
  const blind = { neighbours: false }
  const wrap = (gossip: Gossip.GossipService): Gossip.GossipService => ({
    ...gossip,
    neighbors: (ns) => (blind.neighbours ? Effect.succeed([]) : gossip.neighbors(ns)),
    join: (ns, bootstrap) =>
      bootstrap === undefined || bootstrap.length === 0
        ? gossip.join(ns, bootstrap)
        : Effect.flatMap(Clock.currentTimeMillis, (at) =>
          Effect.zipRight(
            Effect.sync(() => void joins.push({ at, peers: bootstrap.map((p) => toHex("nodeId" in p ? p.nodeId : p)) })),
            gossip.join(ns, bootstrap)
          ))
  })
  return { joins, blind, wrap }
}

/** A and B share a document and are gossip neighbours; then B stops: A sees NeighborDown at `t0`. */
const neighbourGone = Effect.gen(function*() {
  const recorder = recordingJoins()
  const a = yield* startWrappedMemoryNode({ gossip: recorder.wrap })
  // B's identity is fixed, so that it can come back as the same node.
  const identity = Redacted.make(crypto.getRandomValues(new Uint8Array(32)))
  const b = yield* startStoppable(startMemoryNode({ identity }))
  const docA = yield* Docs.createDoc(a.docs)
  const seenA = yield* record(yield* docA.subscribe())
  const ticket = yield* docA.share("Write", "Addresses")
  yield* Docs.importNamespace(b.node.docs, ticket.capability).pipe(Effect.flatMap((doc) => doc.startSync(ticket.nodes)))
  const peerB = toHex(b.node.network.nodeId)
  const seen = (tag: "NeighborUp" | "NeighborDown") =>
    Effect.sync(() => seenA.seen.some((e) => e._tag === tag && toHex(e.peer) === peerB))
  yield* until(seen("NeighborUp"), "B a neighbour")
  // The engine announces B after their session; gossip must know it too, or it reports no NeighborDown.
  const gossipA = Context.get(a.context, Gossip.Gossip)
  yield* until(Effect.map(gossipA.neighbors(docA.id), (ids) => ids.some((id) => toHex(id) === peerB)), "B a gossip neighbour")
  yield* b.stop
  yield* until(seen("NeighborDown"), "B gone")
  const t0 = yield* Clock.currentTimeMillis
  // The redial's first sleep is registered before the clock moves.
  yield* realWait(200)
  assert.strictEqual(recorder.joins.length, 0, "no redial before its time")
  /** B starts again with the same identity and rejoins the document (it dials A itself). */
  const comeBack = Effect.gen(function*() {
    const again = yield* startMemoryNode({ identity })
    const doc = yield* Docs.importNamespace(again.docs, ticket.capability)
    yield* doc.startSync(ticket.nodes)
    yield* until(
      Effect.sync(() => seenA.seen.filter((e) => e._tag === "NeighborUp" && toHex(e.peer) === peerB).length === 2),
      "B a neighbour again"
    )
  })
  return { a, docA, peerB, joins: recorder.joins, blind: recorder.blind, t0, comeBack }
})

describe("LiveSync redials (TestClock)", () => {
  it.scoped("redial: a neighbour that went away is dialled after 0.5, 1, 2, 4, 8 s (each ×0.8–1.2), REDIAL_ATTEMPTS times, then no more", () =>
    Effect.gen(function*() {
      const { joins, peerB, t0 } = yield* neighbourGone
      const base = 500
      const steps = Array.from({ length: LiveSync.REDIAL_ATTEMPTS }, (_, i) => base * 2 ** i)
      const delays = yield* checkSteps(() => joins.length, t0, steps, () => Effect.succeed(true))
      for (const join of joins) assert.deepStrictEqual(join.peers, [peerB])
      assert.isTrue(jittered(delays, steps), `jittered: ${show(delays)}`)
      yield* farAhead
      assert.strictEqual(joins.length, LiveSync.REDIAL_ATTEMPTS, "no redial after the last")
    }), 60_000)

  /** B comes back after the first redial: no redial after it. `blindGossip`: gossip reports no neighbours meanwhile. */
  const backEndsRedials = (blindGossip: boolean) =>
    Effect.gen(function*() {
      const { blind, comeBack, joins, t0 } = yield* neighbourGone
      blind.neighbours = blindGossip
      yield* advanceTo(t0 + 1.2 * 500 + 5)
      yield* until(Effect.sync(() => joins.length === 1), "first redial")
      yield* comeBack
      yield* farAhead
      assert.strictEqual(joins.length, 1)
    })

  it.scoped("redial: a neighbour that is back ends the redials (at the next step, without a dial)", () =>
    backEndsRedials(false), 60_000)

  // Gossip does not see B come back (its subscription has not arrived): B's session with A is what tells.
  it.scoped("redial: a neighbour the engine announced again ends the redials, before gossip sees its subscription", () =>
    backEndsRedials(true), 60_000)

  it.scoped("redial: leaving the document ends its redials", () =>
    Effect.gen(function*() {
      const { docA, joins, t0 } = yield* neighbourGone
      yield* advanceTo(t0 + 1.2 * 500 + 5)
      yield* until(Effect.sync(() => joins.length === 1), "first redial")
      yield* docA.leave
      yield* farAhead
      assert.strictEqual(joins.length, 1)
    }), 60_000)
})
