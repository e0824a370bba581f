/**
 * Failures of the blob layer (store, transfer, downloader). `hash` is the blob's Hash itself (it crosses the RPC
 * boundary as bytes, like the ids of Errors.ts); messages show it as lowercase hex.
 */
import { Schema } from "effect"
import { toHex } from "../internal/bytes.js"
import { Hash } from "./Keys.js"

/** No complete blob with this hash is stored. */
export class BlobNotFound extends Schema.TaggedError<BlobNotFound>()("BlobNotFound", { hash: Hash }) {
  override get message() {
    return `blob ${toHex(this.hash)} not found`
  }
}

/** The bytes do not hash to the expected BLAKE3 hash, or their size differs from the size announced for them. */
export class BlobCorrupt extends Schema.TaggedError<BlobCorrupt>()("BlobCorrupt", {
  hash: Hash,
  reason: Schema.String
}) {
  override get message() {
    return `blob ${toHex(this.hash)} is corrupt: ${this.reason}`
  }
}

/** A blob larger than the configured maximum. */
export class BlobTooLarge extends Schema.TaggedError<BlobTooLarge>()("BlobTooLarge", {
  size: Schema.Number,
  max: Schema.Number
}) {
  override get message() {
    return `blob of ${this.size} bytes exceeds the maximum of ${this.max} bytes`
  }
}

/** A read range outside the blob. */
export class BlobRangeError extends Schema.TaggedError<BlobRangeError>()("BlobRangeError", {
  hash: Hash,
  offset: Schema.Number,
  length: Schema.Number,
  size: Schema.Number
}) {
  override get message() {
    return `range ${this.offset}+${this.length} is outside blob ${toHex(this.hash)} of ${this.size} bytes`
  }
}

/** The file system or the blob index failed. */
export class BlobStoreError extends Schema.TaggedError<BlobStoreError>()("BlobStoreError", {
  op: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `blob store ${this.op} failed: ${this.reason}`
  }
}

/** A garbage-collection run stopped before deleting anything because the protected set could not be collected. */
export class GcAborted extends Schema.TaggedError<GcAborted>()("GcAborted", { reason: Schema.String }) {
  override get message() {
    return `blob garbage collection aborted: ${this.reason}`
  }
}

/** Every provider was tried (with retries) and none delivered the verified blob. */
export class DownloadFailed extends Schema.TaggedError<DownloadFailed>()("DownloadFailed", {
  hash: Hash,
  attempts: Schema.Number,
  reason: Schema.String
}) {
  override get message() {
    return `download of blob ${toHex(this.hash)} failed after ${this.attempts} attempts: ${this.reason}`
  }
}

export const BlobError = Schema.Union(BlobNotFound, BlobCorrupt, BlobTooLarge, BlobRangeError, BlobStoreError)
export type BlobError = typeof BlobError.Type
