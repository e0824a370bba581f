/**
 * Blob transfer between peers (issue 5) over `/rangedocs/blobs/1` (wire layout in schema/BlobTransfer.ts), and the
 * downloader the live engine calls (spec 05 §9.2).
 *
 * Provider: registered on the Network while the layer lives. It reads one request frame (inactivity timeout), answers
 * `Busy` over its per-peer or total transfer cap, `NotFound` unless the blob is Complete here (partial prefixes are
 * not served), else `Complete { size }` followed by the raw bytes from the requested offset, read with
 * `Blobs.openReader` into reused buffers and written with `Network.sendReleasing`, whose drain wait is the
 * backpressure. Each send is bounded by the inactivity timeout too, so a requester that stops reading cannot pin a
 * transfer slot; a minimum rate per read-timeout window also bounds the whole transfer (`minTransferRate`).
 *
 * Fetch (one provider): resumes at the partial blob's offset, checks the announced size against the maximum and the
 * size of the partial data already held, then appends each chunk as it arrives; the whole content is hashed by
 * `PartialBlob.commit`. What a bad provider costs:
 * - more bytes than announced: stopped at the first excess byte, partial data discarded (`Oversized`);
 * - wrong bytes: found at commit, partial data discarded (`Corrupt`);
 * - `Complete` then an early FIN (`Truncated`), a reset, silence past the timeout, or a trickle below the minimum
 *   rate (a provider dripping bytes to stay clear of the timeout): the bytes received are KEPT as Incomplete, and
 *   the next provider resumes from them. A prefix from a liar is only caught at commit, which then discards
 *   everything and costs one more full download; in exchange an honest provider that stopped midway (the common
 *   case) costs nothing. Since a commit failure after a resume cannot tell which provider lied, the
 *   downloader then retries the same provider from offset 0 before blaming it.
 * - an announced size that differs from the partial data's size: the partial data is dropped and the transfer
 *   restarts from 0 (sizes are not verifiable before the hash is, so the newest claim wins).
 *
 * Downloader: one run per hash (later callers join it, their provider sources and progress callbacks are added),
 * rounds over the providers with exponential backoff between rounds, providers that lied are skipped for the rest
 * of the run, and at most `maxDownloads` runs transfer at once. A round in which every provider answered NotFound
 * ends the run at once (DownloadFailed): waiting for the next round would only hold a download slot. A run whose every caller was interrupted is
 * interrupted too.
 */
import { Clock, Context, Data, Deferred, Duration, Effect, Either, Exit, Fiber, Layer, Option, ParseResult, Schema, Scope } from "effect"
import { EMPTY_HASH } from "../internal/blake3.js"
import { equals, toHex } from "../internal/bytes.js"
import { Slots } from "../internal/slots.js"
import { encodeFrame, FrameDecoder } from "../internal/framing.js"
import { type BlobError, DownloadFailed } from "../schema/BlobErrors.js"
import {
  BLOB_PROTOCOL,
  BlobRequest,
  BlobRequestFromBytes,
  type BlobResponse,
  BlobResponseFromBytes,
  Busy,
  Complete,
  MAX_BLOB_HEADER,
  type Misbehaviour,
  NotFound,
  ProviderBusy,
  ProviderMisbehaved,
  ProviderNotFound,
  TransferFailed,
  type TransferError
} from "../schema/BlobTransfer.js"
import { fmtShort, type Hash } from "../schema/Keys.js"
import { NodeAddr, type NodeId } from "../schema/NodeAddr.js"
import * as Blobs from "./Blobs.js"
import * as Network from "./Network.js"

/** Inactivity timeout of every read and write of a transfer. */
export const DEFAULT_READ_TIMEOUT: Duration.Duration = Duration.seconds(30)
/**
 * Bytes per second a transfer must move on average over every read-timeout window: 30 KiB per 30 s by default, far
 * below any working link, far above a peer that drips a byte now and then to stay clear of the inactivity timeout.
 */
export const DEFAULT_MIN_TRANSFER_RATE = 1024
/** Bytes per read, hence per send, on the provider (see bench/blobs.ts). */
export const DEFAULT_CHUNK_SIZE = 256 * 1024
/**
 * Provider reads in flight per transfer, so that the event loop does not wait on each read's round trip through
 * libuv's pool (bench/blobs.ts: ratio median 0.59 with one read ahead, 0.66 with four over twelve runs; eight let the
 * reads outrun the network, and buffers libp2p still holds cannot be reused). A transfer served holds up to
 * `(readAhead + 1) × chunkSize`: 1.25 MiB by default, 40 MiB at the default cap of 32 transfers.
 */
export const DEFAULT_READ_AHEAD = 4
/** Bytes the requester gathers before each write to the partial blob. */
const WRITE_SIZE = 1024 * 1024
export const DEFAULT_MAX_TRANSFERS_PER_PEER = 4
export const DEFAULT_MAX_TRANSFERS = 32
export const DEFAULT_MAX_DOWNLOADS = 8
export const DEFAULT_MAX_ROUNDS = 4
export const DEFAULT_BACKOFF: Duration.Duration = Duration.millis(500)
export const DEFAULT_MAX_BACKOFF: Duration.Duration = Duration.seconds(30)

/** What a provider answered one request; for logs, metrics and tests. */
export interface ServeEvent {
  readonly remote: NodeId
  readonly hash: Hash
  readonly offset: number
  readonly response: BlobResponse["_tag"]
}

export interface BlobTransferConfig {
  /** Inactivity timeout of each read (both sides) and each provider write; default {@link DEFAULT_READ_TIMEOUT}. */
  readonly readTimeout?: Duration.DurationInput
  /**
   * A transfer (either side) that moves fewer than `minTransferRate × readTimeout` content bytes within one read-timeout
   * window, after its first (which includes the request and the response header), is broken off: the requester keeps
   * what arrived and tries the next provider, the provider frees the slot. An integer, bytes per second; default
   * {@link DEFAULT_MIN_TRANSFER_RATE}; 0 turns the check off. The provider counts bytes as it hands them to the
   * network, so against a requester that stops reading its inactivity timeout is what acts.
   */
  readonly minTransferRate?: number
  /** Largest size a provider may announce; default `Blobs.DEFAULT_MAX_BLOB_SIZE`. */
  readonly maxBlobSize?: number
  /** Provider read/send chunk size; default {@link DEFAULT_CHUNK_SIZE}. */
  readonly chunkSize?: number
  /** Provider reads in flight per transfer, each `chunkSize`; default {@link DEFAULT_READ_AHEAD}. */
  readonly readAhead?: number
  /** Transfers served at once to one peer, and in total; over either the answer is `Busy`. */
  readonly maxTransfersPerPeer?: number
  readonly maxTransfers?: number
  /** Downloads transferring at once (the others wait their turn). */
  readonly maxDownloads?: number
  /** Rounds over the providers before a download fails; default {@link DEFAULT_MAX_ROUNDS}. */
  readonly maxRounds?: number
  /** Pause before the second round; it doubles each round up to `maxBackoff`. */
  readonly backoff?: Duration.DurationInput
  readonly maxBackoff?: Duration.DurationInput
  /** Called by the provider for every request it answered, before any content is sent. */
  readonly onServe?: (event: ServeEvent) => Effect.Effect<void>
}

export interface FetchOptions {
  /** Called after each chunk with the bytes of the blob now held (resumed bytes included). */
  readonly onProgress?: (bytes: number) => Effect.Effect<void>
}

export type Provider = NodeId | NodeAddr

/**
 * A download running now (`BlobTransferService.inFlight`): `bytes` of the blob arrived so far, resumed bytes included,
 * of `size` once a provider announced it; `provider` the one sending it now (none between attempts or while the run
 * waits for a download slot); `started` epoch milliseconds.
 */
export interface TransferProgress {
  readonly hash: Hash
  readonly bytes: number
  readonly size: number | undefined
  readonly provider: NodeId | undefined
  readonly started: number
}

/** What a transfer of a run updates as bytes arrive (plain fields: no Effect per chunk). */
interface Track {
  bytes: number
  size: number | undefined
  provider: NodeId | undefined
}

export interface BlobTransferService {
  /** One transfer of `hash` from `provider`, resuming partial data; the blob is Complete when this succeeds. */
  readonly fetch: (
    hash: Hash,
    provider: Provider,
    options?: FetchOptions
  ) => Effect.Effect<Blobs.Added, TransferError | BlobError>
  /**
   * The blob from whichever provider delivers it (spec 05 §9.2); at once if it is already Complete. `providers` is
   * read again at every round, so it may be a live view. Concurrent calls for one hash share one run.
   */
  readonly download: (
    hash: Hash,
    providers: () => Iterable<Provider>,
    options?: FetchOptions
  ) => Effect.Effect<Blobs.Added, DownloadFailed>
  /** The downloads running now, oldest first, with their progress (for the inspector). */
  readonly inFlight: Effect.Effect<ReadonlyArray<TransferProgress>>
}

export class BlobTransfer extends Context.Tag("docs/BlobTransfer")<BlobTransfer, BlobTransferService>() {}

// ---------------------------------------------------------------------------------------------------------------
// Framed headers

const encodeRequest = Schema.encodeSync(BlobRequestFromBytes)
const encodeResponse = Schema.encodeSync(BlobResponseFromBytes)
const decodeRequest = Schema.decodeEither(BlobRequestFromBytes)
const decodeResponse = Schema.decodeEither(BlobResponseFromBytes)

const parseReason = (error: ParseResult.ParseError): string =>
  ParseResult.ArrayFormatter.formatErrorSync(error)[0]?.message ?? "undecodable"

const describe = (cause: unknown): string => (cause instanceof Error ? cause.message : String(cause))

/** The remote closed its side (FIN) before we expected it. */
class StreamEnded extends Data.TaggedError("StreamEnded") {}
/** The stream was reset or aborted, or nothing moved within the inactivity timeout. */
class StreamBroken extends Data.TaggedError("StreamBroken")<{ readonly message: string }> {}
/** A header frame that is oversized, truncated or undecodable. */
class BadHeader extends Data.TaggedError("BadHeader")<{ readonly message: string }> {}
/** A restart of the same transfer at another offset (the partial data changed under us). */
class Restart extends Data.TaggedError("Restart") {}

/** The next bytes that arrived, in order (waits for some); StreamEnded after the remote's FIN and the last byte. */
type Pull = Effect.Effect<ReadonlyArray<Uint8Array>, StreamEnded | StreamBroken>

/** `Network.reader` (no copy, a working pause), its end and breakage as this module's errors. */
const openReader = (stream: Network.Stream): Effect.Effect<Pull, never, Scope.Scope> =>
  Effect.map(Network.reader(stream), (pull): Pull =>
    Effect.mapError(pull, Option.match({
      onNone: () => new StreamEnded(),
      onSome: (error) => new StreamBroken({ message: error.reason })
    })))

const pullWithin = (pull: Pull, timeout: Duration.Duration): Pull =>
  pull.pipe(
    Effect.timeoutFail({
      duration: timeout,
      onTimeout: () => new StreamBroken({ message: `no data for ${Duration.format(timeout)}` })
    })
  )

/** Marks progress of a transfer: `bytes` of content moved (0: activity without content, e.g. a disk write done). */
type Touch = (bytes?: number) => void

/**
 * Aborts `stream` once `touch` was not called for `timeout`, or once fewer than `minRate × timeout` bytes were counted
 * over the last `timeout`, a window checked from the end of the second one on (the first holds the request and the
 * header): a peer that trickles a byte now and then would otherwise hold a transfer, and its slot, forever. Both fire
 * between 1× and 1.25× of `timeout` late. One timer per transfer instead of a timeout race around every read and
 * write, which cost measurable CPU per chunk (bench/blobs.ts). The abort fails the pending read or write with a
 * StreamError carrying the reason.
 */
const watchdog = (stream: Network.Stream, timeout: Duration.Duration, minRate: number) =>
  Effect.gen(function*() {
    let moves = 0
    let moved = 0
    const TICKS = 4
    const timeoutMs = Duration.toMillis(timeout)
    const minBytes = (minRate * timeoutMs) / 1000
    const tick = Duration.millis(Math.max(1, timeoutMs / TICKS))
    yield* Effect.gen(function*() {
      let seen = -1
      let idle = 0
      /** Bytes counted in each of the last TICKS ticks (a ring), and how many ticks have passed. */
      const window = new Array<number>(TICKS).fill(0)
      let ticks = 0
      let counted = 0
      for (;;) {
        yield* Effect.sleep(tick)
        idle = moves === seen ? idle + 1 : 0
        seen = moves
        if (idle >= TICKS) return stream.abort(new Error(`no data for ${Duration.format(timeout)}`))
        window[ticks % TICKS] = moved - counted
        counted = moved
        ticks++
        if (ticks >= 2 * TICKS && window.reduce((a, b) => a + b, 0) < minBytes) {
          return stream.abort(
            new Error(`fewer than ${Math.ceil(minBytes)} bytes in ${Duration.format(timeout)} (slower than ${minRate} B/s)`)
          )
        }
      }
    }).pipe(Effect.forkScoped)
    const touch: Touch = (bytes = 0) => {
      moves++
      moved += bytes
    }
    return touch
  })

/** The payload of the first frame of the stream, and the bytes that followed it in the same read. */
const readHeader = (
  pull: Pull,
  timeout: Duration.Duration
): Effect.Effect<{ readonly header: Uint8Array; readonly rest: ReadonlyArray<Uint8Array> }, StreamBroken | BadHeader> =>
  Effect.gen(function*() {
    const decoder = new FrameDecoder(MAX_BLOB_HEADER)
    for (;;) {
      const chunks = yield* pullWithin(pull, timeout).pipe(
        Effect.catchTag("StreamEnded", () => new BadHeader({ message: "stream ended before the header" }))
      )
      for (let i = 0; i < chunks.length; i++) {
        const bytes = chunks[i]!
        const frame = yield* Effect.try({
          try: () => {
            decoder.push(bytes)
            return decoder.next()
          },
          catch: (cause) => new BadHeader({ message: describe(cause) })
        })
        if (frame === undefined) continue
        // Until this chunk the header was incomplete, so what the decoder still holds is this chunk's tail.
        const tail = decoder.buffered === 0 ? [] : [bytes.subarray(bytes.length - decoder.buffered)]
        return { header: frame, rest: [...tail, ...chunks.slice(i + 1)] }
      }
    }
  })

// ---------------------------------------------------------------------------------------------------------------
// Service

const isEmptyHash = (hash: Hash) => equals(hash, EMPTY_HASH)

const positive = (name: string, n: number, min = 1) =>
  Number.isSafeInteger(n) && n >= min ? Effect.void : Effect.dieMessage(`BlobTransfer: ${name} must be an integer ≥ ${min}`)

export const make = (config: BlobTransferConfig = {}) =>
  Effect.gen(function*() {
    const network = yield* Network.Network
    const blobs = yield* Blobs.Blobs
    const serviceScope = yield* Effect.scope
    const readTimeout = Duration.decode(config.readTimeout ?? DEFAULT_READ_TIMEOUT)
    const minRate = config.minTransferRate ?? DEFAULT_MIN_TRANSFER_RATE
    const maxBlobSize = config.maxBlobSize ?? Blobs.DEFAULT_MAX_BLOB_SIZE
    const chunkSize = config.chunkSize ?? DEFAULT_CHUNK_SIZE
    const readAhead = config.readAhead ?? DEFAULT_READ_AHEAD
    const maxPerPeer = config.maxTransfersPerPeer ?? DEFAULT_MAX_TRANSFERS_PER_PEER
    const maxTotal = config.maxTransfers ?? DEFAULT_MAX_TRANSFERS
    const maxRounds = config.maxRounds ?? DEFAULT_MAX_ROUNDS
    const backoff = Duration.decode(config.backoff ?? DEFAULT_BACKOFF)
    const maxBackoff = Duration.decode(config.maxBackoff ?? DEFAULT_MAX_BACKOFF)
    yield* positive("maxBlobSize", maxBlobSize, 0)
    yield* positive("chunkSize", chunkSize)
    yield* positive("readAhead", readAhead)
    yield* positive("maxTransfersPerPeer", maxPerPeer, 0)
    yield* positive("maxTransfers", maxTotal, 0)
    yield* positive("maxRounds", maxRounds)
    yield* positive("minTransferRate", minRate, 0)
    const downloads = yield* Effect.makeSemaphore(config.maxDownloads ?? DEFAULT_MAX_DOWNLOADS)

    const completeSize = (hash: Hash): Effect.Effect<Option.Option<number>, BlobError> =>
      isEmptyHash(hash)
        ? Effect.succeed(Option.some(0))
        : Effect.map(blobs.info(hash), Option.flatMap((info) =>
          info.status === "Complete" ? Option.some(info.size) : Option.none()
        ))

    // -- provider

    const slots = new Slots(maxPerPeer, maxTotal)
    /** Takes a transfer slot for the scope; false over a cap (then nothing is held). */
    const reserve = (peer: string) =>
      Effect.acquireRelease(Effect.sync(() => slots.tryTake(peer)), (held) =>
        Effect.sync(() => {
          if (held) slots.release(peer)
        }))


    /**
     * The blob from `offset`, `chunkSize` bytes per send, with up to `readAhead` reads in flight: a read is a round
     * trip through libuv's pool, and with one read ahead the event loop sat idle waiting for it (bench/blobs.ts).
     * Buffers are reused whenever libp2p was done with them when the send returned (`Network.sendReleasing`), which is
     * the rule while the network keeps up: fresh buffers per chunk were 100 MiB of garbage per 100 MiB sent, and the
     * GC work and memory peak that come with it.
     */
    const sendContent = (stream: Network.Stream, hash: Hash, offset: number, touch: Touch) =>
      Effect.scoped(Effect.gen(function*() {
        const reader = yield* blobs.openReader(hash)
        const spare: Array<Uint8Array> = []
        // Reads in flight, in blob order, each with the buffer it fills.
        const reads: Array<readonly [Fiber.Fiber<number, BlobError>, Uint8Array]> = []
        let requested = offset
        const refill = Effect.gen(function*() {
          while (reads.length < readAhead && requested < reader.size) {
            const into = spare.pop() ?? new Uint8Array(chunkSize)
            reads.push([yield* Effect.fork(reader.read(requested, into)), into])
            requested += chunkSize
          }
        })
        yield* refill
        // Every read covers its chunk in full (the last one up to the size), so the reads in flight are what is left.
        for (let next = reads.shift(); next !== undefined; next = reads.shift()) {
          const [fiber, current] = next
          const n = yield* Fiber.join(fiber)
          if (n === 0) return yield* Effect.dieMessage(`BlobTransfer: blob ${toHex(hash)} ended before its size`)
          touch(n)
          // The next read starts before this chunk is sent, so `readAhead` reads stay in flight during the send.
          yield* refill
          if (yield* Network.sendReleasing(stream, n === current.length ? current : current.subarray(0, n))) {
            spare.push(current)
          }
        }
      }))

    const onServe = config.onServe
    const serve = (stream: Network.Stream, remote: NodeId) =>
      Effect.scoped(Effect.gen(function*() {
        const pull = yield* openReader(stream)
        const { header } = yield* readHeader(pull, readTimeout)
        const request = yield* Either.mapLeft(
          decodeRequest(header),
          (e) => new BadHeader({ message: `malformed request: ${parseReason(e)}` })
        )
        const held = yield* reserve(toHex(remote))
        const size = held ? yield* completeSize(request.hash) : Option.none<number>()
        const response: BlobResponse = !held
          ? new Busy()
          : Option.isSome(size)
          ? new Complete({ size: size.value })
          : new NotFound()
        if (onServe !== undefined) {
          yield* onServe({ remote, hash: request.hash, offset: request.offset, response: response._tag })
        }
        const touch = yield* watchdog(stream, readTimeout, minRate)
        yield* Network.send(stream, encodeFrame(encodeResponse(response), MAX_BLOB_HEADER))
        if (response._tag !== "Complete" || request.offset >= response.size) return
        yield* sendContent(stream, request.hash, request.offset, touch)
      })).pipe(
        // Aborted, never closed, after a failure: a FIN would read as a truncated transfer. A requester that went
        // away or spoke nonsense is routine; only the store failing is worth a warning.
        Effect.catchAll((error) =>
          Effect.zipRight(
            error._tag === "StreamError" || error._tag === "StreamBroken" || error._tag === "BadHeader"
              ? Effect.logDebug("blob transfer ended early", error.message)
              : Effect.logWarning("blob transfer failed", error),
            Effect.sync(() => stream.abort(new Error(error.message)))
          )
        ),
        Effect.withSpan("BlobTransfer.serve"),
        Effect.annotateLogs({ service: "BlobTransfer", remote: fmtShort(remote) })
      )

    yield* network.handle(BLOB_PROTOCOL, serve)

    // -- fetch

    const fetchFrom = (
      hash: Hash,
      provider: Provider,
      onProgress: ((bytes: number) => Effect.Effect<void>) | undefined,
      track: Track | undefined
    ): Effect.Effect<Blobs.Added, TransferError | BlobError | Restart> =>
      Effect.scoped(Effect.gen(function*() {
        const where = { hash, provider: provider instanceof NodeAddr ? provider.nodeId : provider }
        const failed = (reason: string) => new TransferFailed({ ...where, reason })
        // The partial data must survive a concurrent gc while it grows (a temporary tag for the transfer).
        yield* blobs.protect(hash)
        const held = yield* blobs.info(hash)
        const resumeSize = Option.isSome(held) && held.value.status === "Incomplete" ? held.value.size : undefined
        const offset = resumeSize !== undefined && Option.isSome(held) ? held.value.have : 0
        const misbehaved = (kind: Misbehaviour, reason: string) =>
          new ProviderMisbehaved({ ...where, kind, offset, reason })

        const stream = yield* network.openStream(provider, BLOB_PROTOCOL).pipe(
          Effect.mapError((error) => failed(error.reason))
        )
        const pull = yield* openReader(stream)
        const touch = yield* watchdog(stream, readTimeout, minRate)
        yield* Network.send(stream, encodeFrame(encodeRequest(new BlobRequest({ hash, offset })), MAX_BLOB_HEADER)).pipe(
          Effect.mapError((error) => failed(error.reason))
        )
        const { header, rest } = yield* readHeader(pull, readTimeout).pipe(
          Effect.mapError((e) => (e._tag === "BadHeader" ? misbehaved("Malformed", e.message) : failed(e.message)))
        )
        const response = yield* Either.mapLeft(
          decodeResponse(header),
          (e) => misbehaved("Malformed", `malformed response: ${parseReason(e)}`)
        )
        if (response._tag === "NotFound") return yield* new ProviderNotFound(where)
        if (response._tag === "Busy") return yield* new ProviderBusy(where)
        const size = response.size
        if (size > maxBlobSize) {
          return yield* misbehaved("TooLarge", `announced ${size} bytes, the maximum is ${maxBlobSize}`)
        }
        if (resumeSize !== undefined && size !== resumeSize) {
          yield* Effect.logDebug("announced size differs from the partial data's; restarting from 0").pipe(
            Effect.annotateLogs({ announced: size, partial: resumeSize })
          )
          yield* blobs.delete(hash)
          return yield* new Restart()
        }
        const partial = yield* blobs.openPartial(hash, size)
        if ((yield* partial.offset) !== offset) return yield* new Restart()
        if (track !== undefined) {
          track.size = size
          track.bytes = offset
          track.provider = where.provider
        }

        const expected = size - offset
        let received = 0
        let written = 0
        // Arriving chunks (≤ 64 KiB, libp2p's) are gathered into a reused buffer and written WRITE_SIZE at a time:
        // fewer writes and no garbage per chunk (bench/blobs.ts). Two buffers take turns, so one is written while
        // the other fills: the disk works while the network does. Both Blobs stores are done with written bytes
        // when `write` returns.
        const stages = [new Uint8Array(Math.min(WRITE_SIZE, expected)), new Uint8Array(Math.min(WRITE_SIZE, expected))]
        let stage = stages[0]!
        let staged = 0
        let writing: Fiber.RuntimeFiber<void, BlobError> | undefined
        /** Waits for the write in flight; every exit path goes through it before the partial blob is used again. */
        const settle: Effect.Effect<void, BlobError> = Effect.suspend(() => {
          const fiber = writing
          writing = undefined
          return fiber === undefined ? Effect.void : Fiber.join(fiber)
        })
        const flush: Effect.Effect<void, BlobError> = Effect.suspend(() => {
          if (staged === 0) return Effect.void
          const bytes = stage.subarray(0, staged)
          stage = stage === stages[0] ? stages[1]! : stages[0]!
          staged = 0
          written += bytes.length
          const done = offset + written
          const write = Effect.zipLeft(partial.write(bytes), Effect.sync(touch))
          return Effect.zipRight(
            settle,
            Effect.map(
              Effect.fork(onProgress === undefined ? write : Effect.zipRight(write, onProgress(done))),
              (fiber) => {
                writing = fiber
              }
            )
          )
        })
        // Plain loops over the arrived buffers: no Effect per buffer, only per flush and per read.
        let chunks = rest
        for (;;) {
          for (const bytes of chunks) {
            if (received + bytes.length > expected) {
              yield* settle
              yield* partial.discard
              return yield* misbehaved("Oversized", `sent more than the ${size} bytes it announced`)
            }
            received += bytes.length
            touch(bytes.length)
            if (track !== undefined) track.bytes = offset + received
            for (let at = 0; at < bytes.length;) {
              const n = Math.min(stage.length - staged, bytes.length - at)
              stage.set(n === bytes.length ? bytes : bytes.subarray(at, at + n), staged)
              staged += n
              at += n
              if (staged === stage.length) yield* flush
            }
          }
          const next = yield* Effect.either(pull)
          if (next._tag === "Left") {
            if (next.left._tag === "StreamBroken") {
              // What arrived is kept for a resume.
              yield* flush
              yield* settle
              return yield* failed(next.left.message)
            }
            break
          }
          chunks = next.right
        }
        yield* flush
        yield* settle
        if (received < expected) {
          return yield* misbehaved("Truncated", `closed after ${offset + received} of ${size} bytes`)
        }
        return yield* partial.commit.pipe(
          Effect.catchTag("BlobCorrupt", (e) => misbehaved("Corrupt", e.reason))
        )
      }))

    const fetchTracked = Effect.fn("BlobTransfer.fetch")(function*(
      hash: Hash,
      provider: Provider,
      onProgress: ((bytes: number) => Effect.Effect<void>) | undefined,
      track: Track | undefined
    ) {
      const done = yield* completeSize(hash)
      if (Option.isSome(done)) return { hash, size: done.value } satisfies Blobs.Added
      // A restart happens at most once for a size change and once for an offset that moved; a third is a bug.
      for (let i = 0;; i++) {
        const result = yield* Effect.either(fetchFrom(hash, provider, onProgress, track)).pipe(
          Effect.ensuring(Effect.sync(() => {
            if (track !== undefined) track.provider = undefined
          }))
        )
        if (result._tag === "Right") return result.right
        if (result.left._tag !== "Restart") return yield* Effect.fail(result.left)
        if (i >= 2) return yield* Effect.dieMessage("BlobTransfer.fetch: partial blob offset keeps changing")
      }
    })

    const fetch = (hash: Hash, provider: Provider, options?: FetchOptions) =>
      fetchTracked(hash, provider, options?.onProgress, undefined)

    // -- downloader

    interface Run {
      readonly hash: Hash
      readonly deferred: Deferred.Deferred<Blobs.Added, DownloadFailed>
      readonly sources: Set<() => Iterable<Provider>>
      readonly listeners: Set<(bytes: number) => Effect.Effect<void>>
      readonly track: Track
      readonly started: number
      waiters: number
      fiber: Fiber.RuntimeFiber<void> | undefined
    }
    const runs = new Map<string, Run>()

    const providerKey = (p: Provider) => toHex(p instanceof NodeAddr ? p.nodeId : p)

    const runDownload = (hash: Hash, run: Run): Effect.Effect<Blobs.Added, DownloadFailed> =>
      Effect.gen(function*() {
        const banned = new Set<string>()
        const reasons: Array<string> = []
        let attempts = 0
        const fail = (reason: string) => new DownloadFailed({ hash, attempts, reason })
        const progress = (bytes: number) => Effect.forEach(run.listeners, (l) => l(bytes), { discard: true })
        const note = (error: TransferError | BlobError) => {
          reasons.push(error.message)
          if (reasons.length > 4) reasons.shift()
        }
        const storeFailed = (error: BlobError) => fail(`blob store: ${error.message}`)

        const round: Effect.Effect<Option.Option<Blobs.Added>, DownloadFailed> = Effect.gen(function*() {
          const done = yield* completeSize(hash).pipe(Effect.mapError(storeFailed))
          if (Option.isSome(done)) return Option.some({ hash, size: done.value })
          const candidates = new Map<string, Provider>()
          for (const source of run.sources) {
            for (const p of source()) {
              const key = providerKey(p)
              if (!banned.has(key) && !candidates.has(key)) candidates.set(key, p)
            }
          }
          if (candidates.size === 0) reasons.push("no providers")
          let notFound = 0
          for (const [key, provider] of candidates) {
            for (let retry = 0; retry < 2; retry++) {
              attempts++
              const result = yield* Effect.either(fetchTracked(hash, provider, progress, run.track))
              if (result._tag === "Right") return Option.some(result.right)
              const error = result.left
              note(error)
              yield* Effect.logDebug("blob fetch failed").pipe(
                Effect.annotateLogs({ provider: key.slice(0, 10), error: error.message })
              )
              if (error._tag === "ProviderNotFound") notFound++
              if (error._tag !== "ProviderMisbehaved") break
              // A commit failure after a resume cannot name the liar: the same provider once more, from scratch.
              if (error.kind === "Corrupt" && error.offset > 0 && retry === 0) continue
              if (error.kind !== "Truncated") banned.add(key)
              break
            }
          }
          // Every provider said it does not have the blob: an answer, not a failure to wait out. The run ends now and
          // frees its download slot; the caller asks again when a provider announces the content.
          if (candidates.size > 0 && notFound === candidates.size) {
            return yield* fail(`no provider has it: ${reasons.join("; ")}`)
          }
          return Option.none()
        })

        for (let r = 0; r < maxRounds; r++) {
          if (r > 0) {
            const delay = Duration.min(Duration.times(backoff, 2 ** (r - 1)), maxBackoff)
            yield* Effect.sleep(delay)
          }
          const added = yield* downloads.withPermits(1)(round)
          if (Option.isSome(added)) return added.value
        }
        return yield* fail(reasons.length === 0 ? "no providers" : reasons.join("; "))
      }).pipe(
        Effect.withSpan("BlobTransfer.download.run"),
        Effect.annotateLogs({ service: "BlobTransfer", hash: toHex(hash).slice(0, 10) })
      )

    const download = Effect.fn("BlobTransfer.download")(function*(
      hash: Hash,
      providers: () => Iterable<Provider>,
      options?: FetchOptions
    ) {
      const hashHex = toHex(hash)
      const done = yield* completeSize(hash).pipe(
        Effect.mapError((e) => new DownloadFailed({ hash, attempts: 0, reason: `blob store: ${e.message}` }))
      )
      if (Option.isSome(done)) return { hash, size: done.value } satisfies Blobs.Added
      const fresh: Run = {
        hash,
        deferred: yield* Deferred.make<Blobs.Added, DownloadFailed>(),
        sources: new Set(),
        listeners: new Set(),
        track: { bytes: 0, size: undefined, provider: undefined },
        started: yield* Clock.currentTimeMillis,
        waiters: 0,
        fiber: undefined
      }
      const onProgress = options?.onProgress
      // Joining or starting happens in one synchronous step, so two callers never both start a run.
      const run = yield* Effect.sync(() => {
        const existing = runs.get(hashHex)
        const run = existing ?? fresh
        if (existing === undefined) runs.set(hashHex, run)
        run.sources.add(providers)
        if (onProgress !== undefined) run.listeners.add(onProgress)
        run.waiters++
        return run
      })
      if (run === fresh) {
        run.fiber = yield* runDownload(hash, run).pipe(
          Effect.onExit((exit) =>
            Effect.zipRight(
              Effect.sync(() => {
                if (runs.get(hashHex) === run) runs.delete(hashHex)
              }),
              Deferred.done(run.deferred, exit)
            )
          ),
          Effect.ignore,
          Effect.forkIn(serviceScope)
        )
      }
      return yield* Deferred.await(run.deferred).pipe(
        Effect.onExit((exit) =>
          Effect.suspend(() => {
            run.sources.delete(providers)
            if (onProgress !== undefined) run.listeners.delete(onProgress)
            run.waiters--
            if (!Exit.isInterrupted(exit) || run.waiters > 0 || run.fiber === undefined) return Effect.void
            // The last caller left: nobody wants the blob any more.
            if (runs.get(hashHex) === run) runs.delete(hashHex)
            return Fiber.interrupt(run.fiber)
          })
        )
      )
    })

    const inFlight = Effect.sync(() =>
      Array.from(runs.values(), (run): TransferProgress => ({
        hash: run.hash,
        bytes: run.track.bytes,
        size: run.track.size,
        provider: run.track.provider,
        started: run.started
      }))
    )

    return BlobTransfer.of({ fetch, download, inFlight })
  })

/** The transfer service; serves `BLOB_PROTOCOL` from the blob store while the layer lives. */
export const layer = (
  config: BlobTransferConfig = {}
): Layer.Layer<BlobTransfer, never, Network.Network | Blobs.Blobs> => Layer.scoped(BlobTransfer, make(config))
