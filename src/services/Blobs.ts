/**
 * Content-addressed blob storage (spec 01 §11, spec 05 §12): entries hold a BLAKE3 hash and a length, the content
 * lives here. Two implementations behind one interface: `layerMemory`, and `layer(dataDir)` on disk (content files
 * named by hash, written to a temp file and renamed into place only once verified; an index hash → size → status in
 * the node's SQLite database).
 *
 * Shared by both: an add hashes while it writes (native incremental BLAKE3), tags its hash for the caller's scope
 * before the blob becomes visible, and stores it under a per-hash lock; `gc` re-checks tags under that lock, so a
 * blob being added is never collected. A partial blob is written by one handle at a time: the latest `openPartial` of
 * a hash owns it and earlier handles of that hash fail with BlobStoreError ("superseded"), so an abandoned handle
 * (a broken transfer keeps its data Incomplete) never blocks a resume. Each write/commit/discard runs under the
 * per-hash lock. A handle hashes the bytes it writes as they arrive; bytes from earlier sessions are read back and
 * hashed at commit. Commit on a short partial fails BlobCorrupt ("incomplete") and keeps the data; a hash mismatch
 * or a write past the announced size discards it. Reopening with another announced size starts over.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { Blake3Hasher } from "@napi-rs/blake-hash"
import { Cause, Chunk, Context, Duration, Effect, Layer, Option, Scope, Stream } from "effect"
import { randomUUID } from "node:crypto"
import * as fs from "node:fs/promises"
import { dirname, join } from "node:path"
import { blake3 } from "../internal/blake3.js"
import { concatAll, copy, equals, toHex } from "../internal/bytes.js"
import {
  BlobCorrupt,
  type BlobError,
  BlobNotFound,
  BlobRangeError,
  BlobStoreError,
  BlobTooLarge,
  GcAborted
} from "../schema/BlobErrors.js"
import { type ContentStatus, EMPTY } from "../schema/Entry.js"
import { Hash } from "../schema/Keys.js"

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

/** See `BlobsService.openReader`. */
export interface BlobReader {
  readonly size: number
  /** Fills `into` with the bytes from `offset`, or its first `size - offset` bytes at the end; returns the count. */
  readonly read: (offset: number, into: Uint8Array) => Effect.Effect<number, BlobError>
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
  /**
   * The content from `offset` (default 0), at most `length` bytes of it (default: to the end), in chunks of at most
   * `chunkSize` bytes (default 64 KiB).
   */
  readonly readStream: (
    hash: Hash,
    options?: { readonly offset?: number; readonly length?: number; readonly chunkSize?: number }
  ) => Stream.Stream<Uint8Array, BlobNotFound | BlobRangeError | BlobError>
  /**
   * Reads a Complete blob into the caller's buffers, for bulk readers that reuse them (the transfer provider); the
   * blob's file stays open until the scope closes.
   */
  readonly openReader: (hash: Hash) => Effect.Effect<BlobReader, BlobNotFound | BlobError, Scope.Scope>
  /** Complete | Incomplete (partial data present) | Missing. The empty hash is always Complete. */
  readonly status: (hash: Hash) => Effect.Effect<ContentStatus, BlobError>
  readonly info: (hash: Hash) => Effect.Effect<Option.Option<BlobInfo>, BlobError>
  /** True iff Complete. */
  readonly has: (hash: Hash) => Effect.Effect<boolean, BlobError>
  /** Removes the blob (complete or partial); no error if absent. */
  readonly delete: (hash: Hash) => Effect.Effect<void, BlobError>
  /** Every stored blob, complete and partial, in hash order. */
  readonly list: Stream.Stream<BlobInfo, BlobError>
  /**
   * Writes the content of a Complete blob to `path` (via a temporary sibling and a rename), creating parent
   * directories; `onProgress` sees the bytes written so far.
   */
  readonly exportFile: (hash: Hash, path: string, options?: AddOptions) => Effect.Effect<void, BlobNotFound | BlobError>
  /** A temporary tag: `hash` survives `gc` until the caller's scope closes (it need not be stored yet). */
  readonly protect: (hash: Hash) => Effect.Effect<void, never, Scope.Scope>
  /** Opens (or resumes) the partial blob of `hash` with announced `size`; fails BlobTooLarge above the maximum. */
  readonly openPartial: (hash: Hash, size: number) => Effect.Effect<PartialBlob, BlobError>
  /**
   * Deletes every blob (complete or partial) that is neither in `protectedHashes` nor temporarily tagged. The stream
   * is read to its end before anything is deleted; if it fails, the run is aborted and nothing is deleted.
   */
  readonly gc: <E>(protectedHashes: Stream.Stream<Hash, E>) => Effect.Effect<GcReport, GcAborted | BlobError>
  /**
   * Registers a protector for the rest of the scope: every hash it yields survives `collect` (the documents' references,
   * spec 05 §12; the reference's GC-protect callback). It is read anew at each run.
   */
  readonly addGcProtector: <E>(hashes: Stream.Stream<Hash, E>) => Effect.Effect<void, never, Scope.Scope>
  /**
   * `gc` protected by every registered protector (and the temporary tags). Without any protector it deletes nothing
   * and fails GcAborted: a store nobody references is not emptied by mistake. Runs one at a time.
   */
  readonly collect: Effect.Effect<GcReport, GcAborted | BlobError>
}

export class Blobs extends Context.Tag("docs/Blobs")<Blobs, BlobsService>() {}

/** Largest blob accepted by default (a size a peer may announce and we may write). */
export const DEFAULT_MAX_BLOB_SIZE = 4 * 1024 * 1024 * 1024

// ---------------------------------------------------------------------------------------------------------------
// Configuration

export interface BlobsConfig {
  /** Largest blob accepted (adds and announced partial sizes); default DEFAULT_MAX_BLOB_SIZE. */
  readonly maxBlobSize?: number
  /** Default chunk size of `readStream`; default 64 KiB. */
  readonly chunkSize?: number
  /**
   * Runs `collect` this long after the store opens and after each run (spec 06 §1.3: GC with the docs' protector);
   * 0 or absent: never on its own.
   */
  readonly gcInterval?: Duration.DurationInput
}

export const DEFAULT_CHUNK_SIZE = 64 * 1024
/** Read buffer for hashing and adding files: one buffer per operation, reused. */
const IO_CHUNK = 1024 * 1024
/** Bytes `readStream` reads ahead of its consumer. */
const READ_AHEAD = 1024 * 1024
/** Small writes of `addStream` are gathered into one buffer of this size before they hit the file. */
const STAGE_SIZE = 256 * 1024
/** Bytes written to a partial file between background datasyncs. */
const SYNC_EVERY = 8 * 1024 * 1024
/** Partial files kept open between writes (least recently used closed first). */
const MAX_OPEN_PARTIALS = 64
/** Index rows per page of `list`. */
const LIST_PAGE = 512

// ---------------------------------------------------------------------------------------------------------------
// Helpers

// The native incremental BLAKE3 (@napi-rs/blake-hash) hashes 64 KiB updates at ~4.8 GiB/s here, hash-wasm's IHasher at
// ~0.55 GiB/s (measured on 100 MiB); both give the same digests.
const newHasher = () => new Blake3Hasher()
const asBuffer = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength)
const feed = (hasher: Blake3Hasher, bytes: Uint8Array) => {
  hasher.update(asBuffer(bytes))
}
const digest = (hasher: Blake3Hasher): Hash => Hash.make(new Uint8Array(hasher.digestBuffer()))

const isEmptyHash = (hash: Uint8Array) => equals(hash, EMPTY)

const reasonOf = (e: unknown): string =>
  e instanceof Error ? e.message : typeof e === "object" && e !== null && "message" in e ? String(e.message) : String(e)

const isNotFound = (e: unknown) => typeof e === "object" && e !== null && "code" in e && e.code === "ENOENT"

const storeError = (op: string) => (e: unknown) => new BlobStoreError({ op, reason: reasonOf(e) })

const tryFs = <A>(op: string, f: () => Promise<A>): Effect.Effect<A, BlobStoreError> =>
  Effect.tryPromise({ try: f, catch: storeError(op) })

/** As `tryFs`, but a missing file means the blob is gone. */
const tryRead = <A>(op: string, hex: string, f: () => Promise<A>): Effect.Effect<A, BlobStoreError | BlobNotFound> =>
  Effect.tryPromise({
    try: f,
    catch: (e) => (isNotFound(e) ? new BlobNotFound({ hash: hashOfHex(hex) }) : new BlobStoreError({ op, reason: reasonOf(e) }))
  })

/** Best-effort cleanup: a failure here leaves a file the next startup removes. */
const quietly = (f: () => Promise<unknown>) => Effect.promise(() => f().catch(() => undefined))

const writeAll = async (fh: fs.FileHandle, bytes: Uint8Array, position: number | null) => {
  let done = 0
  while (done < bytes.length) {
    const { bytesWritten } = await fh.write(bytes, done, bytes.length - done, position === null ? null : position + done)
    done += bytesWritten
  }
}

const readFully = async (fh: fs.FileHandle, into: Uint8Array, position: number) => {
  let done = 0
  while (done < into.length) {
    const { bytesRead } = await fh.read(into, done, into.length - done, position + done)
    if (bytesRead === 0) break
    done += bytesRead
  }
  return done
}

/** Reads a file from `from` to its end through one reused buffer; `f` must not keep the bytes it is given. */
const foldFile = <E>(
  op: string,
  path: string,
  from: number,
  f: (bytes: Uint8Array) => Effect.Effect<void, E>
): Effect.Effect<void, E | BlobStoreError> =>
  Effect.acquireUseRelease(
    tryFs(op, () => fs.open(path, "r")),
    (fh) =>
      Effect.gen(function*() {
        const buf = new Uint8Array(IO_CHUNK)
        let pos = from
        for (;;) {
          const n = yield* tryFs(op, () => readFully(fh, buf, pos))
          if (n === 0) return
          yield* f(buf.subarray(0, n))
          pos += n
        }
      }),
    (fh) => quietly(() => fh.close())
  )

/** A chunk for `fileChunks`: not zero-filled (the read overwrites it), and a plain Uint8Array, not a Buffer. */
const uninitialized = (n: number): Uint8Array => {
  const b = Buffer.allocUnsafeSlow(n)
  return new Uint8Array(b.buffer, b.byteOffset, n)
}

/**
 * `[from, to)` of a file in fresh chunks of at most `chunkSize` bytes (the consumer may keep them). Reads run ahead
 * of the consumer, up to READ_AHEAD bytes (at least one chunk): the disk and the consumer (a network send) work at
 * the same time, and a read that waits for the thread pool or the event loop does not stall the sender (one read
 * ahead left the provider waiting for reads most of a transfer, bench/blobs.ts).
 */
const fileChunks = (
  path: string,
  hex: string,
  from: number,
  to: number,
  chunkSize: number
): Stream.Stream<Uint8Array, BlobStoreError | BlobNotFound> =>
  Stream.unwrapScoped(Effect.gen(function*() {
    interface Read {
      readonly chunk: Uint8Array
      readonly bytes: Promise<number>
    }
    // The reads in flight, in file order; the file is closed only after they settled.
    const pending: Array<Read> = []
    const fh = yield* Effect.acquireRelease(
      tryRead("readStream", hex, () => fs.open(path, "r")),
      (fh) =>
        quietly(async () => {
          await Promise.all(pending.map((read) => read.bytes.catch(() => undefined)))
          await fh.close()
        })
    )
    const depth = Math.max(1, Math.floor(READ_AHEAD / chunkSize))
    let next = from
    const fill = () => {
      while (pending.length < depth && next < to) {
        const chunk = uninitialized(Math.min(chunkSize, to - next))
        const bytes = readFully(fh, chunk, next)
        bytes.catch(() => undefined) // awaited below, or by the release if the stream stops early
        pending.push({ chunk, bytes })
        next += chunk.length
      }
    }
    fill()
    return Stream.repeatEffectOption(Effect.suspend(() => {
      const read = pending[0]
      if (read === undefined) return Effect.fail(Option.none())
      return tryFs("readStream", () => read.bytes).pipe(
        Effect.mapError(Option.some),
        Effect.flatMap((n) => {
          if (n !== read.chunk.length) {
            return Effect.fail(Option.some(
              new BlobStoreError({ op: "readStream", reason: `blob ${hex} is shorter than its index says` })
            ))
          }
          pending.shift()
          fill()
          return Effect.succeed(read.chunk)
        })
      )
    }))
  }))

/** Writes a file via a temporary sibling and a rename; the sibling is removed on failure. */
const writeAtomically = <E>(
  path: string,
  write: (tmp: string) => Effect.Effect<void, E>
): Effect.Effect<void, E | BlobStoreError> => {
  const tmp = `${path}.${randomUUID()}.tmp`
  return Effect.gen(function*() {
    yield* tryFs("exportFile", () => fs.mkdir(dirname(path), { recursive: true }))
    yield* write(tmp)
    yield* tryFs("exportFile", () => fs.rename(tmp, path))
  }).pipe(Effect.onError(() => quietly(() => fs.rm(tmp, { force: true }))))
}

/** Mutual exclusion per key; entries exist only while someone holds or waits for the key. */
const makeKeyedLock = () => {
  const locks = new Map<string, { readonly sem: Effect.Semaphore; users: number }>()
  return (key: string) => <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.uninterruptibleMask((restore) =>
      Effect.suspend(() => {
        let lock = locks.get(key)
        if (lock === undefined) {
          lock = { sem: Effect.unsafeMakeSemaphore(1), users: 0 }
          locks.set(key, lock)
        }
        const held = lock
        held.users++
        return restore(held.sem.withPermits(1)(effect)).pipe(
          Effect.ensuring(Effect.sync(() => {
            if (--held.users === 0) locks.delete(key)
          }))
        )
      })
    )
}

// ---------------------------------------------------------------------------------------------------------------
// Backends: the storage primitives. The shared core below adds hashing, limits, locking, tags, sessions and gc.

/** Where an add writes its bytes; `seal` ends writing, `promote` (under the hash's lock) makes them the blob. */
interface Sink {
  /** The bytes may be reused by the caller once this completes. */
  readonly write: (bytes: Uint8Array) => Effect.Effect<void, BlobStoreError>
  readonly seal: Effect.Effect<void, BlobStoreError>
  /** Stores the sealed bytes as the Complete blob `hex` (a no-op if it already is) and drops its partial data. */
  readonly promote: (hex: string, size: number) => Effect.Effect<void, BlobStoreError>
}

interface PartialState {
  readonly size: number
  readonly have: number
}

interface Backend {
  readonly completeSize: (hex: string) => Effect.Effect<Option.Option<number>, BlobStoreError>
  /** None also when the partial's data is gone. */
  readonly partialState: (hex: string) => Effect.Effect<Option.Option<PartialState>, BlobStoreError>
  readonly readAt: (hex: string, offset: number, length: number) => Effect.Effect<Uint8Array, BlobStoreError | BlobNotFound>
  readonly chunks: (
    hex: string,
    from: number,
    to: number,
    chunkSize: number
  ) => Stream.Stream<Uint8Array, BlobStoreError | BlobNotFound>
  /** Reads `into.length` bytes at `offset` of a Complete blob (the caller checked the range). */
  readonly reader: (
    hex: string
  ) => Effect.Effect<(offset: number, into: Uint8Array) => Effect.Effect<void, BlobStoreError>, BlobStoreError | BlobNotFound, Scope.Scope>
  /** A sink whose leftovers are removed when the scope closes. */
  readonly sink: Effect.Effect<Sink, BlobStoreError, Scope.Scope>
  /** Starts an empty partial of `size`, replacing any partial data of `hex`. */
  readonly partialCreate: (hex: string, size: number) => Effect.Effect<void, BlobStoreError>
  readonly partialWrite: (hex: string, offset: number, bytes: Uint8Array) => Effect.Effect<void, BlobStoreError>
  /** Feeds the partial's bytes from `from` to its end to `f` (which must not keep them). */
  readonly partialFold: (hex: string, from: number, f: (bytes: Uint8Array) => void) => Effect.Effect<void, BlobStoreError>
  readonly partialPromote: (hex: string, size: number) => Effect.Effect<void, BlobStoreError>
  readonly partialRemove: (hex: string) => Effect.Effect<void, BlobStoreError>
  /** Removes complete and partial data. */
  readonly remove: (hex: string) => Effect.Effect<void, BlobStoreError>
  /** Every stored blob in hash order. */
  readonly list: Stream.Stream<BlobInfo, BlobStoreError>
  readonly exportTo: (hex: string, path: string) => Effect.Effect<void, BlobStoreError | BlobNotFound>
  /**
   * Stores `bytes` as the Complete blob `hex` (a no-op if it already is) and drops its partial data, at once: for a
   * backend where that is one synchronous step. Without it `addBytes` goes through a sink like every add.
   */
  readonly putBytes?: (hex: string, bytes: Uint8Array) => Effect.Effect<void, BlobStoreError>
}

const infoOf = (hash: Hash, size: number, have: number, complete: boolean): BlobInfo => ({
  hash,
  size,
  have,
  status: complete ? "Complete" : "Incomplete"
})

// ---------------------------------------------------------------------------------------------------------------
// Core

/** One writer per partial blob: the handle of the latest `openPartial` of a hash (earlier handles are superseded). */
interface Session {
  readonly size: number
  have: number
  /** Hash of the first `hashed` bytes; bytes before `hashed` came from earlier sessions and are read at commit. */
  hasher: Blake3Hasher
  hashed: number
}

const makeCore = (backend: Backend, config: BlobsConfig | undefined): BlobsService => {
  const maxBlobSize = config?.maxBlobSize ?? DEFAULT_MAX_BLOB_SIZE
  const defaultChunkSize = config?.chunkSize ?? DEFAULT_CHUNK_SIZE
  const withLock = makeKeyedLock()
  const sessions = new Map<string, Session>()
  const tags = new Map<string, number>()
  /**
   * While a gc runs: every hash tagged since it started. A blob whose tag came and went during the run (an add whose
   * entry was stored after the protected set was read, then untagged) is kept: the protector may have missed it.
   */
  let taggedDuringGc: Set<string> | undefined

  const tagIn = (scope: Scope.Scope, hex: string) =>
    Effect.uninterruptible(
      Effect.sync(() => {
        tags.set(hex, (tags.get(hex) ?? 0) + 1)
        taggedDuringGc?.add(hex)
      }).pipe(
        Effect.zipRight(Scope.addFinalizer(scope, Effect.sync(() => {
          const n = (tags.get(hex) ?? 1) - 1
          if (n === 0) tags.delete(hex)
          else tags.set(hex, n)
        })))
      )
    )

  const protect: BlobsService["protect"] = (hash) => Effect.flatMap(Effect.scope, (scope) => tagIn(scope, toHex(hash)))

  const completeSize = (hash: Hash, hex: string) =>
    isEmptyHash(hash) ? Effect.succeed(Option.some(0)) : backend.completeSize(hex)

  const requireComplete = (hash: Hash, hex: string) =>
    Effect.flatMap(
      completeSize(hash, hex),
      Option.match({ onNone: () => Effect.fail(new BlobNotFound({ hash })), onSome: Effect.succeed })
    )

  /** Hashes and stores what `produce` hands to its consumer; the consumer must be done with bytes when it returns. */
  const ingest = <E>(
    produce: (consume: (bytes: Uint8Array) => Effect.Effect<void, BlobError>) => Effect.Effect<void, E | BlobError>,
    options: AddOptions | undefined
  ): Effect.Effect<Added, E | BlobError, Scope.Scope> =>
    Effect.gen(function*() {
      const outer = yield* Effect.scope
      return yield* Effect.scoped(Effect.gen(function*() {
        const sink = yield* backend.sink
        const hasher = newHasher()
        const onProgress = options?.onProgress
        let size = 0
        yield* produce((bytes) => {
          if (bytes.length === 0) return Effect.void
          size += bytes.length
          if (size > maxBlobSize) return Effect.fail(new BlobTooLarge({ size, max: maxBlobSize }))
          feed(hasher, bytes)
          const written = sink.write(bytes)
          return onProgress === undefined ? written : Effect.zipRight(written, onProgress(size))
        })
        yield* sink.seal
        const hash = digest(hasher)
        const hex = toHex(hash)
        // Tagged before it becomes visible, so a concurrent gc never sees it untagged.
        yield* tagIn(outer, hex)
        if (size > 0) {
          yield* withLock(hex)(Effect.zipRight(sink.promote(hex, size), Effect.sync(() => sessions.delete(hex))))
        }
        return { hash, size }
      }))
    })

  const addStream: BlobsService["addStream"] = (data, options) =>
    ingest((consume) => Stream.runForEach(data, consume), options).pipe(Effect.withSpan("Blobs.addStream"))

  /**
   * Bytes in hand need no sink when the backend stores them in one synchronous step (memory): hashed at once, tagged,
   * put. No lock either: no holder of the hash's lock can see the put half done, and whatever it does next finds the
   * blob Complete, as after any add. A 32-byte add in its own scope costs 150 Effect operations by the sink, 65
   * here (the live engine adds every small content it writes or receives inline).
   */
  const putBytes = backend.putBytes
  const addBytes: BlobsService["addBytes"] = putBytes === undefined
    ? (bytes) => ingest((consume) => consume(bytes), undefined)
    : (bytes) =>
      Effect.flatMap(Effect.scope, (outer) =>
        Effect.suspend((): Effect.Effect<Added, BlobError> => {
          const size = bytes.length
          if (size > maxBlobSize) return Effect.fail(new BlobTooLarge({ size, max: maxBlobSize }))
          const hash = Hash.make(blake3(bytes))
          const hex = toHex(hash)
          const stored: Added = { hash, size }
          // Tagged before it becomes visible, so a concurrent gc never sees it untagged.
          return Effect.zipRight(
            tagIn(outer, hex),
            size === 0
              ? Effect.succeed(stored)
              : Effect.as(Effect.zipRight(putBytes(hex, bytes), Effect.sync(() => sessions.delete(hex))), stored)
          )
        }))

  const addFile: BlobsService["addFile"] = (path, options) =>
    Effect.gen(function*() {
      const stat = yield* tryFs("addFile", () => fs.stat(path))
      if (stat.size > maxBlobSize) return yield* new BlobTooLarge({ size: stat.size, max: maxBlobSize })
      return yield* ingest((consume) => foldFile("addFile", path, 0, consume), options)
    }).pipe(Effect.withSpan("Blobs.addFile"))

  const checkRange = (hash: Hash, offset: number, length: number, size: number) =>
    Number.isSafeInteger(offset) && Number.isSafeInteger(length) && offset >= 0 && length >= 0 && offset + length <= size
      ? Effect.void
      : Effect.fail(new BlobRangeError({ hash, offset, length, size }))

  // Reads, status and small adds run once per gossiped write: untraced (a span costs more than the work itself).
  const readRange = Effect.fnUntraced(function*(hash: Hash, offset: number, length: number) {
    const hex = toHex(hash)
    const size = yield* requireComplete(hash, hex)
    yield* checkRange(hash, offset, length, size)
    if (length === 0) return new Uint8Array(0)
    return yield* backend.readAt(hex, offset, length)
  })

  const read = Effect.fnUntraced(function*(hash: Hash) {
    const hex = toHex(hash)
    const size = yield* requireComplete(hash, hex)
    return size === 0 ? new Uint8Array(0) : yield* backend.readAt(hex, 0, size)
  })

  const readStream: BlobsService["readStream"] = (hash, options) =>
    Stream.unwrap(Effect.gen(function*() {
      const hex = toHex(hash)
      const size = yield* requireComplete(hash, hex)
      const offset = options?.offset ?? 0
      const chunkSize = Math.max(1, Math.floor(options?.chunkSize ?? defaultChunkSize))
      yield* checkRange(hash, offset, 0, size)
      const length = options?.length
      const end = length === undefined ? size : Math.min(size, offset + Math.max(0, Math.floor(length)))
      return offset >= end ? Stream.empty : backend.chunks(hex, offset, end, chunkSize)
    }))

  const openReader: BlobsService["openReader"] = (hash) =>
    Effect.gen(function*() {
      const hex = toHex(hash)
      const size = yield* requireComplete(hash, hex)
      const readAt = size === 0 ? undefined : yield* backend.reader(hex)
      const read = (offset: number, into: Uint8Array): Effect.Effect<number, BlobError> => {
        const n = Math.min(into.length, size - offset)
        if (!Number.isSafeInteger(offset) || offset < 0 || n < 0) {
          return Effect.fail(new BlobRangeError({ hash, offset, length: into.length, size }))
        }
        return n === 0 || readAt === undefined ? Effect.succeed(0) : Effect.as(readAt(offset, into.subarray(0, n)), n)
      }
      return { size, read }
    })

  const info = Effect.fnUntraced(function*(hash: Hash) {
    const hex = toHex(hash)
    const complete = yield* completeSize(hash, hex)
    if (Option.isSome(complete)) return Option.some(infoOf(hash, complete.value, complete.value, true))
    const partial = yield* backend.partialState(hex)
    return Option.map(partial, (p) => infoOf(hash, p.size, p.have, false))
  })

  const status = (hash: Hash) =>
    Effect.map(info(hash), Option.match({ onNone: (): ContentStatus => "Missing", onSome: (i) => i.status }))

  const has = (hash: Hash) => Effect.map(completeSize(hash, toHex(hash)), Option.isSome)

  const remove = (hex: string) =>
    withLock(hex)(Effect.zipRight(backend.remove(hex), Effect.sync(() => sessions.delete(hex))))

  const del = Effect.fn("Blobs.delete")(function*(hash: Hash) {
    if (!isEmptyHash(hash)) yield* remove(toHex(hash))
  })

  const exportFile = Effect.fn("Blobs.exportFile")(function*(hash: Hash, path: string, options?: AddOptions) {
    const hex = toHex(hash)
    const size = yield* requireComplete(hash, hex)
    const onProgress = options?.onProgress
    yield* writeAtomically(path, (tmp) =>
      size === 0
        ? tryFs("exportFile", () => fs.writeFile(tmp, new Uint8Array(0)))
        : onProgress === undefined
        ? backend.exportTo(hex, tmp)
        : Effect.scoped(Effect.gen(function*() {
          // With progress: the content in IO_CHUNK pieces, each written before the next is read (bounded memory).
          const fh = yield* Effect.acquireRelease(
            tryFs("exportFile", () => fs.open(tmp, "wx", 0o600)),
            (fh) => quietly(() => fh.close())
          )
          let written = 0
          yield* Stream.runForEach(backend.chunks(hex, 0, size, IO_CHUNK), (chunk) =>
            Effect.zipRight(
              tryFs("exportFile", () => writeAll(fh, chunk, written)),
              Effect.suspend(() => {
                written += chunk.length
                return onProgress(written)
              })
            ))
          yield* tryFs("exportFile", () => fh.sync())
        })))
  })

  const superseded = (op: string, hex: string) =>
    new BlobStoreError({ op, reason: `partial blob ${hex} was superseded by a newer openPartial, or deleted` })

  const makeHandle = (hash: Hash, hex: string, size: number, session: Session | undefined): PartialBlob => {
    let lastHave = session === undefined ? size : session.have
    const owned = () => session !== undefined && sessions.get(hex) === session
    const dropSession = Effect.sync(() => {
      if (owned()) sessions.delete(hex)
    })
    const discardWith = (error: BlobCorrupt) =>
      Effect.zipRight(Effect.zipRight(backend.partialRemove(hex), dropSession), Effect.fail(error))
    // A handle that no longer owns the hash: fine if the blob is Complete by now, an error otherwise.
    const notOwned = <A>(op: string, ifComplete: (size: number) => A) =>
      Effect.flatMap(
        completeSize(hash, hex),
        Option.match({ onNone: () => Effect.fail(superseded(op, hex)), onSome: (n) => Effect.succeed(ifComplete(n)) })
      )

    const write = (chunk: Uint8Array) =>
      withLock(hex)(Effect.suspend(() => {
        if (session === undefined || !owned()) return notOwned("write", () => undefined)
        if (chunk.length === 0) return Effect.void
        const offset = session.have
        if (offset + chunk.length > session.size) {
          return discardWith(
            new BlobCorrupt({ hash, reason: `${offset + chunk.length - session.size} bytes beyond the announced size ${session.size}` })
          )
        }
        return Effect.map(backend.partialWrite(hex, offset, chunk), () => {
          if (session.hashed === offset) {
            feed(session.hasher, chunk)
            session.hashed += chunk.length
          }
          session.have += chunk.length
          lastHave = session.have
        })
      }))

    const commit = withLock(hex)(Effect.suspend((): Effect.Effect<Added, BlobError> => {
      if (session === undefined || !owned()) return notOwned("commit", (n) => ({ hash, size: n }))
      if (session.have < session.size) {
        return Effect.fail(new BlobCorrupt({ hash, reason: `incomplete: ${session.have} of ${session.size} bytes` }))
      }
      return Effect.gen(function*() {
        yield* backend.partialFold(hex, session.hashed, (bytes) => feed(session.hasher, bytes))
        session.hashed = session.have
        const actual = digest(session.hasher)
        if (!equals(actual, hash)) {
          return yield* discardWith(new BlobCorrupt({ hash, reason: `content hashes to ${toHex(actual)}` }))
        }
        yield* backend.partialPromote(hex, session.size)
        yield* dropSession
        return { hash, size: session.size }
      })
    }))

    const discard = withLock(hex)(Effect.suspend(() => (owned() ? Effect.zipRight(backend.partialRemove(hex), dropSession) : Effect.void)))

    return {
      hash,
      size,
      offset: Effect.sync(() => (session !== undefined && owned() ? session.have : lastHave)),
      write,
      commit: commit.pipe(Effect.withSpan("PartialBlob.commit")),
      discard
    }
  }

  const openPartial = Effect.fn("Blobs.openPartial")(function*(hash: Hash, size: number) {
    const hex = toHex(hash)
    if (!Number.isSafeInteger(size) || size < 0) {
      return yield* new BlobCorrupt({ hash, reason: `invalid announced size ${size}` })
    }
    if (size > maxBlobSize) return yield* new BlobTooLarge({ size, max: maxBlobSize })
    return yield* withLock(hex)(Effect.gen(function*() {
      const complete = yield* completeSize(hash, hex)
      if (Option.isSome(complete)) return makeHandle(hash, hex, complete.value, undefined)
      const existing = yield* backend.partialState(hex)
      let have = 0
      // Data announced under another size cannot be the same content (or one of the providers lies): start over.
      if (Option.isSome(existing) && existing.value.size === size && existing.value.have <= size) have = existing.value.have
      else yield* backend.partialCreate(hex, size)
      const session: Session = { size, have, hasher: newHasher(), hashed: 0 }
      sessions.set(hex, session)
      return makeHandle(hash, hex, size, session)
    }))
  })

  const gcLock = Effect.unsafeMakeSemaphore(1)
  const gc = <E>(protectedHashes: Stream.Stream<Hash, E>): Effect.Effect<GcReport, GcAborted | BlobError> =>
    Effect.gen(function*() {
      const recent = new Set<string>()
      yield* Effect.acquireRelease(
        Effect.sync(() => (taggedDuringGc = recent)),
        () => Effect.sync(() => (taggedDuringGc = undefined))
      )
      const live = new Set<string>()
      yield* Stream.runForEach(protectedHashes, (h) => Effect.sync(() => live.add(toHex(h)))).pipe(
        Effect.catchAllCause((cause) =>
          Cause.isInterruptedOnly(cause)
            ? Effect.interrupt
            : Effect.fail(new GcAborted({ reason: reasonOf(Cause.squash(cause)) }))
        )
      )
      let deleted = 0
      let kept = 0
      yield* Stream.runForEach(backend.list, (blob) => {
        const hex = toHex(blob.hash)
        if (live.has(hex) || tags.has(hex) || recent.has(hex)) {
          kept++
          return Effect.void
        }
        // Rechecked under the lock: an add tags its hash before it takes the lock to store the blob.
        return withLock(hex)(Effect.suspend(() => {
          if (tags.has(hex) || recent.has(hex)) {
            kept++
            return Effect.void
          }
          deleted++
          return Effect.zipRight(backend.remove(hex), Effect.sync(() => sessions.delete(hex)))
        }))
      })
      return { deleted, kept }
    }).pipe(Effect.scoped, gcLock.withPermits(1), Effect.withSpan("Blobs.gc"))

  const protectors = new Set<Stream.Stream<Hash, unknown>>()
  const addGcProtector: BlobsService["addGcProtector"] = (hashes) =>
    Effect.acquireRelease(
      Effect.sync(() => {
        const protector: Stream.Stream<Hash, unknown> = hashes
        protectors.add(protector)
        return protector
      }),
      (protector) => Effect.sync(() => protectors.delete(protector))
    ).pipe(Effect.asVoid)
  const collect: BlobsService["collect"] = Effect.suspend(() =>
    protectors.size === 0
      ? Effect.fail(new GcAborted({ reason: "nothing protects the blobs (no documents attached to the store)" }))
      : gc(Stream.concatAll(Chunk.fromIterable(protectors)))
  )

  return {
    addBytes,
    addStream,
    addFile,
    read,
    readRange,
    readStream,
    openReader,
    status,
    info,
    has,
    delete: del,
    list: backend.list,
    exportFile,
    protect,
    openPartial,
    gc,
    addGcProtector,
    collect
  }
}

/**
 * `collect` every `gcInterval` (none when it is 0 or absent), for the scope. A run that fails (no protector yet, a
 * protector's read failed) is one WARN line without stack, then the next run comes.
 */
export const scheduleGc = (blobs: BlobsService, config: BlobsConfig | undefined): Effect.Effect<void, never, Scope.Scope> => {
  const interval = Duration.decode(config?.gcInterval ?? 0)
  if (!Duration.greaterThan(interval, Duration.zero)) return Effect.void
  const run = blobs.collect.pipe(
    Effect.tap((r) => Effect.logDebug(`blob gc: ${r.deleted} deleted, ${r.kept} kept`)),
    Effect.catchAll((e) => Effect.logWarning(`blob gc: ${e.message}`)),
    Effect.annotateLogs({ service: "Blobs" })
  )
  return Effect.asVoid(Effect.forkScoped(Effect.forever(Effect.delay(run, interval))))
}

// ---------------------------------------------------------------------------------------------------------------
// In memory

const hashOfHex = (hex: string): Hash => Hash.make(new Uint8Array(Buffer.from(hex, "hex")))

const memoryBackend = (): Backend => {
  const complete = new Map<string, Uint8Array>()
  const partials = new Map<string, { readonly size: number; readonly chunks: Array<Uint8Array>; have: number }>()
  const missing = (hex: string) => Effect.fail(new BlobNotFound({ hash: hashOfHex(hex) }))

  return {
    completeSize: (hex) => Effect.sync(() => Option.fromNullable(complete.get(hex)?.length)),
    partialState: (hex) =>
      Effect.sync(() => Option.map(Option.fromNullable(partials.get(hex)), (p) => ({ size: p.size, have: p.have }))),
    readAt: (hex, offset, length) =>
      Effect.suspend(() => {
        const bytes = complete.get(hex)
        return bytes === undefined ? missing(hex) : Effect.succeed(bytes.slice(offset, offset + length))
      }),
    chunks: (hex, from, to, chunkSize) =>
      Stream.suspend(() => {
        const bytes = complete.get(hex)
        if (bytes === undefined) return Stream.fail(new BlobNotFound({ hash: hashOfHex(hex) }))
        return Stream.unfold(from, (pos) => {
          if (pos >= to) return Option.none()
          const end = Math.min(pos + chunkSize, to)
          return Option.some([bytes.slice(pos, end), end] as const)
        })
      }),
    reader: (hex) =>
      Effect.suspend(() => {
        const bytes = complete.get(hex)
        if (bytes === undefined) return missing(hex)
        return Effect.succeed((offset: number, into: Uint8Array) =>
          Effect.sync(() => into.set(bytes.subarray(offset, offset + into.length)))
        )
      }),
    putBytes: (hex, bytes) =>
      Effect.sync(() => {
        // Copies (`copy`, not `slice`: a Buffer's slice is a view of the caller's memory).
        if (!complete.has(hex)) complete.set(hex, copy(bytes))
        partials.delete(hex)
      }),
    sink: Effect.sync(() => {
      const chunks: Array<Uint8Array> = []
      return {
        write: (bytes) => Effect.sync(() => void chunks.push(copy(bytes))),
        seal: Effect.void,
        promote: (hex) =>
          Effect.sync(() => {
            if (!complete.has(hex)) complete.set(hex, concatAll(chunks))
            partials.delete(hex)
          })
      }
    }),
    partialCreate: (hex, size) => Effect.sync(() => void partials.set(hex, { size, chunks: [], have: 0 })),
    partialWrite: (hex, _offset, bytes) =>
      Effect.sync(() => {
        const p = partials.get(hex)
        if (p !== undefined) {
          p.chunks.push(copy(bytes))
          p.have += bytes.length
        }
      }),
    partialFold: (hex, from, f) =>
      Effect.sync(() => {
        let pos = 0
        for (const c of partials.get(hex)?.chunks ?? []) {
          if (pos + c.length > from) f(pos >= from ? c : c.subarray(from - pos))
          pos += c.length
        }
      }),
    partialPromote: (hex) =>
      Effect.sync(() => {
        const p = partials.get(hex)
        if (p !== undefined) complete.set(hex, concatAll(p.chunks))
        partials.delete(hex)
      }),
    partialRemove: (hex) => Effect.sync(() => void partials.delete(hex)),
    remove: (hex) =>
      Effect.sync(() => {
        complete.delete(hex)
        partials.delete(hex)
      }),
    list: Stream.suspend(() => {
      // Lowercase hex sorts like the bytes it encodes.
      const hexes = [...new Set([...complete.keys(), ...partials.keys()])].sort()
      return Stream.fromIterable(hexes).pipe(
        Stream.filterMap((hex) => {
          const bytes = complete.get(hex)
          if (bytes !== undefined) return Option.some(infoOf(hashOfHex(hex), bytes.length, bytes.length, true))
          return Option.map(Option.fromNullable(partials.get(hex)), (p) => infoOf(hashOfHex(hex), p.size, p.have, false))
        })
      )
    }),
    exportTo: (hex, path) =>
      Effect.suspend((): Effect.Effect<void, BlobStoreError | BlobNotFound> => {
        const bytes = complete.get(hex)
        return bytes === undefined ? missing(hex) : tryFs("exportFile", () => fs.writeFile(path, bytes))
      })
  }
}

/** The in-memory store: content lives in the process and is lost when the layer's scope closes. */
export const makeMemory = (config?: BlobsConfig): Effect.Effect<BlobsService> =>
  Effect.sync(() => makeCore(memoryBackend(), config))

export const layerMemory = (config?: BlobsConfig): Layer.Layer<Blobs> =>
  Layer.scoped(Blobs, Effect.tap(makeMemory(config), (blobs) => scheduleGc(blobs, config)))

// ---------------------------------------------------------------------------------------------------------------
// On disk
//
// <dataDir>/blobs/<hh>/<hex>     Complete blobs: each file was fsynced and renamed into place only after its BLAKE3
//                                hash was known (adds) or verified (commits), so its presence means verified content.
// <dataDir>/blobs/partial/<hex>  Partial downloads: the file's length is the resume offset.
// <dataDir>/blobs/tmp/           Adds in progress; emptied on startup.
// table `blobs`                  hash → size, status (1 Complete, 0 partial with the announced size) in the node's SQLite.
//
// The files are the source of truth for content; the index is a lookup cache of them and the only record of a
// partial's announced size. Every change writes files first and the index after (rename, then row; remove files, then
// row), and startup repairs the index from the files: a complete file without a Complete row gets one (a crash between
// rename and index write), a row whose file is gone is dropped, a partial file without a row (its size unknown) or
// longer than its announced size is removed. Complete files are not rehashed on startup.

const COMPLETE = 1
const PARTIAL = 0

interface Row {
  readonly hash: Uint8Array
  readonly size: number
  readonly status: number
}

const HEX2 = /^[0-9a-f]{2}$/
const HEX64 = /^[0-9a-f]{64}$/

const fileSizes = async (dir: string, keep: (name: string) => boolean) => {
  const out = new Map<string, number>()
  for (const name of await fs.readdir(dir)) {
    if (!keep(name)) continue
    const stat = await fs.stat(join(dir, name))
    if (stat.isFile()) out.set(name, stat.size)
  }
  return out
}

const syncDir = (dir: string) =>
  quietly(async () => {
    const fh = await fs.open(dir, "r")
    try {
      await fh.sync()
    } finally {
      await fh.close()
    }
  })

export const make = (
  dataDir: string,
  config?: BlobsConfig
): Effect.Effect<BlobsService, BlobStoreError, SqlClient.SqlClient | Scope.Scope> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const root = join(dataDir, "blobs")
    const partialDir = join(root, "partial")
    const tmpDir = join(root, "tmp")
    const completePath = (hex: string) => join(root, hex.slice(0, 2), hex)
    const partialPath = (hex: string) => join(partialDir, hex)

    const query = <R extends object = Row>(op: string, text: string, params: ReadonlyArray<unknown>) =>
      sql.unsafe<R>(text, params).withoutTransform.pipe(Effect.mapError(storeError(op)))
    const upsert = (op: string, hex: string, size: number, status: number) =>
      query(op, `INSERT OR REPLACE INTO blobs (hash, size, status) VALUES (?, ?, ?)`, [
        Buffer.from(hex, "hex"),
        size,
        status
      ])
    const deleteRow = (op: string, hex: string, onlyStatus?: number) =>
      onlyStatus === undefined
        ? query(op, `DELETE FROM blobs WHERE hash = ?`, [Buffer.from(hex, "hex")])
        : query(op, `DELETE FROM blobs WHERE hash = ? AND status = ?`, [Buffer.from(hex, "hex"), onlyStatus])

    // -- startup
    yield* tryFs("open", async () => {
      await fs.mkdir(partialDir, { recursive: true })
      await fs.rm(tmpDir, { recursive: true, force: true })
      await fs.mkdir(tmpDir, { recursive: true })
    })
    yield* query(
      "open",
      `CREATE TABLE IF NOT EXISTS blobs (hash BLOB PRIMARY KEY, size INTEGER NOT NULL, status INTEGER NOT NULL) WITHOUT ROWID`,
      []
    )
    const completeFiles = yield* tryFs("open", async () => {
      const out = new Map<string, number>()
      for (const dir of await fs.readdir(root)) {
        if (!HEX2.test(dir)) continue
        for (const [hex, size] of await fileSizes(join(root, dir), (n) => HEX64.test(n) && n.startsWith(dir))) {
          out.set(hex, size)
        }
      }
      return out
    })
    const partialFiles = yield* tryFs("open", () => fileSizes(partialDir, (n) => HEX64.test(n)))
    const rows = new Map((yield* query("open", `SELECT hash, size, status FROM blobs`, [])).map((r) => [toHex(r.hash), r]))
    const dropFiles: Array<string> = []
    const repairs: Array<Effect.Effect<unknown, BlobStoreError>> = []
    for (const [hex, size] of completeFiles) {
      const row = rows.get(hex)
      if (row === undefined || row.status !== COMPLETE || row.size !== size) repairs.push(upsert("open", hex, size, COMPLETE))
      if (partialFiles.delete(hex)) dropFiles.push(partialPath(hex))
    }
    for (const [hex, row] of rows) {
      if (completeFiles.has(hex)) continue
      const have = partialFiles.get(hex)
      if (row.status === COMPLETE || have === undefined || have > row.size) {
        repairs.push(deleteRow("open", hex))
        if (partialFiles.delete(hex)) dropFiles.push(partialPath(hex))
      }
    }
    for (const hex of partialFiles.keys()) if (!rows.has(hex)) dropFiles.push(partialPath(hex))
    yield* tryFs("open", () => Promise.all(dropFiles.map((f) => fs.rm(f, { force: true }))))
    if (repairs.length > 0) {
      yield* sql.withTransaction(Effect.all(repairs, { discard: true })).pipe(Effect.mapError(storeError("open")))
    }

    // -- partial files stay open between writes; busy ones are never closed by eviction. Every SYNC_EVERY bytes
    // written a datasync starts in the background, so the disk writes back while the transfer goes on and the fsync
    // at commit only waits for the tail (it took ~45 ms for 100 MiB at the end, bench/blobs.ts).
    interface OpenFile {
      readonly fh: fs.FileHandle
      busy: number
      unsynced: number
      /** The background datasync in flight; the file is closed only after it settled. */
      syncing: Promise<void> | undefined
      /** Its failure, reported by the commit: a later fsync of the file need not report it again. */
      syncError: unknown
    }
    const openFiles = new Map<string, OpenFile>()
    const closeFile = async (hex: string) => {
      const entry = openFiles.get(hex)
      openFiles.delete(hex)
      if (entry !== undefined) {
        await entry.syncing
        await entry.fh.close()
      }
    }
    const withPartialFile = async <A>(hex: string, f: (file: OpenFile) => Promise<A>): Promise<A> => {
      let entry = openFiles.get(hex)
      if (entry !== undefined) {
        openFiles.delete(hex)
        openFiles.set(hex, entry)
      } else {
        entry = { fh: await fs.open(partialPath(hex), "r+"), busy: 0, unsynced: 0, syncing: undefined, syncError: undefined }
        openFiles.set(hex, entry)
        for (const [other, e] of openFiles) {
          if (openFiles.size <= MAX_OPEN_PARTIALS) break
          if (e.busy === 0 && other !== hex) void closeFile(other).catch(() => undefined)
        }
      }
      const held = entry
      held.busy++
      try {
        return await f(held)
      } finally {
        held.busy--
      }
    }
    const syncInBackground = (file: OpenFile, written: number) => {
      file.unsynced += written
      if (file.unsynced < SYNC_EVERY || file.syncing !== undefined) return
      file.unsynced = 0
      file.syncing = file.fh.datasync().then(
        () => {
          file.syncing = undefined
        },
        (e: unknown) => {
          file.syncing = undefined
          file.syncError ??= e
        }
      )
    }
    yield* Effect.addFinalizer(() =>
      quietly(() => Promise.all([...openFiles.keys()].map((hex) => closeFile(hex).catch(() => undefined))))
    )

    const completeSize = (hex: string) =>
      Effect.map(
        query<{ size: number }>("status", `SELECT size FROM blobs WHERE hash = ? AND status = ?`, [
          Buffer.from(hex, "hex"),
          COMPLETE
        ]),
        (rs) => Option.map(Option.fromNullable(rs[0]), (r) => r.size)
      )

    const partialState = (hex: string) =>
      Effect.gen(function*() {
        const rs = yield* query<{ size: number }>("status", `SELECT size FROM blobs WHERE hash = ? AND status = ?`, [
          Buffer.from(hex, "hex"),
          PARTIAL
        ])
        const row = rs[0]
        if (row === undefined) return Option.none<PartialState>()
        const have = yield* tryFs("status", () =>
          fs.stat(partialPath(hex)).then((s) => s.size, (e) => (isNotFound(e) ? undefined : Promise.reject(e))))
        return have === undefined ? Option.none<PartialState>() : Option.some({ size: row.size, have })
      })

    const storeComplete = (op: string, hex: string, size: number, from: string) =>
      Effect.gen(function*() {
        const dir = join(root, hex.slice(0, 2))
        yield* tryFs(op, async () => {
          await fs.mkdir(dir, { recursive: true })
          await fs.rename(from, completePath(hex))
        })
        yield* syncDir(dir)
        yield* upsert(op, hex, size, COMPLETE)
      })

    const removePartialFile = (op: string, hex: string) =>
      tryFs(op, async () => {
        await closeFile(hex).catch(() => undefined)
        await fs.rm(partialPath(hex), { force: true })
      })

    const sink = Effect.gen(function*() {
      const tmp = join(tmpDir, randomUUID())
      const fh = yield* Effect.acquireRelease(tryFs("add", () => fs.open(tmp, "wx")), (fh) =>
        quietly(async () => {
          await fh.close().catch(() => undefined)
          await fs.rm(tmp, { force: true })
        }))
      const stage = new Uint8Array(STAGE_SIZE)
      let staged = 0
      let position = 0
      const put = async (bytes: Uint8Array) => {
        await writeAll(fh, bytes, position)
        position += bytes.length
      }
      const flush = async () => {
        if (staged > 0) await put(stage.subarray(0, staged))
        staged = 0
      }
      return {
        write: (bytes) =>
          tryFs("add", async () => {
            if (staged + bytes.length > STAGE_SIZE) await flush()
            if (bytes.length >= STAGE_SIZE) await put(bytes)
            else {
              stage.set(bytes, staged)
              staged += bytes.length
            }
          }),
        seal: tryFs("add", async () => {
          await flush()
          await fh.sync()
        }),
        promote: (hex, size) =>
          Effect.gen(function*() {
            if (Option.isSome(yield* completeSize(hex))) return
            yield* storeComplete("add", hex, size, tmp)
            yield* removePartialFile("add", hex)
          })
      } satisfies Sink
    })

    const listPage = (after: Uint8Array | undefined) =>
      Effect.gen(function*() {
        const rs = after === undefined
          ? yield* query("list", `SELECT hash, size, status FROM blobs ORDER BY hash LIMIT ${LIST_PAGE}`, [])
          : yield* query("list", `SELECT hash, size, status FROM blobs WHERE hash > ? ORDER BY hash LIMIT ${LIST_PAGE}`, [after])
        const infos: Array<BlobInfo> = []
        for (const r of rs) {
          const hash = Hash.make(new Uint8Array(r.hash))
          if (r.status === COMPLETE) infos.push(infoOf(hash, r.size, r.size, true))
          else {
            const have = yield* tryFs("list", () =>
              fs.stat(partialPath(toHex(hash))).then((s) => s.size, (e) => (isNotFound(e) ? undefined : Promise.reject(e))))
            if (have !== undefined) infos.push(infoOf(hash, r.size, have, false))
          }
        }
        const last = rs[rs.length - 1]
        return [Chunk.unsafeFromArray(infos), rs.length === LIST_PAGE && last !== undefined ? Option.some(last.hash) : Option.none()] as const
      })

    const backend: Backend = {
      completeSize,
      partialState,
      readAt: (hex, offset, length) =>
        tryRead("read", hex, async () => {
          const fh = await fs.open(completePath(hex), "r")
          try {
            const out = new Uint8Array(length)
            const n = await readFully(fh, out, offset)
            if (n !== length) throw new Error(`blob ${hex} is shorter than its index says`)
            return out
          } finally {
            await fh.close()
          }
        }),
      chunks: (hex, from, to, chunkSize) => fileChunks(completePath(hex), hex, from, to, chunkSize),
      reader: (hex) =>
        Effect.gen(function*() {
          // Reads still running when the scope closes (an interrupted reader) settle before the file is closed.
          const running = new Set<Promise<number>>()
          const fh = yield* Effect.acquireRelease(
            tryRead("read", hex, () => fs.open(completePath(hex), "r")),
            (fh) =>
              quietly(async () => {
                await Promise.all([...running].map((p) => p.catch(() => undefined)))
                await fh.close()
              })
          )
          return (offset: number, into: Uint8Array) =>
            tryFs("read", async () => {
              const read = readFully(fh, into, offset)
              running.add(read)
              try {
                if ((await read) !== into.length) throw new Error(`blob ${hex} is shorter than its index says`)
              } finally {
                running.delete(read)
              }
            })
        }),
      sink,
      partialCreate: (hex, size) =>
        Effect.zipRight(
          tryFs("openPartial", async () => {
            await closeFile(hex).catch(() => undefined)
            await fs.writeFile(partialPath(hex), new Uint8Array(0))
          }),
          upsert("openPartial", hex, size, PARTIAL)
        ),
      partialWrite: (hex, offset, bytes) =>
        tryFs("write", () =>
          withPartialFile(hex, (file) =>
            writeAll(file.fh, bytes, offset).then(
              () => syncInBackground(file, bytes.length),
              async (e) => {
                await file.fh.truncate(offset).catch(() => undefined)
                throw e
              }
            ))),
      partialFold: (hex, from, f) => foldFile("commit", partialPath(hex), from, (bytes) => Effect.sync(() => f(bytes))),
      partialPromote: (hex, size) =>
        Effect.gen(function*() {
          yield* tryFs("commit", async () => {
            await withPartialFile(hex, async (file) => {
              await file.syncing
              if (file.syncError !== undefined) throw file.syncError
              await file.fh.sync()
            })
            await closeFile(hex)
          })
          yield* storeComplete("commit", hex, size, partialPath(hex))
        }),
      partialRemove: (hex) => Effect.zipRight(removePartialFile("discard", hex), deleteRow("discard", hex, PARTIAL)),
      remove: (hex) =>
        Effect.zipRight(
          Effect.zipRight(removePartialFile("delete", hex), tryFs("delete", () => fs.rm(completePath(hex), { force: true }))),
          deleteRow("delete", hex)
        ),
      list: Stream.paginateChunkEffect(undefined as Uint8Array | undefined, listPage),
      exportTo: (hex, path) => tryRead("exportFile", hex, () => fs.copyFile(completePath(hex), path))
    }
    return makeCore(backend, config)
  })

/** The store in `<dataDir>/blobs` with its index in the node's SQLite database (the `blobs` table). */
export const layer = (dataDir: string, config?: BlobsConfig): Layer.Layer<Blobs, BlobStoreError, SqlClient.SqlClient> =>
  Layer.scoped(Blobs, Effect.tap(make(dataDir, config), (blobs) => scheduleGc(blobs, config)))
