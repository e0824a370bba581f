/**
 * Length-prefixed frames of a sync stream (spec 04 §3): a 4-byte big-endian u32 payload length, then the payload.
 * Pure byte handling, no I/O. Failures are thrown as `FrameError` (like `PostcardError` of the postcard reader):
 * callers in Effect code catch it once at the stream boundary (`Effect.try` / `Stream.fromAsyncIterable`'s
 * error mapper) and match on `reason`.
 */
import { Data } from "effect"

export const FRAME_HEADER_SIZE = 4

const U32_MAX = 0xffff_ffff

export type FrameErrorReason = "SendTooLarge" | "ReceiveTooLarge" | "Truncated"

/**
 * - `SendTooLarge` / `ReceiveTooLarge`: `size` is the payload length, `limit` the maximum.
 * - `Truncated`: the stream ended inside a frame; `size` is the bytes received of it (header included), `limit`
 *   the bytes it needed (4 while the header itself is incomplete, else 4 + payload length).
 */
export class FrameError extends Data.TaggedError("FrameError")<{
  readonly reason: FrameErrorReason
  readonly size: number
  readonly limit: number
  readonly message: string
}> {}

const sendTooLarge = (size: number, limit: number) =>
  new FrameError({
    reason: "SendTooLarge",
    size,
    limit,
    message: `attempting to send message that is too large: ${size} bytes, max ${limit}`
  })

const receiveTooLarge = (size: number, limit: number) =>
  new FrameError({
    reason: "ReceiveTooLarge",
    size,
    limit,
    message: `received message that is too large: ${size} bytes, max ${limit}`
  })

const truncated = (size: number, limit: number) =>
  new FrameError({
    reason: "Truncated",
    size,
    limit,
    message: `truncated frame: stream ended after ${size} of ${limit} bytes`
  })

const checkMax = (max: number): void => {
  if (!Number.isInteger(max) || max < 0 || max > U32_MAX) throw new RangeError(`invalid maximum frame size ${max}`)
}

/** The 4-byte header of a frame whose payload has `length` bytes; throws `FrameError` (SendTooLarge) above `max`. */
export const frameHeader = (length: number, max: number): Uint8Array => {
  checkMax(max)
  if (length > max) throw sendTooLarge(length, max)
  const header = new Uint8Array(FRAME_HEADER_SIZE)
  new DataView(header.buffer).setUint32(0, length, false)
  return header
}

/**
 * Header and payload as two buffers, so a large payload is written without being copied. The payload is returned
 * as given (not copied). Throws `FrameError` (SendTooLarge) above `max`, before anything could be written.
 */
export const frameParts = (payload: Uint8Array, max: number): readonly [header: Uint8Array, payload: Uint8Array] => [
  frameHeader(payload.length, max),
  payload
]

/** The whole frame in one new buffer (copies the payload). Throws `FrameError` (SendTooLarge) above `max`. */
export const encodeFrame = (payload: Uint8Array, max: number): Uint8Array => {
  const header = frameHeader(payload.length, max)
  const frame = new Uint8Array(FRAME_HEADER_SIZE + payload.length)
  frame.set(header, 0)
  frame.set(payload, FRAME_HEADER_SIZE)
  return frame
}

/**
 * Incremental frame decoder over a queue of chunks; the stream is never concatenated as a whole.
 *
 * - `push(chunk)` queues a chunk (kept by reference and never mutated: Node Buffers and views are fine). As soon as
 *   the 4 header bytes are there (possibly split over chunks) the length is checked, and a length above `max`
 *   throws `FrameError` (ReceiveTooLarge) at once, before any of the payload is buffered.
 * - `next()` returns the next complete payload, or undefined until all its bytes have arrived.
 * - `end()` declares the end of the stream: throws `FrameError` (Truncated) if the buffered bytes end inside a frame
 *   (complete frames not yet taken stay available through `next()`).
 *
 * Aliasing: a payload that lies within one chunk is returned as a `subarray` view of that chunk (zero copies; it
 * keeps the chunk alive and sees any later change the producer makes to it); a payload spread over several chunks
 * is copied once into a new buffer. Do not mutate returned payloads. Decoded values do not alias them: the
 * postcard reader copies every byte string it returns.
 *
 * After a failure every later call throws the same error.
 */
export class FrameDecoder {
  private chunks: Array<Uint8Array> = []
  /** Index of the first live chunk in `chunks`, and the read offset inside it. */
  private head = 0
  private offset = 0
  private bufferedBytes = 0
  /** Payload length of the frame being received, once its header was read. */
  private pending: number | undefined = undefined
  private failure: FrameError | undefined = undefined

  constructor(readonly max: number) {
    checkMax(max)
  }

  /** Bytes queued and not yet returned (header bytes included). */
  get buffered(): number {
    return this.bufferedBytes
  }

  push(chunk: Uint8Array): void {
    this.check()
    if (chunk.length === 0) return
    this.chunks.push(chunk)
    this.bufferedBytes += chunk.length
    this.readHeader()
  }

  next(): Uint8Array | undefined {
    this.check()
    this.readHeader()
    const length = this.pending
    if (length === undefined || this.bufferedBytes < length) return undefined
    this.pending = undefined
    return this.take(length)
  }

  end(): void {
    this.check()
    // Frames still complete stay available through next(); only bytes that end inside a frame are an error.
    let pos = 0
    let frameStart = this.pending === undefined ? 0 : -FRAME_HEADER_SIZE
    let payload = this.pending
    for (;;) {
      if (payload !== undefined) {
        if (this.bufferedBytes - pos < payload) {
          return this.fail(truncated(this.bufferedBytes - frameStart, FRAME_HEADER_SIZE + payload))
        }
        pos += payload
        frameStart = pos
      }
      const left = this.bufferedBytes - pos
      if (left === 0) return
      if (left < FRAME_HEADER_SIZE) return this.fail(truncated(left, FRAME_HEADER_SIZE))
      payload = this.peekLength(pos)
      if (payload > this.max) return this.fail(receiveTooLarge(payload, this.max))
      pos += FRAME_HEADER_SIZE
    }
  }

  private check(): void {
    if (this.failure !== undefined) throw this.failure
  }

  private fail(error: FrameError): never {
    this.failure = error
    this.chunks = []
    this.head = 0
    this.offset = 0
    this.bufferedBytes = 0
    this.pending = undefined
    throw error
  }

  private readHeader(): void {
    if (this.pending !== undefined || this.bufferedBytes < FRAME_HEADER_SIZE) return
    const length = this.peekLength(0)
    if (length > this.max) return this.fail(receiveTooLarge(length, this.max))
    this.skip(FRAME_HEADER_SIZE)
    this.pending = length
  }

  /** The big-endian u32 at `pos` bytes into the buffered data (`pos + 4 <= bufferedBytes`). */
  private peekLength(pos: number): number {
    let i = this.head
    let o = this.offset + pos
    while (o >= this.chunks[i]!.length) o -= this.chunks[i++]!.length
    let length = 0
    for (let k = 0; k < FRAME_HEADER_SIZE; k++) {
      while (o === this.chunks[i]!.length) {
        i++
        o = 0
      }
      length = length * 256 + this.chunks[i]![o++]!
    }
    return length
  }

  /** Removes `n <= bufferedBytes` bytes from the front: a view when they lie in the first chunk, else one copy. */
  private take(n: number): Uint8Array {
    this.bufferedBytes -= n
    const first = this.chunks[this.head]
    if (n === 0 || first === undefined) return new Uint8Array(0)
    if (first.length - this.offset >= n) {
      const out = first.subarray(this.offset, this.offset + n)
      this.offset += n
      if (this.offset === first.length) this.dropFirst()
      return out
    }
    const out = new Uint8Array(n)
    let filled = 0
    while (filled < n) {
      const chunk = this.chunks[this.head]!
      const count = Math.min(chunk.length - this.offset, n - filled)
      out.set(chunk.subarray(this.offset, this.offset + count), filled)
      filled += count
      this.offset += count
      if (this.offset === chunk.length) this.dropFirst()
    }
    return out
  }

  private skip(n: number): void {
    this.bufferedBytes -= n
    while (n > 0) {
      const count = Math.min(this.chunks[this.head]!.length - this.offset, n)
      n -= count
      this.offset += count
      if (this.offset === this.chunks[this.head]!.length) this.dropFirst()
    }
  }

  private dropFirst(): void {
    this.offset = 0
    this.head++
    if (this.head === this.chunks.length) {
      this.chunks = []
      this.head = 0
    } else if (this.head >= 1024 && this.head * 2 >= this.chunks.length) {
      this.chunks = this.chunks.slice(this.head)
      this.head = 0
    }
  }
}

/** A stream chunk: a Uint8Array, or a list of buffers with a contiguous view (libp2p's `Uint8ArrayList`). */
export type Chunk = Uint8Array | { subarray(): Uint8Array }

const contiguous = (chunk: Chunk): Uint8Array => (chunk instanceof Uint8Array ? chunk : chunk.subarray())

/**
 * The payloads of the frames of `source`, in order. Throws `FrameError` on an oversized length prefix (as soon as
 * its header arrived) or when the source ends inside a frame; errors of the source propagate. Stopping early (or
 * failing) closes the source. Payloads may alias the source's chunks, as described on `FrameDecoder`.
 */
export async function* readFrames(
  source: AsyncIterable<Chunk>,
  max: number
): AsyncGenerator<Uint8Array, void, undefined> {
  const decoder = new FrameDecoder(max)
  for await (const chunk of source) {
    decoder.push(contiguous(chunk))
    for (let frame = decoder.next(); frame !== undefined; frame = decoder.next()) yield frame
  }
  decoder.end()
}
