/**
 * Direct sync sessions between real libp2p nodes on 127.0.0.1 (port 0): convergence, refusal, hostile streams,
 * limits and broken peers. Every node a test builds is closed by the test's scope.
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Chunk, Context, Deferred, Effect, Exit, Fiber, Layer, Option, Queue, Ref, Schema, Scope, Stream } from "effect"
import { concat, toHex } from "../../src/internal/bytes.js"
import { frameHeader } from "../../src/internal/framing.js"
import * as Capability from "../../src/schema/Capability.js"
import type { SignedEntry } from "../../src/schema/Entry.js"
import { Author, NamespaceSecret } from "../../src/schema/Keys.js"
import { Message, Range, RangeFingerprint } from "../../src/schema/Message.js"
import { Query } from "../../src/schema/Query.js"
import { SYNC_PROTOCOL } from "../../src/schema/constants.js"
import type { AcceptError } from "../../src/schema/SyncErrors.js"
import { Abort, Init, Sync as SyncMsg, SyncMessageFromBytes } from "../../src/schema/SyncMessage.js"
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

type PeerConfig = Sync.SyncConfig & Partial<Sync.AcceptHandlers>

const stack = ({ accept, onAccepted, ...config }: PeerConfig = {}) =>
  Sync.layerServing({ readTimeout: "5 seconds", ...config }, {
    ...(accept === undefined ? {} : { accept }),
    ...(onAccepted === undefined ? {} : { onAccepted })
  }).pipe(
    Layer.provideMerge(Ranger.layer()),
    Layer.provideMerge(Replica.layer),
    Layer.provideMerge(Store.layerMemory),
    Layer.provideMerge(Network.layer({ dialTimeout: "2 seconds" })),
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
      yield* inPeer(full, Effect.flatMap(Store.Store, (s) => s.put(tombstoneAt(ns, authors[0]!, "p/", 11n))))
      yield* syncWith(empty, full)
      const after = yield* stored(empty)
      assert.deepStrictEqual(summary(after), summary(yield* stored(full)))
      assert.strictEqual(after.filter((e) => !e.isEmpty).length, 20)
      assert.strictEqual(after.filter((e) => e.isEmpty).length, 1)
    }))

  it.scopedLive("a peer that sends forged entries: the session ends with a typed error, nothing forged is stored", () =>
    Effect.gen(function*() {
      const liar = yield* peer()
      const honest = yield* peer()
      const good = entryAt(ns, authors[0]!, "good", 5n)
      const real = entryAt(ns, authors[0]!, "forged", 5n)
      const sig = Uint8Array.from(real.signature.author)
      sig[7]! ^= 1
      yield* withEntries(liar, [good, withFields(real, { authorSignature: sig })])
      yield* withEntries(honest, [])
      const error = yield* Effect.flip(syncWith(honest, liar))
      assert.strictEqual(error._tag, "SyncProtocolError")
      assert.include(error.message, "InvalidEntriesFromPeer")
      assert.isFalse((yield* stored(honest)).some((e) => new TextDecoder().decode(e.key) === "forged"))
      // The honest node still syncs with an honest peer afterwards.
      const other = yield* peer()
      yield* withEntries(other, [entryAt(ns, authors[1]!, "fine", 6n)])
      const ok = yield* syncWith(honest, other)
      assert.isAtLeast(ok.outcome.numRecv, 1)
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
      assert.strictEqual(finished.outcome.numRejected, 0)
      assert.strictEqual(toHex(finished.peer), toHex(Context.get(full, Network.Network).nodeId))
      assert.strictEqual(toHex(finished.namespace), toHex(ns.id))
      assert.isAtLeast(finished.timings.connectMs, 0)
      assert.deepStrictEqual(summary(yield* stored(empty)), summary(yield* stored(full)))
      assert.strictEqual((yield* stored(empty)).length, 120)
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
      const cases: ReadonlyArray<readonly [string, Uint8Array, RegExp]> = [
        ["garbage", Uint8Array.of(0, 0, 0, 3, 0xff, 0xff, 0xff), /malformed/],
        ["garbage without framing", new TextEncoder().encode("hello world, not a frame"), /too large/],
        ["oversized length prefix", frameHeader(2 * 1024 * 1024, 1 << 30), /too large/],
        ["sync before init", frame(encode(new SyncMsg({ message: mismatch }))), /before init/],
        ["two inits", concat(frame(init), frame(init)), /double init/],
        ["truncated frame", Uint8Array.of(0, 0, 0, 9, 1, 2), /truncated/]
      ]
      for (const [name, bytes, expected] of cases) {
        yield* Effect.scoped(Effect.gen(function*() {
          const stream = yield* network.openStream(addr, SYNC_PROTOCOL)
          yield* Network.send(stream, bytes)
          yield* Network.closeWrite(stream).pipe(Effect.ignore)
          // The acceptor ends the stream (reset, or its FIN): reading terminates either way.
          yield* Stream.runDrain(Network.receive(stream)).pipe(Effect.either)
        }))
        const error = failureOf(yield* Queue.take(results))
        assert.strictEqual(error._tag, "SyncProtocolError", name)
        if (error._tag === "SyncProtocolError") assert.match(error.reason, expected, name)
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
      const error = yield* Effect.flip(session)
      assert.include(["SyncProtocolError", "SyncCloseError"], error._tag)
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
        if (typeof expected === "string") assert.strictEqual(error.reason, expected)
        else assert.match(error.reason, expected)
        assert.strictEqual(error.peer, toHex(raw.nodeId))
        assert.strictEqual(error.namespace, toHex(ns.id))
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
