import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import { concat, toHex } from "../../src/internal/bytes.js"
import {
  type Chunk,
  encodeFrame,
  FrameDecoder,
  FrameError,
  frameHeader,
  frameParts,
  readFrames
} from "../../src/internal/framing.js"
import { DEFAULT_MAX_FRAME, MAX_MESSAGE_SIZE, SYNC_PROTOCOL } from "../../src/schema/constants.js"
import { cutAt } from "../utils/pieces.js"

const u8 = (...xs: ReadonlyArray<number>) => Uint8Array.from(xs)

const hexes = (xs: ReadonlyArray<Uint8Array>) => xs.map(toHex)

/** The FrameError `f` throws, failing the test if it throws nothing or something else. */
const frameError = (f: () => unknown): FrameError => {
  try {
    f()
  } catch (e) {
    if (e instanceof FrameError) return e
    throw e
  }
  assert.fail("expected a FrameError")
}

const rejection = async (p: Promise<unknown>): Promise<unknown> => {
  try {
    await p
  } catch (e) {
    return e
  }
  assert.fail("expected a rejection")
}


const ones = (stream: Uint8Array) => Array.from({ length: stream.length }, (_, i) => stream.subarray(i, i + 1))

/** Pushes each chunk and drains complete payloads after every push, as a stream reader does. */
const decodeAll = (chunks: ReadonlyArray<Uint8Array>, max: number): Array<Uint8Array> => {
  const d = new FrameDecoder(max)
  const out: Array<Uint8Array> = []
  for (const c of chunks) {
    d.push(c)
    for (let p = d.next(); p !== undefined; p = d.next()) out.push(p)
  }
  d.end()
  return out
}

async function* fromArray<A>(xs: ReadonlyArray<A>, after?: () => void): AsyncGenerator<A> {
  try {
    for (const x of xs) yield x
  } finally {
    after?.()
  }
}

const collect = async (it: AsyncIterable<Uint8Array>): Promise<Array<Uint8Array>> => {
  const out: Array<Uint8Array> = []
  for await (const x of it) out.push(x)
  return out
}

/** Shaped like libp2p's Uint8ArrayList: several buffers, `subarray()` gives them as one. */
class ListChunk {
  constructor(readonly bufs: ReadonlyArray<Uint8Array>) {}
  subarray(): Uint8Array {
    return this.bufs.length === 1 ? this.bufs[0]! : concat(...this.bufs)
  }
}

describe("constants (spec 04 §2–§3)", () => {
  it("match the spec", () => {
    assert.strictEqual(SYNC_PROTOCOL, "/iroh-sync/1")
    assert.strictEqual(MAX_MESSAGE_SIZE, 1 << 30)
    assert.isTrue(DEFAULT_MAX_FRAME >= 4 << 20 && DEFAULT_MAX_FRAME <= MAX_MESSAGE_SIZE)
  })
})

describe("frame encoding", () => {
  it("prefixes the payload with its length as a 4-byte big-endian u32", () => {
    assert.strictEqual(toHex(frameHeader(5, 10)), "00000005")
    assert.strictEqual(toHex(frameHeader(0x01020304, 0xffffffff)), "01020304")
    assert.strictEqual(toHex(encodeFrame(u8(0xaa, 0xbb), 10)), "00000002aabb")
    assert.strictEqual(toHex(encodeFrame(new Uint8Array(0), 0)), "00000000")
  })

  it("gives header and payload separately without copying the payload", () => {
    const payload = u8(1, 2, 3)
    const [header, same] = frameParts(payload, 3)
    assert.strictEqual(toHex(header), "00000003")
    assert.strictEqual(same, payload)
  })

  it("refuses a payload above the maximum, accepts one at it", () => {
    assert.strictEqual(encodeFrame(new Uint8Array(100), 100).length, 104)
    const e = frameError(() => encodeFrame(new Uint8Array(101), 100))
    assert.strictEqual(e._tag, "FrameError")
    assert.strictEqual(e.reason, "SendTooLarge")
    assert.strictEqual(e.size, 101)
    assert.strictEqual(e.limit, 100)
    assert.include(e.message, "attempting to send message that is too large")
    assert.strictEqual(frameError(() => frameParts(new Uint8Array(3), 2)).reason, "SendTooLarge")
    assert.strictEqual(frameError(() => frameHeader(MAX_MESSAGE_SIZE + 1, MAX_MESSAGE_SIZE)).reason, "SendTooLarge")
  })

  it("rejects a maximum that is not a u32 as a programming error", () => {
    assert.throws(() => frameHeader(0, -1), RangeError)
    assert.throws(() => new FrameDecoder(2 ** 32), RangeError)
    assert.throws(() => new FrameDecoder(1.5), RangeError)
  })
})

describe("FrameDecoder", () => {
  it("returns nothing until a frame is complete, then the payload", () => {
    const d = new FrameDecoder(100)
    assert.isUndefined(d.next())
    d.push(u8(0, 0))
    assert.isUndefined(d.next())
    d.push(u8(0, 3, 7))
    assert.isUndefined(d.next())
    assert.strictEqual(d.buffered, 1)
    d.push(u8(8, 9, 0, 0, 0))
    assert.strictEqual(toHex(d.next()!), "070809")
    assert.isUndefined(d.next())
    d.push(u8(1, 0xff))
    assert.strictEqual(toHex(d.next()!), "ff")
    assert.isUndefined(d.next())
    assert.strictEqual(d.buffered, 0)
    d.end()
  })

  it("handles zero-length payloads", () => {
    const d = new FrameDecoder(10)
    d.push(u8(0, 0, 0, 0))
    assert.strictEqual(d.next()!.length, 0)
    assert.isUndefined(d.next())
    d.end()
    const stream = concat(...[u8(), u8(), u8(5), u8()].map((p) => encodeFrame(p, 10)))
    assert.deepStrictEqual(hexes(decodeAll([stream], 10)), ["", "", "05", ""])
    assert.deepStrictEqual(hexes(decodeAll(ones(stream), 10)), ["", "", "05", ""])
    assert.deepStrictEqual(decodeAll([u8(0, 0, 0, 0)], 0).length, 1)
  })

  it("fails as soon as an oversized length prefix is complete, before any payload", () => {
    const d = new FrameDecoder(100)
    d.push(u8(0, 0, 0, 100)) // exactly the maximum is fine
    assert.isUndefined(d.next())

    const big = new FrameDecoder(100)
    big.push(u8(0, 0))
    big.push(u8(0))
    const e = frameError(() => big.push(u8(101)))
    assert.strictEqual(e.reason, "ReceiveTooLarge")
    assert.strictEqual(e.size, 101)
    assert.strictEqual(e.limit, 100)
    assert.include(e.message, "received message that is too large")
    // the decoder stays failed
    assert.strictEqual(frameError(() => big.next()), e)
    assert.strictEqual(frameError(() => big.push(u8(1))), e)
    assert.strictEqual(frameError(() => big.end()), e)

    const huge = new FrameDecoder(MAX_MESSAGE_SIZE)
    const e2 = frameError(() => huge.push(u8(0xff, 0xff, 0xff, 0xff)))
    assert.strictEqual(e2.size, 0xffffffff)
    assert.strictEqual(e2.reason, "ReceiveTooLarge")
  })

  it("fails an oversized header that follows a complete frame", () => {
    const d = new FrameDecoder(3)
    d.push(concat(encodeFrame(u8(1, 2, 3), 3), u8(0, 0, 0, 4)))
    // push already read the first header; the second is read once the first payload is out
    assert.strictEqual(toHex(d.next()!), "010203")
    assert.strictEqual(frameError(() => d.next()).reason, "ReceiveTooLarge")
  })

  it("reports a stream that ends inside a frame", () => {
    const header = new FrameDecoder(10)
    header.push(u8(0, 0))
    const e = frameError(() => header.end())
    assert.strictEqual(e.reason, "Truncated")
    assert.include(e.message, "truncated frame")
    assert.strictEqual(e.size, 2)
    assert.strictEqual(e.limit, 4)

    const payload = new FrameDecoder(10)
    payload.push(u8(0, 0, 0, 5, 1, 2, 3))
    assert.isUndefined(payload.next())
    const e2 = frameError(() => payload.end())
    assert.strictEqual(e2.reason, "Truncated")
    assert.strictEqual(e2.size, 7)
    assert.strictEqual(e2.limit, 9)
    assert.strictEqual(frameError(() => payload.push(u8(4, 5))), e2)

    const headerOnly = new FrameDecoder(10)
    headerOnly.push(u8(0, 0, 0, 3))
    const e3 = frameError(() => headerOnly.end())
    assert.strictEqual(e3.size, 4)
    assert.strictEqual(e3.limit, 7)
  })

  it("end() accepts complete frames not yet taken, which next() still returns", () => {
    const d = new FrameDecoder(10)
    d.push(concat(encodeFrame(u8(), 10), encodeFrame(u8(1, 2), 10), encodeFrame(u8(), 10)))
    d.end()
    assert.deepStrictEqual(hexes([d.next()!, d.next()!, d.next()!]), ["", "0102", ""])
    assert.isUndefined(d.next())

    const partial = new FrameDecoder(10)
    partial.push(concat(encodeFrame(u8(1, 2), 10), u8(0, 0, 0, 3, 9)))
    const e = frameError(() => partial.end())
    assert.strictEqual(e.reason, "Truncated")
    assert.strictEqual(e.size, 5)
    assert.strictEqual(e.limit, 7)

    const tooLarge = new FrameDecoder(10)
    tooLarge.push(concat(encodeFrame(u8(1, 2), 10), u8(0, 0), u8(0, 11)))
    assert.strictEqual(frameError(() => tooLarge.end()).reason, "ReceiveTooLarge")
  })

  it("returns a view of the chunk when a payload lies within it, a copy otherwise", () => {
    const chunk = u8(0, 0, 0, 2, 0xaa, 0xbb, 0, 0, 0, 2, 0xcc)
    const d = new FrameDecoder(10)
    d.push(chunk)
    const first = d.next()!
    assert.strictEqual(first.buffer, chunk.buffer)
    assert.strictEqual(first.byteOffset, 4)
    const tail = u8(0xdd)
    d.push(tail)
    const second = d.next()!
    assert.strictEqual(toHex(second), "ccdd")
    assert.notStrictEqual(second.buffer, chunk.buffer)
    assert.notStrictEqual(second.buffer, tail.buffer)
  })

  it("accepts Node Buffers (whose slices are views) and never writes to them", () => {
    const stream = Buffer.concat([encodeFrame(u8(1, 2, 3), 10), encodeFrame(u8(4), 10)])
    const before = toHex(stream)
    const chunks = [stream.slice(0, 2), stream.slice(2, 6), stream.slice(6)]
    assert.deepStrictEqual(hexes(decodeAll(chunks, 10)), ["010203", "04"])
    assert.strictEqual(toHex(stream), before)
  })

  it("any split of a stream of frames yields exactly its payloads, chunks untouched (property)", () => {
    const arbPayloads = fc.array(fc.uint8Array({ maxLength: 40 }), { maxLength: 10 })
    fc.assert(
      fc.property(arbPayloads, fc.array(fc.nat(), { maxLength: 30 }), (payloads, cuts) => {
        const stream = concat(...payloads.map((p) => encodeFrame(p, 40)))
        const snapshot = toHex(stream)
        const expected = hexes(payloads)
        assert.deepStrictEqual(hexes(decodeAll(cutAt(stream, cuts), 40)), expected)
        assert.deepStrictEqual(hexes(decodeAll(ones(stream), 40)), expected)
        assert.deepStrictEqual(hexes(decodeAll([stream], 40)), expected)
        assert.strictEqual(toHex(stream), snapshot)
      }),
      { numRuns: 300 }
    )
  })

  it("a stream cut inside a frame is reported at end(), drained or not (property)", () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 20 }), { minLength: 1, maxLength: 5 }), fc.nat(), (ps, n) => {
        const stream = concat(...ps.map((p) => encodeFrame(p, 20)))
        const boundaries = new Set<number>([0])
        let o = 0
        for (const p of ps) boundaries.add((o += 4 + p.length))
        const cut = n % stream.length
        const drained = new FrameDecoder(20)
        for (const c of ones(stream.subarray(0, cut))) drained.push(c)
        while (drained.next() !== undefined) {
          // take every complete frame first
        }
        const undrained = new FrameDecoder(20)
        undrained.push(stream.subarray(0, cut))
        for (const d of [drained, undrained]) {
          if (boundaries.has(cut)) d.end()
          else assert.strictEqual(frameError(() => d.end()).reason, "Truncated")
        }
      })
    )
  })

  it("keeps up with many small chunks in a large frame", () => {
    const payload = Uint8Array.from({ length: 50_000 }, (_, i) => i * 7)
    const out = decodeAll(ones(encodeFrame(payload, 1 << 20)), 1 << 20)
    assert.strictEqual(out.length, 1)
    assert.strictEqual(toHex(out[0]!), toHex(payload))
  })
})

describe("readFrames", () => {
  it("yields the payloads of plain and list-shaped chunks", async () => {
    const stream = concat(encodeFrame(u8(1, 2, 3), 10), encodeFrame(u8(), 10), encodeFrame(u8(9, 9), 10))
    const chunks: Array<Chunk> = [
      stream.subarray(0, 1),
      new ListChunk([stream.subarray(1, 3), stream.subarray(3, 5)]),
      new ListChunk([stream.subarray(5, 9)]),
      stream.subarray(9, 12),
      new ListChunk([stream.subarray(12, 14), stream.subarray(14)])
    ]
    assert.deepStrictEqual(hexes(await collect(readFrames(fromArray(chunks), 10))), ["010203", "", "0909"])
    assert.deepStrictEqual(await collect(readFrames(fromArray<Chunk>([]), 10)), [])
  })

  it("yields exactly the payloads for any split into mixed chunks (property)", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.uint8Array({ maxLength: 30 }), { maxLength: 8 }),
        fc.array(fc.nat(), { maxLength: 20 }),
        fc.array(fc.boolean(), { minLength: 1, maxLength: 8 }),
        async (payloads, cuts, shapes) => {
          const stream = concat(...payloads.map((p) => encodeFrame(p, 30)))
          const snapshot = toHex(stream)
          const chunks: Array<Chunk> = cutAt(stream, cuts).map((c, i) =>
            shapes[i % shapes.length]! ? new ListChunk(cutAt(c, [c.length >> 1])) : c
          )
          assert.deepStrictEqual(hexes(await collect(readFrames(fromArray(chunks), 30))), hexes(payloads))
          assert.strictEqual(toHex(stream), snapshot)
        }
      ),
      { numRuns: 200 }
    )
  })

  it("fails on an oversized frame as soon as its header arrives, and closes the source", async () => {
    let closed = false
    let pulled = 0
    async function* source(): AsyncGenerator<Uint8Array> {
      try {
        yield encodeFrame(u8(1), 4)
        pulled++
        yield u8(0, 0, 0, 5)
        pulled++
        yield u8(1, 2, 3, 4, 5)
        pulled++
      } finally {
        closed = true
      }
    }
    const seen: Array<string> = []
    const e = await rejection((async () => {
      for await (const p of readFrames(source(), 4)) seen.push(toHex(p))
    })())
    assert.instanceOf(e, FrameError)
    assert.strictEqual(e instanceof FrameError ? e.reason : "", "ReceiveTooLarge")
    assert.deepStrictEqual(seen, ["01"])
    assert.strictEqual(pulled, 1) // the payload chunk was never requested
    assert.isTrue(closed)
  })

  it("fails when the source ends inside a frame", async () => {
    const e = await rejection(collect(readFrames(fromArray([encodeFrame(u8(1), 4), u8(0, 0, 0, 2, 7)]), 4)))
    assert.instanceOf(e, FrameError)
    assert.strictEqual(e instanceof FrameError ? e.reason : "", "Truncated")
  })

  it("propagates the source's errors", async () => {
    const boom = new Error("boom")
    async function* source(): AsyncGenerator<Uint8Array> {
      yield encodeFrame(u8(1), 4)
      throw boom
    }
    const seen: Array<string> = []
    const e = await rejection((async () => {
      for await (const p of readFrames(source(), 4)) seen.push(toHex(p))
    })())
    assert.strictEqual(e, boom)
    assert.deepStrictEqual(seen, ["01"])
  })

  it("closes the source when the consumer stops early", async () => {
    let closed = false
    const frames = [u8(1), u8(2), u8(3)].map((p) => encodeFrame(p, 4))
    for await (const p of readFrames(fromArray(frames, () => (closed = true)), 4)) {
      assert.strictEqual(toHex(p), "01")
      break
    }
    assert.isTrue(closed)
  })
})
