/**
 * Postcard (Rust serde) primitives: LEB128 varints, length-prefixed byte strings, fixed arrays, bools (spec 01 §0).
 * The reader throws `PostcardError`; codecs in `src/schema/` catch it and turn it into a ParseError.
 */

export class PostcardError {
  readonly _tag = "PostcardError"
  constructor(readonly message: string) {}
}

const U64_MAX = (1n << 64n) - 1n

export class Writer {
  private buf: Uint8Array
  private view: DataView
  length = 0
  constructor(capacity = 256) {
    this.buf = new Uint8Array(capacity)
    this.view = new DataView(this.buf.buffer)
  }
  private ensure(n: number): void {
    if (this.length + n <= this.buf.length) return
    let cap = this.buf.length * 2
    while (cap < this.length + n) cap *= 2
    const next = new Uint8Array(cap)
    next.set(this.buf.subarray(0, this.length))
    this.buf = next
    this.view = new DataView(next.buffer)
  }
  u8(n: number): this {
    this.ensure(1)
    this.buf[this.length++] = n
    return this
  }
  bool(b: boolean): this {
    return this.u8(b ? 1 : 0)
  }
  /** Unsigned LEB128 of a number that fits in 2^53. */
  varint(n: number): this {
    this.ensure(10)
    while (n >= 0x80) {
      this.buf[this.length++] = (n % 0x80) | 0x80
      n = Math.floor(n / 0x80)
    }
    this.buf[this.length++] = n
    return this
  }
  varint64(n: bigint): this {
    if (n < 0n || n > U64_MAX) throw new RangeError("not a u64")
    if (n < 0x20000000000000n) return this.varint(Number(n))
    this.ensure(10)
    while (n >= 0x80n) {
      this.buf[this.length++] = Number(n & 0x7fn) | 0x80
      n >>= 7n
    }
    this.buf[this.length++] = Number(n)
    return this
  }
  raw(bytes: Uint8Array): this {
    this.ensure(bytes.length)
    this.buf.set(bytes, this.length)
    this.length += bytes.length
    return this
  }
  bytes(bytes: Uint8Array): this {
    return this.varint(bytes.length).raw(bytes)
  }
  u64BE(n: bigint): this {
    this.ensure(8)
    this.view.setBigUint64(this.length, n, false)
    this.length += 8
    return this
  }
  finish(): Uint8Array {
    return this.buf.slice(0, this.length)
  }
}

export class Reader {
  offset = 0
  constructor(readonly buf: Uint8Array) {}
  get remaining(): number {
    return this.buf.length - this.offset
  }
  u8(): number {
    if (this.offset >= this.buf.length) throw new PostcardError("unexpected end of input")
    return this.buf[this.offset++]!
  }
  bool(): boolean {
    const b = this.u8()
    if (b > 1) throw new PostcardError(`invalid bool byte ${b}`)
    return b === 1
  }
  /** A u64 varint; rejects overlong encodings and values above 2^64 - 1. */
  varint64(): bigint {
    // Fast path: summed as a number, exact while the value stays below 2^53 (every timestamp and length in practice).
    const buf = this.buf
    const start = this.offset
    let value = 0
    let mul = 1
    for (let i = start; i < buf.length && i < start + 8; i++) {
      const b = buf[i]!
      value += (b & 0x7f) * mul
      if ((b & 0x80) === 0) {
        if (b === 0 && i > start) throw new PostcardError("overlong varint")
        if (value > Number.MAX_SAFE_INTEGER) break
        this.offset = i + 1
        return BigInt(value)
      }
      mul *= 0x80
    }
    return this.varint64Slow()
  }
  private varint64Slow(): bigint {
    let result = 0n
    let shift = 0n
    for (let i = 0; i < 10; i++) {
      const b = this.u8()
      const part = BigInt(b & 0x7f)
      if (i === 9 && b > 0x01) throw new PostcardError("varint overflows u64")
      result |= part << shift
      if ((b & 0x80) === 0) {
        if (b === 0 && i > 0) throw new PostcardError("overlong varint")
        return result
      }
      shift += 7n
    }
    throw new PostcardError("varint too long")
  }
  /** A varint that must fit in `max` (used for lengths, counts and enum tags). */
  varint(max: number = Number.MAX_SAFE_INTEGER): number {
    let result = 0
    let mul = 1
    for (let i = 0; i < 8; i++) {
      const b = this.u8()
      result += (b & 0x7f) * mul
      if ((b & 0x80) === 0) {
        if (b === 0 && i > 0) throw new PostcardError("overlong varint")
        if (result > max) throw new PostcardError(`value ${result} exceeds ${max}`)
        return result
      }
      mul *= 0x80
    }
    throw new PostcardError(`varint exceeds ${max}`)
  }
  raw(n: number): Uint8Array {
    if (n > this.remaining) throw new PostcardError(`expected ${n} bytes, ${this.remaining} left`)
    // Always a copy (a Buffer's slice is a view): decoded values never alias, nor keep alive, the input frame.
    const out = Uint8Array.prototype.slice.call(this.buf, this.offset, this.offset + n)
    this.offset += n
    return out
  }
  /** Skips `n` bytes; returns the offset where they start (for callers that copy a span once, then view into it). */
  skip(n: number): number {
    if (n > this.remaining) throw new PostcardError(`expected ${n} bytes, ${this.remaining} left`)
    const at = this.offset
    this.offset += n
    return at
  }
  /** A copy of the input bytes [from, to), already read (bounds are the caller's). */
  copy(from: number, to: number): Uint8Array {
    return Uint8Array.prototype.slice.call(this.buf, from, to)
  }
  bytes(maxLength: number = Number.MAX_SAFE_INTEGER): Uint8Array {
    const n = this.varint(maxLength)
    return this.raw(n)
  }
  u64BE(): bigint {
    return new DataView(this.raw(8).buffer).getBigUint64(0, false)
  }
  end(): void {
    if (this.remaining !== 0) throw new PostcardError(`${this.remaining} trailing bytes`)
  }
}
