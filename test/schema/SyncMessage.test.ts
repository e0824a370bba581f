import { assert, describe, it } from "@effect/vitest"
import { Either, Schema } from "effect"
import * as fc from "fast-check"
import { fromHex, toHex } from "../../src/internal/bytes.js"
import { CONTENT_STATUSES, makeSignedEntry, SignedEntryFromBytes } from "../../src/schema/Entry.js"
import { Bytes32, NamespaceId } from "../../src/schema/Keys.js"
import { Message, type MessagePart, Range, RangeFingerprint, RangeItem } from "../../src/schema/Message.js"
import {
  Abort,
  ABORT_REASONS,
  AbortReason,
  Init,
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
