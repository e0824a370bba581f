/**
 * blobs: two nodes in one process over loopback TCP (libp2p, noise, yamux), each with a disk blob store (files and a
 * SQLite index in a temp dir). The first adds a `--size` byte file of random data; the second downloads it (written
 * to a partial file, hashed, promoted). Ceiling: a plain libp2p stream copy of the same size between the same nodes
 * (Network.send / Network.receive, bytes discarded), measured in the same run just before.
 * Flags: `--size` (bytes, default 100 MiB), `--chunk` (provider chunk size).
 */
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import { Context, Effect, Layer, Stream } from "effect"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as BlobTransfer from "../src/services/BlobTransfer.js"
import * as Blobs from "../src/services/Blobs.js"
import * as Network from "../src/services/Network.js"
import { numberFlag, peakRssMb, progress, tempDir } from "./util.js"

const RAW_PROTOCOL = "/rangedocs-bench/raw/1"
const MiB = 1024 * 1024

const rss = () => `rss ${Math.round(process.memoryUsage().rss / MiB)} MiB, peak ${peakRssMb()} MB`

const mibPerSec = (bytes: number, ms: number) => bytes / MiB / (ms / 1000)

export const blobsBench = (flags: ReadonlyMap<string, string>) =>
  Effect.gen(function*() {
    const size = numberFlag(flags, "size", 100 * MiB)
    const chunkSize = numberFlag(flags, "chunk", BlobTransfer.DEFAULT_CHUNK_SIZE)
    const dir = yield* Effect.acquireRelease(
      Effect.sync(() => tempDir("rangedocs-bench-blobs-")),
      (dir) => Effect.promise(() => fs.rm(dir, { recursive: true, force: true }))
    )
    progress(`blobs: ${size} bytes, chunk ${chunkSize}, in ${dir}`)
    progress(`  start (${rss()})`)
    const file = path.join(dir, "source.bin")
    yield* Effect.promise(async () => {
      const handle = await fs.open(file, "w")
      try {
        for (let done = 0; done < size; done += MiB) await handle.write(randomBytes(Math.min(MiB, size - done)))
      } finally {
        await handle.close()
      }
    })

    const node = (name: string) =>
      Layer.build(
        BlobTransfer.layer({ chunkSize }).pipe(
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
    const added = yield* Effect.scoped(Context.get(a, Blobs.Blobs).addFile(file))
    yield* Effect.promise(() => fs.rm(file))
    progress(`  added ${added.size} bytes (${rss()})`)

    // The ceiling: the same byte count over a plain stream on the same connection, nothing stored.
    const block = new Uint8Array(randomBytes(chunkSize))
    yield* netA.handle(RAW_PROTOCOL, (stream) =>
      Effect.gen(function*() {
        for (let sent = 0; sent < size; sent += block.length) {
          yield* Network.send(stream, sent + block.length <= size ? block : block.subarray(0, size - sent))
        }
      }))
    const addrA = yield* netA.addr
    yield* netB.dial(addrA)
    const raw0 = performance.now()
    const rawBytes = yield* Effect.scoped(
      Effect.flatMap(netB.openStream(addrA, RAW_PROTOCOL), (stream) =>
        Stream.runFold(Network.receive(stream), 0, (n, chunk) => n + chunk.length))
    )
    const rawMs = performance.now() - raw0
    if (rawBytes !== size) return yield* Effect.dieMessage(`raw stream delivered ${rawBytes} of ${size} bytes`)
    const rawStreamMibPerSec = mibPerSec(size, rawMs)
    progress(`  raw stream: ${Math.round(rawMs)} ms, ${rawStreamMibPerSec.toFixed(1)} MiB/s`)

    const t0 = performance.now()
    const got = yield* Context.get(b, BlobTransfer.BlobTransfer).download(added.hash, () => [addrA])
    const ms = performance.now() - t0
    const status = yield* Context.get(b, Blobs.Blobs).status(added.hash)
    if (got.size !== size || status !== "Complete") return yield* Effect.dieMessage(`download ended ${status}`)
    const rate = mibPerSec(size, ms)
    progress(`  blob transfer: ${Math.round(ms)} ms, ${rate.toFixed(1)} MiB/s (${rss()})`)
    return {
      bench: "blobs",
      bytes: size,
      ms: Math.round(ms),
      mibPerSec: Number(rate.toFixed(1)),
      rawStreamMibPerSec: Number(rawStreamMibPerSec.toFixed(1)),
      ratio: Number((rate / rawStreamMibPerSec).toFixed(3)),
      peakRssMb: peakRssMb()
    }
  }).pipe(Effect.scoped)
