/**
 * Canaries of the gossipsub workarounds in src/services/Gossip/gossipsubAdapter.ts: each test shows the upstream quirk
 * on a bare router (no Gossip service, so no repair). When one fails, @libp2p/gossipsub has changed: if the quirk is
 * gone, delete its workaround and the canary; if only the internals moved, adapt the adapter.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer, Schedule } from "effect"
import { nodeIdEquals, peerIdFromNodeId } from "../../src/schema/NodeAddr.js"
import {
  makePacer,
  makeStreamRepair,
  MESSAGES_PER_TURN,
  outboundStream,
  repairSupported
} from "../../src/services/Gossip/gossipsubAdapter.js"
import * as Network from "../../src/services/Network.js"
import { GossipRouter } from "../../src/services/Network/router.js"

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

/** A and B subscribed to TOPIC and connected; returns a counter of B's deliveries and A's publish. */
const pair = Effect.gen(function*() {
  const a = yield* startRouter
  const b = yield* startRouter
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
      const { a, b, delivered, peerB, publish } = yield* pair
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
      const { a, delivered, peerB, publish } = yield* pair
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
      const { a, b, delivered } = yield* pair
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
})
