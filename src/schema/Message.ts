/**
 * Reconciliation messages (spec 02 §3): `Message { parts }`, each part a RangeFingerprint or a RangeItem, with the
 * postcard codec. Range bounds are RecordIdentifier bytes (`namespace ‖ author ‖ key`, at least 64 bytes).
 */
import { ParseResult, Schema } from "effect"
import { PostcardError, type Reader, type Writer } from "../internal/postcard.js"
import { trusted } from "../internal/trusted.js"
import {
  CONTENT_STATUSES,
  ContentStatus,
  decodeWith,
  DecodeLimitExceeded,
  encodeWith,
  MAX_KEY_LENGTH,
  readBounded,
  readSignedEntry,
  SignedEntry,
  writeSignedEntry
} from "./Entry.js"
import { MAX_INIT_PARTS, MAX_PARTS, MAX_VALUES } from "./constants.js"
import { Bytes32 } from "./Keys.js"

/** A RecordIdentifier as bytes: `namespace(32) ‖ author(32) ‖ key`. */
export const IdBytes = Schema.Uint8ArrayFromSelf.pipe(
  Schema.filter((b) => (b.length >= 64 && b.length <= 64 + MAX_KEY_LENGTH) || "not a record identifier")
)

/** `(x, y)`: x == y the whole set, x < y `[x, y)`, x > y wraps around (spec 02 §2). */
export class Range extends Schema.Class<Range>("Range")({ x: IdBytes, y: IdBytes }) {}

export class RangeFingerprint extends Schema.TaggedClass<RangeFingerprint>()("RangeFingerprint", {
  range: Range,
  fingerprint: Bytes32
}) {}

/** `haveLocal = false`: here are my items, reply with yours I lack; `true`: a reply, do not answer it. */
export class RangeItem extends Schema.TaggedClass<RangeItem>()("RangeItem", {
  range: Range,
  values: Schema.Array(Schema.Tuple(SignedEntry, ContentStatus)),
  haveLocal: Schema.Boolean
}) {}

export const MessagePart = Schema.Union(RangeFingerprint, RangeItem)
export type MessagePart = typeof MessagePart.Type

export class Message extends Schema.Class<Message>("Message")({ parts: Schema.Array(MessagePart) }) {
  /** Number of entries carried by the message's RangeItems (SyncOutcome counting, spec 02 §6). */
  get valueCount(): number {
    let n = 0
    for (const p of this.parts) if (p._tag === "RangeItem") n += p.values.length
    return n
  }
}

// Instances from checked fields (the decoder's, the reconciliation step's): the constructors' default merging and
// field copies cost more than the work around them when a message has tens of thousands of parts.
export const makeRange = (x: Uint8Array, y: Uint8Array): Range => trusted(Range.prototype, { x, y })
export const makeRangeFingerprint = (range: Range, fingerprint: Uint8Array): RangeFingerprint =>
  trusted(RangeFingerprint.prototype, { range, fingerprint, _tag: "RangeFingerprint" })
export const makeRangeItem = (
  range: Range,
  values: ReadonlyArray<readonly [SignedEntry, ContentStatus]>,
  haveLocal: boolean
): RangeItem => trusted(RangeItem.prototype, { range, values, haveLocal, _tag: "RangeItem" })
export const makeMessage = (parts: ReadonlyArray<MessagePart>): Message => trusted(Message.prototype, { parts })

/** Decoding limits: a message holds at most this many parts and values (constants.ts says why). */
export { MAX_PARTS, MAX_VALUES }

const writeRange = (w: Writer, r: Range) => w.bytes(r.x).bytes(r.y)

/** A range bound: a record identifier, whose key is bounded like an entry's. */
const readBound = (r: Reader): Uint8Array => {
  const n = r.varint()
  if (n > 64 + MAX_KEY_LENGTH) throw new DecodeLimitExceeded("keyLength", MAX_KEY_LENGTH, n - 64)
  if (n < 64) throw new PostcardError("range bound shorter than a record identifier")
  return r.raw(n)
}

const readRange = (r: Reader): Range => makeRange(readBound(r), readBound(r))

export const writeMessage = (w: Writer, m: Message): void => {
  w.varint(m.parts.length)
  for (const part of m.parts) {
    if (part._tag === "RangeFingerprint") {
      writeRange(w.varint(0), part.range)
      w.raw(part.fingerprint)
    } else {
      writeRange(w.varint(1), part.range)
      w.varint(part.values.length)
      for (const [entry, status] of part.values) {
        writeSignedEntry(w, entry)
        w.varint(CONTENT_STATUSES.indexOf(status))
      }
      w.bool(part.haveLocal)
    }
  }
}

/**
 * Reads a Message, refusing (DecodeLimitExceeded) more than `MAX_PARTS` parts (`MAX_INIT_PARTS` for an Init's) or `MAX_VALUES` values, or keys over
 * `MAX_KEY_LENGTH`, as soon as the count or length is read: nothing is built for a refused message but what came
 * before the count.
 */
export const readMessage = (r: Reader, limit: "parts" | "initParts" = "parts"): Message => {
  const n = readBounded(r, limit, limit === "parts" ? MAX_PARTS : MAX_INIT_PARTS)
  const parts: Array<MessagePart> = []
  let values = 0
  for (let i = 0; i < n; i++) {
    const tag = r.varint(1)
    const range = readRange(r)
    if (tag === 0) {
      parts.push(makeRangeFingerprint(range, r.raw(32)))
    } else {
      const count = r.varint()
      if (count > MAX_VALUES - values) throw new DecodeLimitExceeded("values", MAX_VALUES, values + count)
      values += count
      const list: Array<readonly [SignedEntry, ContentStatus]> = []
      for (let j = 0; j < count; j++) {
        const entry = readSignedEntry(r)
        list.push([entry, CONTENT_STATUSES[r.varint(2)]!])
      }
      parts.push(makeRangeItem(range, list, r.bool()))
    }
  }
  return makeMessage(parts)
}

/** Message ⇄ postcard bytes (spec 02 §3); malformed input fails with a ParseError. */
export const MessageFromBytes = Schema.transformOrFail(Schema.Uint8ArrayFromSelf, Schema.typeSchema(Message), {
  strict: true,
  decode: (bytes, _, ast) => decodeWith(readMessage)(bytes, ast),
  encode: (m) => ParseResult.succeed(encodeWith(writeMessage)(m))
})

/** Bytes of the LEB128 varint of `n` (a u64). */
const varintSize = (value: number | bigint): number => {
  let size = 1
  if (typeof value === "number" || value < 0x20000000000000n) {
    for (let rest = Number(value); rest >= 0x80; rest = Math.floor(rest / 0x80)) size++
  } else {
    for (let rest = value; rest >= 0x80n; rest >>= 7n) size++
  }
  return size
}

const bytesSize = (b: Uint8Array) => varintSize(b.length) + b.length

/** The size of `writeMessage`'s output, computed without encoding (the byte counts of the bench and of budgets). */
export const encodedSize = (m: Message): number => {
  let size = varintSize(m.parts.length)
  for (const part of m.parts) {
    size += 1 + bytesSize(part.range.x) + bytesSize(part.range.y)
    if (part._tag === "RangeFingerprint") size += 32
    else {
      size += varintSize(part.values.length) + 1
      for (const [entry] of part.values) {
        const { id, record } = entry.entry
        const idLen = 64 + id.key.length
        size += 128 + varintSize(idLen) + idLen + varintSize(record.len) + 32 + varintSize(record.timestamp) + 1
      }
    }
  }
  return size
}
