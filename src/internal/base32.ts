/**
 * RFC 4648 base32 without padding (tickets, spec 06 §6). Encoding emits lowercase; decoding accepts either case but
 * rejects padding, characters outside the alphabet, impossible lengths and non-zero trailing bits, so every byte
 * string has exactly one accepted spelling per case (as the reference's `BASE32_NOPAD` does).
 */
import { Either } from "effect"

const ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"

const DECODE: ReadonlyArray<number> = (() => {
  const table = new Array<number>(128).fill(-1)
  for (let i = 0; i < 32; i++) {
    table[ALPHABET.charCodeAt(i)] = i
    table[ALPHABET.toUpperCase().charCodeAt(i)] = i
  }
  return table
})()

export const encode = (bytes: Uint8Array): string => {
  let out = ""
  let buffer = 0
  let bits = 0
  for (let i = 0; i < bytes.length; i++) {
    buffer = ((buffer << 8) | bytes[i]!) & 0xfff
    bits += 8
    while (bits >= 5) {
      bits -= 5
      out += ALPHABET[(buffer >> bits) & 31]
    }
  }
  if (bits > 0) out += ALPHABET[(buffer << (5 - bits)) & 31]
  return out
}

/** Decodes, or returns why not (a position or length; never the input itself, which may carry a secret). */
export const decode = (s: string): Either.Either<Uint8Array, string> => {
  // 1, 3 and 6 leftover characters cannot come from whole bytes.
  const rest = s.length % 8
  if (rest === 1 || rest === 3 || rest === 6) return Either.left(`invalid base32 length ${s.length}`)
  const out = new Uint8Array(Math.floor((s.length * 5) / 8))
  let buffer = 0
  let bits = 0
  let o = 0
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    const v = c < 128 ? DECODE[c]! : -1
    if (v < 0) return Either.left(`invalid base32 character at position ${i}`)
    buffer = ((buffer << 5) | v) & 0xfff
    bits += 5
    if (bits >= 8) {
      bits -= 8
      out[o++] = (buffer >> bits) & 0xff
    }
  }
  if ((buffer & ((1 << bits) - 1)) !== 0) return Either.left("non-zero trailing bits in base32")
  return Either.right(out)
}
