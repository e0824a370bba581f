/**
 * Canaries of the gossipsub workarounds in src/services/Gossip/gossipsubAdapter.ts: each test shows the upstream quirk
 * on a bare router (no Gossip service, so no repair). When one fails, @libp2p/gossipsub has changed: if the quirk is
 * gone, delete its workaround and the canary; if only the internals moved, adapt the adapter.
 */
import { assert, describe, it } from "@effect/vitest"
import { TopicValidatorResult } from "@libp2p/gossipsub"
import * as fc from "fast-check"
import { Context, Effect, Layer, Schedule, type Scope } from "effect"
import { nodeIdEquals, peerIdFromNodeId } from "../../src/schema/NodeAddr.js"
import {
  boundedIterator,
  boundInbound,
  INBOUND_HIGH_WATER,
  INBOUND_WINDOW,
  type InboundCounters,
  inboundBoundSupported,
  makePacer,
  makeStreamRepair,
  MESSAGES_PER_TURN,
  outboundStream,
  repairSupported
} from "../../src/services/Gossip/gossipsubAdapter.js"
import * as Network from "../../src/services/Network.js"
import { GossipRouter, type GossipRouterService } from "../../src/services/Network/router.js"

const TOPIC = "rangedocs-test/canary"

const startRouter = Effect.map(
  Layer.build(Network.layer({ dialTimeout: "3 seconds", gossipsub: { heartbeatInterval: "100 millis" } })),
  (ctx) => ({ network: Context.get(ctx, Network.Network), router: Context.get(ctx, GossipRouter) })
)

const eventually = (check: Effect.Effect<boolean>, what: string) =>
  check.pipe(
    Effect.filterOrFail((ok) => ok),
    Effect.retry(Schedule.spaced("20 millis").pipe(Schedule.upTo("5 seconds"))),
    Effect.orElse(() => Effect.sync(() => assert.fail(`not reached within 5 s: ${what}`)))
  )

/**
 * A and B subscribed to TOPIC and connected; returns a counter of B's deliveries and A's publish. `beforeDial` runs on
 * B's router before the two connect (B's inbound stream from A is opened on connect).
 */
const pair = (beforeDial: (b: GossipRouterService) => Effect.Effect<void, never, Scope.Scope> = () => Effect.void) => Effect.gen(function*() {
  const a = yield* startRouter
  const b = yield* startRouter
  yield* beforeDial(b.router)
  let delivered = 0
  const onMessage = () => void delivered++
  yield* Effect.acquireRelease(
    Effect.sync(() => b.router.pubsub.addEventListener("gossipsub:message", onMessage)),
    () => Effect.sync(() => b.router.pubsub.removeEventListener("gossipsub:message", onMessage))
  )
  a.router.pubsub.subscribe(TOPIC)
  b.router.pubsub.subscribe(TOPIC)
  yield* a.network.dial(yield* b.network.addr)
  const peerB = peerIdFromNodeId(b.network.nodeId)
  yield* eventually(
    Effect.sync(() => a.router.pubsub.getSubscribers(TOPIC).some((p) => p.equals(peerB))),
    "A knows B's subscription"
  )
  let n = 0
  const publish = Effect.promise(() => a.router.pubsub.publish(TOPIC, Uint8Array.of(n++)))
  return { a, b, peerB, publish, delivered: () => delivered }
})

describe("gossipsub adapter canaries", () => {
  it.scopedLive("the pinned gossipsub has the internals the stream repair works on", () =>
    Effect.gen(function*() {
      const { router } = yield* startRouter
      assert.isTrue(repairSupported(router.pubsub))
    }))

  it.scopedLive("canary: gossipsub never reopens a lost outbound stream while the peer stays connected", () =>
    Effect.gen(function*() {
      const { a, b, delivered, peerB, publish } = yield* pair()
      yield* publish
      yield* eventually(Effect.sync(() => delivered() === 1), "the first message arrives")
      outboundStream(a.router.pubsub, peerB)!.rawStream.abort(new Error("test: stream lost"))
      yield* eventually(Effect.sync(() => outboundStream(a.router.pubsub, peerB) === undefined), "stream dropped")
      // Twenty heartbeats and ten publishes later: still connected, still no stream, nothing delivered.
      for (let i = 0; i < 10; i++) {
        yield* publish
        yield* Effect.sleep("200 millis")
      }
      assert.isTrue((yield* a.network.peers).some((id) => nodeIdEquals(id, b.network.nodeId)))
      assert.isUndefined(outboundStream(a.router.pubsub, peerB), "gossipsub reopened the stream: the quirk is gone")
      assert.strictEqual(delivered(), 1, "messages arrived without a stream repair: the quirk is gone")
    }), 30_000)

  it.scopedLive("the repair reopens the lost stream and messages flow again", () =>
    Effect.gen(function*() {
      const { a, delivered, peerB, publish } = yield* pair()
      const repair = makeStreamRepair(a.router)!
      outboundStream(a.router.pubsub, peerB)!.rawStream.abort(new Error("test: stream lost"))
      yield* eventually(Effect.sync(() => outboundStream(a.router.pubsub, peerB) === undefined), "stream dropped")
      // Missing at one check is not enough (gossipsub may be opening it); at the second it is reopened.
      assert.strictEqual(repair(), 0)
      assert.strictEqual(repair(), 1)
      yield* eventually(
        Effect.sync(() => outboundStream(a.router.pubsub, peerB)?.rawStream.status === "open"),
        "stream reopened"
      )
      yield* publish
      yield* eventually(Effect.sync(() => delivered() >= 1), "a message arrives")
    }), 30_000)

  /**
   * A publishes a burst; B counts, at each turn of its event loop, the messages delivered since the last turn. The
   * burst arrives faster than B verifies it, so B has a backlog.
   */
  const burst = (paced: boolean) =>
    Effect.gen(function*() {
      const { a, b, delivered } = yield* pair()
      if (paced) b.router.pubsub.topicValidators.set(TOPIC, makePacer())
      const BURST = 2000
      let most = 0
      let seen = 0
      let ticking = true
      const tick = () => {
        most = Math.max(most, delivered() - seen)
        seen = delivered()
        if (ticking) setImmediate(tick)
      }
      setImmediate(tick)
      yield* Effect.addFinalizer(() => Effect.sync(() => void (ticking = false)))
      yield* Effect.promise(() =>
        Promise.all(Array.from({ length: BURST }, (_, i) => a.router.pubsub.publish(TOPIC, new Uint8Array(64).fill(i % 256))))
      )
      yield* eventually(Effect.sync(() => delivered() === BURST), "the burst arrives")
      ticking = false
      return most
    })

  it.scopedLive("canary: gossipsub works through a backlog of messages without a turn of the event loop", () =>
    Effect.gen(function*() {
      const most = yield* burst(false)
      assert.isAbove(most, 8 * MESSAGES_PER_TURN, "gossipsub let the event loop turn within a backlog: the quirk is gone")
    }), 30_000)

  it.scopedLive("the pacer lets the event loop turn every MESSAGES_PER_TURN messages of a backlog", () =>
    Effect.gen(function*() {
      const most = yield* burst(true)
      assert.isAtMost(most, MESSAGES_PER_TURN)
    }), 30_000)

  /**
   * B's gossipsub is stuck on A's first message (its topic validator waits for a gate; gossipsub awaits each RPC and
   * message, as Network configures it) while A publishes FLOOD messages of 1 KiB. Returns what A still holds unsent
   * once B's side settled, B's inbound counters, and the gate.
   */
  const FLOOD = 2000
  const FLOOD_BYTES = FLOOD * 1024
  const stuckReceiver = (bounded: boolean) =>
    Effect.gen(function*() {
      const counters: InboundCounters = { paused: 0, peakBytes: 0 }
      let open: () => void = () => {}
      const gate = new Promise<void>((resolve) => (open = resolve))
      const { a, b, delivered, peerB } = yield* pair((router) =>
        Effect.gen(function*() {
          router.pubsub.topicValidators.set(TOPIC, () => gate.then(() => TopicValidatorResult.Accept))
          if (bounded) {
            yield* Effect.acquireRelease(Effect.sync(() => boundInbound(router.pubsub, counters)), (undo) => Effect.sync(() => undo?.()))
          }
        })
      )
      yield* Effect.addFinalizer(() => Effect.sync(() => open()))
      for (let i = 0; i < FLOOD; i++) yield* Effect.promise(() => a.router.pubsub.publish(TOPIC, new Uint8Array(1024).fill(i % 256)))
      const unsent = () => outboundStream(a.router.pubsub, peerB)?.rawStream.writeBufferLength ?? NaN
      return { b, counters, delivered, open, unsent }
    })

  it.scopedLive("canary: gossipsub reads a peer's stream ahead of its handler without bound (the sender is never held)", () =>
    Effect.gen(function*() {
      assert.isTrue(inboundBoundSupported((yield* startRouter).router.pubsub))
      const { delivered, unsent } = yield* stuckReceiver(false)
      // Everything left A although B handled (at most) one message: B holds the rest, ~2 MB, in the stream's queue.
      yield* eventually(Effect.sync(() => unsent() === 0), "A sent the whole flood: the quirk is gone if not")
      assert.isAtMost(delivered(), 1)
    }), 30_000)

  it.scopedLive("the inbound bound: a peer's flood waits at the sender while gossipsub lags, and all of it arrives", () =>
    Effect.gen(function*() {
      const { counters, delivered, open, unsent } = yield* stuckReceiver(true)
      yield* eventually(Effect.sync(() => counters.paused >= 1), "B paused A's stream")
      // Let what was in flight arrive, then: B holds at most its bound, the rest waits at A.
      yield* Effect.sleep("500 millis")
      const bound = INBOUND_HIGH_WATER + 2 * INBOUND_WINDOW
      assert.isAtMost(counters.peakBytes, bound)
      assert.isAtLeast(unsent(), FLOOD_BYTES - bound - 64 * 1024)
      open()
      yield* eventually(Effect.sync(() => delivered() === FLOOD), "every message arrives once B catches up")
      assert.strictEqual(unsent(), 0)
      assert.isAtMost(counters.peakBytes, bound)
    }), 30_000)

  /**
   * A stream as libp2p 3 delivers it: data arrives as `message` events while readable, is held while paused, and is
   * dispatched in one event by `resume()` (synchronously, before it returns).
   */
  class FakeStream extends EventTarget {
    readStatus = "readable"
    status = "open"
    held: Array<Uint8Array> = []
    dispatched = 0
    arrive(bytes: Uint8Array) {
      if (this.readStatus === "paused") this.held.push(bytes)
      else this.deliver(bytes)
    }
    deliver(bytes: Uint8Array) {
      this.dispatched += bytes.byteLength
      this.dispatchEvent(Object.assign(new Event("message"), { data: bytes }))
    }
    pause() {
      this.readStatus = "paused"
    }
    resume() {
      this.readStatus = "readable"
      const held = this.held
      this.held = []
      if (held.length > 0) {
        const all = new Uint8Array(held.reduce((n, b) => n + b.byteLength, 0))
        let at = 0
        for (const b of held) {
          all.set(b, at)
          at += b.byteLength
        }
        this.deliver(all)
      }
    }
    close() {
      return Promise.resolve()
    }
    abort() {}
    end() {
      this.dispatchEvent(new Event("end"))
    }
  }

  it.effect("property: the bounded iterator pauses whenever more than its high-water mark waits, resumes when taken, delivers every byte in order", () =>
    Effect.promise(() =>
      fc.assert(
        fc.asyncProperty(
          fc.array(fc.oneof(fc.integer({ min: 1, max: 300 }), fc.constant(0)), { maxLength: 200 }),
          async (ops) => {
            const HIGH = 256
            const stream = new FakeStream()
            const counters: InboundCounters = { paused: 0, peakBytes: 0 }
            const iterator = boundedIterator(stream, HIGH, counters)
            const sent: Array<number> = []
            const got: Array<number> = []
            let taken = 0
            const take = async () => {
              const next = await iterator.next()
              if (next.done === true || !(next.value instanceof Uint8Array)) return
              taken += next.value.byteLength
              for (const b of next.value) got.push(b)
            }
            for (const op of ops) {
              // 0: the consumer takes a chunk if one waits; n: n bytes arrive.
              if (op === 0) {
                if (stream.dispatched > taken) await take()
              } else {
                const bytes = Uint8Array.from({ length: op }, (_, i) => (sent.length + i) % 251)
                for (const b of bytes) sent.push(b)
                stream.arrive(bytes)
              }
              const waiting = stream.dispatched - taken
              if (waiting > HIGH) assert.strictEqual(stream.readStatus, "paused", `${waiting} bytes wait unpaused`)
              if (stream.readStatus === "paused") assert.isAbove(waiting, HIGH / 2, "paused with little waiting")
            }
            // The consumer catches up: the stream is resumed and every byte came, in order.
            while (stream.dispatched > taken || stream.held.length > 0) {
              if (stream.dispatched === taken) assert.fail("paused with nothing for the consumer to take")
              await take()
            }
            assert.strictEqual(stream.readStatus, "readable")
            stream.end()
            assert.isTrue((await iterator.next()).done)
            assert.deepStrictEqual(got, sent)
          }
        ),
        { numRuns: 200 }
      )
    ))
})
