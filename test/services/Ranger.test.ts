import { assert, describe, it } from "@effect/vitest"
import { Chunk, Context, Effect, Exit, Layer, Metric, Scope, Stream } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as fc from "fast-check"
import { compare, concat, toHex } from "../../src/internal/bytes.js"
import * as Reconcile from "../../src/internal/reconcile.js"
import * as AuthorHeads from "../../src/schema/AuthorHeads.js"
import * as Capability from "../../src/schema/Capability.js"
import { entryFingerprint, makeSignedEntry, MAX_KEY_LENGTH, type SignedEntry } from "../../src/schema/Entry.js"
import { Author, Hash, NamespaceSecret } from "../../src/schema/Keys.js"
import { Message, Range, RangeFingerprint, RangeItem } from "../../src/schema/Message.js"
import { Query } from "../../src/schema/Query.js"
import * as Crypto from "../../src/services/Crypto.js"
import * as Ranger from "../../src/services/Ranger.js"
import * as Replica from "../../src/services/Replica.js"
import * as Store from "../../src/services/Store.js"
import { openWithEntries } from "../utils/peers.js"
import { entryAt, tombstoneAt } from "../utils/entries.js"

const stack = (config: Ranger.RangerConfig = Ranger.defaultConfig) =>
  Ranger.layer(config).pipe(
    Layer.provideMerge(Replica.layer),
    Layer.provideMerge(Store.layerMemory),
    Layer.provide(Crypto.layerInline)
  )

type Peer = Context.Context<Ranger.Ranger | Replica.Replica | Store.Store>

const peer = (config?: Ranger.RangerConfig) => Layer.build(stack(config))
const inPeer = <A, E, R>(ctx: Peer, effect: Effect.Effect<A, E, R>) => Effect.provide(effect, ctx)

const ns = NamespaceSecret.fromSeed(new Uint8Array(32).fill(5))
const other = NamespaceSecret.fromSeed(new Uint8Array(32).fill(6))
const authors = [1, 2, 3].map((n) => Author.fromSeed(new Uint8Array(32).fill(n)))
const idA = new Uint8Array(32).fill(0xaa)
const idB = new Uint8Array(32).fill(0xbb)

/** A peer holding `entries` of `ns` (put straight into its store), with the replica open for sync. */
const withEntries = (ctx: Peer, entries: ReadonlyArray<SignedEntry>, namespace = ns) =>
  inPeer(ctx, openWithEntries(namespace, entries))

const all = (ctx: Peer, namespace = ns) =>
  inPeer(ctx, Effect.flatMap(Replica.Replica, (r) =>
    Effect.map(Stream.runCollect(r.getMany(namespace.id, Query.all().withIncludeEmpty())), Chunk.toArray)))

const fingerprint = (ctx: Peer, namespace = ns) =>
  inPeer(ctx, Effect.flatMap(Store.Store, (s) =>
    Effect.map(s.rangeView(namespace.id), (v) => {
      const m = Reconcile.initialMessage(v).parts[0]
      return m?._tag === "RangeFingerprint" ? toHex(m.fingerprint) : ""
    })))

/** A full session between two peers; returns messages and both outcomes. */
const sync = (a: Peer, b: Peer) =>
  Effect.gen(function*() {
    const sa = yield* inPeer(a, Effect.flatMap(Ranger.Ranger, (r) => r.session(ns.id, idB)))
    const sb = yield* inPeer(b, Effect.flatMap(Ranger.Ranger, (r) => r.session(ns.id, idA)))
    let message: Message | undefined = yield* sa.initialMessage
    let messages = 0
    let turn = sb
    while (message !== undefined) {
      messages++
      message = yield* turn.process(message)
      turn = turn === sb ? sa : sb
    }
    return { messages, a: yield* sa.outcome, b: yield* sb.outcome }
  })

describe("Ranger", () => {
  for (const [name, config] of [
    ["reference", { ...Ranger.defaultConfig, ...Reconcile.REFERENCE }],
    ["default", Ranger.defaultConfig]
  ] as const) {
    it.scoped(`${name}: two stores converge on the union; outcomes agree; events fire on the receiving side`, () =>
      Effect.gen(function*() {
        const a = yield* peer(config)
        const b = yield* peer(config)
        const shared = Array.from({ length: 200 }, (_, i) => entryAt(ns, authors[i % 3]!, `k/${String(i).padStart(3, "0")}`, 10n))
        const onlyA = Array.from({ length: 7 }, (_, i) => entryAt(ns, authors[0]!, `a/${i}`, 11n))
        const onlyB = [
          ...Array.from({ length: 5 }, (_, i) => entryAt(ns, authors[1]!, `b/${i}`, 11n)),
          entryAt(ns, authors[2]!, "k/005", 12n, "newer"),
          tombstoneAt(ns, authors[0]!, "k/009", 13n)
        ]
        yield* withEntries(a, [...shared, ...onlyA])
        yield* withEntries(b, [...shared, ...onlyB])
        const events = yield* inPeer(b, Effect.flatMap(Replica.Replica, (r) => r.subscribe(ns.id)))
        const { a: outA, b: outB } = yield* sync(a, b)
        assert.strictEqual(yield* fingerprint(a), yield* fingerprint(b))
        const ea = (yield* all(a)).map((e) => toHex(e.key) + e.timestamp)
        const eb = (yield* all(b)).map((e) => toHex(e.key) + e.timestamp)
        assert.deepStrictEqual(ea, eb)
        assert.strictEqual(ea.length, 200 + 7 + 5)
        assert.strictEqual(outA.numSent, outB.numRecv)
        assert.strictEqual(outB.numSent, outA.numRecv)
        // The reference sends exactly the differences; the default mode may send a few more (receivers skip what
        // they hold before verifying).
        assert.isAtLeast(outA.numSent, 7)
        assert.isAtLeast(outB.numSent, 7)
        assert.isAtMost(outA.numSent + outB.numSent, name === "reference" ? 24 : 100)
        const received = Chunk.toArray(yield* Stream.runCollect(Stream.take(events, 5)))
        assert.isTrue(received.every((e) => e._tag === "RemoteInsert" && compare(e.from, idA) === 0))
        assert.isAtLeast(outB.headsReceived.heads.size, 1)
      }))
  }

  it.scoped("headsReceived holds the newest timestamp of every author among the received values", () =>
    Effect.gen(function*() {
      const b = yield* peer()
      yield* withEntries(b, [])
      // More authors than one message tracks before it falls back to the heads directly.
      const many = Array.from({ length: 20 }, (_, i) => Author.fromSeed(new Uint8Array(32).fill(40 + i)))
      const values = Array.from({ length: 120 }, (_, i) =>
        entryAt(ns, many[(i * 7) % many.length]!, `h/${String(i).padStart(3, "0")}`, BigInt(1000 + ((i * 37) % 101))))
      const session = yield* inPeer(b, Effect.flatMap(Ranger.Ranger, (r) => r.session(ns.id, idA)))
      const id = concat(ns.id, new Uint8Array(32))
      const range = new Range({ x: id, y: id })
      for (const part of [values.slice(0, 70), values.slice(70)]) {
        yield* session.process(new Message({
          parts: [new RangeItem({ range, values: part.map((e) => [e, "Missing"] as const), haveLocal: true })]
        }))
      }
      const heads = (yield* session.outcome).headsReceived
      assert.strictEqual(heads.heads.size, many.length)
      for (const author of many) {
        const newest = values.filter((e) => compare(e.author, author.id) === 0)
          .reduce((t, e) => (e.timestamp > t ? e.timestamp : t), 0n)
        assert.strictEqual(AuthorHeads.get(heads, author.id), newest)
      }
    }))

  it.scoped("a session on a replica not open for sync fails", () =>
    Effect.gen(function*() {
      const a = yield* peer()
      yield* inPeer(a, Effect.flatMap(Replica.Replica, (r) => r.importNamespace(new Capability.Write({ secret: ns }))))
      const notOpen = yield* inPeer(a, Effect.flip(Effect.flatMap(Ranger.Ranger, (r) => r.session(ns.id, idB))))
      assert.strictEqual(notOpen._tag, "ReplicaNotOpen")
      yield* inPeer(a, Effect.flatMap(Replica.Replica, (r) => r.open(ns.id)))
      const noSync = yield* inPeer(a, Effect.flip(Effect.flatMap(Ranger.Ranger, (r) => r.session(ns.id, idB))))
      assert.strictEqual(noSync._tag, "SyncNotEnabled")
    }))

  it.scoped("ranges naming another namespace never read it", () =>
    Effect.gen(function*() {
      const a = yield* peer()
      yield* withEntries(a, [entryAt(ns, authors[0]!, "mine", 1n)])
      yield* withEntries(a, Array.from({ length: 5 }, (_, i) => entryAt(other, authors[0]!, `secret/${i}`, 1n)), other)
      const session = yield* inPeer(a, Effect.flatMap(Ranger.Ranger, (r) => r.session(ns.id, idB)))
      const lo = concat(other.id, new Uint8Array(32))
      const hi = concat(other.id, new Uint8Array(32).fill(0xff))
      const ask = (range: Range) =>
        new Message({
          parts: [
            new RangeItem({ range, values: [], haveLocal: false }),
            new RangeFingerprint({ range, fingerprint: new Uint8Array(32).fill(1) })
          ]
        })
      for (const range of [new Range({ x: lo, y: hi }), new Range({ x: hi, y: lo }), new Range({ x: lo, y: lo })]) {
        const reply = yield* session.process(ask(range))
        const sent = (reply?.parts ?? []).flatMap((p) => (p._tag === "RangeItem" ? p.values.map(([e]) => e) : []))
        assert.isTrue(sent.every((e) => compare(e.namespace, ns.id) === 0), "only entries of the session's namespace")
      }
    }))

  /** An entry of `ns` whose author signature is broken. */
  const forge = (key: string) => {
    const real = entryAt(ns, authors[0]!, key, 1n)
    const sig = Uint8Array.from(real.signature.author)
    sig[3]! ^= 1
    return makeSignedEntry({
      namespace: real.namespace,
      author: real.author,
      key: real.key,
      len: real.record.len,
      hash: real.record.hash,
      timestamp: real.timestamp,
      authorSignature: sig,
      namespaceSignature: real.signature.namespace
    })
  }
  const wholeRange = () => {
    const whole = concat(ns.id, new Uint8Array(32))
    return new Range({ x: whole, y: whole })
  }
  const itemOf = (values: ReadonlyArray<SignedEntry>) =>
    new Message({
      parts: [new RangeItem({ range: wholeRange(), values: values.map((v) => [v, "Complete"] as const), haveLocal: true })]
    })

  it.scoped("finding 5: values with bad signatures or of another namespace are dropped, counted, not stored; the session goes on", () =>
    Effect.gen(function*() {
      const a = yield* peer()
      yield* withEntries(a, [])
      const session = yield* inPeer(a, Effect.flatMap(Ranger.Ranger, (r) => r.session(ns.id, idB)))
      const good = entryAt(ns, authors[0]!, "good", 1n)
      const foreign = entryAt(other, authors[0]!, "foreign", 1n)
      const badSignatures = Metric.counter("rangedocs_sync_invalid_entries", { incremental: true }).pipe(
        Metric.tagged("reason", "BadSignature")
      )
      const before = (yield* Metric.value(badSignatures)).count
      assert.isUndefined(yield* session.process(itemOf([good, forge("forged"), foreign])))
      assert.strictEqual((yield* Metric.value(badSignatures)).count - before, 1, "counted in the metric")
      // The session goes on: a later message is processed as usual.
      assert.isUndefined(yield* session.process(itemOf([entryAt(ns, authors[1]!, "later", 1n)])))
      const stored = (yield* all(a)).map((e) => new TextDecoder().decode(e.key))
      assert.sameMembers(stored, ["good", "later"])
      const outcome = yield* session.outcome
      assert.strictEqual(outcome.numRecv, 4)
      assert.strictEqual(outcome.numInvalid, 2)
      assert.strictEqual(outcome.invalid.BadSignature, 1)
      assert.strictEqual(outcome.invalid.InvalidNamespace, 1)
    }))

  it.scoped("finding 5: the invalid bound: at most maxInvalid pass, one more ends the session", () =>
    Effect.gen(function*() {
      const a = yield* peer({ ...Ranger.defaultConfig, maxInvalid: 3, minValuesForFraction: 1_000 })
      yield* withEntries(a, [])
      const session = yield* inPeer(a, Effect.flatMap(Ranger.Ranger, (r) => r.session(ns.id, idB)))
      yield* session.process(itemOf([forge("f0"), forge("f1"), forge("f2")]))
      assert.strictEqual((yield* session.outcome).numInvalid, 3)
      const error = yield* Effect.flip(session.process(itemOf([forge("f3")])))
      assert.strictEqual(error._tag, "InvalidEntriesFromPeer")
      if (error._tag === "InvalidEntriesFromPeer") {
        assert.strictEqual(error.count, 4)
        assert.strictEqual(error.first, "BadSignature")
      }
    }))

  it.scoped("finding 5: values a third party can plant on an honest peer (too far in the future, key too long) are dropped and counted, never cut the session", () =>
    Effect.gen(function*() {
      const a = yield* peer({ ...Ranger.defaultConfig, maxInvalid: 3, maxInvalidFraction: 0.5, minValuesForFraction: 4 })
      yield* withEntries(a, [])
      const session = yield* inPeer(a, Effect.flatMap(Ranger.Ranger, (r) => r.session(ns.id, idB)))
      // Validly signed, so an honest peer (or a reference peer) may hold them; we refuse them on our own rules.
      const future = Array.from({ length: 6 }, (_, i) => entryAt(ns, authors[0]!, `future/${i}`, 1n << 60n))
      const long = Array.from({ length: 2 }, (_, i) => entryAt(ns, authors[1]!, new Uint8Array(MAX_KEY_LENGTH + 1).fill(i), 1n))
      assert.isUndefined(yield* session.process(itemOf([...future, ...long])))
      const outcome = yield* session.outcome
      assert.strictEqual(outcome.numInvalid, 8)
      assert.strictEqual(outcome.invalid.TooFarInTheFuture, 6)
      assert.strictEqual(outcome.invalid.KeyTooLong, 2)
      // One forged value is still judged as before: within the bound.
      assert.isUndefined(yield* session.process(itemOf([forge("f0")])))
    }))

  it.scoped("finding 5: the invalid fraction: more than half of at least minValuesForFraction values ends the session", () =>
    Effect.gen(function*() {
      const a = yield* peer({ ...Ranger.defaultConfig, maxInvalid: 1_000, maxInvalidFraction: 0.5, minValuesForFraction: 10 })
      yield* withEntries(a, [])
      const session = yield* inPeer(a, Effect.flatMap(Ranger.Ranger, (r) => r.session(ns.id, idB)))
      const good = (n: number, from: number) => Array.from({ length: n }, (_, i) => entryAt(ns, authors[1]!, `g${from + i}`, 1n))
      const bad = (n: number, from: number) => Array.from({ length: n }, (_, i) => forge(`b${from + i}`))
      // 4 of 8: under the minimum count; then 5 of 10 = exactly half: still going.
      yield* session.process(itemOf([...good(4, 0), ...bad(4, 0)]))
      yield* session.process(itemOf([...good(1, 4), ...bad(1, 4)]))
      assert.strictEqual((yield* session.outcome).numInvalid, 5)
      // 6 of 11: over half.
      const error = yield* Effect.flip(session.process(itemOf(bad(1, 5))))
      assert.strictEqual(error._tag, "InvalidEntriesFromPeer")
      // Before the minimum count, any fraction passes.
      const b = yield* peer({ ...Ranger.defaultConfig, maxInvalid: 1_000, maxInvalidFraction: 0.5, minValuesForFraction: 10 })
      yield* withEntries(b, [])
      const early = yield* inPeer(b, Effect.flatMap(Ranger.Ranger, (r) => r.session(ns.id, idB)))
      yield* early.process(itemOf(bad(9, 0)))
      assert.strictEqual((yield* early.outcome).numInvalid, 9)
    }))

  it.scoped("an endless ping-pong ends with RunawaySession", () =>
    Effect.gen(function*() {
      const a = yield* peer({ ...Ranger.defaultConfig, maxMessages: 20 })
      yield* withEntries(a, Array.from({ length: 50 }, (_, i) => entryAt(ns, authors[0]!, `k${i}`, 1n)))
      const session = yield* inPeer(a, Effect.flatMap(Ranger.Ranger, (r) => r.session(ns.id, idB)))
      const whole = concat(ns.id, new Uint8Array(32))
      const nag = new Message({
        parts: [new RangeFingerprint({ range: new Range({ x: whole, y: whole }), fingerprint: new Uint8Array(32) })]
      })
      const error = yield* Effect.flip(Effect.forever(session.process(nag)))
      assert.strictEqual(error._tag, "RunawaySession")
    }))
})

/** A peer on a file store whose Ranger counts the range views it asks the store for. */
const filePeer = (file: string, views: { n: number }) => {
  const counted = Layer.effect(
    Store.Store,
    Effect.map(Store.Store, (s) =>
      Store.Store.of({
        ...s,
        rangeView: (namespace) =>
          Effect.suspend(() => {
            views.n++
            return s.rangeView(namespace)
          })
      }))
  ).pipe(Layer.provide(Store.layerFile(file)))
  return Layer.build(
    Ranger.layer().pipe(
      Layer.provideMerge(Replica.layer),
      Layer.provideMerge(counted),
      Layer.provide(Crypto.layerInline)
    )
  )
}

describe("cold start (issue 19, target 2)", () => {
  const tempDir = Effect.acquireRelease(
    Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "rangedocs-ranger-cold-"))),
    (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
  )
  const entries = Array.from({ length: 300 }, (_, i) => entryAt(ns, authors[i % 3]!, `k/${String(i).padStart(3, "0")}`, 10n))

  /** Two file stores with the same entries, indexed once and closed (their summaries kept), then opened again. */
  const reopened = (dir: string) =>
    Effect.gen(function*() {
      const files = [path.join(dir, "a.sqlite"), path.join(dir, "b.sqlite")]
      const first = yield* Scope.make()
      for (const file of files) {
        const ctx = yield* Scope.extend(filePeer(file, { n: 0 }), first)
        yield* withEntries(ctx, entries)
        yield* inPeer(ctx, Effect.flatMap(Store.Store, (s) => s.rangeView(ns.id)))
      }
      yield* Scope.close(first, Exit.void)
      const views = { a: { n: 0 }, b: { n: 0 } }
      const a = yield* filePeer(files[0]!, views.a)
      const b = yield* filePeer(files[1]!, views.b)
      for (const ctx of [a, b]) yield* inPeer(ctx, Effect.flatMap(Replica.Replica, (r) => r.open(ns.id, { sync: true })))
      return { a, b, views }
    })

  it.scoped("target 2: two stores that agree end their session after one message without building the range index", () =>
    Effect.gen(function*() {
      const { a, b, views } = yield* reopened(yield* tempDir)
      const { messages } = yield* sync(a, b)
      assert.strictEqual(messages, 1)
      assert.strictEqual(views.a.n, 0)
      assert.strictEqual(views.b.n, 0)
      // The summary is the index's: building it gives the same fingerprint.
      assert.strictEqual(yield* fingerprint(a), yield* fingerprint(b))
    }))

  it.scoped("target 2: a write after the restart drops the summary, so the session finds and sends it", () =>
    Effect.gen(function*() {
      const { a, b } = yield* reopened(yield* tempDir)
      yield* inPeer(a, Effect.flatMap(Store.Store, (s) => s.importAuthor(authors[0]!)))
      yield* inPeer(a, Effect.flatMap(Replica.Replica, (r) =>
        r.insertLocal(ns.id, authors[0]!.id, new TextEncoder().encode("new"), Hash.make(new Uint8Array(32).fill(9)), 1n)))
      const { messages } = yield* sync(a, b)
      assert.isAbove(messages, 1)
      assert.strictEqual((yield* all(b)).length, entries.length + 1)
      assert.strictEqual(yield* fingerprint(a), yield* fingerprint(b))
    }))
})

describe("range index", () => {
  it.scoped("fingerprints of random ranges equal a plain scan after random puts and prefix deletes", () =>
    Effect.gen(function*() {
      const ctx = yield* peer()
      yield* withEntries(ctx, [])
      const store = Context.get(ctx, Store.Store)
      const keys = ["", "a", "a/", "a/b", "b", "\u00ff", "\u00ff\u00ff", "c/d"]
      yield* Effect.promise(() =>
        fc.assert(
          fc.asyncProperty(
            fc.array(fc.record({
              author: fc.integer({ min: 0, max: 2 }),
              key: fc.constantFrom(...keys),
              ts: fc.integer({ min: 1, max: 30 }),
              tomb: fc.boolean()
            }), { maxLength: 25 }),
            fc.array(fc.tuple(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 0, max: 40 })), { maxLength: 8 }),
            async (puts, probes) => {
              await Effect.runPromise(Effect.gen(function*() {
                for (const p of puts) {
                  const k = Uint8Array.from(p.key, (c) => c.charCodeAt(0))
                  const e = p.tomb
                    ? tombstoneAt(ns, authors[p.author]!, k, BigInt(p.ts))
                    : entryAt(ns, authors[p.author]!, k, BigInt(p.ts))
                  yield* store.unsafePut(e)
                }
                const view = yield* store.rangeView(ns.id)
                const stored = Chunk.toArray(yield* Stream.runCollect(store.getMany(ns.id, Query.all().withIncludeEmpty())))
                const ids = stored.map((e) => concat(e.namespace, e.author, e.key))
                assert.strictEqual(view.size(), stored.length)
                ids.forEach((id, i) => {
                  assert.strictEqual(view.rank(id), i)
                  assert.strictEqual(toHex(view.idAt(i)), toHex(id))
                })
                for (const [x, y] of probes) {
                  const a = Math.min(x, y, stored.length)
                  const b = Math.min(Math.max(x, y), stored.length)
                  const out = new Uint8Array(32)
                  view.xorInto(a, b, out)
                  const scan = new Uint8Array(32)
                  for (const e of stored.slice(a, b)) {
                    const fp = entryFingerprint(e.entry)
                    for (let i = 0; i < 32; i++) scan[i]! ^= fp[i]!
                  }
                  assert.strictEqual(toHex(out), toHex(scan))
                  const read = yield* view.entries(a, b)
                  assert.deepStrictEqual(read.map((e) => toHex(e.key) + toHex(e.author)), stored.slice(a, b).map((e) => toHex(e.key) + toHex(e.author)))
                }
              }))
            }
          ),
          { numRuns: 60 }
        )
      )
    }))
})
