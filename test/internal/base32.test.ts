import { assert, describe, it } from "@effect/vitest"
import { Either } from "effect"
import * as fc from "fast-check"
import { decode, encode } from "../../src/internal/base32.js"
import { toHex, utf8 } from "../../src/internal/bytes.js"

const decoded = (s: string): string => Either.match(decode(s), { onLeft: (e) => `error: ${e}`, onRight: toHex })

describe("base32", () => {
  it("RFC 4648 §10 vectors, lowercase and unpadded", () => {
    const vectors: ReadonlyArray<readonly [string, string]> = [
      ["", ""],
      ["f", "my"],
      ["fo", "mzxq"],
      ["foo", "mzxw6"],
      ["foob", "mzxw6yq"],
      ["fooba", "mzxw6ytb"],
      ["foobar", "mzxw6ytboi"]
    ]
    for (const [plain, b32] of vectors) {
      assert.strictEqual(encode(utf8(plain)), b32)
      assert.strictEqual(decoded(b32), toHex(utf8(plain)))
      assert.strictEqual(decoded(b32.toUpperCase()), toHex(utf8(plain)))
    }
  })

  it("round trip, output is lowercase", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        const s = encode(bytes)
        assert.match(s, /^[a-z2-7]*$/)
        assert.strictEqual(s.length, Math.ceil((bytes.length * 8) / 5))
        assert.strictEqual(decoded(s), toHex(bytes))
        assert.strictEqual(decoded(s.toUpperCase()), toHex(bytes))
      }),
      { numRuns: 500 }
    )
  })

  it("rejects padding, foreign characters, impossible lengths and non-zero trailing bits", () => {
    assert.strictEqual(decoded("my======"), "error: invalid base32 character at position 2")
    assert.strictEqual(decoded("mzxw1"), "error: invalid base32 character at position 4")
    assert.strictEqual(decoded("mzxw8"), "error: invalid base32 character at position 4")
    assert.strictEqual(decoded("mzx é"), "error: invalid base32 character at position 3")
    assert.strictEqual(decoded("m"), "error: invalid base32 length 1")
    assert.strictEqual(decoded("mzx"), "error: invalid base32 length 3")
    assert.strictEqual(decoded("mzxw6y"), "error: invalid base32 length 6")
    assert.strictEqual(decoded("mz"), "error: non-zero trailing bits in base32")
    assert.strictEqual(decoded("mzxw7"), "error: non-zero trailing bits in base32")
  })

  it("only canonical strings decode", () => {
    const alphabet = fc.constantFrom(..."abcdefghijklmnopqrstuvwxyz234567")
    fc.assert(
      fc.property(fc.string({ unit: alphabet, maxLength: 40 }), (s) => {
        Either.match(decode(s), { onLeft: () => undefined, onRight: (b) => assert.strictEqual(encode(b), s) })
      }),
      { numRuns: 500 }
    )
  })
})
