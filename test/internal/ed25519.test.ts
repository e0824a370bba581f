import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import { toHex } from "../../src/internal/bytes.js"
import * as Ed from "../../src/internal/ed25519.js"

/** The group order L as a number, and the strict shape by its definition (spec 01 §5), without the hot path's tricks. */
const L = 2n ** 252n + 27742317777372353535851937790883648493n
const littleEndian = (bytes: Uint8Array) => bytes.reduceRight((n, b) => (n << 8n) | BigInt(b), 0n)
const smallOrder = new Set(Ed.SMALL_ORDER.map(toHex))
const naiveShape = (sig: Uint8Array) =>
  sig.length === 64 && littleEndian(sig.subarray(32)) < L && !smallOrder.has(toHex(sig.subarray(0, 32)))

/** Signatures near the edges: R a small-order point or one byte off it, S around L. */
const edgySignature = fc.record({
  r: fc.oneof(
    fc.uint8Array({ minLength: 32, maxLength: 32 }),
    fc.constantFrom(...Ed.SMALL_ORDER),
    fc.tuple(fc.constantFrom(...Ed.SMALL_ORDER), fc.nat(31), fc.integer({ min: 1, max: 255 })).map(([p, i, d]) => {
      const q = Uint8Array.from(p)
      q[i] = (q[i]! + d) & 0xff
      return q
    })
  ),
  s: fc.oneof(
    fc.uint8Array({ minLength: 32, maxLength: 32 }),
    fc.bigInt({ min: L - 300n, max: L + 300n }).map((n) => {
      const out = new Uint8Array(32)
      for (let i = 0; i < 32; i++) out[i] = Number((n >> BigInt(8 * i)) & 0xffn)
      return out
    })
  )
}).map(({ r, s }) => {
  const sig = new Uint8Array(64)
  sig.set(r)
  sig.set(s, 32)
  return sig
})

describe("ed25519 strictness checks", () => {
  it("isStrictSignatureShape is canonical S and R not of small order, for any 64 bytes", () => {
    fc.assert(fc.property(edgySignature, (sig) => assert.strictEqual(Ed.isStrictSignatureShape(sig), naiveShape(sig))), {
      numRuns: 2000
    })
    assert.isFalse(Ed.isStrictSignatureShape(new Uint8Array(63)))
  })
  it("isSmallOrderEncoding holds for the eight encodings only", () => {
    for (const p of Ed.SMALL_ORDER) {
      assert.isTrue(Ed.isSmallOrderEncoding(p))
      // The length counts: a small-order point followed by more bytes is no 32-byte encoding.
      assert.isFalse(Ed.isSmallOrderEncoding(Uint8Array.from([...p, 0])))
    }
    fc.assert(fc.property(fc.uint8Array({ minLength: 31, maxLength: 33 }), (b) =>
      assert.strictEqual(Ed.isSmallOrderEncoding(b), smallOrder.has(toHex(b)))
    ))
  })
})
