/**
 * The blob transfer protocol `/rangedocs/blobs/1` (issue 5): its constants, the postcard codecs of its two framed
 * headers, and the failures of one transfer.
 *
 * A stream carries one transfer. The requester sends one frame (4-byte big-endian length, internal/framing.ts) whose
 * payload is a `BlobRequest`: the 32 raw hash bytes, then the start offset as a varint. The provider answers with one
 * frame holding a `BlobResponse` (`Complete { size }` = 0 + size varint, `NotFound` = 1, `Busy` = 2); after
 * `Complete` it writes the raw content bytes `[min(offset, size), size)`, unframed, and half-closes its side.
 */
import { ParseResult, Schema } from "effect"
import { toHex } from "../internal/bytes.js"
import { PostcardError, type Reader, type Writer } from "../internal/postcard.js"
import { decodeWith, encodeWith } from "./Entry.js"
import { Hash } from "./Keys.js"
import { NodeId } from "./NodeAddr.js"

/** libp2p protocol id of one blob transfer. */
export const BLOB_PROTOCOL = "/rangedocs/blobs/1"

/** Largest header frame payload either side accepts; both headers are far smaller (≤ 42 bytes). */
export const MAX_BLOB_HEADER = 64

/** A byte count or offset: a u64 on the wire, limited to what a JS number holds exactly. */
export const ByteCount = Schema.Number.pipe(Schema.int(), Schema.between(0, Number.MAX_SAFE_INTEGER))

/** Asks for the content of `hash` from byte `offset` on (a resumed transfer starts past 0). */
export class BlobRequest extends Schema.Class<BlobRequest>("BlobRequest")({ hash: Hash, offset: ByteCount }) {}

/** The provider holds the whole blob of `size` bytes; the content from the requested offset follows. */
export class Complete extends Schema.TaggedClass<Complete>()("Complete", { size: ByteCount }) {}
/** The provider has no complete copy (a partial one counts as none). */
export class NotFound extends Schema.TaggedClass<NotFound>()("NotFound", {}) {}
/** The provider is at its transfer limit (per peer or in total); try later or elsewhere. */
export class Busy extends Schema.TaggedClass<Busy>()("Busy", {}) {}

export const BlobResponse = Schema.Union(Complete, NotFound, Busy)
export type BlobResponse = typeof BlobResponse.Type

const checkCount = (n: number, what: string) => {
  if (!Number.isSafeInteger(n) || n < 0) throw new PostcardError(`${what} ${n} is not a byte count`)
}

export const writeBlobRequest = (w: Writer, r: BlobRequest): void => {
  // Class instances are not re-validated on encode; a wrong length here would shift the offset.
  if (r.hash.length !== 32) throw new PostcardError(`hash of ${r.hash.length} bytes, expected 32`)
  checkCount(r.offset, "offset")
  w.raw(r.hash).varint(r.offset)
}

export const readBlobRequest = (r: Reader): BlobRequest =>
  new BlobRequest({ hash: Hash.make(r.raw(32)), offset: r.varint() }, true)

export const writeBlobResponse = (w: Writer, m: BlobResponse): void => {
  switch (m._tag) {
    case "Complete":
      checkCount(m.size, "size")
      w.varint(0).varint(m.size)
      return
    case "NotFound":
      w.varint(1)
      return
    case "Busy":
      w.varint(2)
      return
  }
}

export const readBlobResponse = (r: Reader): BlobResponse => {
  const tag = r.varint()
  switch (tag) {
    case 0:
      return new Complete({ size: r.varint() }, true)
    case 1:
      return new NotFound()
    case 2:
      return new Busy()
    default:
      throw new PostcardError(`unknown BlobResponse variant ${tag}`)
  }
}

const codec = <A>(schema: Schema.Schema<A>, read: (r: Reader) => A, write: (w: Writer, a: A) => void) =>
  Schema.transformOrFail(Schema.Uint8ArrayFromSelf, schema, {
    strict: true,
    decode: (bytes, _, ast) => decodeWith(read)(bytes, ast),
    encode: (a, _, ast) => {
      try {
        return ParseResult.succeed(encodeWith(write)(a))
      } catch (e) {
        if (e instanceof PostcardError) return ParseResult.fail(new ParseResult.Type(ast, a, e.message))
        throw e
      }
    }
  })

/** BlobRequest ⇄ postcard bytes; malformed input (short hash, overlong varint, trailing bytes) is a ParseError. */
export const BlobRequestFromBytes = codec(Schema.typeSchema(BlobRequest), readBlobRequest, writeBlobRequest)

/** BlobResponse ⇄ postcard bytes; an unknown variant or trailing bytes is a ParseError. */
export const BlobResponseFromBytes = codec(Schema.typeSchema(BlobResponse), readBlobResponse, writeBlobResponse)

// ---------------------------------------------------------------------------------------------------------------
// Failures of one transfer. `hash` (a Hash) and `provider` (a NodeId) are the ids themselves, like BlobErrors.ts and
// SyncErrors.ts (they cross the RPC boundary as bytes); messages show them as lowercase hex.

const Where = { hash: Hash, provider: NodeId }

/** The provider answered NotFound: it holds no complete copy. */
export class ProviderNotFound extends Schema.TaggedError<ProviderNotFound>()("ProviderNotFound", {
  ...Where
}) {
  override get message() {
    return `provider ${toHex(this.provider)} does not have blob ${toHex(this.hash)}`
  }
}

/** The provider answered Busy: it is at its transfer limit. */
export class ProviderBusy extends Schema.TaggedError<ProviderBusy>()("ProviderBusy", {
  ...Where
}) {
  override get message() {
    return `provider ${toHex(this.provider)} is busy`
  }
}

/**
 * How a provider broke the protocol:
 * - `Malformed`: an undecodable or oversized header.
 * - `TooLarge`: it announced a size above our maximum (nothing was written).
 * - `Oversized`: it sent more bytes than it announced (the partial data was discarded at once).
 * - `Corrupt`: the content did not hash to the requested hash (the partial data was discarded).
 * - `Truncated`: it claimed Complete and then closed its side early (the partial data is kept, see BlobTransfer.ts).
 */
export const Misbehaviour = Schema.Literal("Malformed", "TooLarge", "Oversized", "Corrupt", "Truncated")
export type Misbehaviour = typeof Misbehaviour.Type

export class ProviderMisbehaved extends Schema.TaggedError<ProviderMisbehaved>()("ProviderMisbehaved", {
  ...Where,
  kind: Misbehaviour,
  /** Where this transfer started: above 0 when it resumed bytes received earlier (maybe from someone else). */
  offset: Schema.Number,
  reason: Schema.String
}) {
  override get message() {
    return `provider ${toHex(this.provider)} sent a bad transfer of blob ${toHex(this.hash)} (${this.kind}): ${this.reason}`
  }
}

/** Connecting, or the stream, failed or went quiet past the inactivity timeout; the bytes received so far are kept. */
export class TransferFailed extends Schema.TaggedError<TransferFailed>()("TransferFailed", {
  ...Where,
  reason: Schema.String
}) {
  override get message() {
    return `transfer of blob ${toHex(this.hash)} from ${toHex(this.provider)} failed: ${this.reason}`
  }
}

export const TransferError = Schema.Union(ProviderNotFound, ProviderBusy, ProviderMisbehaved, TransferFailed)
export type TransferError = typeof TransferError.Type
