/**
 * Membership on real libp2p nodes over TCP on 127.0.0.1 (port 0), with the real Network, Gossip and a memory
 * AddressBook. Every node belongs to the test's scope or to a child scope the test closes.
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Context, Duration, Effect, ExecutionStrategy, Exit, Layer, Option, Redacted, Ref, Schema, Scope, Stream, TestClock } from "effect"
import * as Ed from "../../src/internal/ed25519.js"
import { encodeFrame, FrameDecoder } from "../../src/internal/framing.js"
import { MEMBERS_PROTOCOL } from "../../src/schema/constants.js"
import { Hash, NamespaceSecret } from "../../src/schema/Keys.js"
import { NodeId, nodeIdEquals } from "../../src/schema/NodeAddr.js"
import { ContentReady, type GossipEvent } from "../../src/schema/Op.js"
import {
  makePeerRecord,
  MAX_EXCHANGE_MESSAGE_SIZE,
  MAX_RECORD_FUTURE_MICROS,
  MembersRequest,
  MembersRequestFromBytes,
  MembersResponseFromBytes,
  type PeerRecord,
  signPeerRecord
} from "../../src/schema/PeerRecord.js"
import * as AddressBook from "../../src/services/AddressBook.js"
import * as Gossip from "../../src/services/Gossip.js"
import * as Membership from "../../src/services/Membership.js"
import * as Network from "../../src/services/Network.js"

interface Node {
  readonly network: Network.NetworkService
  readonly gossip: Gossip.GossipService
  readonly membership: Membership.MembershipService
  readonly book: AddressBook.AddressBookService
  readonly id: NodeId
}

const nodeLayer = (config: Membership.MembershipConfig, identity?: Uint8Array) =>
  Membership.layer(config).pipe(
    Layer.provideMerge(Gossip.layer()),
    Layer.provideMerge(AddressBook.layerMemory),
    Layer.provideMerge(Network.layer({
      dialTimeout: "3 seconds",
      gossipsub: { heartbeatInterval: "100 millis" },
      identity: identity === undefined ? undefined : Redacted.make(identity)
    }))
  )

const startNode = (config: Membership.MembershipConfig = {}, identity?: Uint8Array) =>
  Effect.map(Layer.build(nodeLayer(config, identity)), (ctx): Node => {
    const network = Context.get(ctx, Network.Network)
    return {
      network,
      gossip: Context.get(ctx, Gossip.Gossip),
      membership: Context.get(ctx, Membership.Membership),
      book: Context.get(ctx, AddressBook.AddressBook),
      id: network.nodeId
    }
  })

/** Real time, whatever the test's clock: polls `check` every 20 ms for up to `seconds`. */
const waitFor = (what: string, check: Effect.Effect<boolean>, seconds = 10) =>
  Effect.gen(function*() {
    const deadline = performance.now() + seconds * 1000
    while (!(yield* check)) {
      if (performance.now() > deadline) return assert.fail(`not reached within ${seconds} s: ${what}`)
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 20)))
    }
  })

const hasNeighbour = (node: Node, ns: NamespaceSecret, other: Node) =>
  Effect.map(node.gossip.neighbors(ns.id), (ids) => ids.some((id) => nodeIdEquals(id, other.id)))

const isActive = (node: Node, ns: NamespaceSecret, other: Node) =>
  Effect.map(node.membership.members(ns.id), (m) => m.active.some((a) => nodeIdEquals(a.nodeId, other.id)))

/** A fresh node's record for a port that nobody listens on, signed now (real time) plus `aheadMicros`. */
const freshRecord = (port: number, aheadMicros = 0n) =>
  Effect.gen(function*() {
    const seed = Ed.randomSeed()
    const key = Ed.secretKeyObject(seed)
    const timestamp = BigInt(Date.now()) * 1000n + aheadMicros
    return Option.getOrThrow(
      yield* signPeerRecord(NodeId.make(Ed.publicKeyOf(seed)), timestamp, [`/ip4/127.0.0.1/tcp/${port}`], (m) => Effect.sync(() => Ed.sign(key, m)))
    )
  })

/** One raw exchange from `from` to `to`: the request's records as given, the decoded answer. */
const rawExchange = (from: Network.NetworkService, to: Node, request: MembersRequest) =>
  Effect.scoped(Effect.gen(function*() {
    const stream = yield* from.openStream(yield* to.network.addr, MEMBERS_PROTOCOL)
    yield* Network.send(stream, encodeFrame(Schema.encodeSync(MembersRequestFromBytes)(request), MAX_EXCHANGE_MESSAGE_SIZE))
    yield* Network.closeWrite(stream)
    const decoder = new FrameDecoder(MAX_EXCHANGE_MESSAGE_SIZE)
    yield* Stream.runForEach(Network.receive(stream), (chunk) => Effect.sync(() => decoder.push(chunk)))
    const frame = decoder.next()
    assert.isDefined(frame)
    return Schema.decodeSync(MembersResponseFromBytes)(frame!)
  }))

const knows = (node: Node, ns: NamespaceSecret, record: PeerRecord) =>
  Effect.map(node.membership.members(ns.id), (m) => [...m.active, ...m.passive].some((x) => nodeIdEquals(x.nodeId, record.nodeId)))

const hashOf = (n: number) => Hash.make(Uint8Array.from({ length: 32 }, (_, i) => (i < 4 ? (n >>> (8 * i)) & 0xff : i)))

describe("Membership", () => {
  it.scopedLive("finding 1: three nodes where the ticket node leaves", () =>
    Effect.gen(function*() {
      const ns = NamespaceSecret.generate()
      const config: Membership.MembershipConfig = { shuffleInterval: "500 millis" }
      const n0Scope = yield* Scope.fork(yield* Effect.scope, ExecutionStrategy.sequential)
      const n0 = yield* Scope.extend(startNode(config), n0Scope)
      const n1 = yield* startNode(config)
      const n2 = yield* startNode(config)
      const ticket = yield* n0.network.addr
      yield* n0.membership.join(ns.id, [])
      // N1 and N2 both join N0's ticket, nothing else.
      yield* n1.membership.join(ns.id, [ticket])
      yield* waitFor("N1 is N0's member", isActive(n0, ns, n1))
      yield* n2.membership.join(ns.id, [ticket])

      yield* waitFor("N1 and N2 are gossip neighbours", Effect.zipWith(hasNeighbour(n1, ns, n2), hasNeighbour(n2, ns, n1), (a, b) => a && b), 30)

      // The ticket node goes away.
      yield* Scope.close(n0Scope, Exit.void)
      yield* waitFor("N0 gone from N1 and N2", Effect.map(
        Effect.zip(hasNeighbour(n1, ns, n0), hasNeighbour(n2, ns, n0)),
        ([a, b]) => !a && !b
      ))

      // A broadcast from N1 reaches N2.
      const got = yield* Ref.make<ReadonlyArray<GossipEvent>>([])
      const events = yield* n2.gossip.events(ns.id)
      yield* Stream.runForEach(events, (e) => Ref.update(got, (all) => [...all, e])).pipe(Effect.forkScoped)
      let n = 0
      yield* waitFor("N1's broadcast reaches N2", Effect.gen(function*() {
        yield* n1.gossip.broadcast(ns.id, new ContentReady({ hash: hashOf(n++) }))
        yield* Effect.sleep("50 millis")
        return (yield* Ref.get(got)).some((e) => e._tag === "Received" && nodeIdEquals(e.from, n1.id))
      }), 30)
      assert.isTrue(yield* isActive(n1, ns, n2))
      assert.isTrue(yield* isActive(n2, ns, n1))
      const stats = yield* n2.membership.stats
      assert.strictEqual(stats.malformed, 0)
      // N2 remembered the members it exchanged with.
      assert.isAbove((yield* n2.book.lookup(n1.id)).addrs.length, 0)
    }), { timeout: 60_000 })

  it.scoped("the shuffle exchange fires on schedule, not before", () =>
    Effect.gen(function*() {
      const ns = NamespaceSecret.generate()
      const interval = Duration.seconds(60)
      // The exchanges run on the real network while the test's clock jumps: a timeout on that clock would fire before
      // an exchange that a busy machine slowed (once in CI, B's), so it is far beyond the jumps.
      const config = { shuffleInterval: interval, exchangeTimeout: Duration.hours(1) }
      const a = yield* startNode(config)
      const b = yield* startNode(config)
      yield* a.membership.join(ns.id, [])
      yield* b.membership.join(ns.id, [yield* a.network.addr])
      yield* waitFor("A and B are members of each other", Effect.zipWith(isActive(a, ns, b), isActive(b, ns, a), (x, y) => x && y))
      // B's join exchange with A, nothing more.
      const served = () => Effect.map(a.membership.stats, (s) => s.served)
      const exchanged = () => Effect.map(a.membership.stats, (s) => s.exchanges)
      assert.strictEqual(yield* served(), 1)
      assert.strictEqual(yield* exchanged(), 0)
      // Jitter is ±25 %: nothing before 45 s.
      yield* TestClock.adjust(Duration.seconds(44))
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 300)))
      assert.strictEqual(yield* served(), 1)
      assert.strictEqual(yield* exchanged(), 0)
      // By 75 s both have shuffled once: each asked the other (its only neighbour).
      yield* TestClock.adjust(Duration.seconds(31))
      yield* waitFor("A's shuffle exchange", Effect.map(exchanged(), (n) => n === 1))
      yield* waitFor("B's shuffle exchange", Effect.map(served(), (n) => n === 2))
    }), { timeout: 30_000 })

  it.scopedLive("a node answers only for documents it joined, before checking any signature; malformed requests are refused and counted", () =>
    Effect.gen(function*() {
      const joined = NamespaceSecret.generate()
      const other = NamespaceSecret.generate()
      const a = yield* startNode()
      const b = yield* startNode()
      yield* a.membership.join(joined.id, [])
      yield* b.membership.join(other.id, [yield* a.network.addr])
      // A is no member of `other`: B's connect is refused as NotMember and A's record is not kept.
      yield* waitFor("A served B", Effect.map(a.membership.stats, (s) => s.served === 1))
      yield* waitFor("B forgot A", Effect.map(b.membership.members(other.id), (m) => m.passive.length === 0 && m.active.length === 0))
      assert.deepStrictEqual(yield* a.membership.members(other.id), { active: [], passive: [] })
      // Before any signature is checked: a badly signed record for `other` gets NotMember, not counted as malformed.
      const good = yield* freshRecord(9)
      const forged = makePeerRecord({ nodeId: good.nodeId, timestamp: good.timestamp, addrs: good.addrs, signature: new Uint8Array(64) })
      const answer = yield* rawExchange(b.network, a, new MembersRequest({ namespace: other.id, records: [forged] }))
      assert.strictEqual(answer._tag, "NotMember")
      assert.strictEqual((yield* a.membership.stats).malformed, 0)
      // For the joined document it is checked and refused.
      yield* rawExchange(b.network, a, new MembersRequest({ namespace: joined.id, records: [forged] })).pipe(Effect.ignore)
      yield* waitFor("A refused the forged record", Effect.map(a.membership.stats, (s) => s.malformed === 1))

      // Garbage in a frame: counted, the stream aborted, A still serves.
      yield* Effect.scoped(Effect.gen(function*() {
        const stream = yield* b.network.openStream(yield* a.network.addr, MEMBERS_PROTOCOL)
        yield* Network.send(stream, encodeFrame(Uint8Array.of(1, 2, 3), MAX_EXCHANGE_MESSAGE_SIZE))
        yield* Network.closeWrite(stream)
        yield* Stream.runDrain(Network.receive(stream)).pipe(Effect.ignore)
      }))
      yield* waitFor("A counted the malformed request", Effect.map(a.membership.stats, (s) => s.malformed === 2))
      // An oversized frame header.
      yield* Effect.scoped(Effect.gen(function*() {
        const stream = yield* b.network.openStream(yield* a.network.addr, MEMBERS_PROTOCOL)
        yield* Network.send(stream, Uint8Array.of(0xff, 0xff, 0xff, 0xff))
        yield* Stream.runDrain(Network.receive(stream)).pipe(Effect.ignore)
      }))
      yield* waitFor("A counted the oversized frame", Effect.map(a.membership.stats, (s) => s.malformed === 3))
    }), { timeout: 30_000 })

  it.scopedLive("restart: peers learn a changed address through membership", () =>
    Effect.gen(function*() {
      const ns = NamespaceSecret.generate()
      const config: Membership.MembershipConfig = { shuffleInterval: "300 millis" }
      const seedB = Ed.randomSeed()
      const a = yield* startNode(config)
      const c = yield* startNode(config)
      const bScope = yield* Scope.fork(yield* Effect.scope, ExecutionStrategy.sequential)
      const b = yield* Scope.extend(startNode(config, seedB), bScope)
      yield* a.membership.join(ns.id, [])
      yield* c.membership.join(ns.id, [yield* a.network.addr])
      yield* b.membership.join(ns.id, [yield* a.network.addr])
      yield* waitFor("A has B as a neighbour", isActive(a, ns, b))
      const before = yield* b.network.addr
      yield* Scope.close(bScope, Exit.void)

      // B comes back with the same node id on another port, and only knows C.
      const b2 = yield* startNode(config, seedB)
      const after = yield* b2.network.addr
      assert.notDeepEqual(after.addrs, before.addrs)
      yield* b2.membership.join(ns.id, [yield* c.network.addr])
      const addrsAtA = Effect.map(a.membership.members(ns.id), (m) =>
        [...m.active, ...m.passive].find((x) => nodeIdEquals(x.nodeId, b2.id))?.addrs ?? [])
      yield* waitFor("A holds B's new address", Effect.map(addrsAtA, (addrs) => addrs.join() === after.addrs.join()), 20)
      yield* waitFor("A and B are neighbours again", isActive(a, ns, b2), 20)
    }), { timeout: 60_000 })

  it.scopedLive("a malformed answer is refused and counted; the member is retried later, not trusted", () =>
    Effect.gen(function*() {
      const ns = NamespaceSecret.generate()
      // A node whose members protocol answers garbage.
      const bad = Context.get(
        yield* Layer.build(Network.layer({ dialTimeout: "3 seconds" })),
        Network.Network
      )
      yield* bad.handle(MEMBERS_PROTOCOL, (stream) =>
        Effect.gen(function*() {
          yield* Network.send(stream, encodeFrame(Uint8Array.of(0, 5, 1), MAX_EXCHANGE_MESSAGE_SIZE))
          yield* Network.closeWrite(stream)
        }).pipe(Effect.ignore))
      const a = yield* startNode()
      yield* a.membership.join(ns.id, [yield* bad.addr])
      yield* waitFor("A counted the malformed answer", Effect.map(a.membership.stats, (s) => s.malformed === 1))
      const view = yield* a.membership.members(ns.id)
      assert.deepStrictEqual(view, { active: [], passive: [] })
    }), { timeout: 30_000 })

  it.scopedLive("a record from too far in the future is refused and counted", () =>
    Effect.gen(function*() {
      const ns = NamespaceSecret.generate()
      const a = yield* startNode()
      const b = yield* startNode()
      yield* a.membership.join(ns.id, [])
      const record = yield* freshRecord(9, MAX_RECORD_FUTURE_MICROS + 60_000_000n)
      yield* rawExchange(b.network, a, new MembersRequest({ namespace: ns.id, records: [record] }))
      assert.strictEqual((yield* a.membership.stats).rejectedRecords, 1)
      assert.isFalse(yield* knows(a, ns, record))
    }), { timeout: 30_000 })

  it.scopedLive("leaving gossip's topic ends the document's membership; join starts it again", () =>
    Effect.gen(function*() {
      const ns = NamespaceSecret.generate()
      const a = yield* startNode()
      const b = yield* startNode()
      yield* a.membership.join(ns.id, [])
      yield* b.membership.join(ns.id, [yield* a.network.addr])
      yield* waitFor("A has B", isActive(a, ns, b))
      yield* a.gossip.leave(ns.id)
      yield* waitFor("A's membership of the document ended", Effect.map(a.membership.members(ns.id), (m) => m.active.length === 0 && m.passive.length === 0))
      yield* a.membership.join(ns.id, [yield* b.network.addr])
      yield* waitFor("A has B again", isActive(a, ns, b))
      yield* a.membership.leave(ns.id)
      assert.deepStrictEqual(yield* a.membership.members(ns.id), { active: [], passive: [] })
    }), { timeout: 30_000 })

  it.scopedLive("eclipse: a remote's records are learnt from one request per half shuffle interval, later ones only answered", () =>
    Effect.gen(function*() {
      const ns = NamespaceSecret.generate()
      const a = yield* startNode({ shuffleInterval: "60 seconds" })
      const b = yield* startNode()
      yield* a.membership.join(ns.id, [])
      const first = yield* freshRecord(9)
      const second = yield* freshRecord(10)
      const answer1 = yield* rawExchange(b.network, a, new MembersRequest({ namespace: ns.id, records: [first] }))
      assert.strictEqual(answer1._tag, "Members")
      assert.isTrue(yield* knows(a, ns, first))
      // At once again, with another fresh identity: answered, not learnt.
      const answer2 = yield* rawExchange(b.network, a, new MembersRequest({ namespace: ns.id, records: [second] }))
      assert.strictEqual(answer2._tag, "Members")
      assert.isFalse(yield* knows(a, ns, second))
      const stats = yield* a.membership.stats
      assert.strictEqual(stats.rateLimited, 1)
      assert.strictEqual(stats.served, 2)
    }), { timeout: 30_000 })

  it.effect("config is validated", () =>
    Effect.gen(function*() {
      for (
        const [config, problem] of [
          [{ targetDegree: 5, maxActive: 4 }, "maxActive"],
          [{ targetDegree: 0 }, "targetDegree"],
          [{ maxPassive: 8 }, "maxPassive"],
          [{ shuffleInterval: 0 }, "shuffleInterval"]
        ] as const
      ) {
        const exit = yield* Effect.exit(Effect.scoped(Layer.build(nodeLayer(config))))
        assert.isTrue(Exit.isFailure(exit) && Cause.pretty(exit.cause).includes(`Membership: ${problem}`), problem)
      }
    }))
})
