/**
 * The Gossip service on gossipsub over real TCP on 127.0.0.1 (port 0). Every node a test starts belongs to the test's
 * scope (or a child scope the test closes). gossipsub grafts a peer into the mesh as soon as its subscription
 * arrives, so a mesh does not wait for a heartbeat; the heartbeat is shortened to 100 ms anyway so that anything
 * left to it (a graft that lacked an outbound stream, lazy IHAVE gossip) happens quickly. Tests wait for NeighborUp
 * on every side before publishing, never for a fixed time.
 */
import { assert, describe, it } from "@effect/vitest"
import { Chunk, Context, Effect, Exit, Layer, Ref, Schedule, Schema, Scope, Stream } from "effect"
import { equals, toHex, utf8 } from "../../src/internal/bytes.js"
import { Author, Hash, NamespaceSecret } from "../../src/schema/Keys.js"
import { type NodeId, nodeIdEquals, peerIdFromNodeId } from "../../src/schema/NodeAddr.js"
import { ContentReady, type GossipEvent, OpFromBytes, Put, type Received, SyncReport } from "../../src/schema/Op.js"
import * as Gossip from "../../src/services/Gossip.js"
import { outboundStream } from "../../src/services/Gossip/gossipsubAdapter.js"
import * as Network from "../../src/services/Network.js"
import { GossipRouter, type GossipRouterService } from "../../src/services/Network/router.js"
import { entryAt } from "../utils/entries.js"

interface Peer {
  readonly network: Network.NetworkService
  /** The raw gossipsub router, to send what the Gossip service never would. */
  readonly router: GossipRouterService
  readonly gossip: Gossip.GossipService
  readonly id: NodeId
}

const peerLayer = (config: Gossip.GossipConfig = {}) =>
  Gossip.layer(config).pipe(
    Layer.provideMerge(Network.layer({ dialTimeout: "3 seconds", gossipsub: { heartbeatInterval: "100 millis" } }))
  )

/** A node with gossip, stopped when the current scope closes. */
const startPeer = (config: Gossip.GossipConfig = {}) =>
  Effect.map(Layer.build(peerLayer(config)), (ctx): Peer => {
    const network = Context.get(ctx, Network.Network)
    return { network, router: Context.get(ctx, GossipRouter), gossip: Context.get(ctx, Gossip.Gossip), id: network.nodeId }
  })

/** A node in its own scope, for tests that stop it early. */
const startPeerIn = (scope: Scope.Scope, config: Gossip.GossipConfig = {}) =>
  Scope.extend(startPeer(config), scope)

/** Polls `check` until it gives a value; 20 s, as gossipsub meshes form slowly beside the parallel pass's other files. */
const eventually = <A>(check: Effect.Effect<A | undefined>, what: string) =>
  check.pipe(
    Effect.flatMap((a) => (a === undefined ? Effect.fail("not yet" as const) : Effect.succeed(a))),
    Effect.retry(Schedule.spaced("10 millis").pipe(Schedule.upTo("20 seconds"))),
    Effect.orElse(() => Effect.sync(() => assert.fail(`not reached within 20 s: ${what}`)))
  )

/** Everything a subscription to `namespace` yields, recorded from now on (forked into the test's scope). */
const record = (peer: Peer, namespace: NamespaceSecret) =>
  Effect.gen(function*() {
    const log = yield* Ref.make<ReadonlyArray<GossipEvent>>([])
    const ended = yield* Ref.make(false)
    const stream = yield* peer.gossip.events(namespace.id)
    yield* Stream.runForEach(stream, (event) => Ref.update(log, (events) => [...events, event])).pipe(
      Effect.zipRight(Ref.set(ended, true)),
      Effect.forkScoped
    )
    const find = <A extends GossipEvent>(what: string, match: (event: GossipEvent) => event is A) =>
      eventually(Effect.map(Ref.get(log), (events) => events.find(match)), what)
    return {
      events: Ref.get(log),
      ended: Ref.get(ended),
      neighborUp: (other: Peer) =>
        find(`NeighborUp ${toHex(other.id).slice(0, 8)}`, (e): e is GossipEvent =>
          e._tag === "NeighborUp" && nodeIdEquals(e.peer, other.id)),
      neighborDown: (other: Peer) =>
        find(`NeighborDown ${toHex(other.id).slice(0, 8)}`, (e): e is GossipEvent =>
          e._tag === "NeighborDown" && nodeIdEquals(e.peer, other.id)),
      received: (what: string, match: (event: Received) => boolean) =>
        find(what, (e): e is Received => e._tag === "Received" && match(e))
    }
  })

const receivedOps = (events: ReadonlyArray<GossipEvent>) => events.filter((e): e is Received => e._tag === "Received")

const hashOf = (n: number) => Hash.make(Uint8Array.from({ length: 32 }, (_, i) => (i < 4 ? (n >>> (8 * i)) & 0xff : i)))

const isContentReady = (n: number) => (e: Received) => e.op._tag === "ContentReady" && equals(e.op.hash, hashOf(n))

const assertFrom = (e: Received, from: Peer, deliveredFrom: Peer, direct: boolean) => {
  assert.isTrue(nodeIdEquals(e.from, from.id), "from")
  assert.isTrue(nodeIdEquals(e.deliveredFrom, deliveredFrom.id), "deliveredFrom")
  assert.strictEqual(e.direct, direct)
}

const stats = (peer: Peer) => peer.gossip.stats

/** Until a message from `from` reaches the recorder: `from` publishes Puts of keys `probe/n`, `probe/n + 1`, … */
const relayed = (
  ns: NamespaceSecret,
  from: Peer,
  at: { readonly events: Effect.Effect<ReadonlyArray<GossipEvent>> },
  n: number
) =>
  Effect.gen(function*() {
    let next = n
    const author = Author.generate()
    yield* eventually(
      Effect.gen(function*() {
        yield* from.gossip.broadcast(ns.id, new Put({ entry: entryAt(ns, author, `probe/${next}`, BigInt(next++)) }))
        yield* Effect.sleep("40 millis")
        const got = receivedOps(yield* at.events).some((e) => nodeIdEquals(e.from, from.id))
        return got ? true : undefined
      }),
      "relayed delivery"
    )
  })

/**
 * A fresh topic that A joins and B joins through A, B's events recorded; returns once B heard A's subscription, i.e.
 * once A's own gossipsub stream to B is open (what A publishes before that is dropped).
 */
const pairOnTopic = (configB: Gossip.GossipConfig = {}) =>
  Effect.gen(function*() {
    const ns = NamespaceSecret.generate()
    const a = yield* startPeer()
    const b = yield* startPeer(configB)
    const atB = yield* record(b, ns)
    yield* a.gossip.join(ns.id)
    yield* b.gossip.join(ns.id, [yield* a.network.addr])
    yield* atB.neighborUp(a)
    return { ns, a, b, atB }
  })

describe("Gossip", () => {
  it.scopedLive("two nodes: NeighborUp on both sides; Put, ContentReady and SyncReport arrive decoded", () =>
    Effect.gen(function*() {
      const ns = NamespaceSecret.generate()
      const a = yield* startPeer()
      const b = yield* startPeer()
      const atA = yield* record(a, ns)
      const atB = yield* record(b, ns)
      // Membership's feed: neighbour changes only, never the messages.
      const neighborFeed = yield* b.gossip.neighborEvents(ns.id)
      yield* a.gossip.join(ns.id)
      yield* b.gossip.join(ns.id, [yield* a.network.addr])
      yield* atA.neighborUp(b)
      yield* atB.neighborUp(a)
      assert.deepStrictEqual((yield* a.gossip.neighbors(ns.id)).map(toHex), [toHex(b.id)])

      const entry = entryAt(ns, Author.generate(), "hello", 42n)
      const put = yield* a.gossip.broadcast(ns.id, new Put({ entry }))
      assert.deepStrictEqual(put, { _tag: "Published", recipients: 1 })
      const gotPut = yield* atB.received("Put", (e) => e.op._tag === "Put")
      assertFrom(gotPut, a, a, true)
      assert.strictEqual(
        toHex(Schema.encodeSync(OpFromBytes)(gotPut.op)),
        toHex(Schema.encodeSync(OpFromBytes)(new Put({ entry })))
      )

      yield* b.gossip.broadcast(ns.id, new ContentReady({ hash: hashOf(1) }))
      assertFrom(yield* atA.received("ContentReady", isContentReady(1)), b, b, true)

      const heads = utf8("heads")
      yield* a.gossip.broadcast(ns.id, new SyncReport({ namespace: ns.id, heads }))
      const report = yield* atB.received("SyncReport", (e) => e.op._tag === "SyncReport")
      assertFrom(report, a, a, true)
      assert.isTrue(report.op._tag === "SyncReport" && equals(report.op.heads, heads))
      assert.isTrue(report.op._tag === "SyncReport" && equals(report.op.namespace, ns.id))
      const fed = yield* neighborFeed
      assert.deepStrictEqual(fed.map((e) => e._tag), ["NeighborUp"], "neighborEvents carries no Received")

      // Our own messages are not delivered back; neighbor events are reported once.
      assert.strictEqual(receivedOps(yield* atA.events).length, 1)
      assert.strictEqual((yield* atB.events).filter((e) => e._tag === "NeighborUp").length, 1)
      assert.deepStrictEqual(
        { received: (yield* stats(b)).received, published: (yield* stats(a)).published },
        { received: 2, published: 2 }
      )
    }))

  it.scopedLive("three connected nodes: every broadcast reaches the other two", () =>
    Effect.gen(function*() {
      const ns = NamespaceSecret.generate()
      const peers = [yield* startPeer(), yield* startPeer(), yield* startPeer()] as const
      const [a, b, c] = peers
      const recorders = yield* Effect.forEach(peers, (p) => record(p, ns))
      yield* a.gossip.join(ns.id)
      yield* b.gossip.join(ns.id, [yield* a.network.addr])
      yield* c.gossip.join(ns.id, [yield* a.network.addr, yield* b.network.addr])
      for (const [i, p] of peers.entries()) {
        for (const q of peers) if (q !== p) yield* recorders[i]!.neighborUp(q)
      }
      for (const [i, p] of peers.entries()) {
        yield* p.gossip.broadcast(ns.id, new ContentReady({ hash: hashOf(i) }))
        for (const [j, q] of peers.entries()) {
          if (q === p) continue
          // Straight from the publisher: nobody relays a ContentReady.
          const e = yield* recorders[j]!.received(`ContentReady ${i} at ${j}`, isContentReady(i))
          assert.isTrue(nodeIdEquals(e.from, p.id))
          assert.isTrue(nodeIdEquals(e.deliveredFrom, p.id))
          assert.isTrue(e.direct)
        }
      }
    }))

  it.scopedLive("chain A–B–C: C gets A's Put relayed by B (from A, delivered from B, not direct); ContentReady and SyncReport reach direct neighbours only", () =>
    Effect.gen(function*() {
      const ns = NamespaceSecret.generate()
      const a = yield* startPeer()
      const b = yield* startPeer()
      const c = yield* startPeer()
      const atA = yield* record(a, ns)
      const atB = yield* record(b, ns)
      const atC = yield* record(c, ns)
      yield* a.gossip.join(ns.id)
      yield* b.gossip.join(ns.id, [yield* a.network.addr])
      yield* c.gossip.join(ns.id, [yield* b.network.addr])
      yield* atA.neighborUp(b)
      yield* atB.neighborUp(a)
      yield* atB.neighborUp(c)
      yield* atC.neighborUp(b)
      assert.isFalse((yield* a.network.peers).some((id) => nodeIdEquals(id, c.id)), "A and C are not connected")
      // NeighborUp means "subscribed and connected", not "in B's mesh": B grafts C when C's subscription arrives
      // only if B's own stream to C is already open, else at B's next heartbeat, and a message B receives before
      // that is not relayed to C (the live engine syncs on NeighborUp for this reason). So probe until B relays.
      yield* relayed(ns, a, atC, 1000)
      yield* relayed(ns, c, atA, 2000)

      const entry = entryAt(ns, Author.generate(), "relayed", 7n)
      yield* a.gossip.broadcast(ns.id, new Put({ entry }))
      assertFrom(yield* atB.received("Put at B", (e) => e.op._tag === "Put"), a, a, true)
      assertFrom(yield* atC.received("Put at C", (e) => e.op._tag === "Put"), a, b, false)
      // News for neighbours (spec 05 §8, the reference's broadcast_neighbors): B gets them from C, and B relays
      // neither to A. C's Put after them, which B does relay, shows A would have had them by then.
      yield* c.gossip.broadcast(ns.id, new ContentReady({ hash: hashOf(3) }))
      yield* c.gossip.broadcast(ns.id, new SyncReport({ namespace: ns.id, heads: Uint8Array.of(1, 2, 3) }))
      yield* c.gossip.broadcast(ns.id, new Put({ entry: entryAt(ns, Author.generate(), "after", 8n) }))
      assertFrom(yield* atB.received("ContentReady at B", isContentReady(3)), c, c, true)
      assertFrom(yield* atB.received("SyncReport at B", (e) => e.op._tag === "SyncReport"), c, c, true)
      const isAfter = (e: Received) => e.op._tag === "Put" && new TextDecoder().decode(e.op.entry.entry.id.key) === "after"
      assertFrom(yield* atA.received("C's Put at A", isAfter), c, b, false)
      const atAFromC = receivedOps(yield* atA.events).filter((e) => nodeIdEquals(e.from, c.id))
      assert.deepStrictEqual(atAFromC.map((e) => e.op._tag).filter((t) => t !== "Put"), [], "no ContentReady or SyncReport from C at A")
      assert.deepStrictEqual((yield* c.gossip.neighbors(ns.id)).map(toHex), [toHex(b.id)])
    }))

  it.scopedLive("a node that stops is reported as NeighborDown", () =>
    Effect.gen(function*() {
      const ns = NamespaceSecret.generate()
      const a = yield* startPeer()
      const scope = yield* Scope.make()
      const b = yield* startPeerIn(scope)
      const atA = yield* record(a, ns)
      yield* a.gossip.join(ns.id)
      yield* b.gossip.join(ns.id, [yield* a.network.addr])
      yield* atA.neighborUp(b)
      yield* Scope.close(scope, Exit.void)
      yield* atA.neighborDown(b)
      assert.deepStrictEqual(yield* a.gossip.neighbors(ns.id), [])
    }))

  it.scopedLive("leave ends the topic's streams and stops delivery; the other side sees NeighborDown", () =>
    Effect.gen(function*() {
      const ns = NamespaceSecret.generate()
      const other = NamespaceSecret.generate()
      const a = yield* startPeer()
      const b = yield* startPeer()
      const atA = yield* record(a, ns)
      const atB = yield* record(b, ns)
      const otherAtB = yield* record(b, other)
      yield* a.gossip.join(ns.id)
      yield* a.gossip.join(other.id)
      yield* b.gossip.join(ns.id, [yield* a.network.addr])
      yield* b.gossip.join(other.id)
      yield* atB.neighborUp(a)
      yield* otherAtB.neighborUp(a)
      yield* b.gossip.leave(ns.id)
      yield* eventually(Effect.map(atB.ended, (ended) => (ended ? true : undefined)), "B's stream ends")
      yield* atA.neighborDown(b)
      assert.deepStrictEqual(yield* b.gossip.neighbors(ns.id), [])
      assert.deepStrictEqual(yield* b.gossip.broadcast(ns.id, new ContentReady({ hash: hashOf(0) })), {
        _tag: "Skipped",
        reason: "NotJoined"
      })

      yield* a.gossip.broadcast(ns.id, new ContentReady({ hash: hashOf(1) }))
      // The other topic is unaffected: its message arrives, the left topic's never does.
      yield* a.gossip.broadcast(other.id, new ContentReady({ hash: hashOf(2) }))
      yield* otherAtB.received("other topic", isContentReady(2))
      assert.strictEqual((yield* stats(b)).received, 1)
      assert.isFalse(yield* otherAtB.ended)
    }))

  it.scopedLive("100 undecodable payloads are counted and skipped; a valid message still arrives", () =>
    Effect.gen(function*() {
      const { a, atB, b, ns } = yield* pairOnTopic({ maxMessageSize: 1000 })
      const pubsub = a.router.pubsub
      const topic = Gossip.topicOf(ns.id)
      for (let i = 0; i < 100; i++) {
        // Unknown variants, truncated entries, trailing bytes, an empty payload, one above B's limit.
        const payload = i === 0
          ? new Uint8Array(0)
          : i === 1
          ? new Uint8Array(1001)
          : i % 3 === 0
          ? Uint8Array.of(3 + i, i)
          : i % 3 === 1
          ? Uint8Array.from({ length: i }, (_, k) => (k === 0 ? 0 : k))
          : Uint8Array.of(1, ...new Uint8Array(32 + i))
        yield* Effect.promise(() => pubsub.publish(topic, payload))
      }
      yield* a.gossip.broadcast(ns.id, new ContentReady({ hash: hashOf(9) }))
      assertFrom(yield* atB.received("valid message after garbage", isContentReady(9)), a, a, true)
      const s = yield* eventually(Effect.map(stats(b), (s) => (s.invalid === 100 ? s : undefined)), "100 invalid")
      assert.strictEqual(s.received, 1)
      assert.strictEqual(receivedOps(yield* atB.events).length, 1)
    }))

  it.scopedLive("an outbound stream lost while the peer stays connected is reopened; gossip flows again", () =>
    Effect.gen(function*() {
      const { a, atB, b, ns } = yield* pairOnTopic()
      yield* relayed(ns, a, atB, 0)
      // gossipsub's own stream from A to B ends; the connection stays. gossipsub alone never opens another one.
      const peerB = peerIdFromNodeId(b.id)
      outboundStream(a.router.pubsub, peerB)!.rawStream.abort(new Error("test: stream lost"))
      yield* eventually(
        Effect.sync(() => (outboundStream(a.router.pubsub, peerB) === undefined ? true : undefined)),
        "stream dropped"
      )
      assert.strictEqual((yield* a.network.connections).filter((c) => nodeIdEquals(c.peer, b.id)).length, 1)
      const before = (yield* atB.events).length
      yield* relayed(ns, a, { events: Effect.map(atB.events, (events) => events.slice(before)) }, 1000)
      assert.isAtLeast((yield* stats(a)).streamsRepaired, 1)
    }))

  it.scopedLive("broadcast with nobody listening succeeds; oversize Ops are skipped and counted", () =>
    Effect.gen(function*() {
      const ns = NamespaceSecret.generate()
      const a = yield* startPeer({ maxMessageSize: 600 })
      assert.strictEqual(a.gossip.maxMessageSize, 600)
      assert.deepStrictEqual(yield* a.gossip.broadcast(ns.id, new ContentReady({ hash: hashOf(0) })), {
        _tag: "Skipped",
        reason: "NotJoined"
      })
      yield* a.gossip.join(ns.id)
      assert.deepStrictEqual(yield* a.gossip.broadcast(ns.id, new ContentReady({ hash: hashOf(0) })), {
        _tag: "Published",
        recipients: 0
      })
      const author = Author.generate()
      const small = new Put({ entry: entryAt(ns, author, "k".repeat(300), 1n) })
      const large = new Put({ entry: entryAt(ns, author, "k".repeat(400), 1n) })
      assert.isAtMost(Schema.encodeSync(OpFromBytes)(small).length, 600)
      assert.isAbove(Schema.encodeSync(OpFromBytes)(large).length, 600)
      assert.strictEqual((yield* a.gossip.broadcast(ns.id, small))._tag, "Published")
      assert.deepStrictEqual(yield* a.gossip.broadcast(ns.id, large), { _tag: "Skipped", reason: "Oversize" })
      assert.deepStrictEqual(yield* stats(a), {
        received: 0,
        invalid: 0,
        dropped: 0,
        published: 2,
        skippedOversize: 1,
        publishFailed: 0,
        streamsRepaired: 0,
        inboundPaused: 0,
        inboundPeakBytes: 0
      })
      assert.strictEqual(Gossip.DEFAULT_MAX_MESSAGE_SIZE, 65536)
    }))

  it.scopedLive("a Put too large with its inline content is published without it", () =>
    Effect.gen(function*() {
      const ns = NamespaceSecret.generate()
      const a = yield* startPeer({ maxMessageSize: 600 })
      const b = yield* startPeer({ maxMessageSize: 600 })
      yield* a.gossip.join(ns.id)
      yield* b.gossip.join(ns.id, [yield* a.network.addr])
      const onB = yield* record(b, ns)
      yield* onB.neighborUp(a)
      const author = Author.generate()
      const entry = entryAt(ns, author, "k".repeat(300), 1n)
      const fits = new Put({ entry, content: new Uint8Array(20).fill(1) })
      const tooLarge = new Put({ entry: entryAt(ns, author, "j".repeat(300), 1n), content: new Uint8Array(300) })
      assert.isAtMost(Schema.encodeSync(OpFromBytes)(fits).length, 600)
      assert.isAbove(Schema.encodeSync(OpFromBytes)(tooLarge).length, 600)
      const isPut = (content: boolean, key: string) => (e: GossipEvent): e is Received =>
        e._tag === "Received" && e.op._tag === "Put" && (e.op.content !== undefined) === content &&
        equals(e.op.entry.key, utf8(key))
      yield* eventually(
        Effect.gen(function*() {
          yield* a.gossip.broadcast(ns.id, fits)
          yield* a.gossip.broadcast(ns.id, tooLarge)
          yield* Effect.sleep(100)
          const log = yield* onB.events
          return log.some(isPut(true, "k".repeat(300))) && log.some(isPut(false, "j".repeat(300))) ? true : undefined
        }),
        "both Puts, the second without content"
      )
      assert.strictEqual((yield* stats(a)).skippedOversize, 0)
    }))

  it.scopedLive("join is idempotent; late subscribers and subscribers before join see current neighbors once", () =>
    Effect.gen(function*() {
      const ns = NamespaceSecret.generate()
      const a = yield* startPeer()
      const b = yield* startPeer()
      const early = yield* record(b, ns) // before B joins
      yield* a.gossip.join(ns.id)
      yield* b.gossip.join(ns.id, [yield* a.network.addr])
      yield* b.gossip.join(ns.id, [a.id]) // again, bootstrap by node id only
      yield* early.neighborUp(a)
      const late = yield* record(b, ns)
      yield* late.neighborUp(a)
      // A third node joins later and appears to everyone; A and B each report it once.
      const c = yield* startPeer()
      yield* c.gossip.join(ns.id, [b.id, yield* a.network.addr])
      yield* c.gossip.join(ns.id, [yield* b.network.addr])
      yield* late.neighborUp(c)
      yield* Effect.forEach([early, late], (r) =>
        Effect.map(r.events, (events) => {
          assert.deepStrictEqual(events.map((e) => e._tag), ["NeighborUp", "NeighborUp"])
        }))
      assert.strictEqual((yield* b.gossip.neighbors(ns.id)).length, 2)
    }))

  it.scopedLive("a subscriber that falls behind loses events, counted, without holding up the others", () =>
    Effect.gen(function*() {
      const ns = NamespaceSecret.generate()
      const a = yield* startPeer()
      const b = yield* startPeer({ subscriberCapacity: 8 })
      const reader = yield* record(b, ns)
      const stalled = yield* b.gossip.events(ns.id) // never read until the end
      yield* a.gossip.join(ns.id)
      yield* b.gossip.join(ns.id, [yield* a.network.addr])
      yield* reader.neighborUp(a)
      for (let i = 0; i < 20; i++) {
        yield* a.gossip.broadcast(ns.id, new ContentReady({ hash: hashOf(i) }))
        yield* reader.received(`message ${i}`, isContentReady(i))
      }
      // The stalled queue holds NeighborUp and the first 7 messages; the other 13 were dropped for it.
      assert.strictEqual((yield* stats(b)).dropped, 13)
      const held = yield* Stream.runCollect(Stream.take(stalled, 8))
      assert.deepStrictEqual(Chunk.toReadonlyArray(held).map((e) => e._tag), [
        "NeighborUp",
        ...Array.from({ length: 7 }, () => "Received")
      ])
    }))

  it.scopedLive("finding 4: an intake subscriber that falls behind learns what it lost (Lagged: count and nodes), once", () =>
    Effect.gen(function*() {
      const ns = NamespaceSecret.generate()
      const a = yield* startPeer()
      const b = yield* startPeer({ subscriberCapacity: 8 })
      const reader = yield* record(b, ns)
      const stalled = yield* b.gossip.intake(ns.id) // not read until the end
      yield* a.gossip.join(ns.id)
      yield* b.gossip.join(ns.id, [yield* a.network.addr])
      yield* reader.neighborUp(a)
      assert.isUndefined(yield* stalled.lagged)
      for (let i = 0; i < 20; i++) {
        yield* a.gossip.broadcast(ns.id, new ContentReady({ hash: hashOf(i) }))
        yield* reader.received(`message ${i}`, isContentReady(i))
      }
      // NeighborUp and 7 messages held; 13 dropped, all delivered by (and published by) a.
      const lagged = yield* stalled.lagged
      assert.strictEqual(lagged?.count, 13)
      assert.deepStrictEqual(lagged?.peers.map(toHex), [toHex(a.network.nodeId)])
      assert.isUndefined(yield* stalled.lagged) // reported once
      const held = yield* stalled.take
      assert.deepStrictEqual(held.map((e) => e._tag), ["NeighborUp", ...Array.from({ length: 7 }, () => "Received")])
    }))

  it.scopedLive("stopping the service ends streams, leaves topics and removes its listeners", () =>
    Effect.gen(function*() {
      const ns = NamespaceSecret.generate()
      const node = yield* Layer.build(Network.layer())
      const pubsub = Context.get(node, GossipRouter).pubsub
      const before = pubsub.listenerCount("gossipsub:message")
      const scope = yield* Scope.make()
      const gossip = Context.get(
        yield* Layer.buildWithScope(Gossip.layer(), scope).pipe(Effect.provide(node)),
        Gossip.Gossip
      )
      yield* gossip.join(ns.id)
      const stream = yield* gossip.events(ns.id)
      const drained = yield* Effect.fork(Stream.runCollect(stream))
      assert.include(pubsub.getTopics(), Gossip.topicOf(ns.id))
      assert.strictEqual(pubsub.listenerCount("gossipsub:message"), before + 1)
      yield* Scope.close(scope, Exit.void)
      assert.strictEqual(Chunk.size(yield* drained.await.pipe(Effect.flatten)), 0)
      assert.notInclude(pubsub.getTopics(), Gossip.topicOf(ns.id))
      assert.strictEqual(pubsub.listenerCount("gossipsub:message"), before)
      assert.strictEqual(pubsub.listenerCount("subscription-change"), 0)
    }))
})
