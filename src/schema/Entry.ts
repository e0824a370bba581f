/** Entries (spec 01 §3–§7): identifiers, records, signed entries, their postcard codec, signing bytes, fingerprints. */
import { Either, ParseResult, Schema } from "effect"
import { blake3, EMPTY_HASH } from "../internal/blake3.js"
import { compare, concat, equals } from "../internal/bytes.js"
import { PostcardError, Reader, Writer } from "../internal/postcard.js"
import { MAX_KEY_LENGTH } from "./constants.js"
import { AuthorId, Hash, NamespaceId, Signature } from "./Keys.js"

export const U64 = Schema.BigIntFromSelf.pipe(
  Schema.filter((n) => (n >= 0n && n < 1n << 64n) || "not a u64"),
  Schema.brand("U64")
)
export type U64 = typeof U64.Type

/** The empty content hash BLAKE3("") (spec 01 §0). */
export const EMPTY: Hash = Hash.make(EMPTY_HASH)

/** `namespace ‖ author ‖ key`; bytewise order = tuple order (spec 01 §3). */
export class RecordIdentifier extends Schema.Class<RecordIdentifier>("RecordIdentifier")({
  namespace: NamespaceId,
  author: AuthorId,
  key: Schema.Uint8ArrayFromSelf
}) {
  /** The identifier's bytes `namespace ‖ author ‖ key`. */
  toBytes(): Uint8Array {
    return concat(this.namespace, this.author, this.key)
  }
}

export const compareIds = (a: RecordIdentifier, b: RecordIdentifier): number =>
  compare(a.namespace, b.namespace) || compare(a.author, b.author) || compare(a.key, b.key)

/** `Record` of the spec; named EntryRecord so it does not shadow TypeScript's Record. */
export class EntryRecord extends Schema.Class<EntryRecord>("Record")({ len: U64, hash: Hash, timestamp: U64 }) {
  get isEmpty(): boolean {
    return equals(this.hash, EMPTY)
  }
  /** `(hash == EMPTY) == (len == 0)` (spec 01 §4). */
  get isValidEmpty(): boolean {
    return this.isEmpty === (this.len === 0n)
  }
}

/** Last-writer-wins order: timestamp, then hash bytes (spec 01 §4). */
export const compareRecords = (
  a: { readonly timestamp: bigint; readonly hash: Uint8Array },
  b: { readonly timestamp: bigint; readonly hash: Uint8Array }
): number =>
  a.timestamp < b.timestamp ? -1 : a.timestamp > b.timestamp ? 1 : compare(a.hash, b.hash)

export class Entry extends Schema.Class<Entry>("Entry")({ id: RecordIdentifier, record: EntryRecord }) {}

export class EntrySignature extends Schema.Class<EntrySignature>("EntrySignature")({
  author: Signature,
  namespace: Signature
}) {}

export class SignedEntry extends Schema.Class<SignedEntry>("SignedEntry")({
  signature: EntrySignature,
  entry: Entry
}) {
  get namespace(): NamespaceId {
    return this.entry.id.namespace
  }
  get author(): AuthorId {
    return this.entry.id.author
  }
  get key(): Uint8Array {
    return this.entry.id.key
  }
  get record(): EntryRecord {
    return this.entry.record
  }
  get timestamp(): bigint {
    return this.entry.record.timestamp
  }
  get contentHash(): Hash {
    return this.entry.record.hash
  }
  get contentLen(): bigint {
    return this.entry.record.len
  }
  get isEmpty(): boolean {
    return this.entry.record.isEmpty
  }
}

/** Byte-wise equality including signatures (spec 01 §5). */
export const signedEntryEquals = (a: SignedEntry, b: SignedEntry): boolean =>
  compareIds(a.entry.id, b.entry.id) === 0 &&
  a.record.len === b.record.len &&
  compareRecords(a.record, b.record) === 0 &&
  equals(a.signature.author, b.signature.author) &&
  equals(a.signature.namespace, b.signature.namespace)

/**
 * An instance of a Schema class from fields already checked: what its constructor builds with validation disabled
 * (Data.Class assigns the fields onto an object of the class's prototype), without the constructor's two copies of
 * the fields. Decoding and reading entries build five per entry, so those copies are most of their garbage.
 */
const trusted = <A>(proto: A, fields: object): A => Object.assign(Object.create(proto as object) as object, fields) as A

/** Build trusted values without re-running Schema validation (callers checked every field already). */
export const makeSignedEntry = (fields: {
  readonly namespace: Uint8Array
  readonly author: Uint8Array
  readonly key: Uint8Array
  readonly len: bigint
  readonly hash: Uint8Array
  readonly timestamp: bigint
  readonly authorSignature: Uint8Array
  readonly namespaceSignature: Uint8Array
}): SignedEntry =>
  trusted(SignedEntry.prototype, {
    signature: trusted(EntrySignature.prototype, {
      author: fields.authorSignature as Signature,
      namespace: fields.namespaceSignature as Signature
    }),
    entry: trusted(Entry.prototype, {
      id: trusted(RecordIdentifier.prototype, {
        namespace: fields.namespace as NamespaceId,
        author: fields.author as AuthorId,
        key: fields.key
      }),
      record: trusted(EntryRecord.prototype, {
        len: fields.len as U64,
        hash: fields.hash as Hash,
        timestamp: fields.timestamp as U64
      })
    })
  })

/** `ns ‖ author ‖ key ‖ len BE ‖ hash ‖ timestamp BE` (spec 01 §5). */
export const signingBytes = (entry: Entry): Uint8Array => {
  const { id, record } = entry
  const out = new Uint8Array(112 + id.key.length)
  out.set(id.namespace, 0)
  out.set(id.author, 32)
  out.set(id.key, 64)
  const view = new DataView(out.buffer)
  let o = 64 + id.key.length
  view.setBigUint64(o, record.len, false)
  out.set(record.hash, o + 8)
  view.setBigUint64(o + 40, record.timestamp, false)
  return out
}

/** Scratch input of `entryFingerprint`, grown on demand (the function is synchronous, so one buffer serves all calls). */
let fpInput = new Uint8Array(256)
let fpView = new DataView(fpInput.buffer)

/** BLAKE3(`ns ‖ author ‖ key ‖ timestamp BE ‖ hash`) (spec 01 §7). */
export const entryFingerprint = (entry: Entry): Uint8Array => {
  const { id, record } = entry
  const n = 104 + id.key.length
  if (fpInput.length < n && n <= 4096) {
    fpInput = new Uint8Array(4096)
    fpView = new DataView(fpInput.buffer)
  }
  // A key too long for the scratch gets its own buffer (the scratch stays small).
  const buf = fpInput.length < n ? new Uint8Array(n) : fpInput
  buf.set(id.namespace, 0)
  buf.set(id.author, 32)
  buf.set(id.key, 64)
  const o = 64 + id.key.length
  if (buf === fpInput) fpView.setBigUint64(o, record.timestamp, false)
  else new DataView(buf.buffer).setBigUint64(o, record.timestamp, false)
  buf.set(record.hash, o + 8)
  return blake3(buf.subarray(0, n))
}

/** Content status a peer claims for a value (spec 01 §11); postcard indices 0, 1, 2. */
export const ContentStatus = Schema.Literal("Complete", "Incomplete", "Missing")
export type ContentStatus = typeof ContentStatus.Type
export const CONTENT_STATUSES: ReadonlyArray<ContentStatus> = ["Complete", "Incomplete", "Missing"]

// ---------------------------------------------------------------------------------------------------------------
// Postcard codecs (spec 01 §5). Exposed as Writer/Reader functions for composite codecs, and as Schemas.

/** Longest key of an entry, in bytes (see constants.ts); the decoder refuses longer ones before copying them. */
export { MAX_KEY_LENGTH }

/** What a decoding limit bounds (constants.ts documents each). */
export type DecodeLimit = "keyLength" | "initParts" | "parts" | "values"

/**
 * A decoding limit was exceeded: the input is refused where the count or length is read, before anything of that
 * size is built. A PostcardError, so every decoder treats it as malformed input; sync reports it as a typed error.
 */
export class DecodeLimitExceeded extends PostcardError {
  constructor(readonly limit: DecodeLimit, readonly max: number, readonly got: number) {
    super(`${limit} ${got} exceeds the limit of ${max}`)
  }
}

/** The next varint as a count or length bounded by `max`, else DecodeLimitExceeded. */
export const readBounded = (r: Reader, limit: DecodeLimit, max: number): number => {
  const n = r.varint()
  if (n > max) throw new DecodeLimitExceeded(limit, max, n)
  return n
}

export const writeSignedEntry = (w: Writer, e: SignedEntry): void => {
  const { id, record } = e.entry
  w.raw(e.signature.author).raw(e.signature.namespace)
  w.varint(64 + id.key.length).raw(id.namespace).raw(id.author).raw(id.key)
  w.varint64(record.len).raw(record.hash).varint64(record.timestamp)
}

/** Namespaces and authors met lately by `readSignedEntry`, most recent last (a message holds few of them). */
const recentKeys: Array<Uint8Array> = []
const RECENT_KEYS = 32

/**
 * A 32-byte key equal to `bytes[at, at + 32)`: one met lately, or a fresh copy that joins them. Decoded entries with
 * the same namespace or author share one array (entries are values: nothing writes into their fields).
 */
export const sharedKey = (bytes: Uint8Array, at: number): Uint8Array => {
  for (let i = recentKeys.length - 1; i >= 0; i--) {
    const k = recentKeys[i]!
    let j = 0
    while (j < 32 && k[j] === bytes[at + j]) j++
    if (j === 32) return k
  }
  const copy = new Uint8Array(32)
  for (let j = 0; j < 32; j++) copy[j] = bytes[at + j]!
  if (recentKeys.length === RECENT_KEYS) recentKeys.shift()
  recentKeys.push(copy)
  return copy
}

/**
 * One copy of the entry's bytes; its fields are views into that copy (one small buffer per entry, never a view into
 * the whole input frame), except namespace and author, shared with earlier entries that carry the same ones.
 */
export const readSignedEntry = (r: Reader): SignedEntry => {
  const start = r.skip(128)
  const idLen = r.varint()
  if (idLen > 64 + MAX_KEY_LENGTH) throw new DecodeLimitExceeded("keyLength", MAX_KEY_LENGTH, idLen - 64)
  if (idLen < 64) throw new PostcardError(`record identifier of ${idLen} bytes is shorter than 64`)
  const idAt = r.skip(idLen) - start
  const len = r.varint64()
  const hashAt = r.skip(32) - start
  const timestamp = r.varint64()
  const bytes = r.copy(start, r.offset)
  const keyEnd = idAt + idLen
  return makeSignedEntry({
    namespace: sharedKey(bytes, idAt),
    author: sharedKey(bytes, idAt + 32),
    key: bytes.subarray(idAt + 64, keyEnd),
    len,
    hash: bytes.subarray(hashAt, hashAt + 32),
    timestamp,
    authorSignature: bytes.subarray(0, 64),
    namespaceSignature: bytes.subarray(64, 128)
  })
}

/** Runs a Reader-based decoder over the whole input (trailing bytes fail). */
export const readWhole = <A>(read: (r: Reader) => A) => (bytes: Uint8Array): Either.Either<A, PostcardError> => {
  try {
    const r = new Reader(bytes)
    const a = read(r)
    r.end()
    return Either.right(a)
  } catch (e) {
    if (e instanceof PostcardError) return Either.left(e)
    throw e
  }
}

/** Runs a Reader-based decoder over the whole input, turning PostcardError into a ParseError. */
export const decodeWith = <A>(read: (r: Reader) => A) => {
  const whole = readWhole(read)
  return (bytes: Uint8Array, ast: Schema.Schema.Any["ast"]): Either.Either<A, ParseResult.ParseIssue> =>
    Either.mapLeft(whole(bytes), (e) => new ParseResult.Type(ast, bytes, e.message))
}

export const encodeWith = <A>(write: (w: Writer, a: A) => void) => (a: A): Uint8Array => {
  const w = new Writer()
  write(w, a)
  return w.finish()
}

/** SignedEntry ⇄ its postcard bytes (the 250-byte vector of spec 01 §5). */
export const SignedEntryFromBytes = Schema.transformOrFail(Schema.Uint8ArrayFromSelf, Schema.typeSchema(SignedEntry), {
  strict: true,
  decode: (bytes, _, ast) => decodeWith(readSignedEntry)(bytes, ast),
  encode: (e) => ParseResult.succeed(encodeWith(writeSignedEntry)(e))
})
