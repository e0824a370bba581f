/**
 * The live engine's timers on the TestClock (finding 2): a failed session we started is retried with jittered
 * exponential backoff until it succeeds or the document leaves, with one WARN line per step and no stack. Real nodes
 * on 127.0.0.1; only the engine's sleeps follow the TestClock, so the test waits for network work in real time.
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Clock, Context, Effect, Layer, Logger, LogLevel, Ref, Schema, Stream, TestClock } from "effect"
import { encodeFrame } from "../../../src/internal/framing.js"
import * as Capability from "../../../src/schema/Capability.js"
import { MAX_MESSAGE_SIZE, SYNC_PROTOCOL } from "../../../src/schema/constants.js"
import { Author, NamespaceSecret } from "../../../src/schema/Keys.js"
import { Abort, type AbortReason, SyncMessageFromBytes } from "../../../src/schema/SyncMessage.js"
import * as Docs from "../../../src/services/Docs.js"
import * as Network from "../../../src/services/Network.js"
import { entryAt, withFields } from "../../utils/entries.js"
import { record, startMemoryNode, type TestNode } from "../../utils/nodes.js"
import { bareSyncPeer } from "../../utils/peers.js"

/** Real time (the TestClock does not move by itself). */
const realWait = (ms: number) => Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, ms)))

const until = <E>(check: Effect.Effect<boolean, E>, what: string, ms = 15_000) =>
  Effect.gen(function*() {
    const deadline = Date.now() + ms
    while (!(yield* check)) {
      if (Date.now() > deadline) return yield* Effect.dieMessage(`${what} not met within ${ms} ms`)
      yield* realWait(25)
    }
  })

const stat = (node: TestNode, name: string) => Effect.map(node.docs.stats, (s) => s[name] ?? 0)

/** Sessions with `node` that succeeded, whichever side started them. */
const successes = (node: TestNode) =>
  Effect.zipWith(stat(node, "sync_via_connect_success"), stat(node, "sync_via_accept_success"), (x, y) => x + y)

interface Line {
  readonly level: string
  readonly message: string
  readonly cause: boolean
}

const capturing = (lines: Array<Line>) =>
  Logger.add(Logger.make(({ cause, logLevel, message }) => {
    lines.push({
      level: logLevel.label,
      message: Array.isArray(message) ? message.map(String).join(" ") : String(message),
      cause: !Cause.isEmpty(cause)
    })
  }))

const live = { live: { syncRetryDelay: "1 second", syncRetryMax: "1 minute" } } as const

/**
 * Moves the clock 40 s ahead in steps, with real time after each for what it wakes: past the retry that would follow
 * the last one (1.2 × 16 s after the 8 s step in the first test, 1.2 × 2 s in the second). Not more: every simulated
 * second wakes the nodes' periodic sleeps one at a time (each after TestClock waits for the fibers to settle), so
 * six simulated minutes took 5–8 s of real time per test.
 */
const pastNextRetry = Effect.gen(function*() {
  for (let i = 0; i < 2; i++) {
    yield* TestClock.adjust("20 seconds")
    yield* realWait(200)
  }
})

describe("LiveSync retries (TestClock)", () => {
  it.scoped("finding 2: a failed sync is retried with jittered exponential backoff until it succeeds; one WARN line per step, no stack", () => {
    const lines: Array<Line> = []
    return Effect.gen(function*() {
      const a = yield* startMemoryNode(live)
      const b = yield* startMemoryNode(live)
      const docA = yield* Docs.createDoc(a.docs)
      const failures = stat(a, "sync_via_connect_failure")
      const events = yield* record(yield* docA.subscribe())
      const finished = () => events.seen.flatMap((e) => e._tag === "SyncFinished" ? [e.event] : [])
      // B does not have the document: A's sessions with it end in NotFound.
      yield* docA.startSync([yield* b.network.addr])
      yield* until(Effect.sync(() => finished().length === 1), "first failure")

      // Step k waits 2^(k-1) s × [0.8, 1.2] from the failure before it.
      const advanceTo = (t: number) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) => t > now ? TestClock.adjust(t - now) : Effect.void)
      for (const k of [1, 2, 3]) {
        const step = 1000 * 2 ** (k - 1)
        const last = finished()[k - 1]!
        assert.strictEqual(last.result._tag, "Err")
        yield* advanceTo(last.finished + 0.8 * step - 5)
        yield* realWait(300)
        assert.strictEqual(finished().length, k, `no retry before 0.8 × ${step} ms`)
        yield* advanceTo(last.finished + 1.2 * step + 5)
        yield* until(Effect.sync(() => finished().length === k + 1), `retry ${k}`)
        const next = finished()[k]!
        assert.strictEqual(next.origin._tag === "Connect" && next.origin.reason, "Retry")
        assert.isAtLeast(next.started - last.finished, 0.8 * step)
        assert.isAtMost(next.started - last.finished, 1.2 * step + 5)
      }
      assert.strictEqual(yield* failures, 4)

      // B takes the document: a session succeeds and ends the retries (the next retry's, or B's own with A: B finds
      // A on the document's gossip topic, over the connection A's attempts left open, and the retry sees it).
      const ticket = yield* docA.share("Write", "Addresses")
      const docB = yield* Docs.importNamespace(b.docs, ticket.capability)
      yield* docB.startSync([])
      yield* TestClock.adjust("10 seconds")
      yield* until(Effect.map(successes(a), (n) => n >= 1), "a session succeeded")
      const retries = yield* stat(a, "sync_retries")
      const attempts = (yield* stat(a, "sync_via_connect_success")) + (yield* failures)
      yield* pastNextRetry
      assert.strictEqual(yield* stat(a, "sync_retries"), retries, "no retry after the success")
      assert.strictEqual((yield* stat(a, "sync_via_connect_success")) + (yield* failures), attempts, "no session after it")

      const warned = lines.filter((l) => l.level === "WARN" && l.message.startsWith("sync with "))
      assert.strictEqual(warned.length, 4, "one line per failure")
      for (const line of warned) {
        assert.isFalse(line.cause, "no cause (no stack) at WARN")
        assert.notInclude(line.message, "\n")
      }
    }).pipe(Effect.provide(capturing(lines)), Logger.withMinimumLogLevel(LogLevel.Debug))
  }, 60_000)

  it.scoped("finding 2: a retry the peer refuses (AlreadySyncing: it says it syncs with us itself) goes on; that session may never come", () =>
    Effect.gen(function*() {
      const a = yield* startMemoryNode(live)
      // A raw peer that answers every session with an Abort: NotFound the first time (a failure, so retries start),
      // then AlreadySyncing, and never syncs with us.
      const peer = Context.get(yield* Layer.build(Network.layer()), Network.Network)
      const sessions = yield* Ref.make(0)
      const abort = (reason: AbortReason) =>
        encodeFrame(Schema.encodeSync(SyncMessageFromBytes)(new Abort({ reason })), MAX_MESSAGE_SIZE)
      yield* peer.handle(SYNC_PROTOCOL, (stream) =>
        Effect.gen(function*() {
          yield* Stream.runHead(Network.receive(stream))
          const n = yield* Ref.updateAndGet(sessions, (k) => k + 1)
          yield* Network.send(stream, abort(n === 1 ? "NotFound" : "AlreadySyncing"))
          yield* Network.closeWrite(stream)
          yield* Stream.runDrain(Network.receive(stream))
        }))
      const docA = yield* Docs.createDoc(a.docs)
      yield* docA.startSync([yield* peer.addr])
      yield* until(Effect.map(Ref.get(sessions), (n) => n === 1), "first session")
      yield* until(Effect.map(stat(a, "sync_retries"), (n) => n === 1), "first failure")
      // Steps of 1, 2, 4, 8 s: every one comes, though each was refused (one clock step may wake several of them).
      for (let i = 0; i < 10 && (yield* Ref.get(sessions)) < 5; i++) {
        yield* TestClock.adjust("20 seconds")
        yield* realWait(200)
      }
      assert.isAtLeast(yield* Ref.get(sessions), 5)
      assert.strictEqual(yield* stat(a, "sync_retries"), 1, "a refusal is no failure: no WARN line")
      assert.isAtLeast(yield* stat(a, "sync_retry_refused"), 4, "each refusal is counted")
    }), 60_000)

  it.scoped("finding 2: the retries end when a session with the peer succeeds, also one the peer started", () =>
    Effect.gen(function*() {
      const a = yield* startMemoryNode(live)
      const b = yield* startMemoryNode(live)
      const docA = yield* Docs.createDoc(a.docs)
      const events = yield* record(yield* docA.subscribe())
      const retried = () =>
        events.seen.filter((e) => e._tag === "SyncFinished" && e.event.origin._tag === "Connect" && e.event.origin.reason === "Retry")
      yield* docA.startSync([yield* b.network.addr])
      yield* until(Effect.map(stat(a, "sync_retries"), (n) => n === 1), "first failure")
      // B takes the document and syncs with A (its session, or A's when A finds B on the topic first: the node ids
      // decide) before A's retry is due.
      const docB = yield* Docs.importNamespace(b.docs, (yield* docA.share("Write", "Addresses")).capability)
      yield* docB.startSync([yield* a.network.addr])
      yield* until(Effect.map(successes(a), (n) => n >= 1), "a session between A and B")
      assert.strictEqual(retried().length, 0)
      yield* pastNextRetry
      // Time for a session the retry would have started to show (on a busy machine too). Sessions for other reasons
      // (A finding B on the topic) may come and go meanwhile.
      yield* realWait(1000)
      assert.strictEqual(retried().length, 0, "the retry saw the success and started no session")
    }), 60_000)

  it.scoped("finding 2: a peer that sent too many invalid entries is cooling down, and that ends the retries: none after the cool-down either", () =>
    Effect.gen(function*() {
      // The liar serves the document with forged entries (bad namespace signatures): a bare sync peer, which accepts
      // every session and starts none of its own.
      const ns = NamespaceSecret.generate()
      const author = Author.generate()
      const forged = Array.from({ length: 5 }, (_, i) => {
        const e = entryAt(ns, author, `forged/${i}`, 5n)
        const sig = Uint8Array.from(e.signature.namespace)
        sig[1]! ^= 1
        return withFields(e, { namespaceSignature: sig })
      })
      const liar = yield* bareSyncPeer(ns, forged)
      // A cools a peer down for 30 s after more than 3 invalid entries; its retries would reach 60 s apart.
      const a = yield* startMemoryNode({ ...live, ranger: { maxInvalid: 3 }, sync: { cooldown: "30 seconds" } })
      const failures = stat(a, "sync_via_connect_failure")
      const docA = yield* Docs.importNamespace(a.docs, new Capability.Write({ secret: ns }))
      yield* docA.startSync([liar])
      yield* until(
        Effect.zipWith(failures, stat(a, "sync_retries"), (f, r) => f === 1 && r === 1),
        "the first session fails (TooManyInvalidEntries) and its retries start"
      )
      // Past the cool-down and the retry steps that would follow (1, 2, 4, 8, 16, 32, 60 s): a retry going on after
      // the cool-down would start a session again, which fails again on the forged entries.
      for (let i = 0; i < 8; i++) {
        yield* TestClock.adjust("20 seconds")
        yield* realWait(200)
      }
      yield* realWait(500)
      assert.strictEqual(yield* failures, 1, "no session after the one that cooled the peer down")
      assert.strictEqual(yield* stat(a, "sync_retry_refused"), 0, "cooling down is no refusal")
      assert.strictEqual((yield* Stream.runCollect(docA.getMany())).length, 0, "nothing forged stored")
    }), 60_000)

  it.scoped("finding 2: leaving the document ends its retries", () =>
    Effect.gen(function*() {
      const a = yield* startMemoryNode(live)
      const b = yield* startMemoryNode(live)
      const docA = yield* Docs.createDoc(a.docs)
      const failures = stat(a, "sync_via_connect_failure")
      yield* docA.startSync([yield* b.network.addr])
      yield* until(Effect.map(failures, (n) => n === 1), "first failure")
      yield* TestClock.adjust("1300 millis")
      yield* until(Effect.map(failures, (n) => n === 2), "a retry")
      yield* docA.leave
      yield* pastNextRetry
      assert.strictEqual(yield* failures, 2)
    }), 60_000)
})
