import { assert, describe, it } from "@effect/vitest"
import { blake3 as nobleBlake3 } from "@noble/hashes/blake3.js"
import { ed25519 } from "@noble/curves/ed25519.js"
import { Either, Schema } from "effect"
import * as fc from "fast-check"
import { blake3, EMPTY_HASH } from "../../src/internal/blake3.js"
import { fromHex, toHex, utf8, xorInto } from "../../src/internal/bytes.js"
import * as Ed from "../../src/internal/ed25519.js"
import { PublicKeyCache, signEntry, validateEntry, verifySignedEntry } from "../../src/internal/signing.js"
import {
  Entry,
  EntryRecord,
  entryFingerprint,
  makeSignedEntry,
  RecordIdentifier,
  SignedEntry,
  SignedEntryFromBytes,
  signedEntryEquals,
  signingBytes,
  U64
} from "../../src/schema/Entry.js"
import {
  Author,
  AuthorFromBytes,
  AuthorFromHex,
  AuthorId,
  AuthorIdFromHex,
  Hash,
  NamespaceIdFromHex,
  NamespaceSecret,
  NamespaceSecretFromBytes
} from "../../src/schema/Keys.js"
import * as V from "../utils/vectors.js"

const author = Author.fromSeed(V.AUTHOR_SEED)
const namespace = NamespaceSecret.fromSeed(V.NAMESPACE_SEED)

const vectorEntry = () =>
  signEntry(
    namespace,
    author,
    new Entry({
      id: new RecordIdentifier({ namespace: namespace.id, author: author.id, key: utf8(V.KEY) }),
      record: new EntryRecord({ len: U64.make(0n), hash: Hash.make(EMPTY_HASH), timestamp: U64.make(V.TIMESTAMP) })
    })
  )

describe("keys", () => {
  it("derives the spec's ids from the seeds", () => {
    assert.strictEqual(toHex(author.id), V.AUTHOR_ID)
    assert.strictEqual(toHex(namespace.id), V.NAMESPACE_ID)
  })
  it("encodes secrets as 0x20 ‖ seed and decodes them back", () => {
    assert.strictEqual(toHex(Schema.encodeSync(AuthorFromBytes)(author)), V.AUTHOR_BYTES)
    assert.strictEqual(toHex(Schema.encodeSync(NamespaceSecretFromBytes)(namespace)), V.NAMESPACE_SECRET_BYTES)
    const back = Schema.decodeSync(AuthorFromBytes)(fromHex(V.AUTHOR_BYTES)!)
    assert.strictEqual(toHex(back.id), V.AUTHOR_ID)
    assert.isTrue(Either.isLeft(Schema.decodeEither(AuthorFromBytes)(fromHex("21" + "a1".repeat(32))!)))
    assert.isTrue(Either.isLeft(Schema.decodeEither(AuthorFromBytes)(fromHex("20" + "a1".repeat(31))!)))
  })
  it("never shows a secret in its printed or JSON form", () => {
    const secretHex = "a1".repeat(32)
    for (const text of [String(author), JSON.stringify(author), String(namespace), JSON.stringify({ namespace })]) {
      assert.notInclude(text, secretHex)
      assert.notInclude(text, "b2".repeat(32))
    }
    assert.strictEqual(author.toSecretHex(), secretHex)
  })
  it("parses hex ids with clear errors", () => {
    assert.strictEqual(toHex(Schema.decodeSync(AuthorIdFromHex)(V.AUTHOR_ID.toUpperCase())), V.AUTHOR_ID)
    const msg = (s: string) => {
      const r = Schema.decodeEither(NamespaceIdFromHex)(s)
      return Either.isLeft(r) ? r.left.message : ""
    }
    assert.include(msg("zz".repeat(32)), "not hex")
    assert.include(msg("ab".repeat(31)), "expected 32 bytes, got 31")
    // y = 2 is not on the curve
    assert.include(msg("02" + "00".repeat(31)), "not a valid Ed25519 public key")
    // the identity is a valid encoding but of small order
    assert.include(msg("01" + "00".repeat(31)), "not a valid Ed25519 public key")
    // secrets accept any 32 bytes
    assert.isTrue(Either.isRight(Schema.decodeEither(AuthorFromHex)("00".repeat(32))))
  })
  it("node:crypto and noble derive the same keys and signatures", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ maxLength: 300 }), (seed, msg) => {
        const pub = ed25519.getPublicKey(seed)
        const nodeSig = Ed.sign(Ed.secretKeyObject(seed), msg)
        assert.strictEqual(toHex(nodeSig), toHex(ed25519.sign(msg, seed)))
        assert.isTrue(Ed.verify(Ed.publicKeyObject(pub)!, msg, nodeSig))
        assert.isTrue(ed25519.verify(nodeSig, msg, pub, { zip215: false }))
      }),
      { numRuns: 50 }
    )
  })
  it("lists exactly the small-order encodings: the multiples of a point of order 8", () => {
    // Every multiple of a point T of order 8 is a small-order point, and there are exactly eight of them.
    const t = ed25519.Point.fromBytes(fromHex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")!)
    const torsion: Array<string> = []
    let q = ed25519.Point.ZERO
    for (let i = 0; i < 8; i++) {
      q = q.add(t)
      torsion.push(toHex(q.toBytes()))
    }
    assert.sameMembers(torsion, Ed.SMALL_ORDER.map(toHex))
    for (const p of Ed.SMALL_ORDER) assert.isTrue(Ed.isSmallOrderEncoding(p))
    assert.isFalse(Ed.isSmallOrderEncoding(author.id))
  })
})

describe("blake3", () => {
  it("matches @noble/hashes for short and long inputs", () => {
    assert.strictEqual(toHex(EMPTY_HASH), V.EMPTY_HASH)
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 10_000 }), (data) => {
        assert.strictEqual(toHex(blake3(data)), toHex(nobleBlake3(data)))
      }),
      { numRuns: 200 }
    )
    const big = new Uint8Array(3 << 20).map((_, i) => i * 7)
    assert.strictEqual(toHex(blake3(big)), toHex(nobleBlake3(big)))
  })
})

describe("SignedEntry", () => {
  it("encodes the spec vector byte for byte and decodes it back", () => {
    const e = vectorEntry()
    const bytes = Schema.encodeSync(SignedEntryFromBytes)(e)
    assert.strictEqual(bytes.length, 250)
    assert.strictEqual(toHex(bytes), V.SIGNED_ENTRY)
    const back = Schema.decodeSync(SignedEntryFromBytes)(fromHex(V.SIGNED_ENTRY)!)
    assert.isTrue(signedEntryEquals(back, e))
    assert.strictEqual(verifySignedEntry(new PublicKeyCache(), back), "ok")
  })
  it("computes the spec's fingerprints", () => {
    const fp = entryFingerprint(vectorEntry().entry)
    assert.strictEqual(toHex(fp), V.ENTRY_FINGERPRINT)
    const set = Uint8Array.from(EMPTY_HASH)
    xorInto(set, fp)
    assert.strictEqual(toHex(set), V.SET_FINGERPRINT)
  })
  it("rejects malformed bytes with a ParseError", () => {
    const good = fromHex(V.SIGNED_ENTRY)!
    const bad = (b: Uint8Array) => Either.isLeft(Schema.decodeEither(SignedEntryFromBytes)(b))
    for (let n = 0; n < good.length; n++) assert.isTrue(bad(good.subarray(0, n)), `truncated at ${n}`)
    assert.isTrue(bad(new Uint8Array([...good, 0])), "trailing byte")
    // overlong varint for the timestamp: append a continuation + zero byte
    const overlong = Uint8Array.from([...good.subarray(0, good.length - 1), good[good.length - 1]! | 0x80, 0x00])
    assert.isTrue(bad(overlong), "overlong varint")
    // id length below 64
    const shortId = Uint8Array.from(good)
    shortId[128] = 0x3f
    assert.isTrue(bad(shortId), "short id")
    // a u64 varint of 11 bytes
    const huge = Uint8Array.from([...good.subarray(0, 128 + 1 + 80), ...new Array(10).fill(0xff), 0x01])
    assert.isTrue(bad(huge), "varint overflow")
  })
  it("encode ∘ decode = identity (property)", () => {
    const arb = fc.record({
      namespace: fc.uint8Array({ minLength: 32, maxLength: 32 }),
      author: fc.uint8Array({ minLength: 32, maxLength: 32 }),
      key: fc.uint8Array({ maxLength: 200 }),
      len: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
      hash: fc.uint8Array({ minLength: 32, maxLength: 32 }),
      timestamp: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
      authorSignature: fc.uint8Array({ minLength: 64, maxLength: 64 }),
      namespaceSignature: fc.uint8Array({ minLength: 64, maxLength: 64 })
    })
    fc.assert(
      fc.property(arb, (fields) => {
        const e = makeSignedEntry(fields)
        const bytes = Schema.encodeSync(SignedEntryFromBytes)(e)
        const back = Schema.decodeSync(SignedEntryFromBytes)(bytes)
        assert.isTrue(signedEntryEquals(back, e))
        assert.strictEqual(toHex(Schema.encodeSync(SignedEntryFromBytes)(back)), toHex(bytes))
        assert.isTrue(Schema.is(SignedEntry)(back))
      })
    )
  })
  it("signs over the spec's signing bytes", () => {
    const e = vectorEntry()
    const bytes = signingBytes(e.entry)
    assert.strictEqual(bytes.length, 112 + V.KEY.length)
    assert.isTrue(ed25519.verify(e.signature.author, bytes, author.id, { zip215: false }))
    assert.isTrue(ed25519.verify(e.signature.namespace, bytes, namespace.id, { zip215: false }))
  })
  it("verifies strictly: tampering, non-canonical S, small-order R and keys fail", () => {
    const keys = new PublicKeyCache()
    const e = vectorEntry()
    const withSig = (author: Uint8Array, ns: Uint8Array = e.signature.namespace) =>
      makeSignedEntry({
        namespace: e.namespace,
        author: e.author,
        key: e.key,
        len: e.record.len,
        hash: e.record.hash,
        timestamp: e.record.timestamp,
        authorSignature: author,
        namespaceSignature: ns
      })
    const flipped = Uint8Array.from(e.signature.author)
    flipped[5]! ^= 1
    assert.strictEqual(verifySignedEntry(keys, withSig(flipped)), "signature")
    // S + L is the same signature mathematically but not canonical
    const L = 2n ** 252n + 27742317777372353535851937790883648493n
    const sig = Uint8Array.from(e.signature.author)
    let s = 0n
    for (let i = 31; i >= 0; i--) s = (s << 8n) | BigInt(sig[32 + i]!)
    s += L
    for (let i = 0; i < 32; i++) sig[32 + i] = Number((s >> BigInt(8 * i)) & 0xffn)
    assert.strictEqual(verifySignedEntry(keys, withSig(sig)), "signature")
    const smallR = Uint8Array.from(e.signature.author)
    smallR.set(fromHex("01" + "00".repeat(31))!, 0)
    assert.strictEqual(verifySignedEntry(keys, withSig(smallR)), "signature")
    const smallKey = makeSignedEntry({
      namespace: e.namespace,
      author: AuthorId.make(fromHex("01" + "00".repeat(31))!),
      key: e.key,
      len: 0n,
      hash: e.record.hash,
      timestamp: e.record.timestamp,
      authorSignature: e.signature.author,
      namespaceSignature: e.signature.namespace
    })
    assert.strictEqual(verifySignedEntry(keys, smallKey), "key")
  })
  it("validates in the spec's order", () => {
    const keys = new PublicKeyCache()
    const e = vectorEntry()
    const other = NamespaceSecret.fromSeed(new Uint8Array(32).fill(3))
    assert.strictEqual(validateEntry(keys, V.TIMESTAMP, other.id, e, "remote")?._tag, "InvalidNamespace")
    assert.isUndefined(validateEntry(keys, V.TIMESTAMP, namespace.id, e, "remote"))
    const tooNew = V.TIMESTAMP - 600_000_001n
    assert.strictEqual(validateEntry(keys, tooNew, namespace.id, e, "remote")?._tag, "TooFarInTheFuture")
    assert.isUndefined(validateEntry(keys, V.TIMESTAMP - 600_000_000n, namespace.id, e, "remote"))
  })
})
