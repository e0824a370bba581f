/** Byte helpers shared by codecs, the store and the reconciliation code. Pure, no I/O. */

/** Unsigned lexicographic order; a proper prefix sorts before its extensions. */
export const compare = (a: Uint8Array, b: Uint8Array): number => Buffer.compare(a, b)

export const equals = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && Buffer.compare(a, b) === 0

export const startsWith = (bytes: Uint8Array, prefix: Uint8Array): boolean => {
  if (prefix.length > bytes.length) return false
  for (let i = 0; i < prefix.length; i++) if (bytes[i] !== prefix[i]) return false
  return true
}

/** The bytes as a latin1 string (one char per byte): a Map/Set key whose string order is the byte order. */
export const latin1 = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("latin1")

/** The parts one after the other, in a new buffer (an array of any length: no spread). */
export const concatAll = (parts: ReadonlyArray<Uint8Array>): Uint8Array => {
  let n = 0
  for (const p of parts) n += p.length
  const out = new Uint8Array(n)
  let o = 0
  for (const p of parts) {
    out.set(p, o)
    o += p.length
  }
  return out
}

export const concat = (...parts: ReadonlyArray<Uint8Array>): Uint8Array => concatAll(parts)

/**
 * The smallest byte string greater than every string that starts with `prefix`, or undefined when none exists
 * (empty prefix or all 0xFF). Truncates after the incremented byte: `[1, 255]` → `[2]` (spec 03 §2 quirk avoided).
 */
export const prefixUpperBound = (prefix: Uint8Array): Uint8Array | undefined => {
  for (let i = prefix.length - 1; i >= 0; i--) {
    if (prefix[i]! !== 0xff) {
      // A copy: `Buffer#slice` would be a view, and the increment below would change the caller's bytes.
      const out = Uint8Array.prototype.slice.call(prefix, 0, i + 1)
      out[i] = prefix[i]! + 1
      return out
    }
  }
  return undefined
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"))

export const toHex = (bytes: Uint8Array): string => {
  let s = ""
  for (let i = 0; i < bytes.length; i++) s += HEX[bytes[i]!]
  return s
}

/** Strict hex decoding (upper or lower case, even length); undefined on any other input. */
export const fromHex = (hex: string): Uint8Array | undefined => {
  if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) return undefined
  return new Uint8Array(Buffer.from(hex, "hex"))
}

export const u64ToBytesBE = (n: bigint): Uint8Array => {
  const out = new Uint8Array(8)
  new DataView(out.buffer).setBigUint64(0, n, false)
  return out
}

export const u64FromBytesBE = (b: Uint8Array): bigint =>
  new DataView(b.buffer, b.byteOffset, b.byteLength).getBigUint64(0, false)

/** XOR `b` into `a` in place (same length). */
export const xorInto = (a: Uint8Array, b: Uint8Array): void => {
  for (let i = 0; i < a.length; i++) a[i]! ^= b[i]!
}

/** A fresh copy as a plain Uint8Array (not a Buffer view into a shared pool). */
export const copy = (b: Uint8Array): Uint8Array => new Uint8Array(b)

export const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s)
