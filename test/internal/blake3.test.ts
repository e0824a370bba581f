import { blake3 as nobleBlake3 } from "@noble/hashes/blake3.js"
import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import { blake3, EMPTY_HASH, incremental, startWasm } from "../../src/internal/blake3.js"
import { toHex } from "../../src/internal/bytes.js"

const sameAsNoble = (data: Uint8Array) => assert.strictEqual(toHex(blake3(data)), toHex(nobleBlake3(data)))

describe("blake3", () => {
  it("EMPTY_HASH is BLAKE3 of nothing", () => {
    assert.strictEqual(toHex(EMPTY_HASH), toHex(nobleBlake3(new Uint8Array(0))))
    sameAsNoble(new Uint8Array(0))
  })
  it("before and after the WebAssembly hasher is ready, short and long inputs hash as @noble/hashes does", async () => {
    // Whatever the state of the module (other files may have hashed already), both paths are checked: native for
    // every length, then the WebAssembly hasher for the short ones.
    fc.assert(fc.property(fc.uint8Array({ maxLength: 5000 }), sameAsNoble), { numRuns: 50 })
    assert.isTrue(await startWasm(), "the WebAssembly hasher exists here")
    fc.assert(fc.property(fc.uint8Array({ maxLength: 5000 }), sameAsNoble), { numRuns: 300 })
    const hasher = incremental()
    const data = Uint8Array.from({ length: 70_000 }, (_, i) => i & 0xff)
    hasher.update(data.subarray(0, 1000))
    hasher.update(data.subarray(1000))
    assert.strictEqual(toHex(hasher.digest()), toHex(nobleBlake3(data)))
  })
})
