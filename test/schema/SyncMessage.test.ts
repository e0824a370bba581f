import { assert, describe, it } from "@effect/vitest"
import { Either, Schema } from "effect"
import * as fc from "fast-check"
import { fromHex, toHex } from "../../src/internal/bytes.js"
import { CONTENT_STATUSES, makeSignedEntry, SignedEntryFromBytes } from "../../src/schema/Entry.js"
import { Bytes32, NamespaceId } from "../../src/schema/Keys.js"
import { Message, type MessagePart, Range, RangeFingerprint, RangeItem } from "../../src/schema/Message.js"
import { Writer } from "../../src/internal/postcard.js"
import { MAX_KEY_LENGTH } from "../../src/schema/Entry.js"
import { MAX_PARTS, MAX_VALUES } from "../../src/schema/constants.js"
import {
  Abort,
  ABORT_REASONS,
  AbortReason,
  CompactSyncMessageFromBytes,
  Init,
  MAX_COMPACT_BOUND_BYTES,
  Sync,
  type SyncMessage,
  SyncMessageFromBytes
} from "../../src/schema/SyncMessage.js"
import * as V from "../utils/vectors.js"

const encode = Schema.encodeSync(SyncMessageFromBytes)
const decode = Schema.decodeSync(SyncMessageFromBytes)
const decodeEither = Schema.decodeEither(SyncMessageFromBytes)

const fails = (bytes: Uint8Array | ReadonlyArray<number>): string => {
  const r = decodeEither(bytes instanceof Uint8Array ? bytes : Uint8Array.from(bytes))
  assert.isTrue(Either.isLeft(r), `expected ${toHex(Uint8Array.from(bytes))} to fail`)
  return Either.isLeft(r) ? r.left.message : ""
}

const bytes = (...parts: ReadonlyArray<number | ReadonlyArray<number> | Uint8Array>): Uint8Array =>
  Uint8Array.from(parts.flatMap((p) => (typeof p === "number" ? [p] : Array.from(p))))

const seq = (n: number, from = 0): Array<number> => Array.from({ length: n }, (_, i) => (from + i) & 0xff)

const ns = NamespaceId.make(Uint8Array.from(seq(32)))
const emptyMessage = new Message({ parts: [] })
const range = (x: ReadonlyArray<number>, y: ReadonlyArray<number>) =>
  new Range({ x: Uint8Array.from(x), y: Uint8Array.from(y) })

describe("SyncMessage postcard codec (spec 04 §4)", () => {
  it("encodes Abort as variant 2 and the reason's index", () => {
    assert.strictEqual(toHex(encode(new Abort({ reason: "NotFound" }))), "0200")
    assert.strictEqual(toHex(encode(new Abort({ reason: "AlreadySyncing" }))), "0201")
    assert.strictEqual(toHex(encode(new Abort({ reason: "InternalServerError" }))), "0202")
    for (const reason of ABORT_REASONS) {
      const back = decode(encode(new Abort({ reason })))
      assert.strictEqual(back._tag, "Abort")
      assert.strictEqual(back._tag === "Abort" ? back.reason : "", reason)
    }
  })

  it("encodes Init as 0, the 32 raw namespace bytes (no length prefix), then the Message", () => {
    const init = new Init({ namespace: ns, message: emptyMessage })
    assert.strictEqual(toHex(encode(init)), toHex(bytes(0x00, seq(32), 0x00)))
    const back = decode(bytes(0x00, seq(32), 0x00))
    assert.strictEqual(back._tag, "Init")
    if (back._tag === "Init") {
      assert.strictEqual(toHex(back.namespace), toHex(ns))
      assert.strictEqual(back.message.parts.length, 0)
    }
  })

  it("encodes Sync as 1 and the Message (newtype variant)", () => {
    assert.strictEqual(toHex(encode(new Sync({ message: emptyMessage }))), "0100")
    const x = seq(64, 1)
    const y = seq(65, 100)
    const fp = seq(32, 200)
    const message = new Message({
      parts: [new RangeFingerprint({ range: range(x, y), fingerprint: Bytes32.make(Uint8Array.from(fp)) })]
    })
    // Sync, 1 part, RangeFingerprint, len 64, x, len 65, y, 32 raw fingerprint bytes
    const expected = bytes(0x01, 0x01, 0x00, 0x40, x, 0x41, y, fp)
    assert.strictEqual(toHex(encode(new Sync({ message }))), toHex(expected))
    assert.strictEqual(toHex(encode(decode(expected))), toHex(expected))
  })

  it("encodes a RangeItem with one value byte for byte", () => {
    const authorSig = seq(64, 10)
    const nsSig = seq(64, 80)
    const namespace = seq(32, 150)
    const author = seq(32, 190)
    const key = [0x6b, 0x65, 0x79]
    const hash = seq(32, 7)
    const entry = makeSignedEntry({
      namespace: Uint8Array.from(namespace),
      author: Uint8Array.from(author),
      key: Uint8Array.from(key),
      len: 300n,
      hash: Uint8Array.from(hash),
      timestamp: 1n,
      authorSignature: Uint8Array.from(authorSig),
      namespaceSignature: Uint8Array.from(nsSig)
    })
    const x = seq(64, 3)
    const message = new Message({
      parts: [new RangeItem({ range: range(x, x), values: [[entry, "Missing"]], haveLocal: true })]
    })
    const expected = bytes(
      0x01, // Sync
      0x01, // one part
      0x01, // RangeItem
      0x40, x, 0x40, x, // range x == y
      0x01, // one value
      authorSig, nsSig, 0x43, namespace, author, key, // signatures, id of 64 + 3 bytes
      0xac, 0x02, hash, 0x01, // len 300 as a varint, hash, timestamp 1
      0x02, // ContentStatus Missing
      0x01 // haveLocal
    )
    assert.strictEqual(toHex(encode(new Sync({ message }))), toHex(expected))
  })

  it("embeds the spec's SignedEntry vector unchanged", () => {
    const entry = Schema.decodeSync(SignedEntryFromBytes)(fromHex(V.SIGNED_ENTRY)!)
    const x = seq(64)
    const init = new Init({
      namespace: ns,
      message: new Message({
        parts: [new RangeItem({ range: range(x, x), values: [[entry, "Complete"]], haveLocal: false })]
      })
    })
    const xHex = toHex(Uint8Array.from(x))
    // Init, namespace, 1 part, RangeItem, range (x, x), 1 value, the entry, Complete, haveLocal false
    const expected = "00" + toHex(ns) + "01" + "01" + "40" + xHex + "40" + xHex + "01" + V.SIGNED_ENTRY + "00" + "00"
    assert.strictEqual(toHex(encode(init)), expected)
  })

  it("rejects unknown variants and reasons", () => {
    assert.include(fails([0x03]), "unknown SyncMessage variant 3")
    assert.include(fails([0x03, 0x00]), "unknown SyncMessage variant 3")
    assert.include(fails([0x80, 0x01, 0x00]), "unknown SyncMessage variant 128")
    assert.include(fails([0x02, 0x03]), "unknown AbortReason variant 3")
    fails([0x80, 0x00]) // overlong varint for variant 0
    fails([])
  })

  it("rejects a malformed Message inside Init or Sync", () => {
    fails([0x01, 0x01, 0x02]) // part variant 2
    fails(bytes(0x01, 0x01, 0x00, 0x3f, seq(63), 0x40, seq(64), seq(32))) // range bound of 63 bytes
    fails(bytes(0x00, seq(32), 0x01, 0x01, 0x40, seq(64), 0x40, seq(64), 0x00, 0x02)) // haveLocal byte 2
    fails(bytes(0x00, seq(32), 0x01, 0x01, 0x40, seq(64), 0x40, seq(64), 0x01, seq(128), 0x3f, seq(63))) // short id
  })

  it("rejects a short namespace: 31 bytes and the Message's first byte read as the namespace", () => {
    assert.include(fails(bytes(0x00, seq(31), 0x00)), "unexpected end of input")
    fails(bytes(0x00, seq(31)))
  })

  it("refuses to encode an invalid value", () => {
    const namespace = NamespaceId.make(new Uint8Array(31), { disableValidation: true })
    const bad = new Init({ namespace, message: emptyMessage }, true)
    const r = Schema.encodeEither(SyncMessageFromBytes)(bad)
    assert.isTrue(Either.isLeft(r))
    assert.include(Either.isLeft(r) ? r.left.message : "", "namespace of 31 bytes")
  })

  it("decoded values do not alias the input frame", () => {
    const input = bytes(0x00, seq(32), 0x00)
    const back = decode(input)
    input.fill(0xee)
    assert.strictEqual(back._tag === "Init" ? toHex(back.namespace) : "", toHex(ns))
  })
})

// ---------------------------------------------------------------------------------------------------------------
// Properties

const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n })
const bytesN = (n: number) => fc.uint8Array({ minLength: n, maxLength: n })
const arbId = fc.uint8Array({ minLength: 64, maxLength: 100 })
const arbRange = fc.tuple(arbId, arbId).map(([x, y]) => new Range({ x, y }))

const arbEntry = fc
  .record({
    namespace: bytesN(32),
    author: bytesN(32),
    key: fc.uint8Array({ maxLength: 40 }),
    len: u64,
    hash: bytesN(32),
    timestamp: u64,
    authorSignature: bytesN(64),
    namespaceSignature: bytesN(64)
  })
  .map(makeSignedEntry)

const arbPart: fc.Arbitrary<MessagePart> = fc.oneof(
  fc.tuple(arbRange, bytesN(32)).map(([range, fp]) => new RangeFingerprint({ range, fingerprint: Bytes32.make(fp) })),
  fc
    .tuple(
      arbRange,
      fc.array(fc.tuple(arbEntry, fc.constantFrom(...CONTENT_STATUSES)), { maxLength: 4 }),
      fc.boolean()
    )
    .map(([range, values, haveLocal]) => new RangeItem({ range, values, haveLocal }))
)

const arbMessage = fc.array(arbPart, { maxLength: 5 }).map((parts) => new Message({ parts }))

const arbSyncMessage: fc.Arbitrary<SyncMessage> = fc.oneof(
  fc.tuple(bytesN(32), arbMessage).map(([n, message]) => new Init({ namespace: NamespaceId.make(n), message })),
  arbMessage.map((message) => new Sync({ message })),
  fc.constantFrom(...AbortReason.literals).map((reason) => new Abort({ reason }))
)

describe("SyncMessage properties", () => {
  it("decode ∘ encode = identity, and the encoding is canonical", () => {
    fc.assert(
      fc.property(arbSyncMessage, (m) => {
        const encoded = encode(m)
        const back = decode(encoded)
        assert.deepStrictEqual(back, m)
        assert.strictEqual(toHex(encode(back)), toHex(encoded))
      }),
      { numRuns: 200 }
    )
  })

  it("every strict prefix of a valid encoding fails", () => {
    fc.assert(
      fc.property(arbSyncMessage, (m) => {
        const encoded = encode(m)
        for (let n = 0; n < encoded.length; n++) {
          assert.isTrue(Either.isLeft(decodeEither(encoded.subarray(0, n))), `prefix of ${n} bytes`)
        }
      }),
      { numRuns: 50 }
    )
  })

  it("a trailing byte fails", () => {
    fc.assert(
      fc.property(arbSyncMessage, fc.integer({ min: 0, max: 255 }), (m, extra) => {
        assert.include(fails(bytes(encode(m), extra)), "1 trailing bytes")
      }),
      { numRuns: 100 }
    )
  })

  it("an unknown variant fails whatever follows", () => {
    fc.assert(
      fc.property(fc.integer({ min: 3, max: 127 }), fc.uint8Array({ maxLength: 40 }), (tag, rest) => {
        assert.include(fails(bytes(tag, rest)), `unknown SyncMessage variant ${tag}`)
      })
    )
  })
})

// ---------------------------------------------------------------------------------------------------------------
// The compact codec (COMPACT_SYNC_PROTOCOL)

const encodeCompact = Schema.encodeSync(CompactSyncMessageFromBytes)
const decodeCompact = Schema.decodeSync(CompactSyncMessageFromBytes)
const decodeCompactEither = Schema.decodeEither(CompactSyncMessageFromBytes)
const failsCompact = (input: Uint8Array): string => {
  const r = decodeCompactEither(input)
  assert.isTrue(Either.isLeft(r), `expected ${toHex(input)} to fail`)
  return Either.isLeft(r) ? r.left.message : ""
}

/** Ids from a small pool (one namespace, two authors, short keys): neighbours share prefixes, as in a replica. */
const arbPoolId = fc
  .tuple(fc.constantFrom(1, 2), fc.uint8Array({ maxLength: 6 }).map((k) => Array.from(k)))
  .map(([author, key]) => Uint8Array.from([...seq(32), ...new Array<number>(32).fill(author), ...key]))
/** A fingerprint as the compact codec carries it: its last 16 bytes are zero after decoding. */
const arbShortFp = bytesN(16).map((b) => {
  const fp = new Uint8Array(32)
  fp.set(b)
  return Bytes32.make(fp)
})
/** Parts whose ranges often follow one another (x = the previous part's y), as a split's do. */
const arbCompactMessage = fc
  .array(
    fc.tuple(
      fc.boolean(),
      arbPoolId,
      arbPoolId,
      fc.oneof(
        arbShortFp.map((fp) => ({ fp })),
        fc.tuple(fc.array(fc.tuple(arbEntry, fc.constantFrom(...CONTENT_STATUSES)), { maxLength: 3 }), fc.boolean())
          .map(([values, haveLocal]) => ({ values, haveLocal }))
      )
    ),
    { maxLength: 8 }
  )
  .map((specs) => {
    const parts: Array<MessagePart> = []
    let lastY: Uint8Array | undefined
    for (const [follow, x0, y, body] of specs) {
      const x = follow && lastY !== undefined ? lastY : x0
      const r = new Range({ x, y })
      lastY = y
      parts.push(
        "fp" in body
          ? new RangeFingerprint({ range: r, fingerprint: body.fp })
          : new RangeItem({ range: r, values: body.values, haveLocal: body.haveLocal })
      )
    }
    return new Message({ parts })
  })
const arbCompactSyncMessage: fc.Arbitrary<SyncMessage> = fc.oneof(
  fc.tuple(bytesN(32), arbCompactMessage).map(([n, message]) => new Init({ namespace: NamespaceId.make(n), message })),
  arbCompactMessage.map((message) => new Sync({ message })),
  fc.constantFrom(...AbortReason.literals).map((reason) => new Abort({ reason }))
)

describe("compact codec", () => {
  it("shares a part's lower bound with the upper bound before it, prefix-codes bounds, sends 16 fingerprint bytes", () => {
    const a = seq(64)
    const b = [...seq(64), 7]
    const c = [...seq(63), 200, 1]
    const fp1 = Bytes32.make(Uint8Array.from([...seq(16, 100), ...new Array<number>(16).fill(0)]))
    const fp2 = Bytes32.make(Uint8Array.from([...seq(16, 50), ...new Array<number>(16).fill(0)]))
    const message = new Message({
      parts: [
        new RangeFingerprint({ range: range(a, b), fingerprint: fp1 }),
        new RangeFingerprint({ range: range(b, c), fingerprint: fp2 })
      ]
    })
    const expected = bytes(
      0x01, // Sync
      0x02, // two parts
      0x00, 0x00, 0x40, a, // fingerprint; x: no prefix, 64 bytes
      0x40, 0x01, 0x07, // y: 64 bytes of x, then 1 byte
      fp1.subarray(0, 16),
      0x04, // fingerprint, x = the previous y
      0x3f, 0x02, 200, 0x01, // y: 63 bytes of the previous bound, then 2 bytes
      fp2.subarray(0, 16)
    )
    assert.strictEqual(toHex(encodeCompact(new Sync({ message }))), toHex(expected))
    assert.deepStrictEqual(decodeCompact(expected), new Sync({ message }))
  })

  it("decode ∘ encode = identity (fingerprints cut to 16 bytes), and the encoding is canonical", () => {
    fc.assert(
      fc.property(arbCompactSyncMessage, (m) => {
        const encoded = encodeCompact(m)
        const back = decodeCompact(encoded)
        assert.deepStrictEqual(back, m)
        assert.strictEqual(toHex(encodeCompact(back)), toHex(encoded))
      }),
      { numRuns: 200 }
    )
  })

  it("every strict prefix of a valid encoding fails, and so does a trailing byte", () => {
    fc.assert(
      fc.property(arbCompactSyncMessage, fc.integer({ min: 0, max: 255 }), (m, extra) => {
        const encoded = encodeCompact(m)
        for (let n = 0; n < encoded.length; n++) {
          assert.isTrue(Either.isLeft(decodeCompactEither(encoded.subarray(0, n))), `prefix of ${n} bytes`)
        }
        assert.include(failsCompact(bytes(encoded, extra)), "1 trailing bytes")
      }),
      { numRuns: 50 }
    )
  })

  it("hostile bytes fail with a parse error, never anything else", () => {
    fc.assert(
      fc.property(fc.constantFrom(0, 1), fc.uint8Array({ maxLength: 300 }), (tag, rest) => {
        const input = tag === 0 ? bytes(0x00, seq(32), rest) : bytes(0x01, rest)
        // decodeEither returns a Left for malformed input; a throw (a defect) fails the property.
        decodeCompactEither(input)
      }),
      { numRuns: 2000 }
    )
  })

  it("bounds every length: prefix, key, parts, values, and the bytes the bounds decode to", () => {
    const fp = seq(16)
    // A prefix longer than the bound before it (the first part has none).
    assert.include(failsCompact(bytes(0x01, 0x01, 0x00, 0x01, 0x40, seq(64), 0x00, 0x40, fp)), "exceeds 0")
    // A shared lower bound in the first part.
    assert.include(failsCompact(bytes(0x01, 0x01, 0x04, 0x00, 0x40, seq(64), fp)), "shared bound in the first part")
    // Unknown part kind.
    assert.include(failsCompact(bytes(0x01, 0x01, 0x03)), "unknown part kind")
    // A bound shorter than a record identifier, written as prefix + rest.
    assert.include(failsCompact(bytes(0x01, 0x01, 0x00, 0x00, 0x3f, seq(63))), "shorter than a record identifier")
    // A key over MAX_KEY_LENGTH made of a prefix and a rest, each under it.
    const long = 64 + MAX_KEY_LENGTH
    const w = new Writer()
    w.varint(1).varint(1).varint(0).varint(0).varint(long).raw(new Uint8Array(long)).varint(long).varint(1).raw(Uint8Array.of(1))
    assert.include(failsCompact(w.finish()), "keyLength")
    // Too many parts, too many values.
    assert.include(failsCompact(bytes(0x01, new Writer().varint(MAX_PARTS + 1).finish())), "parts")
    assert.include(
      failsCompact(bytes(0x01, 0x01, 0x01, 0x00, 0x40, seq(64), 0x40, 0x00, new Writer().varint(MAX_VALUES + 1).finish())),
      "values"
    )
    // Many parts whose upper bound repeats the longest bound in 2 bytes: refused past MAX_COMPACT_BOUND_BYTES.
    const parts = Math.ceil(MAX_COMPACT_BOUND_BYTES / long) + 2
    const h = new Writer()
    h.varint(1).varint(parts).varint(0).varint(0).varint(long).raw(new Uint8Array(long)).varint(long).varint(0).raw(new Uint8Array(16))
    for (let i = 1; i < parts; i++) h.varint(4).varint(long).varint(0).raw(new Uint8Array(16))
    assert.include(failsCompact(h.finish()), `range bounds of more than ${MAX_COMPACT_BOUND_BYTES} bytes`)
  })
})
