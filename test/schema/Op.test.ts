import { assert, describe, it } from "@effect/vitest"
import { Either, Schema } from "effect"
import * as fc from "fast-check"
import { concat, equals, fromHex, toHex } from "../../src/internal/bytes.js"
import { makeSignedEntry, SignedEntryFromBytes, signedEntryEquals } from "../../src/schema/Entry.js"
import { Hash, NamespaceId } from "../../src/schema/Keys.js"
import {
  ContentReady,
  decodeOp,
  maxHeadsLength,
  type Op,
  OpFromBytes,
  Put,
  SYNC_REPORT_OVERHEAD,
  SyncReport
} from "../../src/schema/Op.js"
import * as V from "../utils/vectors.js"

const encode = Schema.encodeSync(OpFromBytes)
const decode = Schema.decodeSync(OpFromBytes)
const decodeEither = Schema.decodeEither(OpFromBytes)

const fails = (bytes: Uint8Array): void => {
  assert.isTrue(Either.isLeft(decodeEither(bytes)), `expected ${toHex(bytes)} to fail`)
}

const seq = (n: number, from = 0): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (from + i) & 0xff)

const opEquals = (a: Op, b: Op): boolean => {
  switch (a._tag) {
    case "Put":
      return b._tag === "Put" && signedEntryEquals(a.entry, b.entry) &&
        (a.content === undefined ? b.content === undefined : b.content !== undefined && equals(a.content, b.content))
    case "ContentReady":
      return b._tag === "ContentReady" && equals(a.hash, b.hash)
    case "SyncReport":
      return b._tag === "SyncReport" && equals(a.namespace, b.namespace) && equals(a.heads, b.heads)
  }
}

const bytes32 = fc.uint8Array({ minLength: 32, maxLength: 32 })
const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n })

const arbEntry = fc
  .record({
    namespace: bytes32,
    author: bytes32,
    key: fc.uint8Array({ maxLength: 200 }),
    len: u64,
    hash: bytes32,
    timestamp: u64,
    authorSignature: fc.uint8Array({ minLength: 64, maxLength: 64 }),
    namespaceSignature: fc.uint8Array({ minLength: 64, maxLength: 64 })
  })
  .map(makeSignedEntry)

const arbOp: fc.Arbitrary<Op> = fc.oneof(
  arbEntry.map((entry) => new Put({ entry })),
  fc.tuple(arbEntry, fc.uint8Array({ maxLength: 300 })).map(([entry, content]) => new Put({ entry, content })),
  bytes32.map((h) => new ContentReady({ hash: Hash.make(h) })),
  fc
    .tuple(bytes32, fc.uint8Array({ maxLength: 400 }))
    .map(([ns, heads]) => new SyncReport({ namespace: NamespaceId.make(ns), heads }))
)

describe("Op postcard codec (spec 05 §8.1)", () => {
  const vector = fromHex(V.SIGNED_ENTRY)!
  const entry = Schema.decodeSync(SignedEntryFromBytes)(vector)

  it("encodes Put as variant 0 followed by the SignedEntry bytes", () => {
    const encoded = encode(new Put({ entry }))
    assert.strictEqual(toHex(encoded), "00" + V.SIGNED_ENTRY)
    const back = decode(encoded)
    assert.isTrue(opEquals(back, new Put({ entry })))
  })

  it("encodes Put with inline content as variant 3: the SignedEntry bytes, then length-prefixed content", () => {
    const content = seq(130, 3)
    const encoded = encode(new Put({ entry, content }))
    // 130 = 0x82 0x01 as a varint
    assert.strictEqual(toHex(encoded), "03" + V.SIGNED_ENTRY + "8201" + toHex(content))
    const back = decode(encoded)
    assert.isTrue(opEquals(back, new Put({ entry, content })))
    assert.strictEqual(back._tag === "Put" ? back.content?.length : -1, 130)
    const empty = encode(new Put({ entry, content: new Uint8Array(0) }))
    assert.strictEqual(toHex(empty), "03" + V.SIGNED_ENTRY + "00")
    // Without content a Put stays variant 0, byte-compatible with the reference.
    assert.isTrue(opEquals(decode(fromHex("00" + V.SIGNED_ENTRY)!), new Put({ entry })))
  })

  it("rejects a variant-3 Put whose content is truncated, missing or followed by trailing bytes", () => {
    fails(concat(Uint8Array.of(3), vector))
    fails(concat(Uint8Array.of(3), vector, Uint8Array.of(5, 1, 2, 3)))
    fails(concat(Uint8Array.of(3), vector, Uint8Array.of(2, 1, 2, 3)))
    fails(concat(Uint8Array.of(3), vector, Uint8Array.of(0x80)))
    fails(concat(Uint8Array.of(3), vector.subarray(0, 40)))
  })

  it("encodes ContentReady as variant 1 and 32 raw hash bytes", () => {
    const hash = Hash.make(seq(32, 7))
    assert.strictEqual(toHex(encode(new ContentReady({ hash }))), "01" + toHex(seq(32, 7)))
  })

  it("encodes SyncReport as variant 2, 32 raw namespace bytes, then length-prefixed heads", () => {
    const op = new SyncReport({ namespace: NamespaceId.make(seq(32)), heads: seq(200, 9) })
    // 200 = 0xc8 0x01 as a varint
    assert.strictEqual(toHex(encode(op)), "02" + toHex(seq(32)) + "c801" + toHex(seq(200, 9)))
    const empty = new SyncReport({ namespace: NamespaceId.make(seq(32)), heads: new Uint8Array(0) })
    assert.strictEqual(toHex(encode(empty)), "02" + toHex(seq(32)) + "00")
  })

  it("round-trips every Op byte for byte", () => {
    fc.assert(
      fc.property(arbOp, (op) => {
        const encoded = encode(op)
        const back = decode(encoded)
        assert.isTrue(opEquals(back, op))
        assert.strictEqual(toHex(encode(back)), toHex(encoded))
      }),
      { numRuns: 500 }
    )
  })

  it("decodeOp (the gossip receive path) agrees with the Schema: same Op, instances of the same classes, same hash", () => {
    fc.assert(
      fc.property(arbOp, (op) => {
        const encoded = encode(op)
        const fast = decodeOp(encoded)
        assert.isTrue(Either.isRight(fast))
        const value = Either.getOrThrow(fast)
        assert.isTrue(opEquals(value, op))
        assert.strictEqual(Object.getPrototypeOf(value), Object.getPrototypeOf(op))
        assert.deepStrictEqual(Object.keys(value), Object.keys(op))
        assert.isTrue(Schema.is(Schema.typeSchema(OpFromBytes))(value))
      }),
      { numRuns: 300 }
    )
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }).map((b) => concat(Uint8Array.of(3), vector, b)), (bytes) => {
        assert.strictEqual(Either.isRight(decodeOp(bytes)), Either.isRight(decodeEither(bytes)))
      }),
      { numRuns: 300 }
    )
  })

  it("rejects unknown variants, truncation and trailing bytes", () => {
    fails(new Uint8Array(0))
    fails(Uint8Array.of(3))
    fails(Uint8Array.of(4, ...seq(32)))
    fails(Uint8Array.of(0x80, 0x00)) // overlong varint tag
    fails(Uint8Array.of(1, ...seq(31)))
    fails(Uint8Array.of(1, ...seq(33)))
    fails(Uint8Array.of(2, ...seq(32), 5, 1, 2, 3))
    fails(Uint8Array.of(2, ...seq(32)))
    fails(concat(Uint8Array.of(0), vector.subarray(0, vector.length - 1)))
    fails(concat(Uint8Array.of(0), vector, Uint8Array.of(0)))
  })

  it("fails every truncation of an encoded Op", () => {
    fc.assert(
      fc.property(arbOp, fc.nat(), (op, cut) => {
        const encoded = encode(op)
        fails(encoded.subarray(0, cut % encoded.length))
      }),
      { numRuns: 300 }
    )
  })

  it("random bytes never throw: they decode or fail with a ParseError", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 600 }),
          fc.uint8Array({ maxLength: 300 }).map((b) => concat(Uint8Array.of(0), b)),
          fc.uint8Array({ maxLength: 300 }).map((b) => concat(Uint8Array.of(2), b)),
          fc.uint8Array({ maxLength: 300 }).map((b) => concat(Uint8Array.of(3), b)),
          fc.uint8Array({ maxLength: 40 }).map((b) => concat(Uint8Array.of(3), vector, b))
        ),
        (bytes) => {
          const result = decodeEither(bytes)
          if (Either.isRight(result)) assert.strictEqual(toHex(encode(result.right)), toHex(bytes))
          else assert.strictEqual(result.left._tag, "ParseError")
        }
      ),
      { numRuns: 2000 }
    )
  })

  it("refuses to encode a hash or namespace of the wrong length", () => {
    const bad = new ContentReady({ hash: Hash.make(seq(31), true) }, true)
    assert.isTrue(Either.isLeft(Schema.encodeEither(OpFromBytes)(bad)))
  })

  it("sizes the heads budget so a full SyncReport fits the message limit", () => {
    const limit = 4096
    const heads = new Uint8Array(maxHeadsLength(limit))
    const encoded = encode(new SyncReport({ namespace: NamespaceId.make(seq(32)), heads }))
    assert.isAtMost(encoded.length, limit)
    assert.isAtLeast(encoded.length, limit - 1)
    assert.strictEqual(maxHeadsLength(10), 0)
    assert.strictEqual(SYNC_REPORT_OVERHEAD, 36)
  })
})
