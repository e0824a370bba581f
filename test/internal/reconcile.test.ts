import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fc from "fast-check"
import { toHex } from "../../src/internal/bytes.js"
import * as Reconcile from "../../src/internal/reconcile.js"
import type { SignedEntry } from "../../src/schema/Entry.js"
import { Author, NamespaceSecret } from "../../src/schema/Keys.js"
import {
  encodedSize,
  makeMessage,
  makeRange,
  makeRangeFingerprint,
  makeRangeItem,
  type Message,
  MessageFromBytes,
  type MessagePart
} from "../../src/schema/Message.js"
import { Schema } from "effect"
import { encodeCompactMessage } from "../../src/schema/SyncMessage.js"
import { createHash } from "node:crypto"
import { entryAt, tombstoneAt } from "../utils/entries.js"
import { idOf, MemoryReplica } from "../utils/memoryReplica.js"

interface SessionResult {
  readonly messages: Array<{ readonly from: "a" | "b"; readonly message: Message }>
  readonly sent: { a: number; b: number }
  readonly received: { a: number; b: number }
}

/** Drives a session A → B → A … until one side has nothing to send (spec 02 §5), with the checks of every step. */
const session = (a: MemoryReplica, b: MemoryReplica, config: Reconcile.Config, maxRounds = 2000) =>
  Effect.gen(function*() {
    const result: SessionResult = { messages: [], sent: { a: 0, b: 0 }, received: { a: 0, b: 0 } }
    const sentIds = { a: new Set<string>(), b: new Set<string>() }
    const memory = { a: new Reconcile.SentValues(), b: new Reconcile.SentValues() }
    let message: Message | undefined = Reconcile.initialMessage(a.view())
    let from: "a" | "b" = "a"
    while (message !== undefined) {
      if (result.messages.length >= maxRounds) throw new Error("runaway session")
      // The wire form round-trips and stays within the budget (one oversized entry alone excepted).
      const bytes = Schema.encodeSync(MessageFromBytes)(message)
      assert.strictEqual(bytes.length, encodedSize(message))
      Schema.decodeSync(MessageFromBytes)(bytes)
      if (Number.isFinite(config.maxMessageBytes) && message.valueCount > 1) {
        assert.isAtMost(bytes.length, config.maxMessageBytes, "budget exceeded")
      }
      result.messages.push({ from, message })
      for (const part of message.parts) {
        if (part._tag !== "RangeItem") continue
        for (const [v] of part.values) {
          result.sent[from]++
          result.received[from === "a" ? "b" : "a"]++
          const k = toHex(idOf(v))
          assert.isFalse(sentIds[from].has(k), "identifier sent twice")
          sentIds[from].add(k)
        }
      }
      const to = from === "a" ? b : a
      message = yield* Reconcile.processMessage(to.view(), to.hooks(), config, message, memory[from === "a" ? "b" : "a"])
      from = from === "a" ? "b" : "a"
    }
    return result
  })

const ns = NamespaceSecret.fromSeed(new Uint8Array(32).fill(7))
const author = Author.fromSeed(new Uint8Array(32).fill(9))

const replicaWith = (entries: ReadonlyArray<SignedEntry>) => {
  const r = new MemoryReplica(ns.id)
  for (const e of entries) r.put(e)
  return r
}

const keysOf = (values: ReadonlyArray<readonly [SignedEntry, unknown]>) =>
  values.map(([e]) => new TextDecoder().decode(e.key)).sort()

const rangeKeys = (r: { x: Uint8Array; y: Uint8Array }) =>
  [new TextDecoder().decode(r.x.subarray(64)), new TextDecoder().decode(r.y.subarray(64))]

describe("reference mode", () => {
  it.effect("the paper's example: 3 messages A→B, 2 B→A, with the spec's contents", () =>
    Effect.gen(function*() {
      const e = (k: string) => entryAt(ns, author, k, 1n, "same")
      const alice = replicaWith(["ape", "eel", "fox", "gnu"].map(e))
      const bob = replicaWith(["bee", "cat", "doe", "eel", "fox", "hog"].map(e))
      const { messages } = yield* session(alice, bob, Reconcile.REFERENCE)
      assert.deepStrictEqual(messages.map((m) => m.from), ["a", "b", "a", "b", "a"])
      const [m1, m2, m3, m4, m5] = messages.map((m) => m.message.parts)
      assert.deepStrictEqual(m1!.map((p) => [p._tag, ...rangeKeys(p.range)]), [["RangeFingerprint", "ape", "ape"]])
      assert.deepStrictEqual(m2!.map((p) => [p._tag, ...rangeKeys(p.range)]), [
        ["RangeFingerprint", "eel", "bee"],
        ["RangeFingerprint", "bee", "eel"]
      ])
      assert.deepStrictEqual(m3!.map((p) => [p._tag, ...rangeKeys(p.range)]), [
        ["RangeFingerprint", "eel", "gnu"],
        ["RangeFingerprint", "gnu", "bee"],
        ["RangeItem", "bee", "eel"]
      ])
      const item3 = m3![2]!
      assert.isTrue(item3._tag === "RangeItem" && item3.values.length === 0 && !item3.haveLocal)
      assert.deepStrictEqual(
        m4!.map((p) => p._tag === "RangeItem" ? [...rangeKeys(p.range), keysOf(p.values), p.haveLocal] : []),
        [["bee", "eel", ["bee", "cat", "doe"], true], ["gnu", "bee", ["hog"], false]]
      )
      assert.deepStrictEqual(
        m5!.map((p) => p._tag === "RangeItem" ? [...rangeKeys(p.range), keysOf(p.values), p.haveLocal] : []),
        [["gnu", "bee", ["ape", "gnu"], true]]
      )
      assert.strictEqual(toHex(alice.fingerprint()), toHex(bob.fingerprint()))
      assert.strictEqual(alice.entries.length, 8)
    }))

  it.effect("the replica example: Alice sends 2 values and receives 6", () =>
    Effect.gen(function*() {
      let t = 1n
      const e = (k: string) => entryAt(ns, author, k, t++, k)
      const aliceEntries = ["ape", "eel", "fox", "gnu"].map(e)
      const bobEntries = ["bee", "cat", "doe", "eel", "fox", "hog"].map(e)
      const alice = replicaWith(aliceEntries)
      const bob = replicaWith(bobEntries)
      const { sent } = yield* session(alice, bob, Reconcile.REFERENCE)
      assert.strictEqual(sent.a, 2)
      assert.strictEqual(sent.b, 6)
      assert.strictEqual(toHex(alice.fingerprint()), toHex(bob.fingerprint()))
    }))

  it.effect("identical replicas: 1 message and done; empty vs empty too", () =>
    Effect.gen(function*() {
      const list = ["a", "b", "c"].map((k) => entryAt(ns, author, k, 1n))
      const { messages } = yield* session(replicaWith(list), replicaWith(list), Reconcile.REFERENCE)
      assert.strictEqual(messages.length, 1)
      const empty = yield* session(replicaWith([]), replicaWith([]), Reconcile.REFERENCE)
      assert.strictEqual(empty.messages.length, 1)
    }))
})

// Random pairs of replicas: several authors, shared prefixes, tombstones, equal keys with other timestamps.
const authors = [1, 2, 3].map((n) => Author.fromSeed(new Uint8Array(32).fill(n)))
const entryArb = fc.record({
  author: fc.integer({ min: 0, max: 2 }),
  key: fc.array(fc.constantFrom("a", "b", "/"), { minLength: 0, maxLength: 3 }).map((a) => a.join("")),
  ts: fc.integer({ min: 1, max: 8 }),
  tomb: fc.boolean().map((b) => b && Math.random() < 0.3),
  side: fc.constantFrom("a", "b", "both")
})
const signed = new Map<string, SignedEntry>()
const make = (x: { author: number; key: string; ts: number; tomb: boolean }) => {
  const k = `${x.author}|${x.key}|${x.ts}|${x.tomb}`
  let e = signed.get(k)
  if (e === undefined) {
    e = x.tomb
      ? tombstoneAt(ns, authors[x.author]!, x.key, BigInt(x.ts))
      : entryAt(ns, authors[x.author]!, x.key, BigInt(x.ts), `v${x.ts}`)
    signed.set(k, e)
  }
  return e
}

const modes: ReadonlyArray<[string, Reconcile.Config]> = [
  ["reference", Reconcile.REFERENCE],
  ["default", Reconcile.DEFAULT],
  ["split 4, set 2", { ...Reconcile.REFERENCE, splitFactor: 4, maxSetSize: 2, subrangeItems: 2 }],
  ["tiny budget", { ...Reconcile.DEFAULT, maxMessageBytes: 1200 }], ["tiny value budget, leaves of 2", { ...Reconcile.DEFAULT, maxMessageBytes: 900, maxValueBytes: 300, leafSize: 2, maxSetSize: 1 }]
]

describe("convergence", () => {
  for (const [name, config] of modes) {
    it.effect(`${name}: both sides end with the insert-rule closure of the union`, () =>
      Effect.sync(() =>
        fc.assert(
          fc.property(fc.array(entryArb, { maxLength: 40 }), (spec) => {
            const a = new MemoryReplica(ns.id)
            const b = new MemoryReplica(ns.id)
            const all = new MemoryReplica(ns.id)
            for (const x of spec) {
              const e = make(x)
              if (x.side !== "b") a.put(e)
              if (x.side !== "a") b.put(e)
              all.put(e)
            }
            const { messages, received, sent } = Effect.runSync(session(a, b, config))
            const ids = (r: MemoryReplica) => r.entries.map((e) => toHex(idOf(e.entry)) + e.entry.timestamp)
            assert.deepStrictEqual(ids(a), ids(all))
            assert.deepStrictEqual(ids(b), ids(all))
            assert.strictEqual(toHex(a.fingerprint()), toHex(b.fingerprint()))
            // numSent of one side = numRecv of the other (spec 02 §6)
            assert.strictEqual(sent.a, received.b)
            assert.strictEqual(sent.b, received.a)
            // Only values the receiver did not already hold reach its insert.
            assert.isAtMost(b.received.length, sent.a)
            assert.isAtLeast(messages.length, 1)
          }),
          { numRuns: 150 }
        )
      ))
  }

  it.effect("default mode: few messages for a large, slightly different pair", () =>
    Effect.gen(function*() {
      const common = Array.from({ length: 1500 }, (_, i) => entryAt(ns, authors[i % 3]!, `k/${i}`, 5n))
      const a = replicaWith([...common, ...Array.from({ length: 15 }, (_, i) => entryAt(ns, authors[0]!, `a/${i}`, 5n))])
      const b = replicaWith([...common, ...Array.from({ length: 15 }, (_, i) => entryAt(ns, authors[1]!, `b/${i}`, 5n))])
      const ref = yield* session(replicaWith(a.entries.map((e) => e.entry)), replicaWith(b.entries.map((e) => e.entry)), Reconcile.REFERENCE)
      const def = yield* session(a, b, Reconcile.DEFAULT)
      assert.strictEqual(toHex(a.fingerprint()), toHex(b.fingerprint()))
      assert.isBelow(def.messages.length, ref.messages.length)
      assert.isAtMost(def.messages.length, 6)
    }))

  it.effect("target 1: default mode splits at short bounds; on the compact codec its session moves far fewer bytes", () =>
    Effect.gen(function*() {
      // Keys like the bench's: 24 hex characters, so a whole id carries ~20 bytes past where neighbours differ.
      const key = (tag: string, i: number) => createHash("sha256").update(`${tag}${i}`).digest("hex").slice(0, 24)
      const common = Array.from({ length: 800 }, (_, i) => entryAt(ns, authors[i % 3]!, key("k", i), 5n))
      const pair = () => [
        replicaWith([...common, ...Array.from({ length: 8 }, (_, i) => entryAt(ns, authors[0]!, key("a", i), 5n))]),
        replicaWith([...common, ...Array.from({ length: 8 }, (_, i) => entryAt(ns, authors[1]!, key("b", i), 5n))])
      ] as const
      const bytesOf = (r: SessionResult) => r.messages.reduce((n, m) => n + encodeCompactMessage(m.message).length, 0)
      const [a, b] = pair()
      const short = yield* session(a, b, Reconcile.DEFAULT)
      assert.strictEqual(toHex(a.fingerprint()), toHex(b.fingerprint()))
      const [c, d] = pair()
      const whole = yield* session(c, d, { ...Reconcile.DEFAULT, shortBounds: false })
      // Split bounds (past the initial message) are prefixes of at most a few key bytes.
      let bounds = 0
      let boundBytes = 0
      for (const { message } of short.messages.slice(1)) {
        for (const p of message.parts) {
          bounds += 2
          boundBytes += p.range.x.length + p.range.y.length - 128
        }
      }
      assert.isBelow(boundBytes / bounds, 6)
      assert.isBelow(bytesOf(short), 0.7 * bytesOf(whole))
    }))

  it.effect("a tiny budget cuts messages but still converges, anchor of a full side included", () =>
    Effect.gen(function*() {
      const a = replicaWith(Array.from({ length: 300 }, (_, i) => entryAt(ns, author, `x${String(i).padStart(4, "0")}`, 3n)))
      const b = replicaWith([])
      const config = { ...Reconcile.DEFAULT, maxMessageBytes: 4000 }
      const { messages } = yield* session(a, b, config)
      assert.strictEqual(b.entries.length, 300)
      assert.isAbove(messages.length, 10)
    }))
})

describe("message codec", () => {
  it("rejects malformed bytes", () => {
    const a = replicaWith([entryAt(ns, author, "k", 1n)])
    const msg = Reconcile.initialMessage(a.view())
    const bytes = Schema.encodeSync(MessageFromBytes)(msg)
    for (let n = 0; n < bytes.length; n++) {
      assert.isTrue(Schema.decodeEither(MessageFromBytes)(bytes.subarray(0, n))._tag === "Left")
    }
    assert.isTrue(Schema.decodeEither(MessageFromBytes)(new Uint8Array([...bytes, 0]))._tag === "Left")
    // a range bound shorter than 64 bytes
    assert.isTrue(Schema.decodeEither(MessageFromBytes)(new Uint8Array([1, 0, 1, 1, 1, 1, ...new Array(32).fill(0)]))._tag === "Left")
    // an unknown part tag
    const badTag = Uint8Array.from(bytes)
    badTag[1] = 2
    assert.isTrue(Schema.decodeEither(MessageFromBytes)(badTag)._tag === "Left")
  })
})

describe("encodedSize", () => {
  it("equals the length of the encoding: long keys, u64 timestamps above 2^53, many parts", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({ key: fc.string({ maxLength: 300 }), ts: fc.bigInt({ min: 1n, max: (1n << 64n) - 1n }), item: fc.boolean() }),
          { maxLength: 200 }
        ),
        (specs) => {
          const parts: Array<MessagePart> = specs.map(({ item, key, ts }) => {
            const e = entryAt(ns, author, key, ts)
            const range = makeRange(idOf(e), idOf(e))
            return item ? makeRangeItem(range, [[e, "Complete"]], true) : makeRangeFingerprint(range, new Uint8Array(32))
          })
          const m = makeMessage(parts)
          assert.strictEqual(encodedSize(m), Schema.encodeSync(MessageFromBytes)(m).length)
        }
      ),
      { numRuns: 50 }
    )
  })
})

describe("SentValues", () => {
  it("remembers sent values by author, key and timestamp, and forgets the oldest past its capacity", () => {
    const memory = new Reconcile.SentValues(2)
    const v1 = entryAt(ns, author, "k1", 1n)
    const v1newer = entryAt(ns, author, "k1", 2n)
    const v2 = entryAt(ns, author, "k2", 1n)
    const v3 = entryAt(ns, authors[0]!, "k2", 1n)
    memory.add(v1)
    assert.isTrue(memory.has(v1))
    assert.isFalse(memory.has(v1newer))
    memory.add(v2)
    assert.isFalse(memory.has(v3))
    memory.add(v3)
    assert.strictEqual(memory.size, 2)
    assert.isFalse(memory.has(v1))
    assert.isTrue(memory.has(v2) && memory.has(v3))
    const off = new Reconcile.SentValues(0)
    off.add(v1)
    assert.isFalse(off.has(v1))
  })
})
