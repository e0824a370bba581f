import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import { compare, fromHex, prefixUpperBound, startsWith, toHex } from "../../src/internal/bytes.js"
import { Reader } from "../../src/internal/postcard.js"

describe("bytes", () => {
  it("prefixUpperBound is the least string above every extension of the prefix", () => {
    assert.strictEqual(toHex(prefixUpperBound(Uint8Array.from([1, 255]))!), "02")
    assert.strictEqual(toHex(prefixUpperBound(Uint8Array.from([1, 2]))!), "0103")
    assert.isUndefined(prefixUpperBound(Uint8Array.from([255, 255])))
    assert.isUndefined(prefixUpperBound(new Uint8Array(0)))
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 4 }), fc.uint8Array({ maxLength: 6 }), (prefix, key) => {
        const upper = prefixUpperBound(prefix)
        const inside = compare(key, prefix) >= 0 && (upper === undefined || compare(key, upper) < 0)
        assert.strictEqual(inside, startsWith(key, prefix))
      })
    )
  })
  it("never changes its input, not even a Buffer (whose slice is a view)", () => {
    const key = Buffer.from("k/009")
    prefixUpperBound(key)
    assert.strictEqual(key.toString(), "k/009")
  })
  it("postcard reads copy out of a Buffer: decoded bytes do not alias the input", () => {
    const frame = Buffer.from([3, 1, 2, 3])
    const bytes = new Reader(frame).bytes()
    frame[1] = 9
    assert.strictEqual(toHex(bytes), "010203")
    assert.isUndefined(fromHex("0g"))
  })
})
