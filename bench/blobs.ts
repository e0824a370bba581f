/**
 * blobs: two nodes in one process over loopback TCP (libp2p, noise, yamux), each with a disk blob store (files and a
 * SQLite index in a temp dir). The first adds a `--size` byte file of random data; the second downloads it (written
 * to a partial file, hashed, promoted). Ceiling: a plain libp2p stream copy of the same size between the same nodes
 * (Network.send / Network.receive, bytes discarded).
 *
 * Fairness: both copies first run once on a smaller blob (warm-up: JIT, socket and allocator state), then `--rounds`
 * rounds each time one raw copy and one download, in alternating order; the download's partial and complete data are
 * deleted before each round. Reported: medians of the rounds; `ratio` is the median of the per-round ratios, so
 * each ratio compares two copies that ran back to back under the same machine load (on the shared 2-core machine one
 * round's ratio ranges 0.45–1.0 for the same code, the raw copy alone 135–290 MiB/s). More rounds do not help the
 * memory figure: peak RSS creeps up ~5 MB a round (allocator fragmentation). Each round's progress line gives both
 * copies' CPU time, of the process (all threads: the blob path's disk reads and writes run on libuv's pool) and of
 * its main thread, which carries both nodes' network work and is the bottleneck: the blob path's main thread
 * measured 1.2–1.6× the raw copy's (450–710 vs 300–580 ms per 100 MiB). Most of the difference is kernel time in
 * socket writes: the download's sender is paced by its disk reads, so its receiver keeps up and every write leaves at
 * once as segments of its own, while the raw copy's sender floods, its receiver falls behind (TCP zero-window events)
 * and the kernel sends in batches. Counted (perf tracepoints, six rounds of each copy alone): 46k vs 22.5k segments;
 * a 64 KiB socket write took ~60 vs ~16 µs. Letting the provider flood too (more reads ahead, or no disk reads at all
 * in an experiment) grew peak RSS by 30–80 MB and made it slower: on this VM a page touched for the first time costs
 * ~15 µs. Then come hashing (~29 ms per 100 MiB), the copy into the write buffers (~15 ms) and the disk reads'
 * dispatch (~25 ms); as upper bounds, leaving out the disk writes gave ~0.69 and leaving out the hashing no
 * measurable gain. Run with `npm run bench`, the runner has the node program's V8 flags (package.json).
 * Flags: `--size` (bytes, default 100 MiB), `--chunk` (provider chunk size), `--read-ahead` (provider reads in
 * flight), `--rounds` (default {@link DEFAULT_ROUNDS}), `--mem` (log memory every 500 ms), `--profile FILE` (CPU
 * profiles of the last round's copies: FILE.raw.cpuprofile and FILE.blob.cpuprofile), `--processes 2` (provider and
 * requester in separate processes, bench/blobs-processes.ts; default 1, this file).
 */
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import { Context, Effect, Layer, Stream } from "effect"
import { randomFillSync } from "node:crypto"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import type { Hash } from "../src/schema/Keys.js"
import type { NodeAddr } from "../src/schema/NodeAddr.js"
import * as BlobTransfer from "../src/services/BlobTransfer.js"
import * as Blobs from "../src/services/Blobs.js"
import * as Network from "../src/services/Network.js"
import { MiB, mibPerSec, writeRandomFile } from "./blobs-util.js"
import { mainThreadCpuMs, median, memorySampled, numberFlag, profiled, peakRssMb, progress, tempDir } from "./util.js"

const RAW_PROTOCOL = "/rangedocs-bench/raw/1"
const WARM_UP_SIZE = 16 * MiB
const DEFAULT_ROUNDS = 3

const rss = () => {
  const m = process.memoryUsage()
  const mb = (n: number) => Math.round(n / MiB)
  return `rss ${mb(m.rss)} MiB (heap ${mb(m.heapUsed)}, arrayBuffers ${mb(m.arrayBuffers)}), peak ${peakRssMb()} MB`
}

/** `--processes 2`: provider and requester in processes of their own (bench/blobs-processes.ts); default 1. */
export const blobsBench = (flags: ReadonlyMap<string, string>): Effect.Effect<object, unknown> =>
  numberFlag(flags, "processes", 1) === 2
    ? Effect.flatMap(
      Effect.promise(() => import("./blobs-processes.js")),
      (m) => m.blobsProcessesBench(flags)
    )
    : blobsOneProcess(flags)

const blobsOneProcess = (flags: ReadonlyMap<string, string>) =>
  Effect.gen(function*() {
    const size = numberFlag(flags, "size", 100 * MiB)
    const chunkSize = numberFlag(flags, "chunk", BlobTransfer.DEFAULT_CHUNK_SIZE)
    const readAhead = numberFlag(flags, "read-ahead", BlobTransfer.DEFAULT_READ_AHEAD)
    const rounds = Math.max(1, numberFlag(flags, "rounds", DEFAULT_ROUNDS))
    const dir = yield* Effect.acquireRelease(
      Effect.sync(() => tempDir("rangedocs-bench-blobs-")),
      (dir) => Effect.promise(() => fs.rm(dir, { recursive: true, force: true }))
    )
    progress(`blobs: ${size} bytes, chunk ${chunkSize}, read-ahead ${readAhead}, ${rounds} rounds after a warm-up, in ${dir}`)
    progress(`  start (${rss()})`)

    const node = (name: string) =>
      Layer.build(
        BlobTransfer.layer({ chunkSize, readAhead }).pipe(
          Layer.provideMerge(
            Blobs.layer(path.join(dir, name)).pipe(
              Layer.provide(SqliteClient.layer({ filename: path.join(dir, `${name}.sqlite`) }))
            )
          ),
          Layer.provideMerge(Network.layer())
        )
      )
    const a = yield* node("a")
    const b = yield* node("b")
    progress(`  nodes up (${rss()})`)
    const netA = Context.get(a, Network.Network)
    const netB = Context.get(b, Network.Network)
    const blobsA = Context.get(a, Blobs.Blobs)
    const blobsB = Context.get(b, Blobs.Blobs)
    const transfer = Context.get(b, BlobTransfer.BlobTransfer)

    const addRandom = (name: string, n: number) =>
      Effect.gen(function*() {
        const file = path.join(dir, name)
        yield* writeRandomFile(file, n)
        const added = yield* Effect.scoped(blobsA.addFile(file))
        yield* Effect.promise(() => fs.rm(file))
        return added
      })
    const warmUpBlob = yield* addRandom("warm-up.bin", Math.min(size, WARM_UP_SIZE))
    const added = yield* addRandom("source.bin", size)
    progress(`  added ${added.size} bytes (${rss()})`)

    // The ceiling: the same byte count over a plain stream on the same connection, nothing stored.
    const block = new Uint8Array(chunkSize)
    randomFillSync(block)
    // The requester sends one byte: 1 for `size` bytes, 0 for the warm-up size.
    const sizes = [warmUpBlob.size, size] as const
    yield* netA.handle(RAW_PROTOCOL, (stream) =>
      Effect.gen(function*() {
        const request = yield* Stream.runHead(Network.receive(stream))
        const n = request._tag === "Some" && request.value[0] === 1 ? size : warmUpBlob.size
        for (let sent = 0; sent < n; sent += block.length) {
          yield* Network.send(stream, sent + block.length <= n ? block : block.subarray(0, n - sent))
        }
      }))
    const addrA = yield* netA.addr
    yield* netB.dial(addrA)

    /** The result, wall ms, and CPU ms of the process (all threads) and of its main thread. */
    const timed = <A, E>(effect: Effect.Effect<A, E>) =>
      Effect.gen(function*() {
        const t0 = performance.now()
        const cpu0 = process.cpuUsage()
        const main0 = mainThreadCpuMs()
        const a = yield* effect
        const cpu = process.cpuUsage(cpu0)
        const main = mainThreadCpuMs() - main0
        return [a, performance.now() - t0, { all: (cpu.user + cpu.system) / 1000, main }] as const
      })
    const fmtCpu = (c: { readonly all: number; readonly main: number }) =>
      `cpu ${Math.round(c.all)} ms, main thread ${Math.round(c.main)}`

    const raw = (which: 0 | 1, addr: NodeAddr) =>
      Effect.gen(function*() {
        const [bytes, ms, cpu] = yield* timed(Effect.scoped(Effect.gen(function*() {
          const stream = yield* netB.openStream(addr, RAW_PROTOCOL)
          yield* Network.send(stream, Uint8Array.of(which))
          return yield* Stream.runFold(Network.receive(stream), 0, (n, chunk) => n + chunk.length)
        })))
        const expected = sizes[which]
        if (bytes !== expected) return yield* Effect.dieMessage(`raw stream delivered ${bytes} of ${expected} bytes`)
        return [mibPerSec(bytes, ms), cpu] as const
      })

    const download = (hash: Hash, expected: number, addr: NodeAddr) =>
      Effect.gen(function*() {
        yield* blobsB.delete(hash)
        const [got, ms, cpu] = yield* timed(transfer.download(hash, () => [addr]))
        const status = yield* blobsB.status(hash)
        if (got.size !== expected || status !== "Complete") return yield* Effect.dieMessage(`download ended ${status}`)
        return [mibPerSec(expected, ms), ms, cpu] as const
      })

    const [warmRaw] = yield* raw(0, addrA)
    const [warmBlob] = yield* download(warmUpBlob.hash, warmUpBlob.size, addrA)
    progress(`  warm-up (${warmUpBlob.size} bytes): raw ${warmRaw.toFixed(1)} MiB/s, blob ${warmBlob.toFixed(1)} MiB/s (${rss()})`)

    const raws: Array<number> = []
    const blobRates: Array<number> = []
    const blobMs: Array<number> = []
    const ratios: Array<number> = []
    const profileFile = flags.get("profile")
    /** Profiles the last round's copy `name` with `--profile`. */
    const profileLast = <A, E>(r: number, name: string, effect: Effect.Effect<A, E>) =>
      profileFile === undefined || r !== rounds - 1
        ? effect
        : profiled(new Map([["profile", `${profileFile}.${name}.cpuprofile`]]), effect)
    for (let r = 0; r < rounds; r++) {
      const rawFirst = r % 2 === 0
      const rawCopy = profileLast(r, "raw", raw(1, addrA))
      const first = rawFirst ? yield* rawCopy : undefined
      const [rate, ms, blobCpu] = yield* profileLast(r, "blob", download(added.hash, size, addrA))
      const [rawRate2, rawCpu2] = first ?? (yield* rawCopy)
      raws.push(rawRate2)
      blobRates.push(rate)
      blobMs.push(ms)
      ratios.push(rate / rawRate2)
      progress(
        `  round ${r + 1} (${rawFirst ? "raw first" : "blob first"}): raw ${rawRate2.toFixed(1)} MiB/s (${
          fmtCpu(rawCpu2)
        }), blob ${rate.toFixed(1)} MiB/s in ${Math.round(ms)} ms (${fmtCpu(blobCpu)}), ratio ${
          (rate / rawRate2).toFixed(3)
        } (${rss()})`
      )
    }
    return {
      bench: "blobs",
      bytes: size,
      ms: Math.round(median(blobMs)),
      mibPerSec: Number(median(blobRates).toFixed(1)),
      rawStreamMibPerSec: Number(median(raws).toFixed(1)),
      ratio: Number(median(ratios).toFixed(3)),
      peakRssMb: peakRssMb(),
      rounds,
      warmUpBytes: warmUpBlob.size
    }
  }).pipe((effect) => memorySampled(flags, effect), Effect.scoped)
