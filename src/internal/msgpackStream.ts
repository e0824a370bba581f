/**
 * A stream of msgpack messages cut into arbitrary pieces (an HTTP response's reads) decoded into whole messages, with
 * copying linear in the bytes. @effect/rpc's msgpack serialization (0.76) copies the unfinished message and the new
 * piece into a fresh array on every piece: a 1 MiB `BlobRead` reply arriving in 64 KiB reads was copied ~8 times over
 * (850 MiB copied and collected per 100 MiB read). Here the unfinished message grows in a buffer that doubles, so each
 * byte is copied about twice. Every piece is still offered to the parser at once, as upstream (a message is returned
 * as soon as its last byte is in): the parse of an unfinished message starts again from its first byte, which costs
 * nothing for a large binary field (msgpackr stops at its length) and is bounded, as upstream, by `maxPending`.
 *
 * msgpackr's values may point into the bytes they were read from (binary fields are views, not copies), so a byte
 * that a returned message was read from is never written again: pieces append after the unfinished message only, and
 * a buffer holding returned messages is left behind, never reused from its start.
 */
import type { Unpackr } from "msgpackr"

/** The unfinished message: `buffer[start, end)`; the buffer is ours to append to beyond `end` only when `owned`. */
interface Pending {
  readonly buffer: Uint8Array
  readonly start: number
  readonly end: number
  readonly owned: boolean
}

const MIN_CAPACITY = 64 * 1024

const isIncomplete = (error: unknown): error is Error & {
  readonly incomplete: true
  readonly lastPosition?: number
  readonly values?: Array<unknown>
} => typeof error === "object" && error !== null && "incomplete" in error && error.incomplete === true

export class MsgpackStreamDecoder {
  private pending: Pending | undefined = undefined
  private copiedBytes = 0

  /**
   * @param unpackr reads the messages in order (record structures carry over from one message to the next).
   * @param maxPending the largest unfinished message held, in bytes; beyond it `tooLarge` is thrown.
   */
  constructor(
    private readonly unpackr: Unpackr,
    private readonly maxPending: number,
    private readonly tooLarge: (bufferSize: number) => Error
  ) {}

  /** The bytes of the unfinished message held. */
  get pendingBytes(): number {
    return this.pending === undefined ? 0 : this.pending.end - this.pending.start
  }

  /** The bytes copied so far into buffers of its own (about twice an unfinished message's size at most). */
  get copied(): number {
    return this.copiedBytes
  }

  /** The messages `piece` completes, in order; an unfinished one is kept for the next pieces. */
  push(piece: Uint8Array): Array<unknown> {
    const source: Pending = this.pending === undefined
      ? { buffer: piece, start: 0, end: piece.length, owned: false }
      : this.append(piece)
    this.pending = undefined
    const view = source.buffer.subarray(source.start, source.end)
    try {
      return this.unpackr.unpackMultiple(view) ?? []
    } catch (error) {
      if (!isIncomplete(error)) throw error
      const consumed = error.lastPosition ?? 0
      const size = view.length - consumed
      if (size > this.maxPending) throw this.tooLarge(size)
      this.pending = { buffer: source.buffer, start: source.start + consumed, end: source.end, owned: source.owned }
      return error.values ?? []
    }
  }

  /** The unfinished message with `piece` after it: in place when its buffer has room, else in one twice as large. */
  private append(piece: Uint8Array): Pending {
    const p = this.pending!
    const length = p.end - p.start + piece.length
    if (p.owned && p.end + piece.length <= p.buffer.length) {
      p.buffer.set(piece, p.end)
      this.copiedBytes += piece.length
      return { ...p, end: p.end + piece.length }
    }
    const buffer = new Uint8Array(Math.max(MIN_CAPACITY, 2 * length))
    buffer.set(p.buffer.subarray(p.start, p.end))
    buffer.set(piece, p.end - p.start)
    this.copiedBytes += length
    return { buffer, start: 0, end: length, owned: true }
  }
}
