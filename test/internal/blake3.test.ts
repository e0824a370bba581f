import { blake3 as nobleBlake3 } from "@noble/hashes/blake3.js"
import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import { blake3, EMPTY_HASH, incremental, startWasm, viaNative } from "../../src/internal/blake3.js"
import { toHex } from "../../src/internal/bytes.js"

const sameAsNoble = (data: Uint8Array) => assert.strictEqual(toHex(blake3(data)), toHex(nobleBlake3(data)))

describe("blake3", () => {
  it("EMPTY_HASH is BLAKE3 of nothing", () => {
    assert.strictEqual(toHex(EMPTY_HASH), toHex(nobleBlake3(new Uint8Array(0))))
    sameAsNoble(new Uint8Array(0))
  })
  it("both hashers, short and long inputs, views into larger buffers: as @noble/hashes", async () => {
    // The native hasher directly (`blake3` uses it for short inputs only until the WebAssembly hasher is ready, which
    // other files of the same worker may have made it already), on views that start inside their buffer.
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 5000 }), fc.nat(7), (data, skip) => {
        const view = data.subarray(Math.min(skip, data.length))
        assert.strictEqual(toHex(viaNative(view)), toHex(nobleBlake3(view)))
        sameAsNoble(view)
      }),
      { numRuns: 100 }
    )
    assert.isTrue(await startWasm(), "the WebAssembly hasher exists here")
    fc.assert(fc.property(fc.uint8Array({ maxLength: 5000 }), sameAsNoble), { numRuns: 300 })
    const hasher = incremental()
    const data = Uint8Array.from({ length: 70_000 }, (_, i) => i & 0xff)
    hasher.update(data.subarray(0, 1000))
    hasher.update(data.subarray(1000))
    assert.strictEqual(toHex(hasher.digest()), toHex(nobleBlake3(data)))
  })
})
