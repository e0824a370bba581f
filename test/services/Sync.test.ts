/**
 * Direct sync sessions between real libp2p nodes on 127.0.0.1 (port 0): convergence, refusal, hostile streams,
 * limits and broken peers. Every node a test builds is closed by the test's scope.
 */
import { assert, describe, it } from "@effect/vitest"
import {
  Cause,
  Chunk,
  Context,
  Deferred,
  Effect,
  Either,
  Exit,
  Fiber,
  FiberRef,
  HashMap,
  HashSet,
  Layer,
  Logger,
  LogLevel,
  Option,
  Queue,
  Ref,
  Schema,
  Scope,
  Stream,
  TestClock
} from "effect"
import { compare, concat, toHex } from "../../src/internal/bytes.js"
import { signEntry } from "../../src/internal/signing.js"
import { frameHeader } from "../../src/internal/framing.js"
import * as Capability from "../../src/schema/Capability.js"
import type { SignedEntry } from "../../src/schema/Entry.js"
import { Author, fmtShort, NamespaceSecret } from "../../src/schema/Keys.js"
import { Message, Range, RangeFingerprint, RangeItem } from "../../src/schema/Message.js"
import { NodeId } from "../../src/schema/NodeAddr.js"
import { Query } from "../../src/schema/Query.js"
import { MAX_INIT_SIZE, SYNC_PROTOCOL } from "../../src/schema/constants.js"
import { type AcceptError, ConnectError } from "../../src/schema/SyncErrors.js"
import { Abort, COMPACT_SYNC_PROTOCOL, Init, Sync as SyncMsg, SyncMessageFromBytes } from "../../src/schema/SyncMessage.js"
import * as Reconcile from "../../src/internal/reconcile.js"
import * as Crypto from "../../src/services/Crypto.js"
import * as Network from "../../src/services/Network.js"
import * as Ranger from "../../src/services/Ranger.js"
import * as Replica from "../../src/services/Replica.js"
import * as Store from "../../src/services/Store.js"
import * as Sync from "../../src/services/Sync.js"
import { openWithEntries } from "../utils/peers.js"
import { entryAt, tombstoneAt, withFields } from "../utils/entries.js"

type Services = Sync.Sync | Ranger.Ranger | Replica.Replica | Store.Store | Network.Network
type Peer = Context.Context<Services>

type PeerConfig = Sync.SyncConfig & Partial<Sync.AcceptHandlers> & {
  readonly ranger?: Partial<Ranger.RangerConfig>
  /** Wraps the node's Network service (to watch or restrict the protocols it opens and serves). */
  readonly network?: (network: Network.NetworkService) => Network.NetworkService
}

const networkLayer = (wrap: PeerConfig["network"]) => {
  const base = Network.layer({ dialTimeout: "2 seconds" })
  return wrap === undefined ? base : Layer.effect(Network.Network, Effect.map(Network.Network, wrap)).pipe(
    Layer.provide(base)
  )
}

const stack = ({ accept, onAccepted, ranger, network, ...config }: PeerConfig = {}) =>
  Sync.layerServing({ readTimeout: "5 seconds", ...config }, {
    ...(accept === undefined ? {} : { accept }),
    ...(onAccepted === undefined ? {} : { onAccepted })
  }).pipe(
    Layer.provideMerge(Ranger.layer({ ...Ranger.defaultConfig, ...ranger })),
    Layer.provideMerge(Replica.layer),
    Layer.provideMerge(Store.layerMemory),
    Layer.provideMerge(networkLayer(network)),
    Layer.provide(Crypto.layerInline)
  )

const peer = (config?: PeerConfig) => Layer.build(stack(config))
const inPeer = <A, E>(ctx: Peer, effect: Effect.Effect<A, E, Services>) => Effect.provide(effect, ctx)

const ns = NamespaceSecret.fromSeed(new Uint8Array(32).fill(7))
const authors = [1, 2, 3].map((n) => Author.fromSeed(new Uint8Array(32).fill(n)))

/** The peer holds `entries` of `ns` (put straight into its store), with the replica open for sync. */
const withEntries = (ctx: Peer, entries: ReadonlyArray<SignedEntry>) => inPeer(ctx, openWithEntries(ns, entries))

const stored = (ctx: Peer) =>
  inPeer(ctx, Effect.flatMap(Store.Store, (s) =>
    Effect.map(Stream.runCollect(s.getMany(ns.id, Query.all().withIncludeEmpty())), Chunk.toArray)))

const summary = (entries: ReadonlyArray<SignedEntry>) =>
  entries.map((e) => `${toHex(e.author)}/${new TextDecoder().decode(e.key)}@${e.timestamp}`)

const addrOf = (ctx: Peer) => Context.get(ctx, Network.Network).addr
const syncWith = (ctx: Peer, to: Peer) =>
  Effect.flatMap(addrOf(to), (addr) => Context.get(ctx, Sync.Sync).syncWith(ns.id, addr))

const encode = Schema.encodeSync(SyncMessageFromBytes)
const frame = (payload: Uint8Array) => concat(frameHeader(payload.length, 1 << 30), payload)
const whole = concat(ns.id, new Uint8Array(32))
const mismatch = new Message({
  parts: [new RangeFingerprint({ range: new Range({ x: whole, y: whole }), fingerprint: new Uint8Array(32).fill(1) })]
})

/** A peer whose acceptor results land in a queue. */
const observedPeer = (config: PeerConfig = {}) =>
  Effect.gen(function*() {
    const results = yield* Queue.unbounded<Exit.Exit<Sync.SyncFinished, AcceptError>>()
    const ctx = yield* peer({ ...config, onAccepted: (exit) => Queue.offer(results, exit) })
    return { ctx, results }
  })

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E => {
  if (Exit.isSuccess(exit)) return assert.fail("expected a failure")
  const failure = Cause.failureOption(exit.cause)
  return Option.isSome(failure) ? failure.value : assert.fail(`expected a typed failure: ${Cause.pretty(exit.cause)}`)
}

describe("Sync", () => {
  it.scopedLive("target 1: default-mode peers sync over the compact protocol; to a peer without it, and from a reference-mode peer, over /iroh-sync/1", () =>
    Effect.gen(function*() {
      const opened: Array<string> = []
      const watch = (network: Network.NetworkService): Network.NetworkService => ({
        ...network,
        openStream: (to, protocol) => Effect.zipRight(Effect.sync(() => opened.push(protocol)), network.openStream(to, protocol))
      })
      const entries = (tag: string) => Array.from({ length: 40 }, (_, i) => entryAt(ns, authors[i % 3]!, `${tag}/${i}`, 5n))
      const a = yield* peer({ network: watch })
      const b = yield* peer()
      // A node that serves only spec 04's protocol (as the reference and older nodes do).
      const old = yield* peer({
        network: (network) => ({
          ...network,
          handle: (protocol, handler, options) => protocol === SYNC_PROTOCOL ? network.handle(protocol, handler, options) : Effect.void
        })
      })
      const reference = yield* peer({ ranger: Reconcile.REFERENCE, network: watch })
      yield* withEntries(a, entries("a"))
      yield* withEntries(b, entries("b"))
      yield* withEntries(old, entries("old"))
      yield* withEntries(reference, entries("ref"))

      yield* syncWith(a, b)
      assert.deepStrictEqual(opened, [COMPACT_SYNC_PROTOCOL])
      assert.deepStrictEqual(summary(yield* stored(a)), summary(yield* stored(b)))

      opened.length = 0
      yield* syncWith(a, old)
      assert.deepStrictEqual(opened, [COMPACT_SYNC_PROTOCOL, SYNC_PROTOCOL])
      assert.deepStrictEqual(summary(yield* stored(a)), summary(yield* stored(old)))

      // A reference-mode initiator speaks spec 04's protocol; as an acceptor of the compact one it compares the 16
      // fingerprint bytes the codec carries (else every range would mismatch and the session would send everything).
      opened.length = 0
      const fromReference = yield* syncWith(reference, b)
      assert.deepStrictEqual(opened, [SYNC_PROTOCOL])
      assert.deepStrictEqual(summary(yield* stored(reference)), summary(yield* stored(b)))
      assert.isAbove(fromReference.outcome.numSent, 0)
      yield* syncWith(a, reference)
      assert.deepStrictEqual(summary(yield* stored(a)), summary(yield* stored(reference)))
      yield* withEntries(a, [entryAt(ns, authors[0]!, "late", 6n)])
      const toReference = yield* syncWith(a, reference)
      assert.deepStrictEqual(summary(yield* stored(a)), summary(yield* stored(reference)))
      // A range or two of values, not the document.
      assert.isAtMost(toReference.outcome.numSent + toReference.outcome.numRecv, 4)
    }))

  it.scopedLive("a full peer pushes to an empty one; a prefix deletion reaches the other side", () =>
    Effect.gen(function*() {
      const full = yield* peer()
      const empty = yield* peer()
      const entries = Array.from({ length: 40 }, (_, i) => entryAt(ns, authors[i % 2]!, `p/${String(i).padStart(2, "0")}`, 10n))
      yield* withEntries(full, entries)
      yield* withEntries(empty, [])
      const pushed = yield* syncWith(full, empty)
      assert.strictEqual(pushed.outcome.numSent, 40)
      assert.strictEqual((yield* stored(empty)).length, 40)
      // author 0 deletes "p/" on the full side: its 20 entries go, a tombstone replaces them, on both sides
      yield* inPeer(full, Effect.flatMap(Store.Store, (s) => s.unsafePut(tombstoneAt(ns, authors[0]!, "p/", 11n))))
      yield* syncWith(empty, full)
      const after = yield* stored(empty)
      assert.deepStrictEqual(summary(after), summary(yield* stored(full)))
      assert.strictEqual(after.filter((e) => !e.isEmpty).length, 20)
      assert.strictEqual(after.filter((e) => e.isEmpty).length, 1)
    }))

  it.scopedLive("finding 5: a value too far in the future is dropped and counted; the peers converge on the rest", () =>
    Effect.gen(function*() {
      const a = yield* peer()
      const b = yield* peer()
      const nowMicros = BigInt(Date.now()) * 1000n
      const ahead = entryAt(ns, authors[0]!, "ahead", nowMicros + 11n * 60_000_000n)
      const mine = Array.from({ length: 30 }, (_, i) => entryAt(ns, authors[0]!, `a/${String(i).padStart(2, "0")}`, 10n))
      const theirs = Array.from({ length: 20 }, (_, i) => entryAt(ns, authors[1]!, `b/${String(i).padStart(2, "0")}`, 10n))
      // Written straight into a's store: a holds an entry that b's validation refuses.
      yield* withEntries(a, [...mine, ahead])
      yield* withEntries(b, theirs)
      for (let round = 0; round < 2; round++) {
        // A retry meets the same entry again: it is dropped again, the session still completes.
        const finished = yield* syncWith(b, a)
        assert.strictEqual(finished.outcome.numInvalid, 1)
        assert.strictEqual(finished.outcome.invalid.TooFarInTheFuture, 1)
      }
      const onB = summary(yield* stored(b))
      assert.strictEqual(onB.length, 50)
      assert.deepStrictEqual(onB, summary([...mine, ...theirs].sort((x, y) => compare(concat(x.author, x.key), concat(y.author, y.key)))))
      assert.strictEqual((yield* stored(a)).length, 51)
    }))

  it.scopedLive("finding 5: a bad signature and an empty/length mismatch are dropped and counted; the session goes on", () =>
    Effect.gen(function*() {
      const liar = yield* peer()
      const honest = yield* peer()
      const good = Array.from({ length: 10 }, (_, i) => entryAt(ns, authors[0]!, `good/${i}`, 5n))
      const real = entryAt(ns, authors[0]!, "forged", 5n)
      const sig = Uint8Array.from(real.signature.author)
      sig[7]! ^= 1
      // Validly signed, but with length 0 and a non-empty hash (spec 01 §4).
      const mismatch = signEntry(ns, authors[1]!, withFields(entryAt(ns, authors[1]!, "mismatch", 5n), { len: 0n }).entry)
      yield* withEntries(liar, [...good, withFields(real, { authorSignature: sig }), mismatch])
      yield* withEntries(honest, [entryAt(ns, authors[2]!, "honest", 6n)])
      const finished = yield* syncWith(honest, liar)
      assert.strictEqual(finished.outcome.numInvalid, 2)
      assert.strictEqual(finished.outcome.invalid.BadSignature, 1)
      assert.strictEqual(finished.outcome.invalid.InvalidEmptyEntry, 1)
      const keys = (yield* stored(honest)).map((e) => new TextDecoder().decode(e.key))
      assert.sameMembers(keys, [...good.map((e) => new TextDecoder().decode(e.key)), "honest"])
      assert.include((yield* stored(liar)).map((e) => new TextDecoder().decode(e.key)), "honest")
    }))

  // On the TestClock (the sockets are real; no timer of this test needs to fire): the cool-down ends when the clock
  // is moved past it.
  it.scoped("finding 5: a peer over the invalid bound is cut and cooled down, both ways, until the cool-down ends", () =>
    Effect.gen(function*() {
      const liar = yield* peer()
      const { ctx: honest, results } = yield* observedPeer({ ranger: { maxInvalid: 3 }, cooldown: "10 minutes" })
      const forged = Array.from({ length: 5 }, (_, i) => {
        const e = entryAt(ns, authors[0]!, `forged/${i}`, 5n)
        const sig = Uint8Array.from(e.signature.namespace)
        sig[1]! ^= 1
        return withFields(e, { namespaceSignature: sig })
      })
      yield* withEntries(liar, forged)
      yield* withEntries(honest, [])
      const error = yield* Effect.flip(syncWith(honest, liar))
      assert.strictEqual(error._tag, "TooManyInvalidEntries")
      if (error._tag === "TooManyInvalidEntries") {
        assert.strictEqual(error.invalid, 5)
        assert.strictEqual(error.first, "BadSignature")
        assert.strictEqual(toHex(error.peer), toHex(Context.get(liar, Network.Network).nodeId))
      }
      // Typed ids (NodeId, NamespaceId) survive the error schema's encoding, as over RPC.
      const decoded = Schema.decodeUnknownSync(ConnectError)(Schema.encodeSync(ConnectError)(error))
      assert.strictEqual(decoded._tag, "TooManyInvalidEntries")
      assert.strictEqual(toHex(decoded.peer), toHex(Context.get(liar, Network.Network).nodeId))
      assert.strictEqual(toHex(decoded.namespace ?? new Uint8Array(0)), toHex(ns.id))
      // Cooling down: no session is started with it …
      const cooling = yield* Effect.flip(syncWith(honest, liar))
      assert.strictEqual(cooling._tag, "PeerCoolingDown")
      // … nor accepted from it: its stream is aborted unread.
      const refused = yield* Effect.flip(syncWith(liar, honest))
      assert.strictEqual(refused._tag, "SyncProtocolError")
      assert.strictEqual(failureOf(yield* Queue.take(results))._tag, "PeerCoolingDown")
      // Still cooling just before the end of the 10 minutes; after it, sessions run again (and fail again).
      yield* TestClock.adjust("599999 millis")
      assert.strictEqual((yield* Effect.flip(syncWith(honest, liar)))._tag, "PeerCoolingDown")
      yield* TestClock.adjust("1 millis")
      assert.strictEqual((yield* Effect.flip(syncWith(honest, liar)))._tag, "TooManyInvalidEntries")
      assert.strictEqual((yield* stored(honest)).length, 0)
    }))

  it("finding 5: the cool-down map forgets expired peers and stays within its capacity", () => {
    const cool = new Sync.CoolDowns(3)
    const id = (n: number) => NodeId.make(new Uint8Array(32).fill(n))
    cool.add(id(1), 100, 0)
    assert.strictEqual(cool.get(id(1), 99), 100)
    assert.isUndefined(cool.get(id(1), 100))
    assert.strictEqual(cool.size, 0)
    cool.add(id(1), 500, 0)
    cool.add(id(2), 200, 0)
    cool.add(id(3), 300, 0)
    cool.add(id(4), 400, 0)
    assert.strictEqual(cool.size, 3)
    assert.isUndefined(cool.get(id(2), 0), "the soonest to expire goes first")
    cool.add(id(5), 600, 350)
    assert.isUndefined(cool.get(id(3), 0), "an expired peer makes room")
    assert.strictEqual(cool.get(id(1), 0), 500)
    assert.strictEqual(cool.get(id(5), 0), 600)
  })

  it.scopedLive("finding 6: an Init with 200k tiny ranges is refused fast with a typed error, before any decision", () =>
    Effect.gen(function*() {
      let asked = 0
      const { ctx: b, results } = yield* observedPeer({ accept: () => Effect.sync(() => (asked++, "Allow" as const)) })
      yield* withEntries(b, [entryAt(ns, authors[0]!, "b", 1n)])
      const a = yield* peer()
      const tiny = concat(Uint8Array.of(0, 64), whole, Uint8Array.of(64), whole, new Uint8Array(32))
      const parts = 200_000
      const payload = new Uint8Array(1 + 32 + 3 + parts * tiny.length)
      payload.set([0], 0)
      payload.set(ns.id, 1)
      payload.set([0xc0, 0x9a, 0x0c], 33) // varint 200,000
      for (let i = 0; i < parts; i++) payload.set(tiny, 36 + i * tiny.length)
      const network = Context.get(a, Network.Network)
      const addr = yield* addrOf(b)
      const start = Date.now()
      yield* Effect.scoped(Effect.gen(function*() {
        const stream = yield* network.openStream(addr, SYNC_PROTOCOL)
        // The acceptor resets the stream at the length prefix: the rest of the send may fail.
        yield* Network.send(stream, frame(payload)).pipe(Effect.ignore)
        yield* Stream.runDrain(Network.receive(stream)).pipe(Effect.either)
      }))
      const error = failureOf(yield* Queue.take(results))
      const ms = Date.now() - start
      // Refused at its length prefix (32 MB announced): nothing of it is buffered or decoded. The same Init within
      // the size bound is refused at its part count (test/schema/limits.test.ts).
      assert.strictEqual(error._tag, "SyncLimitExceeded")
      if (error._tag === "SyncLimitExceeded") {
        assert.strictEqual(error.limit, "initSize")
        assert.strictEqual(error.got, payload.length)
      }
      assert.strictEqual(asked, 0)
      assert.isBelow(ms, 3000)
    }))

  it.scopedLive("finding 6: a 1 MiB key in a sync message is refused with a typed error", () =>
    Effect.gen(function*() {
      const a = yield* peer()
      const { ctx: b, results } = yield* observedPeer()
      yield* withEntries(a, [])
      yield* withEntries(b, [])
      const long = withFields(entryAt(ns, authors[0]!, "k", 1n), { key: new Uint8Array(1 << 20).fill(0x61) })
      const item = new Message({
        parts: [new RangeItem({ range: new Range({ x: whole, y: whole }), values: [[long, "Missing"]], haveLocal: false })]
      })
      const network = Context.get(a, Network.Network)
      const addr = yield* addrOf(b)
      yield* Effect.scoped(Effect.gen(function*() {
        const stream = yield* network.openStream(addr, SYNC_PROTOCOL)
        yield* Network.send(stream, frame(encode(new Init({ namespace: ns.id, message: mismatch }))))
        yield* Network.send(stream, frame(encode(new SyncMsg({ message: item }))))
        yield* Stream.runDrain(Network.receive(stream)).pipe(Effect.either)
      }))
      const error = failureOf(yield* Queue.take(results))
      assert.strictEqual(error._tag, "SyncLimitExceeded")
      if (error._tag === "SyncLimitExceeded") assert.strictEqual(error.limit, "keyLength")
      assert.strictEqual((yield* stored(b)).length, 0)
    }))

  it.scopedLive("finding 6: a bad stream logs one WARN line, without a stack or cause; the cause only at DEBUG", () =>
    Effect.gen(function*() {
      const lines: Array<{ level: string; message: string; cause: boolean; annotations: Record<string, unknown> }> = []
      const capture = Logger.make(({ annotations, cause, logLevel, message }) => {
        lines.push({
          level: logLevel.label,
          message: Array.isArray(message) ? message.map(String).join(" ") : String(message),
          cause: !Cause.isEmpty(cause),
          annotations: Object.fromEntries(HashMap.toEntries(annotations))
        })
      })
      yield* Effect.locallyScopedWith(FiberRef.currentLoggers, HashSet.add(capture))
      yield* Effect.locallyScoped(FiberRef.currentMinimumLogLevel, LogLevel.Debug)
      const a = yield* peer()
      const { ctx: b, results } = yield* observedPeer()
      const network = Context.get(a, Network.Network)
      const addr = yield* addrOf(b)
      yield* Effect.scoped(Effect.gen(function*() {
        const stream = yield* network.openStream(addr, SYNC_PROTOCOL)
        yield* Network.send(stream, Uint8Array.of(0, 0, 0, 3, 0xff, 0xff, 0xff))
        yield* Stream.runDrain(Network.receive(stream)).pipe(Effect.either)
      }))
      yield* Queue.take(results)
      yield* Effect.sleep("50 millis")
      const warnings = lines.filter((l) => l.level === "WARN" || l.level === "ERROR")
      assert.strictEqual(warnings.length, 1, JSON.stringify(warnings))
      const [warning] = warnings
      assert.strictEqual(warning!.message, "sync session failed")
      assert.isFalse(warning!.cause)
      assert.strictEqual(warning!.annotations["error"], "SyncProtocolError")
      assert.strictEqual(warning!.annotations["peer"], fmtShort(network.nodeId))
      assert.match(String(warning!.annotations["reason"]), /malformed/)
      assert.notInclude(JSON.stringify(warning), "\n")
      assert.isTrue(lines.some((l) => l.level === "DEBUG" && l.message === "sync session failed" && l.cause))
    }))

  it.scopedLive("an empty peer pulls a full one; both report matching outcomes", () =>
    Effect.gen(function*() {
      const full = yield* peer()
      const empty = yield* peer()
      const entries = Array.from({ length: 120 }, (_, i) => entryAt(ns, authors[i % 3]!, `k/${String(i).padStart(3, "0")}`, 10n))
      yield* withEntries(full, entries)
      yield* withEntries(empty, [])
      const finished = yield* syncWith(empty, full)
      assert.strictEqual(finished.outcome.numRecv, 120)
      assert.strictEqual(finished.outcome.numInvalid, 0)
      assert.strictEqual(toHex(finished.peer), toHex(Context.get(full, Network.Network).nodeId))
      assert.strictEqual(toHex(finished.namespace), toHex(ns.id))
      assert.isAtLeast(finished.timings.connectMs, 0)
      assert.deepStrictEqual(summary(yield* stored(empty)), summary(yield* stored(full)))
      assert.strictEqual((yield* stored(empty)).length, 120)
    }))

  it.scopedLive("issue 18: a session's bytes each way: what one side sent the other received; a pull brings in more than it sends", () =>
    Effect.gen(function*() {
      const full = yield* observedPeer()
      const empty = yield* peer()
      const entries = Array.from({ length: 120 }, (_, i) => entryAt(ns, authors[i % 3]!, `k/${String(i).padStart(3, "0")}`, 10n))
      yield* withEntries(full.ctx, entries)
      yield* withEntries(empty, [])
      const mine = (yield* syncWith(empty, full.ctx)).traffic
      const theirs = yield* Queue.take(full.results).pipe(Effect.flatten)
      assert.strictEqual(mine.bytesSent, theirs.traffic.bytesReceived)
      assert.strictEqual(mine.bytesReceived, theirs.traffic.bytesSent)
      assert.strictEqual(mine.messagesSent, theirs.traffic.messagesReceived)
      // 120 signed entries (> 120 × 100 bytes) came in; a few fingerprints went out.
      assert.isAbove(mine.bytesReceived, 120 * 100)
      assert.isBelow(mine.bytesSent, mine.bytesReceived)
      assert.isAbove(mine.bytesSent, 0)
    }))

  it.scopedLive("two peers with unique entries converge; concurrent writes to one key: the newest wins", () =>
    Effect.gen(function*() {
      const { ctx: a } = yield* observedPeer()
      const { ctx: b, results } = yield* observedPeer()
      const shared = Array.from({ length: 30 }, (_, i) => entryAt(ns, authors[0]!, `s/${String(i).padStart(3, "0")}`, 5n))
      yield* withEntries(a, [
        ...shared,
        ...Array.from({ length: 8 }, (_, i) => entryAt(ns, authors[1]!, `a/${i}`, 6n)),
        entryAt(ns, authors[2]!, "same", 10n, "from a")
      ])
      yield* withEntries(b, [
        ...shared,
        ...Array.from({ length: 6 }, (_, i) => entryAt(ns, authors[1]!, `b/${i}`, 6n)),
        entryAt(ns, authors[2]!, "same", 20n, "from b")
      ])
      const finished = yield* syncWith(a, b)
      const onB = yield* Queue.take(results)
      assert.isTrue(Exit.isSuccess(onB))
      if (Exit.isSuccess(onB)) {
        assert.strictEqual(onB.value.outcome.numRecv, finished.outcome.numSent)
        assert.strictEqual(onB.value.outcome.numSent, finished.outcome.numRecv)
        assert.strictEqual(toHex(onB.value.peer), toHex(Context.get(a, Network.Network).nodeId))
      }
      const sa = summary(yield* stored(a))
      assert.deepStrictEqual(sa, summary(yield* stored(b)))
      assert.strictEqual(sa.length, 30 + 8 + 6 + 1)
      assert.isTrue(sa.some((s) => s.endsWith("/same@20")))
      assert.isFalse(sa.some((s) => s.endsWith("/same@10")))
      // A second session finds nothing to exchange.
      const again = yield* syncWith(b, a)
      assert.strictEqual(again.outcome.numRecv + again.outcome.numSent, 0)
    }))

  it.scopedLive("a peer without the document aborts with NotFound and stores nothing", () =>
    Effect.gen(function*() {
      const a = yield* peer()
      const { ctx: b, results } = yield* observedPeer()
      yield* withEntries(a, [entryAt(ns, authors[0]!, "x", 1n)])
      const error = yield* Effect.flip(syncWith(a, b))
      assert.strictEqual(error._tag, "RemoteAbort")
      if (error._tag === "RemoteAbort") assert.strictEqual(error.reason, "NotFound")
      const rejected = failureOf(yield* Queue.take(results))
      assert.strictEqual(rejected._tag, "SyncRejected")
      assert.strictEqual((yield* stored(b)).length, 0)
      // Known but not open for sync: also NotFound.
      yield* inPeer(b, Effect.flatMap(Replica.Replica, (r) =>
        Effect.zipRight(r.importNamespace(new Capability.Write({ secret: ns })), r.open(ns.id))))
      const again = yield* Effect.flip(syncWith(a, b))
      assert.strictEqual(again._tag === "RemoteAbort" ? again.reason : again._tag, "NotFound")
      assert.strictEqual((yield* stored(b)).length, 0)
    }))

  it.scopedLive("hostile streams end with a typed error on the acceptor, which keeps serving honest peers", () =>
    Effect.gen(function*() {
      const a = yield* peer()
      const { ctx: b, results } = yield* observedPeer({ maxFrame: 1024 * 1024 })
      yield* withEntries(a, [entryAt(ns, authors[0]!, "a", 1n)])
      yield* withEntries(b, Array.from({ length: 5 }, (_, i) => entryAt(ns, authors[1]!, `b/${i}`, 1n)))
      const addr = yield* addrOf(b)
      const network = Context.get(a, Network.Network)
      const init = encode(new Init({ namespace: ns.id, message: mismatch }))
      // The first frame (the Init) is bounded at its length prefix (MAX_INIT_SIZE), far below the frame limit.
      const cases: ReadonlyArray<readonly [string, Uint8Array, RegExp | number]> = [
        ["garbage", Uint8Array.of(0, 0, 0, 3, 0xff, 0xff, 0xff), /malformed/],
        ["garbage without framing", new TextEncoder().encode("hello world, not a frame"), 0x68656c6c],
        ["oversized length prefix", frameHeader(2 * 1024 * 1024, 1 << 30), 2 * 1024 * 1024],
        ["first frame just over the Init size", frameHeader(MAX_INIT_SIZE + 1, 1 << 30), MAX_INIT_SIZE + 1],
        ["first frame at the Init size", frame(new Uint8Array(MAX_INIT_SIZE)), /malformed/],
        ["sync before init", frame(encode(new SyncMsg({ message: mismatch }))), /before init/],
        ["two inits", concat(frame(init), frame(init)), /double init/],
        ["truncated frame", Uint8Array.of(0, 0, 0, 9, 1, 2), /truncated/]
      ]
      for (const [name, bytes, expected] of cases) {
        yield* Effect.scoped(Effect.gen(function*() {
          const stream = yield* network.openStream(addr, SYNC_PROTOCOL)
          yield* Network.send(stream, bytes).pipe(Effect.ignore)
          yield* Network.closeWrite(stream).pipe(Effect.ignore)
          // The acceptor ends the stream (reset, or its FIN): reading terminates either way.
          yield* Stream.runDrain(Network.receive(stream)).pipe(Effect.either)
        }))
        const error = failureOf(yield* Queue.take(results))
        if (typeof expected === "number") {
          assert.strictEqual(error._tag, "SyncLimitExceeded", name)
          if (error._tag === "SyncLimitExceeded") {
            assert.strictEqual(error.limit, "initSize", name)
            assert.strictEqual(error.got, expected, name)
          }
        } else {
          assert.strictEqual(error._tag, "SyncProtocolError", name)
          if (error._tag === "SyncProtocolError") assert.match(error.reason, expected, name)
        }
      }
      const finished = yield* syncWith(a, b)
      assert.strictEqual(finished.outcome.numRecv, 5)
      assert.isTrue(Exit.isSuccess(yield* Queue.take(results)))
      assert.strictEqual((yield* stored(b)).length, 6)
    }))

  it.scopedLive("an acceptor that never answers: the initiator fails at the read timeout", () =>
    Effect.gen(function*() {
      const a = yield* peer({ readTimeout: "400 millis" })
      const b = yield* peer({ accept: () => Effect.never })
      yield* withEntries(a, [])
      const error = yield* Effect.flip(syncWith(a, b))
      assert.strictEqual(error._tag, "SyncProtocolError")
      if (error._tag === "SyncProtocolError") assert.match(error.reason, /no data/)
    }))

  for (const [name, limits] of [["per-peer", { maxSessionsPerPeer: 1 }], ["total", { maxSessions: 1 }]] as const) {
    it.scopedLive(`sessions over the ${name} cap are refused with InternalServerError`, () =>
      Effect.gen(function*() {
        const a = yield* peer()
        const gate = yield* Deferred.make<void>()
        const entered = yield* Queue.unbounded<void>()
        const b = yield* peer({
          ...limits,
          accept: () => Effect.zipRight(Queue.offer(entered, undefined), Effect.as(Deferred.await(gate), "Allow" as const))
        })
        yield* withEntries(a, [entryAt(ns, authors[0]!, "a", 1n)])
        yield* withEntries(b, [])
        const first = yield* Effect.fork(syncWith(a, b))
        yield* Queue.take(entered)
        const second = yield* Effect.flip(syncWith(a, b))
        assert.strictEqual(second._tag === "RemoteAbort" ? second.reason : second._tag, "InternalServerError")
        yield* Deferred.succeed(gate, undefined)
        const done = yield* first
        assert.strictEqual(done.outcome.numSent, 1)
        // The slot is free again.
        yield* syncWith(a, b)
      }))
  }

  it.scopedLive("the remote node stops mid-session: a typed error; a later session with a new node completes", () =>
    Effect.gen(function*() {
      const a = yield* peer()
      yield* withEntries(a, [entryAt(ns, authors[0]!, "a", 1n)])
      const scopeB = yield* Scope.make()
      const entered = yield* Deferred.make<void>()
      const b = yield* peer({ accept: () => Effect.zipRight(Deferred.succeed(entered, undefined), Effect.never) }).pipe(
        Scope.extend(scopeB)
      )
      yield* withEntries(b, [])
      const session = yield* Effect.fork(syncWith(a, b))
      yield* Deferred.await(entered)
      yield* Scope.close(scopeB, Exit.void)
      // B's streams are reset, or closed before it answered (once in a busy full run): the initiator then sees an
      // acceptor that ended the stream without a word, which ends the session with nothing exchanged (as below).
      const ended = yield* Effect.either(Fiber.join(session))
      if (Either.isLeft(ended)) assert.include(["SyncProtocolError", "SyncCloseError"], ended.left._tag)
      else assert.strictEqual(ended.right.traffic.messagesReceived, 0)
      const c = yield* peer()
      yield* withEntries(c, [])
      const finished = yield* syncWith(a, c)
      assert.strictEqual(finished.outcome.numSent, 1)
      assert.strictEqual((yield* stored(c)).length, 1)
    }))

  it.scopedLive("a hostile acceptor: unexpected Init, garbage and Abort end the initiator with typed errors", () =>
    Effect.gen(function*() {
      const a = yield* peer()
      yield* withEntries(a, [entryAt(ns, authors[0]!, "a", 1n)])
      const raw = Context.get(yield* Layer.build(Network.layer()), Network.Network)
      const reply = yield* Ref.make<Uint8Array>(new Uint8Array(0))
      yield* raw.handle(SYNC_PROTOCOL, (stream) =>
        Effect.gen(function*() {
          // Like an acceptor, speak only after the initiator's first bytes arrived.
          yield* Stream.runHead(Network.receive(stream))
          yield* Network.send(stream, yield* Ref.get(reply))
          yield* Network.closeWrite(stream)
          yield* Stream.runDrain(Network.receive(stream))
        }))
      const addr = yield* raw.addr
      const init = encode(new Init({ namespace: ns.id, message: mismatch }))
      const cases: ReadonlyArray<readonly [Uint8Array, string, RegExp | string]> = [
        [frame(init), "SyncProtocolError", /unexpected init/],
        [Uint8Array.of(0, 0, 0, 2, 0xee, 0xee), "SyncProtocolError", /malformed/],
        [Uint8Array.of(0xff, 0xff, 0xff, 0xff), "SyncProtocolError", /too large/],
        [frame(encode(new Abort({ reason: "AlreadySyncing" }))), "RemoteAbort", "AlreadySyncing"],
        // Bytes after the acceptor's last message fail the close handshake, which takes precedence over the abort.
        [concat(frame(encode(new Abort({ reason: "NotFound" }))), Uint8Array.of(1, 2, 3)), "SyncCloseError", /3 unexpected bytes/]
      ]
      for (const [bytes, tag, expected] of cases) {
        yield* Ref.set(reply, bytes)
        const error = yield* Effect.flip(Context.get(a, Sync.Sync).syncWith(ns.id, addr))
        assert.strictEqual(error._tag, tag)
        const reason = "reason" in error ? String(error.reason) : ""
        if (typeof expected === "string") assert.strictEqual(reason, expected)
        else assert.match(reason, expected)
        assert.strictEqual(toHex(error.peer), toHex(raw.nodeId))
        assert.strictEqual(toHex(error.namespace ?? new Uint8Array(0)), toHex(ns.id))
      }
      // An acceptor that ends the stream without a word: the session just ends (nothing exchanged).
      yield* Ref.set(reply, new Uint8Array(0))
      const finished = yield* Context.get(a, Sync.Sync).syncWith(ns.id, addr)
      assert.strictEqual(finished.outcome.numRecv, 0)
    }))

  it.scopedLive("interrupting the initiator aborts the stream; the acceptor ends with a typed error", () =>
    Effect.gen(function*() {
      const a = yield* peer()
      const gate = yield* Deferred.make<void>()
      const entered = yield* Deferred.make<void>()
      const { ctx: b, results } = yield* observedPeer({
        accept: () => Effect.zipRight(Deferred.succeed(entered, undefined), Effect.as(Deferred.await(gate), "Allow" as const))
      })
      yield* withEntries(a, [entryAt(ns, authors[0]!, "a", 1n)])
      yield* withEntries(b, [entryAt(ns, authors[1]!, "b", 1n)])
      const session = yield* Effect.fork(syncWith(a, b))
      yield* Deferred.await(entered)
      yield* Fiber.interrupt(session)
      yield* Deferred.succeed(gate, undefined)
      const error = failureOf(yield* Queue.take(results))
      assert.include(["SyncProtocolError", "SyncCloseError"], error._tag)
      assert.strictEqual((yield* stored(a)).length, 1)
    }))
})
