/**
 * Blob transfer between real libp2p nodes on 127.0.0.1 (port 0): the header codecs, transfers of small and large
 * blobs, resume after a provider stopped, lying providers, deduplicated downloads and limits. Every node a test
 * builds is closed by the test's scope.
 */
import { assert, describe, it } from "@effect/vitest"
import { Chunk, Context, Deferred, Effect, Either, Exit, Fiber, Layer, Option, Ref, Schedule, Schema, Scope, Stream } from "effect"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as fc from "fast-check"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { blake3 } from "../../src/internal/blake3.js"
import { concat, equals, toHex } from "../../src/internal/bytes.js"
import { encodeFrame, FrameDecoder } from "../../src/internal/framing.js"
import {
  BLOB_PROTOCOL,
  BlobRequest,
  BlobRequestFromBytes,
  type BlobResponse,
  BlobResponseFromBytes,
  Busy,
  Complete,
  MAX_BLOB_HEADER,
  NotFound,
  TransferError
} from "../../src/schema/BlobTransfer.js"
import { EMPTY } from "../../src/schema/Entry.js"
import { Hash } from "../../src/schema/Keys.js"
import * as BlobTransfer from "../../src/services/BlobTransfer.js"
import * as Blobs from "../../src/services/Blobs.js"
import * as Network from "../../src/services/Network.js"

const MiB = 1024 * 1024

// ---------------------------------------------------------------------------------------------------------------
// Codecs

const encodeRequest = Schema.encodeSync(BlobRequestFromBytes)
const decodeRequest = Schema.decodeEither(BlobRequestFromBytes)
const encodeResponse = Schema.encodeSync(BlobResponseFromBytes)
const decodeResponse = Schema.decodeEither(BlobResponseFromBytes)

const bytes = (...parts: ReadonlyArray<number | ReadonlyArray<number> | Uint8Array>): Uint8Array =>
  Uint8Array.from(parts.flatMap((p) => (typeof p === "number" ? [p] : Array.from(p))))
const seq32 = Array.from({ length: 32 }, (_, i) => i)

describe("BlobTransfer wire headers", () => {
  it("a request is 32 raw hash bytes then the offset varint", () => {
    const request = new BlobRequest({ hash: Hash.make(Uint8Array.from(seq32)), offset: 300 })
    assert.strictEqual(toHex(encodeRequest(request)), toHex(bytes(seq32, 0xac, 0x02)))
  })

  it("responses are postcard enum variants: Complete { size } = 0, NotFound = 1, Busy = 2", () => {
    assert.strictEqual(toHex(encodeResponse(new Complete({ size: 1 }))), "0001")
    assert.strictEqual(toHex(encodeResponse(new NotFound())), "01")
    assert.strictEqual(toHex(encodeResponse(new Busy())), "02")
  })

  it("requests and responses round-trip", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
        fc.nat(2),
        (hash, n, variant) => {
          const request = Either.getOrThrow(decodeRequest(encodeRequest(new BlobRequest({ hash: Hash.make(hash), offset: n }))))
          assert.isTrue(equals(request.hash, hash))
          assert.strictEqual(request.offset, n)
          const response: BlobResponse = variant === 0
            ? new Complete({ size: n })
            : variant === 1
            ? new NotFound()
            : new Busy()
          const back = Either.getOrThrow(decodeResponse(encodeResponse(response)))
          assert.strictEqual(back._tag, response._tag)
          if (back._tag === "Complete" && response._tag === "Complete") assert.strictEqual(back.size, response.size)
        }
      )
    )
  })

  it("malformed headers fail to decode", () => {
    const bad = [
      bytes(seq32.slice(0, 31)), // short hash
      bytes(seq32), // no offset
      bytes(seq32, 0x00, 0x00), // trailing byte
      bytes(seq32, 0x80, 0x00), // overlong varint
      bytes(seq32, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10) // 2^53: beyond a safe integer
    ]
    for (const b of bad) assert.isTrue(Either.isLeft(decodeRequest(b)), toHex(b))
    for (const b of [bytes(), bytes(3), bytes(0), bytes(1, 0), bytes(0, 0x80, 0x00)]) {
      assert.isTrue(Either.isLeft(decodeResponse(b)), toHex(b))
    }
    // An unvalidated instance with a bad size is refused on encode rather than written.
    assert.isTrue(Either.isLeft(Schema.encodeEither(BlobResponseFromBytes)(new Complete({ size: -1 }, true))))
  })
})

// ---------------------------------------------------------------------------------------------------------------
// Nodes

type Services = BlobTransfer.BlobTransfer | Blobs.Blobs | Network.Network
type Peer = Context.Context<Services>

const testConfig: BlobTransfer.BlobTransferConfig = {
  readTimeout: "5 seconds",
  backoff: "20 millis",
  maxRounds: 2
}

const stack = <E>(blobs: Layer.Layer<Blobs.Blobs, E>, config: BlobTransfer.BlobTransferConfig = {}) =>
  BlobTransfer.layer({ ...testConfig, ...config }).pipe(
    Layer.provideMerge(blobs),
    Layer.provideMerge(Network.layer({ dialTimeout: "2 seconds" }))
  )

const memoryBlobs = () => Blobs.layerMemory()

/** A disk blob store in `dir` with its index in a fresh in-memory SQLite database. */
const diskBlobs = (dir: string) => Blobs.layer(dir).pipe(Layer.provide(SqliteClient.layer({ filename: ":memory:" })))

/** A temporary directory removed with the scope. */
const tempDir = Effect.acquireRelease(
  Effect.promise(() => fs.mkdtemp(join(tmpdir(), "rangedocs-blobtransfer-"))),
  (dir) => Effect.promise(() => fs.rm(dir, { recursive: true, force: true }))
)

/** A node with a memory blob store, closed with the test's scope. */
const peer = (config?: BlobTransfer.BlobTransferConfig) => Layer.build(stack(memoryBlobs(), config))

/** A node whose provider reports every request it answers. */
const observedPeer = (config: BlobTransfer.BlobTransferConfig = {}) =>
  Effect.gen(function*() {
    const served = yield* Ref.make<ReadonlyArray<BlobTransfer.ServeEvent>>([])
    const ctx = yield* peer({ ...config, onServe: (event) => Ref.update(served, (all) => [...all, event]) })
    return { ctx, served }
  })

const transfer = (ctx: Peer) => Context.get(ctx, BlobTransfer.BlobTransfer)
const blobsOf = (ctx: Peer) => Context.get(ctx, Blobs.Blobs)
const addrOf = (ctx: Context.Context<Network.Network>) => Context.get(ctx, Network.Network).addr

const addRandom = (ctx: Peer, size: number) =>
  Effect.gen(function*() {
    const content = new Uint8Array(randomBytes(size))
    const added = yield* Effect.scoped(blobsOf(ctx).addBytes(content))
    return { content, hash: added.hash }
  })

const holds = (ctx: Peer, hash: Hash, content: Uint8Array) =>
  Effect.gen(function*() {
    assert.strictEqual(yield* blobsOf(ctx).status(hash), "Complete")
    assert.isTrue(equals(yield* blobsOf(ctx).read(hash), content), "content differs")
  })

// ---------------------------------------------------------------------------------------------------------------
// A scripted provider: a bare node whose handler for BLOB_PROTOCOL misbehaves as told.

type Script =
  | "corrupt" // the right size, one flipped byte
  | "truncated" // half the content, then a clean FIN
  | "corruptTruncated" // half the content with a flipped byte, then a clean FIN
  | "oversized" // the content and 1000 more bytes
  | "tooLarge" // announces 1 GiB
  | "stall" // the header, one chunk, then silence
  | "drip" // the header, 500 bytes, then a byte every 100 ms: never silent for long, never done
  | "garbage" // an undecodable header

const scripted = (script: Script, content: Uint8Array) =>
  Effect.gen(function*() {
    const ctx = yield* Layer.build(Network.layer({ dialTimeout: "2 seconds" }))
    const network = Context.get(ctx, Network.Network)
    const requests = yield* Ref.make<ReadonlyArray<number>>([])
    const sendAll = (stream: Network.Stream, data: Uint8Array) =>
      Effect.forEach(
        Array.from({ length: Math.ceil(data.length / 65536) }, (_, i) => data.subarray(i * 65536, (i + 1) * 65536)),
        (chunk) => Network.send(stream, chunk),
        { discard: true }
      )
    yield* network.handle(BLOB_PROTOCOL, (stream) =>
      Effect.scoped(Effect.gen(function*() {
        const pull = yield* Stream.toPull(Network.receive(stream))
        const decoder = new FrameDecoder(MAX_BLOB_HEADER)
        let frame: Uint8Array | undefined
        while (frame === undefined) {
          for (const b of yield* pull) decoder.push(b)
          frame = decoder.next()
        }
        const request = Schema.decodeSync(BlobRequestFromBytes)(frame)
        yield* Ref.update(requests, (all) => [...all, request.offset])
        const header = (response: BlobResponse) => Network.send(stream, encodeFrame(encodeResponse(response), 64))
        const flipped = Uint8Array.from(content)
        flipped[Math.floor(content.length / 4)]! ^= 0xff
        const half = Math.floor(content.length / 2)
        switch (script) {
          case "corrupt":
            yield* header(new Complete({ size: content.length }))
            return yield* sendAll(stream, flipped.subarray(request.offset))
          case "truncated":
            yield* header(new Complete({ size: content.length }))
            return yield* sendAll(stream, content.subarray(request.offset, Math.max(request.offset, half)))
          case "corruptTruncated":
            yield* header(new Complete({ size: content.length }))
            return yield* sendAll(stream, flipped.subarray(request.offset, Math.max(request.offset, half)))
          case "oversized":
            yield* header(new Complete({ size: content.length }))
            return yield* sendAll(stream, concat(content.subarray(request.offset), new Uint8Array(1000)))
          case "tooLarge":
            yield* header(new Complete({ size: 1024 * MiB }))
            return yield* sendAll(stream, content)
          case "stall":
            yield* header(new Complete({ size: content.length }))
            yield* sendAll(stream, content.subarray(request.offset, request.offset + 1000))
            return yield* Effect.never
          case "drip": {
            yield* header(new Complete({ size: content.length }))
            yield* sendAll(stream, content.subarray(request.offset, request.offset + 500))
            for (let at = request.offset + 500; at < content.length; at++) {
              yield* Effect.sleep("100 millis")
              yield* Network.send(stream, content.subarray(at, at + 1))
            }
            return
          }
          case "garbage":
            return yield* Network.send(stream, encodeFrame(bytes(9, 9, 9), 64))
        }
      })).pipe(Effect.catchAll(() => Effect.void)))
    return { addr: yield* network.addr, requests }
  })

// ---------------------------------------------------------------------------------------------------------------

describe("BlobTransfer", () => {
  it.scopedLive("fetches a small blob; the empty blob and a blob already held need no provider", () =>
    Effect.gen(function*() {
      const a = yield* peer()
      const b = yield* peer()
      const { content, hash } = yield* addRandom(a, 5)
      const added = yield* transfer(b).fetch(hash, yield* addrOf(a))
      assert.strictEqual(added.size, 5)
      yield* holds(b, hash, content)
      // Already Complete: nobody is asked (no provider at all).
      assert.strictEqual((yield* transfer(b).download(hash, () => [])).size, 5)
      assert.strictEqual((yield* transfer(b).download(EMPTY, () => [])).size, 0)
    }))

  it.scopedLive("downloads a multi-MiB blob with progress up to its size", () =>
    Effect.gen(function*() {
      const a = yield* peer()
      const b = yield* peer()
      const size = 12 * MiB + 12345
      const { content, hash } = yield* addRandom(a, size)
      const seen = yield* Ref.make<ReadonlyArray<number>>([])
      const addr = yield* addrOf(a)
      const added = yield* transfer(b).download(hash, () => [addr], {
        onProgress: (n) => Ref.update(seen, (all) => [...all, n])
      })
      assert.strictEqual(added.size, size)
      yield* holds(b, hash, content)
      const progress = yield* Ref.get(seen)
      assert.isAbove(progress.length, 1)
      assert.isTrue(progress.every((n, i) => i === 0 || n > progress[i - 1]!), "progress is increasing")
      assert.strictEqual(progress[progress.length - 1], size)
    }))

  it.scopedLive("a disk provider keeps readAhead reads in flight, every chunk sent in order, from 0 and an offset", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      // Chunk sizes that do not divide the blob, so the last read is short; one to five reads in flight.
      for (const [chunkSize, readAhead] of [[1000, 1], [4093, 3], [65536, 5]] as const) {
        const served = yield* Ref.make<ReadonlyArray<BlobTransfer.ServeEvent>>([])
        // The disk store, its reads counted while they run.
        let running = 0
        let mostRunning = 0
        const counted = Layer.map(diskBlobs(join(dir, `p-${chunkSize}`)), (ctx) => {
          const blobs = Context.get(ctx, Blobs.Blobs)
          const openReader: Blobs.BlobsService["openReader"] = (hash) =>
            Effect.map(blobs.openReader(hash), (reader) => ({
              size: reader.size,
              read: (offset, into) =>
                Effect.acquireUseRelease(
                  Effect.sync(() => void (mostRunning = Math.max(mostRunning, ++running))),
                  () => reader.read(offset, into),
                  () => Effect.sync(() => void running--)
                )
            }))
          return Context.add(ctx, Blobs.Blobs, { ...blobs, openReader })
        })
        const provider = yield* Layer.build(stack(counted, {
          chunkSize,
          readAhead,
          onServe: (event) => Ref.update(served, (all) => [...all, event])
        }))
        const { content, hash } = yield* addRandom(provider, 300_007)
        const addr = yield* addrOf(provider)
        const receiver = yield* peer()
        yield* transfer(receiver).download(hash, () => [addr])
        yield* holds(receiver, hash, content)
        assert.strictEqual(mostRunning, readAhead, "reads in flight at once")
        // From an offset: the receiver holds a prefix, the provider is asked from there.
        const resumer = yield* peer()
        const partial = yield* blobsOf(resumer).openPartial(hash, content.length)
        yield* partial.write(content.subarray(0, 123_457))
        yield* transfer(resumer).download(hash, () => [addr])
        yield* holds(resumer, hash, content)
        assert.deepStrictEqual((yield* Ref.get(served)).map((s) => s.offset), [0, 123_457])
      }
    }))

  it.scopedLive("every provider answers NotFound: DownloadFailed after the first round, no retry round", () =>
    Effect.gen(function*() {
      const a = yield* observedPeer()
      const b = yield* observedPeer()
      const c = yield* peer()
      const hash = Hash.make(blake3(new Uint8Array([1, 2, 3])))
      const addrs = [yield* addrOf(a.ctx), yield* addrOf(b.ctx)]
      const error = yield* Effect.flip(transfer(c).download(hash, () => addrs))
      assert.strictEqual(error._tag, "DownloadFailed")
      assert.strictEqual(error.attempts, 2) // 2 providers × 1 round
      assert.include(error.reason, "does not have blob")
      for (const p of [a, b]) {
        assert.deepStrictEqual((yield* Ref.get(p.served)).map((e) => e.response), ["NotFound"])
      }
      assert.strictEqual(yield* blobsOf(c).status(hash), "Missing")
    }))

  it.scopedLive("issue 15 left: a provider that lacks the content ends the download at once (NotFound) and frees its slot", () =>
    Effect.gen(function*() {
      // One download slot; rounds, backoff and read timeout far longer than the test may take.
      const config = { readTimeout: "20 seconds", maxDownloads: 1, maxRounds: 4, backoff: "10 seconds" } as const
      const lacking = yield* observedPeer(config)
      const having = yield* peer(config)
      const c = yield* peer(config)
      const { content, hash } = yield* addRandom(having, 200_000)
      const missing = Hash.make(blake3(new Uint8Array([9, 9, 9])))
      const lackingAddr = yield* addrOf(lacking.ctx)
      const havingAddr = yield* addrOf(having)

      const started = Date.now()
      const failed = yield* Effect.fork(Effect.flip(transfer(c).download(missing, () => [lackingAddr])))
      const got = yield* Effect.fork(transfer(c).download(hash, () => [havingAddr]))
      const error = yield* Fiber.join(failed)
      const failedAfter = Date.now() - started
      yield* Fiber.join(got)
      const gotAfter = Date.now() - started
      assert.strictEqual(error._tag, "DownloadFailed")
      assert.strictEqual(error.attempts, 1)
      assert.include(error.reason, "does not have blob")
      assert.deepStrictEqual((yield* Ref.get(lacking.served)).map((e) => e.response), ["NotFound"])
      assert.isBelow(failedAfter, 5_000, "the NotFound attempt ended long before the read timeout")
      assert.isBelow(gotAfter, 5_000, "the slot it held was free for the next download at once")
      yield* holds(c, hash, content)
    }))

  it.scopedLive("a provider over its transfer cap answers Busy", () =>
    Effect.gen(function*() {
      const a = yield* peer({ maxTransfers: 0 })
      const b = yield* peer()
      const { hash } = yield* addRandom(a, 100)
      const addr = yield* addrOf(a)
      const error = yield* Effect.flip(transfer(b).fetch(hash, addr))
      assert.strictEqual(error._tag, "ProviderBusy")
      // Typed ids (issue 15): the Hash and the provider's NodeId themselves, through the error schema and back.
      if (error._tag !== "ProviderBusy") return assert.fail(error._tag)
      assert.isTrue(equals(error.hash, hash) && equals(error.provider, addr.nodeId))
      const back = Schema.decodeUnknownSync(TransferError)(Schema.encodeSync(TransferError)(error))
      assert.isTrue(back._tag === "ProviderBusy" && equals(back.hash, hash) && equals(back.provider, addr.nodeId))
      assert.include(error.message, toHex(addr.nodeId))
    }))

  it.scopedLive("concurrent downloads of one hash run once and all get the blob", () =>
    Effect.gen(function*() {
      const a = yield* observedPeer()
      const b = yield* peer()
      const { content, hash } = yield* addRandom(a.ctx, 4 * MiB)
      const addr = yield* addrOf(a.ctx)
      const results = yield* Effect.all(
        Array.from({ length: 6 }, () => transfer(b).download(hash, () => [addr])),
        { concurrency: "unbounded" }
      )
      assert.isTrue(results.every((r) => r.size === 4 * MiB && equals(r.hash, hash)))
      assert.strictEqual((yield* Ref.get(a.served)).length, 1)
      yield* holds(b, hash, content)
    }))

  it.scopedLive("a download whose only caller is interrupted stops; a later one starts afresh", () =>
    Effect.gen(function*() {
      const a = yield* observedPeer()
      const b = yield* peer()
      const { content, hash } = yield* addRandom(a.ctx, 16 * MiB)
      const addr = yield* addrOf(a.ctx)
      const started = yield* Deferred.make<void>()
      const fiber = yield* transfer(b).download(hash, () => [addr], {
        onProgress: () => Deferred.succeed(started, undefined)
      }).pipe(Effect.fork)
      yield* Deferred.await(started)
      yield* Fiber.interrupt(fiber)
      const status = yield* blobsOf(b).status(hash)
      assert.notStrictEqual(status, "Complete")
      yield* transfer(b).download(hash, () => [addr])
      yield* holds(b, hash, content)
      assert.strictEqual((yield* Ref.get(a.served)).length, 2)
    }))

  it.scopedLive("issue 18: inFlight lists a running download with the bytes arrived of the announced size; none once it ends", () =>
    Effect.gen(function*() {
      const content = new Uint8Array(randomBytes(4000))
      const hash = Hash.make(blake3(content))
      const drip = yield* scripted("drip", content)
      const b = yield* peer({ readTimeout: "5 seconds", minTransferRate: 0 })
      assert.deepStrictEqual(yield* transfer(b).inFlight, [])
      const fiber = yield* transfer(b).download(hash, () => [drip.addr]).pipe(Effect.fork)
      // The drip provider sends 500 bytes, then one byte every 100 ms: a download that stays in flight.
      const seen = yield* transfer(b).inFlight.pipe(
        Effect.filterOrFail((all) => all.length === 1 && all[0]!.bytes >= 502),
        Effect.retry({ schedule: Schedule.spaced("20 millis"), times: 250 })
      )
      const p = seen[0]!
      assert.strictEqual(toHex(p.hash), toHex(hash))
      assert.strictEqual(p.size, content.length)
      assert.isBelow(p.bytes, content.length)
      assert.strictEqual(toHex(p.provider ?? new Uint8Array()), toHex(drip.addr.nodeId))
      assert.isAbove(p.started, 0)
      // Bytes keep arriving: the progress moves without a write to the store (500 bytes stay staged).
      const later = yield* transfer(b).inFlight.pipe(
        Effect.filterOrFail((all) => all.length === 1 && all[0]!.bytes > p.bytes),
        Effect.retry({ schedule: Schedule.spaced("20 millis"), times: 100 })
      )
      assert.isAbove(later[0]!.bytes, p.bytes)
      yield* Fiber.interrupt(fiber)
      assert.deepStrictEqual(yield* transfer(b).inFlight, [])
      // A finished download is gone from the list too.
      const a = yield* peer()
      const small = yield* addRandom(a, 1000)
      const addrA = yield* addrOf(a)
      yield* transfer(b).download(small.hash, () => [addrA])
      assert.deepStrictEqual(yield* transfer(b).inFlight, [])
    }))

  it.scopedLive("resume: the provider stops midway, the partial data stays Incomplete, a second provider resumes", () =>
    Effect.gen(function*() {
      const size = 32 * MiB
      const content = new Uint8Array(randomBytes(size))
      const firstScope = yield* Scope.make()
      const first = yield* Layer.buildWithScope(stack(memoryBlobs()), firstScope)
      const { hash } = yield* Effect.scoped(blobsOf(first).addBytes(content))
      const second = yield* observedPeer()
      yield* Effect.scoped(blobsOf(second.ctx).addBytes(content))
      const receiver = yield* peer({ maxRounds: 1 })

      const midway = yield* Deferred.make<void>()
      const stopper = yield* Deferred.await(midway).pipe(
        Effect.zipRight(Scope.close(firstScope, Exit.void)),
        Effect.fork
      )
      const firstAddr = yield* addrOf(first)
      const error = yield* Effect.flip(transfer(receiver).download(hash, () => [firstAddr], {
        onProgress: (n) => (n >= 4 * MiB ? Deferred.succeed(midway, undefined) : Effect.void)
      }))
      yield* Fiber.join(stopper)
      assert.strictEqual(error._tag, "DownloadFailed")
      const info = Option.getOrThrow(yield* blobsOf(receiver).info(hash))
      assert.strictEqual(info.status, "Incomplete")
      assert.isAbove(info.have, 0)
      assert.isBelow(info.have, size)

      const secondAddr = yield* addrOf(second.ctx)
      const progress = yield* Ref.make<ReadonlyArray<number>>([])
      yield* transfer(receiver).download(hash, () => [secondAddr], {
        onProgress: (n) => Ref.update(progress, (all) => [...all, n])
      })
      yield* holds(receiver, hash, content)
      const served = yield* Ref.get(second.served)
      assert.strictEqual(served.length, 1)
      assert.strictEqual(served[0]!.offset, info.have)
      assert.isAbove((yield* Ref.get(progress))[0]!, info.have)
    }))

  describe("lying providers", () => {
    const size = 3 * MiB + 17

    const caseOf = (script: Script, expected: string, statusAfter: "Missing" | "Incomplete") =>
      it.scopedLive(`${script}: detected (${expected}), nothing corrupt becomes Complete, an honest provider serves it`, () =>
        Effect.gen(function*() {
          const honest = yield* observedPeer()
          const receiver = yield* peer({ maxBlobSize: 64 * MiB, readTimeout: "1 second" })
          const { content, hash } = yield* addRandom(honest.ctx, size)
          const liar = yield* scripted(script, content)

          const error = yield* Effect.flip(transfer(receiver).fetch(hash, liar.addr))
          const kind = error._tag === "ProviderMisbehaved" ? error.kind : error._tag
          assert.strictEqual(kind, expected)
          assert.strictEqual(yield* blobsOf(receiver).status(hash), statusAfter)
          yield* blobsOf(receiver).delete(hash)

          const honestAddr = yield* addrOf(honest.ctx)
          yield* transfer(receiver).download(hash, () => [liar.addr, honestAddr])
          yield* holds(receiver, hash, content)
          const offsets = (yield* Ref.get(honest.served)).map((e) => e.offset)
          return { offsets, liarRequests: yield* Ref.get(liar.requests) }
        }).pipe(Effect.tap(({ offsets, liarRequests }) =>
          Effect.sync(() => {
            assert.strictEqual(liarRequests.length, 2) // the fetch, then once in the download
            if (statusAfter === "Missing") assert.deepStrictEqual(offsets, [0])
            else assert.isAbove(offsets[0]!, 0) // resumed after the liar's prefix
          })
        )))

    caseOf("corrupt", "Corrupt", "Missing")
    caseOf("oversized", "Oversized", "Missing")
    caseOf("tooLarge", "TooLarge", "Missing")
    caseOf("garbage", "Malformed", "Missing")
    caseOf("truncated", "Truncated", "Incomplete")
    caseOf("stall", "TransferFailed", "Incomplete")
    // Under the 1 s inactivity timeout forever; broken off by the minimum rate (1 KiB/s by default) after ~2 s (the
    // first window, with the request and the header, is not checked).
    caseOf("drip", "TransferFailed", "Incomplete")

    it.scopedLive("a corrupt prefix then a truncation: the resumed commit fails, the honest provider is asked again from 0", () =>
      Effect.gen(function*() {
        const honest = yield* observedPeer()
        const receiver = yield* peer()
        const { content, hash } = yield* addRandom(honest.ctx, size)
        const liar = yield* scripted("corruptTruncated", content)
        const honestAddr = yield* addrOf(honest.ctx)
        yield* transfer(receiver).download(hash, () => [liar.addr, honestAddr])
        yield* holds(receiver, hash, content)
        assert.deepStrictEqual((yield* Ref.get(honest.served)).map((e) => e.offset), [Math.floor(size / 2), 0])
        assert.deepStrictEqual(yield* Ref.get(liar.requests), [0])
      }))

    it.scopedLive("a liar that is the only provider: DownloadFailed, and it is not asked again after lying", () =>
      Effect.gen(function*() {
        const honest = yield* peer()
        const receiver = yield* peer({ maxRounds: 3 })
        const { content, hash } = yield* addRandom(honest, 200_000)
        const liar = yield* scripted("corrupt", content)
        const error = yield* Effect.flip(transfer(receiver).download(hash, () => [liar.addr]))
        assert.strictEqual(error._tag, "DownloadFailed")
        assert.include(error.reason, "Corrupt")
        assert.strictEqual((yield* Ref.get(liar.requests)).length, 1)
        assert.strictEqual(yield* blobsOf(receiver).status(hash), "Missing")
      }))
  })

  it.scopedLive("the provider drops a requester that sends no request within the timeout", () =>
    Effect.gen(function*() {
      const a = yield* peer({ readTimeout: "300 millis" })
      const b = yield* Layer.build(Network.layer())
      const stream = yield* Context.get(b, Network.Network).openStream(yield* addrOf(a), BLOB_PROTOCOL)
      const result = yield* Stream.runCollect(Network.receive(stream)).pipe(Effect.either, Effect.timeout("3 seconds"))
      assert.isTrue(Either.isLeft(result) || Chunk.isEmpty(result.right), "no data, and the stream ends")
    }))

  it.scopedLive("a receiver whose store writes slower than the network arrives: paused, not overrun", () =>
    Effect.gen(function*() {
      // Each write waits, so the requester pauses the stream again and again while the provider has credit to send.
      const slowBlobs = Layer.effect(
        Blobs.Blobs,
        Effect.map(Blobs.makeMemory(), (blobs) =>
          Blobs.Blobs.of({
            ...blobs,
            openPartial: (hash, size) =>
              Effect.map(blobs.openPartial(hash, size), (partial) => ({
                ...partial,
                write: (chunk: Uint8Array) => Effect.zipRight(Effect.sleep("15 millis"), partial.write(chunk))
              }))
          }))
      )
      const a = yield* peer()
      const b = yield* Layer.build(stack(slowBlobs))
      const size = 48 * MiB
      const { content, hash } = yield* addRandom(a, size)
      const added = yield* transfer(b).fetch(hash, yield* addrOf(a))
      assert.strictEqual(added.size, size)
      yield* holds(b, hash, content)
    }), { timeout: 60_000 })

  it.scopedLive("a 100 MiB blob from a file moves between disk stores with memory growth far below its size", () =>
    Effect.gen(function*() {
      const size = 100 * MiB
      const dir = yield* tempDir
      const file = join(dir, "source.bin")
      yield* Effect.promise(async () => {
        const handle = await fs.open(file, "w")
        try {
          for (let i = 0; i < size / MiB; i++) await handle.write(randomBytes(MiB))
        } finally {
          await handle.close()
        }
      })
      const provider = yield* Layer.build(stack(diskBlobs(join(dir, "a"))))
      const receiver = yield* Layer.build(stack(diskBlobs(join(dir, "b"))))
      const added = yield* Effect.scoped(blobsOf(provider).addFile(file))
      assert.strictEqual(added.size, size)
      yield* Effect.promise(() => fs.rm(file))

      const baseline = process.memoryUsage().rss
      let peak = baseline
      const sampler = yield* Effect.sync(() => {
        peak = Math.max(peak, process.memoryUsage().rss)
      }).pipe(Effect.zipRight(Effect.sleep("10 millis")), Effect.forever, Effect.fork)
      const addr = yield* addrOf(provider)
      const got = yield* transfer(receiver).download(added.hash, () => [addr])
      yield* Fiber.interrupt(sampler)
      assert.strictEqual(got.size, size)
      const info = Option.getOrThrow(yield* blobsOf(receiver).info(added.hash))
      assert.strictEqual(info.status, "Complete")
      assert.strictEqual(info.size, size)
      const growthMiB = (peak - baseline) / MiB
      assert.isBelow(growthMiB, 60, `RSS grew by ${growthMiB.toFixed(1)} MiB`)
    }), { timeout: 120_000 })
})
