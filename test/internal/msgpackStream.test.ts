import { assert, describe, it } from "@effect/vitest"
import { RpcSerialization } from "@effect/rpc"
import * as fc from "fast-check"
import { Packr, Unpackr } from "msgpackr"
import { concatAll } from "../../src/internal/bytes.js"
import { MsgpackStreamDecoder } from "../../src/internal/msgpackStream.js"
import { msgPack } from "../../src/schema/Rpc.js"
import { cutAt } from "../utils/pieces.js"

const OPTIONS = { useRecords: true }

class TooLarge extends Error {}

const decoderOf = (maxPending = 16 * 1024 * 1024) =>
  new MsgpackStreamDecoder(new Unpackr(OPTIONS), maxPending, (size) => new TooLarge(`${size}`))

/** The messages packed one after another by one packer, as an RPC server writes a reply stream. */
const packAll = (messages: ReadonlyArray<unknown>): Uint8Array => {
  const packr = new Packr(OPTIONS)
  return concatAll(messages.map((m) => Uint8Array.from(packr.pack(m))))
}


// RPC-like messages: records of a few shapes (msgpackr's record structures carry over from one message to the next),
// binary fields of all sizes, u64 as bigint, nested arrays and maps.
const binary = fc.uint8Array({ maxLength: 3000 })
const message = fc.oneof(
  fc.record({ _tag: fc.constant("Chunk"), requestId: fc.bigInt({ min: 0n, max: 2n ** 63n - 1n }), values: fc.array(binary, { maxLength: 4 }) }),
  fc.record({ _tag: fc.constant("Exit"), requestId: fc.string(), exit: fc.record({ _tag: fc.constantFrom("Success", "Failure"), value: fc.jsonValue() }) }),
  fc.record({ key: binary, hash: binary, len: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), n: fc.double({ noNaN: true }) }),
  fc.array(fc.oneof(fc.string(), fc.integer(), fc.boolean(), fc.constant(null), binary), { maxLength: 6 })
)

describe("MsgpackStreamDecoder", () => {
  it("property: a message stream cut anywhere decodes to what one read of it gives, and what @effect/rpc's decoder gives", () =>
    fc.assert(
      fc.property(fc.array(message, { minLength: 1, maxLength: 12 }), fc.array(fc.nat(), { maxLength: 40 }), (messages, cuts) => {
        const bytes = packAll(messages)
        const whole = new Unpackr(OPTIONS).unpackMultiple(bytes)
        const decoder = decoderOf()
        const theirs = RpcSerialization.msgPack.unsafeMake()
        const ours: Array<unknown> = []
        const reference: Array<unknown> = []
        for (const piece of cutAt(bytes, cuts)) {
          ours.push(...decoder.push(piece))
          reference.push(...theirs.decode(piece))
        }
        // Compared only once every piece is in: a message whose bytes were overwritten by a later piece fails here.
        assert.deepStrictEqual(ours, whole)
        assert.deepStrictEqual(ours, reference)
        assert.strictEqual(decoder.pendingBytes, 0)
      })
    ))

  it("a 4 MiB reply arriving in 4 KiB reads is copied about twice, not once per read (@effect/rpc's: ~2 GiB)", () => {
    const big = new Uint8Array(4 * 1024 * 1024).map((_, i) => i * 7)
    const bytes = packAll([{ _tag: "Exit", value: big }, { _tag: "Chunk", values: [big.subarray(0, 10)] }])
    const decoder = decoderOf()
    const out: Array<unknown> = []
    for (let at = 0; at < bytes.length; at += 4096) out.push(...decoder.push(bytes.slice(at, at + 4096)))
    assert.strictEqual(out.length, 2)
    assert.deepStrictEqual(out, new Unpackr(OPTIONS).unpackMultiple(bytes))
    assert.isAtMost(decoder.copied, 3 * bytes.length, `copied ${decoder.copied} bytes for ${bytes.length}`)
  })

  it("an unfinished message beyond the bound fails; a malformed one fails with msgpackr's error", () => {
    const decoder = decoderOf(1000)
    const bytes = packAll([{ value: new Uint8Array(5000) }])
    assert.deepStrictEqual(decoder.push(bytes.subarray(0, 900)), [], "900 bytes pending: within the bound")
    assert.throws(() => decoder.push(bytes.subarray(900, 2000)), TooLarge)
    assert.throws(() => decoderOf().push(Uint8Array.of(0xc7, 0x01, 0x99, 0x00)), /Unknown extension type/)
  })

  it("the RPC serialization encodes as @effect/rpc's msgpack, byte for byte, and decodes its bytes", () => {
    const messages = [
      { _tag: "Request", id: "1", tag: "BlobRead", payload: { hash: new Uint8Array(32).fill(3), offset: 0, length: 1024 } },
      { _tag: "Exit", requestId: "1", exit: { _tag: "Success", value: new Uint8Array(70_000).fill(9) } },
      { _tag: "Chunk", requestId: "2", values: [{ timestamp: 2n ** 63n, key: new Uint8Array([1, 2]) }] }
    ]
    const ours = msgPack.unsafeMake()
    const theirs = RpcSerialization.msgPack.unsafeMake()
    const encoded = messages.map((m) => {
      const a = ours.encode(m) as Uint8Array
      assert.deepStrictEqual(Uint8Array.from(a), Uint8Array.from(theirs.encode(m) as Uint8Array))
      return Uint8Array.from(a)
    })
    const back = msgPack.unsafeMake()
    const decoded = cutAt(concatAll(encoded), [5, 70, 40_000, 70_100]).flatMap((piece) => back.decode(piece))
    assert.deepStrictEqual(decoded, messages)
  })
})
