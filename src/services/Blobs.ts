/**
 * Content-addressed blob storage (spec 01 §11, spec 05 §12): entries hold a BLAKE3 hash and a length, the content
 * lives here. Two implementations behind one interface: `layerMemory`, and `layer(dataDir)` on disk (content files
 * named by hash, written to a temp file and renamed into place only once verified; an index hash → size → status in
 * the node's SQLite database).
 *
 * IMPLEMENTATION IN PROGRESS: the interface below is fixed; the layers are being written.
 */
import { Context, type Effect, type Option, type Scope, type Stream } from "effect"
import type { BlobError, BlobNotFound, BlobRangeError, GcAborted } from "../schema/BlobErrors.js"
import type { ContentStatus } from "../schema/Entry.js"
import type { Hash } from "../schema/Keys.js"

/** A blob that was added: its hash and size in bytes. */
export interface Added {
  readonly hash: Hash
  readonly size: number
}

/** What the store knows about one hash. `have` = bytes present (== size when Complete). */
export interface BlobInfo {
  readonly hash: Hash
  readonly size: number
  readonly have: number
  readonly status: ContentStatus
}

export interface AddOptions {
  /** Called with the running byte count as data is consumed (at most every chunk). */
  readonly onProgress?: (bytes: number) => Effect.Effect<void>
}

/**
 * A blob being received (transfer protocol). Holds the bytes that arrived so far, across sessions: opening the same
 * hash again resumes at `offset`. `commit` hashes the whole content: on a match the blob becomes Complete, otherwise
 * the partial data is discarded and BlobCorrupt is returned.
 */
export interface PartialBlob {
  readonly hash: Hash
  /** The announced total size. */
  readonly size: number
  /** Bytes already present: the next `write` appends at this offset. */
  readonly offset: Effect.Effect<number>
  /** Appends bytes; writing beyond `size` fails with BlobCorrupt (and discards the partial data). */
  readonly write: (chunk: Uint8Array) => Effect.Effect<void, BlobError>
  readonly commit: Effect.Effect<Added, BlobError>
  /** Drops the partial data (a lying provider). */
  readonly discard: Effect.Effect<void, BlobError>
}

export interface GcReport {
  readonly deleted: number
  readonly kept: number
}

export interface BlobsService {
  /** Adds bytes; the blob is protected from `gc` until the caller's scope closes (a temporary tag). */
  readonly addBytes: (bytes: Uint8Array) => Effect.Effect<Added, BlobError, Scope.Scope>
  /** Adds streamed data, hashing incrementally with bounded memory; protected until the scope closes. */
  readonly addStream: <E>(
    data: Stream.Stream<Uint8Array, E>,
    options?: AddOptions
  ) => Effect.Effect<Added, BlobError | E, Scope.Scope>
  /** Adds a file's content (copied); protected until the scope closes. */
  readonly addFile: (path: string, options?: AddOptions) => Effect.Effect<Added, BlobError, Scope.Scope>
  /** The whole content of a Complete blob. */
  readonly read: (hash: Hash) => Effect.Effect<Uint8Array, BlobNotFound | BlobError>
  /** `length` bytes from `offset` of a Complete blob. */
  readonly readRange: (
    hash: Hash,
    offset: number,
    length: number
  ) => Effect.Effect<Uint8Array, BlobNotFound | BlobRangeError | BlobError>
  /** The content from `offset` (default 0) in chunks of at most `chunkSize` bytes (default 64 KiB). */
  readonly readStream: (
    hash: Hash,
    options?: { readonly offset?: number; readonly chunkSize?: number }
  ) => Stream.Stream<Uint8Array, BlobNotFound | BlobRangeError | BlobError>
  /** Complete | Incomplete (partial data present) | Missing. The empty hash is always Complete. */
  readonly status: (hash: Hash) => Effect.Effect<ContentStatus, BlobError>
  readonly info: (hash: Hash) => Effect.Effect<Option.Option<BlobInfo>, BlobError>
  /** True iff Complete. */
  readonly has: (hash: Hash) => Effect.Effect<boolean, BlobError>
  /** Removes the blob (complete or partial); no error if absent. */
  readonly delete: (hash: Hash) => Effect.Effect<void, BlobError>
  /** Every stored blob, complete and partial, in hash order. */
  readonly list: Stream.Stream<BlobInfo, BlobError>
  /** Writes the content of a Complete blob to `path`, creating parent directories. */
  readonly exportFile: (hash: Hash, path: string) => Effect.Effect<void, BlobNotFound | BlobError>
  /** A temporary tag: `hash` survives `gc` until the caller's scope closes (it need not be stored yet). */
  readonly protect: (hash: Hash) => Effect.Effect<void, never, Scope.Scope>
  /** Opens (or resumes) the partial blob of `hash` with announced `size`; fails BlobTooLarge above the maximum. */
  readonly openPartial: (hash: Hash, size: number) => Effect.Effect<PartialBlob, BlobError>
  /**
   * Deletes every blob (complete or partial) that is neither in `protectedHashes` nor temporarily tagged. The stream
   * is read to its end before anything is deleted; if it fails, the run is aborted and nothing is deleted.
   */
  readonly gc: <E>(protectedHashes: Stream.Stream<Hash, E>) => Effect.Effect<GcReport, GcAborted | BlobError>
}

export class Blobs extends Context.Tag("docs/Blobs")<Blobs, BlobsService>() {}

/** Largest blob accepted by default (a size a peer may announce and we may write). */
export const DEFAULT_MAX_BLOB_SIZE = 4 * 1024 * 1024 * 1024
