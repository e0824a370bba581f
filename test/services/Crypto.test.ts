/**
 * The Crypto service (spec 01 §5): batch signing and strict verification, on worker threads (`layer`) and inline.
 * Every implementation must sign exactly as `signEntry` and give every entry the verdict of `verifySignedEntry`.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Exit, FastCheck as fc, Fiber, Layer, Scope } from "effect"
import { createHook } from "node:async_hooks"
import { blake3 } from "../../src/internal/blake3.js"
import { fromHex, utf8 } from "../../src/internal/bytes.js"
import * as Ed from "../../src/internal/ed25519.js"
import { PublicKeyCache, signEntry, verifySignedEntry } from "../../src/internal/signing.js"
import {
  Entry,
  EntryRecord,
  RecordIdentifier,
  type SignedEntry,
  signedEntryEquals,
  U64
} from "../../src/schema/Entry.js"
import { Author, Hash, NamespaceSecret } from "../../src/schema/Keys.js"
import * as Crypto from "../../src/services/Crypto.js"
import { withFields } from "../utils/entries.js"

// ---------------------------------------------------------------------------------------------------------------
// Fixtures

const seeded = (n: number) => new Uint8Array(32).fill(n)
const authors = [1, 2, 3, 4, 5].map((n) => Author.fromSeed(seeded(n)))
const namespaces = [11, 12, 13].map((n) => NamespaceSecret.fromSeed(seeded(n)))

/** Request `i`: authors, namespaces, key lengths (0–40 bytes), contents and timestamps all vary. */
const request = (i: number): Crypto.SignRequest => {
  const author = authors[i % authors.length]!
  const namespace = namespaces[i % namespaces.length]!
  const data = utf8(`content ${i}`.repeat(i % 4))
  return {
    author,
    namespace,
    entry: new Entry({
      id: new RecordIdentifier({
        namespace: namespace.id,
        author: author.id,
        key: Uint8Array.from({ length: (i * 7) % 41 }, (_, j) => (i + j * 31) % 256)
      }),
      record: new EntryRecord({
        len: U64.make(BigInt(data.length)),
        hash: Hash.make(blake3(data)),
        timestamp: U64.make(BigInt(i) * 1_000_003n + (i % 2 === 0 ? 0n : 1n << 63n))
      })
    })
  }
}
const requests = (n: number, from = 0) => Array.from({ length: n }, (_, i) => request(from + i))
const expectedSigned = (rs: ReadonlyArray<Crypto.SignRequest>) => rs.map((r) => signEntry(r.namespace, r.author, r.entry))

/** The group order L of Ed25519. */
const L = (1n << 252n) + 27742317777372353535851937790883648493n
const fromLE = (b: Uint8Array) => b.reduceRight((n, byte) => (n << 8n) | BigInt(byte), 0n)
const toLE = (n: bigint) => Uint8Array.from({ length: 32 }, (_, i) => Number((n >> BigInt(8 * i)) & 0xffn))

/** The same signature with S + L: equal modulo L, so only a strict verifier refuses it. */
const nonCanonicalS = (sig: Uint8Array) => {
  const out = Uint8Array.from(sig)
  out.set(toLE(fromLE(sig.subarray(32)) + L), 32)
  return out
}
const IDENTITY = fromHex("0100000000000000000000000000000000000000000000000000000000000000")!
const ORDER_FOUR = fromHex("0000000000000000000000000000000000000000000000000000000000000080")!
const withSmallOrderR = (sig: Uint8Array) => {
  const out = Uint8Array.from(sig)
  out.set(IDENTITY, 0)
  return out
}
const flipped = (sig: Uint8Array, at: number) => {
  const out = Uint8Array.from(sig)
  out[at] = out[at]! ^ 0x01
  return out
}
/** 32 bytes that are not the encoding of any curve point. */
const NOT_A_POINT = (() => {
  for (let n = 1; n < 256; n++) {
    const bytes = seeded(n)
    if (Ed.publicKeyObject(bytes) === undefined && !Ed.isSmallOrderEncoding(bytes)) return bytes
  }
  return undefined
})()!


const KINDS = {
  ok: (e: SignedEntry) => [e, "ok"],
  namespaceSignature: (e: SignedEntry) => [withFields(e, { namespaceSignature: flipped(e.signature.namespace, 3) }), "signature"],
  authorSignature: (e: SignedEntry) => [withFields(e, { authorSignature: flipped(e.signature.author, 50) }), "signature"],
  namespaceSPlusL: (e: SignedEntry) => [withFields(e, { namespaceSignature: nonCanonicalS(e.signature.namespace) }), "signature"],
  authorSPlusL: (e: SignedEntry) => [withFields(e, { authorSignature: nonCanonicalS(e.signature.author) }), "signature"],
  smallOrderR: (e: SignedEntry) => [withFields(e, { authorSignature: withSmallOrderR(e.signature.author) }), "signature"],
  smallOrderAuthor: (e: SignedEntry) => [withFields(e, { author: IDENTITY }), "key"],
  smallOrderNamespace: (e: SignedEntry) => [withFields(e, { namespace: ORDER_FOUR }), "key"],
  notAPoint: (e: SignedEntry) => [withFields(e, { author: NOT_A_POINT }), "key"]
} satisfies Record<string, (e: SignedEntry) => readonly [SignedEntry, Crypto.Verdict]>
type Kind = keyof typeof KINDS
const KIND_NAMES = Object.keys(KINDS).filter((k): k is Kind => k in KINDS)

const valid = expectedSigned(requests(16))
/** The entry of kind `kind` made from valid entry `i`, with its expected verdict. */
const caseOf = (kind: Kind, i: number) => KINDS[kind](valid[i % valid.length]!)

// ---------------------------------------------------------------------------------------------------------------
// The shared suite

const IMPLEMENTATIONS: ReadonlyArray<readonly [string, () => Layer.Layer<Crypto.Crypto>]> = [
  ["1 worker", () => Crypto.layer(1)],
  ["3 workers", () => Crypto.layer(3)],
  ["inline", () => Crypto.layerInline]
]

for (const [name, layer] of IMPLEMENTATIONS) {
  it.layer(layer())(`Crypto (${name})`, (it) => {
    it.effect("signs a batch of 100 exactly as signEntry, in order", () =>
      Effect.gen(function*() {
        const crypto = yield* Crypto.Crypto
        const rs = requests(100)
        const signed = yield* crypto.signEntries(rs)
        const expected = expectedSigned(rs)
        assert.strictEqual(signed.length, 100)
        signed.forEach((e, i) => {
          assert.isTrue(signedEntryEquals(e, expected[i]!), `#${i}`)
          assert.strictEqual(e.entry, rs[i]!.entry, `#${i} keeps its entry`)
        })
        const keys = new PublicKeyCache()
        assert.isTrue(signed.every((e) => verifySignedEntry(keys, e) === "ok"))
        assert.deepStrictEqual(yield* crypto.verifyEntries(keys, signed), signed.map(() => "ok"))
      }))

    it.effect("concurrent batches do not mix their results", () =>
      Effect.gen(function*() {
        const crypto = yield* Crypto.Crypto
        const batches = Array.from({ length: 8 }, (_, b) => requests(10 + b * 7, b * 100))
        const signed = yield* Effect.forEach(batches, crypto.signEntries, { concurrency: "unbounded" })
        batches.forEach((rs, b) => {
          const expected = expectedSigned(rs)
          signed[b]!.forEach((e, i) => assert.isTrue(signedEntryEquals(e, expected[i]!), `batch ${b} #${i}`))
        })
        const keys = new PublicKeyCache()
        const mixed = batches.map((_, b) => KIND_NAMES.map((kind, i) => caseOf(kind, b + i)))
        const verdicts = yield* Effect.forEach(mixed, (cases) => crypto.verifyEntries(keys, cases.map(([e]) => e)), {
          concurrency: "unbounded"
        })
        mixed.forEach((cases, b) => assert.deepStrictEqual(verdicts[b], cases.map(([, v]) => v), `batch ${b}`))
      }))

    it.effect("verifyEntries: ok, bad byte, S + L, small-order R, small-order or invalid keys", () =>
      Effect.gen(function*() {
        const crypto = yield* Crypto.Crypto
        const cases = KIND_NAMES.map((kind, i) => caseOf(kind, i))
        const keys = new PublicKeyCache()
        const verdicts = yield* crypto.verifyEntries(keys, cases.map(([e]) => e))
        assert.deepStrictEqual(
          KIND_NAMES.map((kind, i) => `${kind}:${verdicts[i]}`),
          cases.map(([, v], i) => `${KIND_NAMES[i]}:${v}`)
        )
        // The same verdicts as the reference function, and again with the now warm key cache.
        assert.deepStrictEqual(verdicts, cases.map(([e]) => verifySignedEntry(new PublicKeyCache(), e)))
        assert.deepStrictEqual(yield* crypto.verifyEntries(keys, cases.map(([e]) => e)), verdicts)
      }))

    it.effect.prop(
      "verifyEntries gives every entry of a random batch the verdict of its kind",
      [fc.array(fc.constantFrom(...KIND_NAMES), { maxLength: 40 })],
      ([kinds]) =>
        Effect.gen(function*() {
          const crypto = yield* Crypto.Crypto
          const cases = kinds.map((kind, i) => caseOf(kind, i))
          const verdicts = yield* crypto.verifyEntries(new PublicKeyCache(), cases.map(([e]) => e))
          assert.deepStrictEqual(verdicts, cases.map(([, v]) => v))
        }),
      { fastCheck: { numRuns: 50 } }
    )

    it.effect("batches below the inline threshold (and around it) work", () =>
      Effect.gen(function*() {
        const crypto = yield* Crypto.Crypto
        for (const n of [0, 1, 2, 3, 4, 5, 9]) {
          const rs = requests(n, 1000)
          const signed = yield* crypto.signEntries(rs)
          const expected = expectedSigned(rs)
          assert.strictEqual(signed.length, n)
          signed.forEach((e, i) => assert.isTrue(signedEntryEquals(e, expected[i]!), `${n}: #${i}`))
          const cases = signed.map((e, i) => (i % 2 === 1 ? KINDS.authorSPlusL(e) : KINDS.ok(e)))
          assert.deepStrictEqual(
            yield* crypto.verifyEntries(new PublicKeyCache(), cases.map(([e]) => e)),
            cases.map(([, v]) => v),
            `${n}`
          )
        }
      }))
  })
}

// ---------------------------------------------------------------------------------------------------------------
// Lifecycle

describe("Crypto.layer lifecycle", () => {
  it.live("closing the layer's scope terminates its workers, also with a batch in flight", () =>
    Effect.gen(function*() {
      const live = new Set<number>()
      const hook = createHook({
        init: (id, type) => void (type === "WORKER" && live.add(id)),
        destroy: (id) => void live.delete(id)
      })
      yield* Effect.acquireRelease(Effect.sync(() => hook.enable()), () => Effect.sync(() => hook.disable()))
      const nextTurn = Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))
      const settled = Effect.gen(function*() {
        for (let i = 0; i < 200 && live.size > 0; i++) yield* nextTurn
        return live.size
      })

      for (const interruptInFlight of [false, true]) {
        const scope = yield* Scope.make()
        const service = Context.get(yield* Layer.buildWithScope(Crypto.layer(3), scope), Crypto.Crypto)
        assert.strictEqual(live.size, 0, "workers start on first use")
        const signed = yield* service.signEntries(requests(30))
        assert.strictEqual(signed.length, 30)
        yield* service.verifyEntries(new PublicKeyCache(), signed)
        assert.strictEqual(live.size, 3, "three workers started")
        if (interruptInFlight) {
          const fiber = yield* Effect.fork(service.signEntries(requests(3000)))
          yield* Effect.yieldNow()
          yield* Fiber.interrupt(fiber)
        }
        yield* Scope.close(scope, Exit.void)
        assert.strictEqual(yield* settled, 0, "every worker terminated")
      }
    }).pipe(Effect.scoped))
})
