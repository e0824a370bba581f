/** AuthorHeads: newest timestamp seen per author (spec 01 §12). Immutable values; operations return new heads. */
import { ParseResult, Schema } from "effect"
import { compare, toHex } from "../internal/bytes.js"
import { Reader, Writer } from "../internal/postcard.js"
import { decodeWith } from "./Entry.js"
import { AuthorId } from "./Keys.js"

export interface AuthorHeads {
  /** hex(author) → [author, timestamp] */
  readonly heads: ReadonlyMap<string, readonly [AuthorId, bigint]>
}

export const empty: AuthorHeads = { heads: new Map() }

/** Mutable builder used while a sync session accumulates heads. */
export class Builder {
  private readonly map = new Map<string, readonly [AuthorId, bigint]>()
  insert(author: AuthorId, timestamp: bigint): this {
    const k = toHex(author)
    const prev = this.map.get(k)
    if (prev === undefined || prev[1] < timestamp) this.map.set(k, [author, timestamp])
    return this
  }
  merge(other: AuthorHeads): this {
    for (const [a, t] of other.heads.values()) this.insert(a, t)
    return this
  }
  build(): AuthorHeads {
    return { heads: new Map(this.map) }
  }
}

export const fromEntries = (pairs: Iterable<readonly [AuthorId, bigint]>): AuthorHeads => {
  const b = new Builder()
  for (const [a, t] of pairs) b.insert(a, t)
  return b.build()
}

export const get = (self: AuthorHeads, author: AuthorId): bigint | undefined => self.heads.get(toHex(author))?.[1]

export const size = (self: AuthorHeads): number => self.heads.size

export const merge = (self: AuthorHeads, other: AuthorHeads): AuthorHeads => new Builder().merge(self).merge(other).build()

/** Number of authors in `self` newer than in `other` or missing there; 0 when none (spec 01 §12). */
export const hasNewsFor = (self: AuthorHeads, other: AuthorHeads): number => {
  let n = 0
  for (const [k, [, t]] of self.heads) {
    const theirs = other.heads.get(k)
    if (theirs === undefined || theirs[1] < t) n++
  }
  return n
}

/**
 * Postcard `Vec<(u64, AuthorId)>`, newest first; with a limit, items are added while the encoding stays within it,
 * stopping at the first that does not fit. Unlike the reference (which groups by timestamp and so keeps one author
 * per timestamp), every author is kept; ties are ordered by author id, largest first.
 */
export const encode = (self: AuthorHeads, sizeLimit?: number): Uint8Array => {
  const items = [...self.heads.values()].sort((a, b) => (a[1] > b[1] ? -1 : a[1] < b[1] ? 1 : compare(b[0], a[0])))
  const body = new Writer()
  let count = 0
  for (const [author, ts] of items) {
    const item = new Writer(48).varint64(ts).raw(author).finish()
    if (sizeLimit !== undefined && varintLen(count + 1) + body.length + item.length > sizeLimit) break
    body.raw(item)
    count++
  }
  return new Writer(body.length + 4).varint(count).raw(body.finish()).finish()
}

const varintLen = (n: number): number => {
  let len = 1
  while (n >= 0x80) {
    n = Math.floor(n / 0x80)
    len++
  }
  return len
}

const MAX_HEADS = 1 << 16

export const read = (r: Reader): AuthorHeads => {
  const n = r.varint(MAX_HEADS)
  const b = new Builder()
  for (let i = 0; i < n; i++) {
    const ts = r.varint64()
    b.insert(AuthorId.make(r.raw(32), { disableValidation: true }), ts)
  }
  return b.build()
}

const AuthorHeadsSelf = Schema.declare((u): u is AuthorHeads =>
  typeof u === "object" && u !== null && "heads" in u && u.heads instanceof Map
)

/** AuthorHeads ⇄ its postcard bytes; decoding keeps the maximum per author. */
export const AuthorHeadsFromBytes = Schema.transformOrFail(Schema.Uint8ArrayFromSelf, AuthorHeadsSelf, {
  strict: true,
  decode: (bytes, _, ast) => decodeWith(read)(bytes, ast),
  encode: (h) => ParseResult.succeed(encode(h))
})
