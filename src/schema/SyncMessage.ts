/**
 * The frame payload of a sync session (spec 04 §4): `Init { namespace, message }` (0), `Sync(message)` (1),
 * `Abort { reason }` (2), with its postcard codec. The reconciliation Message inside is the codec of Message.ts on
 * `SYNC_PROTOCOL` (the reference's bytes), or the compact codec below on `COMPACT_SYNC_PROTOCOL` (ours).
 *
 * The compact codec carries the same Message in fewer bytes:
 * - a part's tag says its kind (fingerprint, item, item with haveLocal) and whether its lower bound is the upper bound
 *   of the part before it (the sub-ranges of a split follow one another: one bound per part instead of two);
 * - a bound is written against the bound written before it: the length of their common prefix, then the rest (the
 *   namespace is shared by every bound, the author by most, and short split bounds — Reconcile's `shortBounds` —
 *   leave a few bytes of key);
 * - a fingerprint carries its first `COMPACT_FINGERPRINT_BYTES` bytes (16; decoded padded with zeros, compared on
 *   that prefix by a session with `fingerprintBytes` 16). 128 bits keep an accidental match out of reach; a
 *   deliberate one is no easier to make at 32 bytes, since XOR fingerprints are linear.
 * Values stay SignedEntries as in spec 01 §5. Decoding is bounded like the reference codec's (parts, values, key
 * length), and the bounds a message decodes to by `MAX_COMPACT_BOUND_BYTES` in all, since a prefix-coded bound of a
 * few bytes can stand for thousands.
 */
import { ParseResult, Schema } from "effect"
import { PostcardError, type Reader, type Writer } from "../internal/postcard.js"
import { MAX_INIT_PARTS, MAX_PARTS, MAX_VALUES } from "./constants.js"
import {
  CONTENT_STATUSES,
  type ContentStatus,
  decodeWith,
  DecodeLimitExceeded,
  encodeWith,
  MAX_KEY_LENGTH,
  readBounded,
  readSignedEntry,
  type SignedEntry,
  writeSignedEntry
} from "./Entry.js"
import { NamespaceId } from "./Keys.js"
import {
  makeMessage,
  makeRange,
  makeRangeFingerprint,
  makeRangeItem,
  Message,
  type MessagePart,
  readMessage,
  writeMessage
} from "./Message.js"

/** Our sync protocol: the frames of `SYNC_PROTOCOL`, with Messages in the compact codec. */
export const COMPACT_SYNC_PROTOCOL = "/rangedocs/sync/1"
/** Bytes of a fingerprint the compact codec carries. */
export const COMPACT_FINGERPRINT_BYTES = 16
/**
 * Most bytes the range bounds of one compact message decode to: an honest message's bounds stay within its sender's
 * budget (Reconcile's `maxMessageBytes`, 4 MiB, counts whole bounds), a hostile one is refused past this.
 */
export const MAX_COMPACT_BOUND_BYTES = 32 << 20

/** Why an acceptor refuses a session (spec 04 §4.2); postcard indices 0, 1, 2. */
export const AbortReason = Schema.Literal("NotFound", "AlreadySyncing", "InternalServerError")
export type AbortReason = typeof AbortReason.Type
export const ABORT_REASONS: ReadonlyArray<AbortReason> = ["NotFound", "AlreadySyncing", "InternalServerError"]

/** The initiator's first message: the namespace to sync and the initial reconciliation message. */
export class Init extends Schema.TaggedClass<Init>()("Init", { namespace: NamespaceId, message: Message }) {}

/** Every later message of either side (a newtype variant on the wire: just the Message). */
export class Sync extends Schema.TaggedClass<Sync>()("Sync", { message: Message }) {}

/** The acceptor's refusal, its first and last message. */
export class Abort extends Schema.TaggedClass<Abort>()("Abort", { reason: AbortReason }) {}

export const SyncMessage = Schema.Union(Init, Sync, Abort)
export type SyncMessage = typeof SyncMessage.Type

const commonPrefix = (a: Uint8Array, b: Uint8Array): number => {
  const n = Math.min(a.length, b.length)
  let l = 0
  while (l < n && a[l] === b[l]) l++
  return l
}

const NO_BOUND: Uint8Array = new Uint8Array(0)

/** A Message in the compact codec (see the module's doc). */
export const writeCompactMessage = (w: Writer, m: Message): void => {
  w.varint(m.parts.length)
  let previous = NO_BOUND
  let lastY: Uint8Array | undefined
  const bound = (b: Uint8Array) => {
    const l = commonPrefix(previous, b)
    w.varint(l).varint(b.length - l).raw(b.subarray(l))
    previous = b
  }
  for (const part of m.parts) {
    const { x, y } = part.range
    const shared = lastY !== undefined && lastY.length === x.length && commonPrefix(lastY, x) === x.length
    const kind = part._tag === "RangeFingerprint" ? 0 : part.haveLocal ? 2 : 1
    w.varint(kind | (shared ? 4 : 0))
    if (!shared) bound(x)
    bound(y)
    lastY = y
    if (part._tag === "RangeFingerprint") {
      if (part.fingerprint.length !== 32) throw new PostcardError(`fingerprint of ${part.fingerprint.length} bytes`)
      w.raw(part.fingerprint.subarray(0, COMPACT_FINGERPRINT_BYTES))
    } else {
      w.varint(part.values.length)
      for (const [entry, status] of part.values) {
        writeSignedEntry(w, entry)
        w.varint(CONTENT_STATUSES.indexOf(status))
      }
    }
  }
}

/** Reads a compact Message, bounded like `readMessage` and in the bytes its bounds decode to. */
export const readCompactMessage = (r: Reader, limit: "parts" | "initParts" = "parts"): Message => {
  const n = readBounded(r, limit, limit === "parts" ? MAX_PARTS : MAX_INIT_PARTS)
  const parts: Array<MessagePart> = []
  let values = 0
  let boundBytes = 0
  let previous = NO_BOUND
  let lastY: Uint8Array | undefined
  const bound = (): Uint8Array => {
    const l = r.varint(previous.length)
    const rest = r.varint()
    const total = l + rest
    if (total > 64 + MAX_KEY_LENGTH) throw new DecodeLimitExceeded("keyLength", MAX_KEY_LENGTH, total - 64)
    if (total < 64) throw new PostcardError("range bound shorter than a record identifier")
    boundBytes += total
    if (boundBytes > MAX_COMPACT_BOUND_BYTES) {
      throw new PostcardError(`range bounds of more than ${MAX_COMPACT_BOUND_BYTES} bytes`)
    }
    if (rest > r.remaining) throw new PostcardError(`expected ${rest} bytes, ${r.remaining} left`)
    const b = new Uint8Array(total)
    b.set(previous.subarray(0, l))
    b.set(r.raw(rest), l)
    previous = b
    return b
  }
  for (let i = 0; i < n; i++) {
    const tag = r.varint(6)
    const kind = tag & 3
    if (kind === 3) throw new PostcardError(`unknown part kind ${kind}`)
    let x: Uint8Array
    if ((tag & 4) !== 0) {
      if (lastY === undefined) throw new PostcardError("a shared bound in the first part")
      x = lastY
    } else x = bound()
    const y = bound()
    lastY = y
    const range = makeRange(x, y)
    if (kind === 0) {
      const fingerprint = new Uint8Array(32)
      fingerprint.set(r.raw(COMPACT_FINGERPRINT_BYTES))
      parts.push(makeRangeFingerprint(range, fingerprint))
    } else {
      const count = r.varint()
      if (count > MAX_VALUES - values) throw new DecodeLimitExceeded("values", MAX_VALUES, values + count)
      values += count
      const list: Array<readonly [SignedEntry, ContentStatus]> = []
      for (let j = 0; j < count; j++) {
        const entry = readSignedEntry(r)
        list.push([entry, CONTENT_STATUSES[r.varint(2)]!])
      }
      parts.push(makeRangeItem(range, list, kind === 2))
    }
  }
  return makeMessage(parts)
}

/** The two Message codecs of the frames. */
export interface MessageCodec {
  readonly write: (w: Writer, m: Message) => void
  readonly read: (r: Reader, limit?: "parts" | "initParts") => Message
}
export const REFERENCE_CODEC: MessageCodec = { write: writeMessage, read: readMessage }
export const COMPACT_CODEC: MessageCodec = { write: writeCompactMessage, read: readCompactMessage }

/** A frame payload whose Message is written by `codec`. */
export const writeSyncMessageWith = (codec: MessageCodec) => (w: Writer, m: SyncMessage): void => {
  switch (m._tag) {
    case "Init":
      // A class instance is not re-validated on encode; a wrong length here would shift every later byte.
      if (m.namespace.length !== 32) throw new PostcardError(`namespace of ${m.namespace.length} bytes, expected 32`)
      w.varint(0).raw(m.namespace)
      codec.write(w, m.message)
      return
    case "Sync":
      w.varint(1)
      codec.write(w, m.message)
      return
    case "Abort":
      w.varint(2).varint(ABORT_REASONS.indexOf(m.reason))
      return
  }
}

export const writeSyncMessage = writeSyncMessageWith(REFERENCE_CODEC)

/** A frame payload whose Message is read by `codec`. */
export const readSyncMessageWith = (codec: MessageCodec) => (r: Reader): SyncMessage => {
  const tag = r.varint()
  switch (tag) {
    case 0: {
      // A fixed-size array in postcard: 32 raw bytes, no length prefix.
      const namespace = NamespaceId.make(r.raw(32))
      // Read before the accept decision: an Init is bounded to a few parts (an honest one has exactly one).
      return new Init({ namespace, message: codec.read(r, "initParts") }, true)
    }
    case 1:
      return new Sync({ message: codec.read(r) }, true)
    case 2: {
      const index = r.varint()
      const reason = ABORT_REASONS[index]
      if (reason === undefined) throw new PostcardError(`unknown AbortReason variant ${index}`)
      return new Abort({ reason }, true)
    }
    default:
      throw new PostcardError(`unknown SyncMessage variant ${tag}`)
  }
}

export const readSyncMessage = readSyncMessageWith(REFERENCE_CODEC)
export const readCompactSyncMessage = readSyncMessageWith(COMPACT_CODEC)
export const writeCompactSyncMessage = writeSyncMessageWith(COMPACT_CODEC)

/** A Message's bytes in the compact codec. */
export const encodeCompactMessage = encodeWith(writeCompactMessage)

/** SyncMessage ⇄ postcard bytes (spec 04 §4); malformed input (including trailing bytes) fails with a ParseError. */
export const SyncMessageFromBytes = Schema.transformOrFail(Schema.Uint8ArrayFromSelf, Schema.typeSchema(SyncMessage), {
  strict: true,
  decode: (bytes, _, ast) => decodeWith(readSyncMessage)(bytes, ast),
  encode: (m, _, ast) => {
    try {
      return ParseResult.succeed(encodeWith(writeSyncMessage)(m))
    } catch (e) {
      if (e instanceof PostcardError) return ParseResult.fail(new ParseResult.Type(ast, m, e.message))
      throw e
    }
  }
})

/** SyncMessage ⇄ bytes with the compact Message codec (`COMPACT_SYNC_PROTOCOL`); malformed input fails. */
export const CompactSyncMessageFromBytes = Schema.transformOrFail(
  Schema.Uint8ArrayFromSelf,
  Schema.typeSchema(SyncMessage),
  {
    strict: true,
    decode: (bytes, _, ast) => decodeWith(readCompactSyncMessage)(bytes, ast),
    encode: (m, _, ast) => {
      try {
        return ParseResult.succeed(encodeWith(writeCompactSyncMessage)(m))
      } catch (e) {
        if (e instanceof PostcardError) return ParseResult.fail(new ParseResult.Type(ast, m, e.message))
        throw e
      }
    }
  }
)
