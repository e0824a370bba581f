import { assert, describe, it } from "@effect/vitest"
import { Either, Schema } from "effect"
import * as fc from "fast-check"
import { compare, fromHex, toHex } from "../../src/internal/bytes.js"
import * as AuthorHeads from "../../src/schema/AuthorHeads.js"
import { AuthorId } from "../../src/schema/Keys.js"

const author = (n: number) => AuthorId.make(new Uint8Array(32).fill(n))
const heads = (...pairs: Array<readonly [number, bigint]>) =>
  AuthorHeads.fromEntries(pairs.map(([n, t]) => [author(n), t] as const))
/** `author-byte:timestamp`, sorted: a canonical view of heads. */
const show = (h: AuthorHeads.AuthorHeads) =>
  [...h.heads.values()].map(([a, t]) => `${toHex(a)}:${t}`).sort()

const varintLen = (n: bigint) => {
  let len = 1
  while (n >= 0x80n) {
    n >>= 7n
    len++
  }
  return len
}
/** Splits an encoding into its items, in order. */
const items = (bytes: Uint8Array): Array<readonly [string, bigint]> => {
  const decoded = Schema.decodeSync(AuthorHeads.AuthorHeadsFromBytes)(bytes)
  // Walk the raw bytes to see the order (decoding into a map loses it).
  const out: Array<readonly [string, bigint]> = []
  let o = 0
  const varint = () => {
    let v = 0n
    let shift = 0n
    for (;;) {
      const b = bytes[o++]!
      v |= BigInt(b & 0x7f) << shift
      if ((b & 0x80) === 0) return v
      shift += 7n
    }
  }
  const n = Number(varint())
  for (let i = 0; i < n; i++) {
    const ts = varint()
    out.push([toHex(bytes.subarray(o, o + 32)), ts])
    o += 32
  }
  assert.strictEqual(o, bytes.length)
  assert.strictEqual(AuthorHeads.size(decoded), new Set(out.map(([a]) => a)).size)
  return out
}

const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n })
const arbHeads = fc
  .array(fc.tuple(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.oneof(u64, fc.bigInt({ min: 0n, max: 300n }))), {
    maxLength: 30
  })
  .map((pairs) => AuthorHeads.fromEntries(pairs.map(([a, t]) => [AuthorId.make(a), t] as const)))

describe("AuthorHeads (spec 01 §12)", () => {
  it("insert keeps the maximum per author", () => {
    const b = new AuthorHeads.Builder()
    b.insert(author(1), 5n).insert(author(1), 3n).insert(author(2), 1n)
    assert.strictEqual(AuthorHeads.get(b.build(), author(1)), 5n)
    b.insert(author(1), 7n)
    const h = b.build()
    assert.strictEqual(AuthorHeads.get(h, author(1)), 7n)
    assert.strictEqual(AuthorHeads.get(h, author(2)), 1n)
    assert.isUndefined(AuthorHeads.get(h, author(3)))
    assert.strictEqual(AuthorHeads.size(h), 2)
    assert.strictEqual(AuthorHeads.size(AuthorHeads.empty), 0)
  })

  it("merge takes the maximum of both sides and is commutative", () => {
    const merged = AuthorHeads.merge(heads([1, 5n], [2, 1n]), heads([1, 3n], [2, 4n], [3, 2n]))
    assert.deepStrictEqual(show(merged), show(heads([1, 5n], [2, 4n], [3, 2n])))
    fc.assert(
      fc.property(arbHeads, arbHeads, (x, y) => {
        assert.deepStrictEqual(show(AuthorHeads.merge(x, y)), show(AuthorHeads.merge(y, x)))
        assert.deepStrictEqual(show(AuthorHeads.merge(x, x)), show(x))
        assert.strictEqual(AuthorHeads.hasNewsFor(x, AuthorHeads.merge(x, y)), 0)
      })
    )
  })

  it("hasNewsFor counts newer or unknown authors", () => {
    const ours = heads([1, 10n], [2, 5n])
    assert.strictEqual(AuthorHeads.hasNewsFor(AuthorHeads.empty, ours), 0)
    assert.strictEqual(AuthorHeads.hasNewsFor(heads([1, 10n], [2, 5n]), ours), 0)
    assert.strictEqual(AuthorHeads.hasNewsFor(heads([1, 9n], [2, 4n]), ours), 0)
    assert.strictEqual(AuthorHeads.hasNewsFor(heads([1, 11n]), ours), 1)
    assert.strictEqual(AuthorHeads.hasNewsFor(heads([1, 11n], [2, 6n], [3, 0n]), ours), 3)
    assert.strictEqual(AuthorHeads.hasNewsFor(ours, AuthorHeads.empty), 2)
  })

  it("encodes newest first as postcard Vec<(u64, AuthorId)>", () => {
    assert.strictEqual(toHex(AuthorHeads.encode(AuthorHeads.empty)), "00")
    const one = AuthorHeads.encode(heads([0xab, 300n]))
    assert.strictEqual(toHex(one), "01" + "ac02" + "ab".repeat(32))
    const three = AuthorHeads.encode(heads([1, 5n], [2, 9n], [3, 7n]))
    assert.deepStrictEqual(items(three).map(([a, t]) => `${a.slice(0, 2)}:${t}`), ["02:9", "03:7", "01:5"])
    // Equal timestamps: every author is kept, larger id first (deliberately unlike the reference's grouping).
    const tie = AuthorHeads.encode(heads([1, 5n], [2, 5n]))
    assert.deepStrictEqual(items(tie).map(([a]) => a.slice(0, 2)), ["02", "01"])
  })

  it("decode ∘ encode = identity (property)", () => {
    fc.assert(
      fc.property(arbHeads, (h) => {
        const bytes = AuthorHeads.encode(h)
        assert.deepStrictEqual(show(Schema.decodeSync(AuthorHeads.AuthorHeadsFromBytes)(bytes)), show(h))
        assert.strictEqual(toHex(Schema.encodeSync(AuthorHeads.AuthorHeadsFromBytes)(h)), toHex(bytes))
        const order = items(bytes)
        for (let i = 1; i < order.length; i++) assert.isTrue(order[i - 1]![1] >= order[i]![1], "newest first")
      })
    )
  })

  it("a size limit keeps the newest authors and stays within the limit", () => {
    fc.assert(
      fc.property(arbHeads, fc.integer({ min: 1, max: 700 }), (h, limit) => {
        const bytes = AuthorHeads.encode(h, limit)
        assert.isAtMost(bytes.length, limit)
        const sorted = [...h.heads.values()]
          .map(([a, t]) => [toHex(a), t] as const)
          .sort((x, y) => (x[1] > y[1] ? -1 : x[1] < y[1] ? 1 : compare(fromHex(y[0])!, fromHex(x[0])!)))
        // The largest prefix of the newest-first list whose encoding fits.
        let k = 0
        let body = 0
        while (k < sorted.length) {
          const next = body + varintLen(sorted[k]![1]) + 32
          if (varintLen(BigInt(k + 1)) + next > limit) break
          body = next
          k++
        }
        assert.deepStrictEqual(items(bytes), sorted.slice(0, k))
      }),
      { numRuns: 300 }
    )
    const many = AuthorHeads.fromEntries(Array.from({ length: 40 }, (_, i) => [author(i), BigInt(i)] as const))
    const limited = items(AuthorHeads.encode(many, 1 + 10 * 33))
    assert.deepStrictEqual(limited.map(([, t]) => t), [39n, 38n, 37n, 36n, 35n, 34n, 33n, 32n, 31n, 30n])
    assert.strictEqual(AuthorHeads.encode(many, 1 + 10 * 33 - 1).length, 1 + 9 * 33)
    assert.strictEqual(toHex(AuthorHeads.encode(many, 1)), "00")
  })

  it("decoding keeps the maximum of repeated authors", () => {
    const hex = "02" + "05" + "aa".repeat(32) + "09" + "aa".repeat(32)
    const h = Schema.decodeSync(AuthorHeads.AuthorHeadsFromBytes)(fromHex(hex)!)
    assert.deepStrictEqual(show(h), [`${"aa".repeat(32)}:9`])
    const reversed = "02" + "09" + "aa".repeat(32) + "05" + "aa".repeat(32)
    assert.deepStrictEqual(show(Schema.decodeSync(AuthorHeads.AuthorHeadsFromBytes)(fromHex(reversed)!)), show(h))
  })

  it("rejects malformed bytes with a ParseError", () => {
    const bad = (b: Uint8Array) => Either.isLeft(Schema.decodeEither(AuthorHeads.AuthorHeadsFromBytes)(b))
    const good = AuthorHeads.encode(heads([1, 300n], [2, 1n]))
    assert.isFalse(bad(good))
    for (let n = 0; n < good.length; n++) assert.isTrue(bad(good.subarray(0, n)), `truncated at ${n}`)
    assert.isTrue(bad(Uint8Array.from([...good, 0])), "trailing byte")
    assert.isTrue(bad(fromHex("8000")!), "overlong count")
    assert.isTrue(bad(fromHex("03" + "01" + "11".repeat(32))!), "count above the items")
    assert.isTrue(bad(fromHex("01" + "8000" + "11".repeat(32))!), "overlong timestamp")
    assert.isTrue(bad(fromHex("01" + "ff".repeat(9) + "02" + "11".repeat(32))!), "timestamp above u64")
    assert.isTrue(bad(fromHex("ffffffff0f")!), "count above the limit")
  })
})
