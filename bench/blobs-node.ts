/**
 * One node of the blobs benchmark in a process of its own (forked by bench/blobs.ts with `--processes 2`), as a
 * deployment runs it: the node program's layer (`persistentNode` in RANGEDOCS_BLOBS_DIR/node: libp2p over loopback
 * TCP with noise and yamux, the disk blob store, documents, gossip, live sync), or with RANGEDOCS_BLOBS_MINIMAL=1
 * only Network, a disk blob store (files and a SQLite index in RANGEDOCS_BLOBS_DIR) and BlobTransfer. BlobTransfer's
 * chunk size and reads in flight come from RANGEDOCS_BLOBS_CHUNK and RANGEDOCS_BLOBS_READ_AHEAD, yamux's stream
 * window from RANGEDOCS_BLOBS_STREAM_WINDOW (else the defaults). It also serves the ceiling's protocol: a plain
 * libp2p stream on which it sends as many bytes as the requester asks for (8-byte big-endian count), from one reused
 * random block, nothing read from disk. RANGEDOCS_BLOBS_MEM=1 samples its memory every 20 ms (`memPeak`).
 *
 * It answers the parent's commands over the IPC channel (`{ id, cmd, args }` → `{ id, ok, value }`; ready is id 0).
 * Hashes and node ids travel as hex, since IPC messages are JSON.
 */
import "../src/internal/polyfill.js"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import { Context, Effect, Layer, Option, Schema } from "effect"
import { randomFillSync } from "node:crypto"
import * as fs from "node:fs"
import * as inspector from "node:inspector"
import * as path from "node:path"
import { toHex } from "../src/internal/bytes.js"
import { persistentNode } from "../src/layers/Node.js"
import { HashFromHex } from "../src/schema/Keys.js"
import { NodeAddr, NodeIdFromHex } from "../src/schema/NodeAddr.js"
import * as BlobTransfer from "../src/services/BlobTransfer.js"
import * as Blobs from "../src/services/Blobs.js"
import * as Network from "../src/services/Network.js"
import { writeRandomFile } from "./blobs-util.js"
import { serveRunner } from "./ipc.js"

export const RAW_PROTOCOL = "/rangedocs-bench/raw/1"

/** A node address as IPC carries it. */
export interface AddrJson {
  readonly nodeId: string
  readonly addrs: ReadonlyArray<string>
}

const decodeHash = Schema.decodeUnknownSync(HashFromHex)
const decodeNodeId = Schema.decodeUnknownSync(NodeIdFromHex)
const toAddr = (json: unknown): NodeAddr => {
  const a = json as AddrJson
  return new NodeAddr({ nodeId: decodeNodeId(a.nodeId), addrs: a.addrs })
}

const main = Effect.gen(function*() {
  const dir = process.env["RANGEDOCS_BLOBS_DIR"] ?? ""
  const chunkSize = Number(process.env["RANGEDOCS_BLOBS_CHUNK"] ?? BlobTransfer.DEFAULT_CHUNK_SIZE)
  const readAhead = Number(process.env["RANGEDOCS_BLOBS_READ_AHEAD"] ?? BlobTransfer.DEFAULT_READ_AHEAD)
  const window = process.env["RANGEDOCS_BLOBS_STREAM_WINDOW"]
  if (dir === "") return yield* Effect.dieMessage("RANGEDOCS_BLOBS_DIR is not set")
  const streamWindow = window === undefined ? {} : { streamWindow: Number(window) }
  const listen = ["/ip4/127.0.0.1/tcp/0"]
  // The node as deployed (`rangedocs start`'s layer: documents, gossip, live sync, blobs and transfers in
  // `dir`), or with RANGEDOCS_BLOBS_MINIMAL only what a transfer uses: Network, the disk blob store, BlobTransfer.
  const context: Context.Context<Network.Network | Blobs.Blobs | BlobTransfer.BlobTransfer> =
    process.env["RANGEDOCS_BLOBS_MINIMAL"] === "1"
      ? yield* Layer.build(
        BlobTransfer.layer({ chunkSize, readAhead }).pipe(
          Layer.provideMerge(
            Blobs.layer(path.join(dir, "blobs")).pipe(
              Layer.provide(SqliteClient.layer({ filename: path.join(dir, "blobs.sqlite") }))
            )
          ),
          Layer.provideMerge(Network.layer({ listen, ...streamWindow }))
        )
      )
      : yield* Layer.build(
        persistentNode(path.join(dir, "node"), { listen, network: streamWindow, transfer: { chunkSize, readAhead } })
      )
  const network = Context.get(context, Network.Network)
  const blobs = Context.get(context, Blobs.Blobs)
  const transfer = Context.get(context, BlobTransfer.BlobTransfer)
  const scope = yield* Effect.scope

  // The ceiling's sender: the count asked for, from one block, through the same send as the provider's.
  const block = new Uint8Array(chunkSize)
  randomFillSync(block)
  yield* network.handle(RAW_PROTOCOL, (stream) =>
    Effect.scoped(Effect.gen(function*() {
      const pull = yield* Network.reader(stream)
      // The 8-byte count, however the bytes were split.
      const head = new Uint8Array(8)
      let got = 0
      while (got < 8) {
        const next = yield* Effect.option(pull)
        if (Option.isNone(next)) return
        for (const b of next.value) {
          const n = Math.min(8 - got, b.length)
          head.set(b.subarray(0, n), got)
          got += n
        }
      }
      const n = Number(new DataView(head.buffer).getBigUint64(0))
      for (let sent = 0; sent < n; sent += block.length) {
        yield* Network.send(stream, sent + block.length <= n ? block : block.subarray(0, n - sent))
      }
    })).pipe(Effect.ignore))

  let session: inspector.Session | undefined
  /** The largest memory figures (MB) seen since the last `memPeak`, sampled every 20 ms: where a peak comes from. */
  const mb = (n: number) => Math.round(n / 1048576)
  const emptyPeak = () => ({ rss: 0, heapTotal: 0, heapUsed: 0, external: 0, arrayBuffers: 0 })
  let memPeak = emptyPeak()
  yield* Effect.sync(() => {
    const m = process.memoryUsage()
    memPeak = {
      rss: Math.max(memPeak.rss, mb(m.rss)),
      heapTotal: Math.max(memPeak.heapTotal, mb(m.heapTotal)),
      heapUsed: Math.max(memPeak.heapUsed, mb(m.heapUsed)),
      external: Math.max(memPeak.external, mb(m.external)),
      arrayBuffers: Math.max(memPeak.arrayBuffers, mb(m.arrayBuffers))
    }
  }).pipe(
    Effect.zipRight(Effect.sleep("20 millis")),
    Effect.forever,
    // Only with `--mem`: process.memoryUsage() walks the heap's spaces, ~5 % of a copy's main-thread time at 20 ms.
    Effect.when(() => process.env["RANGEDOCS_BLOBS_MEM"] === "1"),
    Effect.forkScoped
  )

  const handle = (cmd: string, args: Record<string, unknown>): Effect.Effect<unknown, unknown> => {
    switch (cmd) {
      case "addr":
        return Effect.map(network.addr, (a): AddrJson => ({ nodeId: toHex(a.nodeId), addrs: a.addrs }))
      case "dial":
        return network.dial(toAddr(args["addr"]))
      case "addRandom":
        return Effect.gen(function*() {
          const file = path.join(dir, String(args["name"]))
          yield* writeRandomFile(file, Number(args["size"]))
          const added = yield* Effect.scoped(blobs.addFile(file))
          yield* Effect.promise(() => fs.promises.rm(file))
          return { hash: toHex(added.hash), size: added.size }
        })
      case "raw":
        // The ceiling's receiver: the same reader as the blob path's (no copy), bytes counted and dropped.
        return Effect.scoped(Effect.gen(function*() {
          const size = Number(args["size"])
          const t0 = performance.now()
          const stream = yield* network.openStream(toAddr(args["addr"]), RAW_PROTOCOL)
          const request = new Uint8Array(8)
          new DataView(request.buffer).setBigUint64(0, BigInt(size))
          yield* Network.send(stream, request)
          const pull = yield* Network.reader(stream)
          let bytes = 0
          for (;;) {
            const next = yield* Effect.either(pull)
            if (next._tag === "Left") {
              if (Option.isSome(next.left)) return yield* Effect.fail(next.left.value)
              break
            }
            for (const b of next.right) bytes += b.length
          }
          const ms = performance.now() - t0
          if (bytes !== size) return yield* Effect.dieMessage(`raw stream delivered ${bytes} of ${size} bytes`)
          return { ms }
        }))
      case "download":
        return Effect.gen(function*() {
          const hash = decodeHash(args["hash"])
          const addr = toAddr(args["addr"])
          yield* blobs.delete(hash)
          const t0 = performance.now()
          const got = yield* transfer.download(hash, () => [addr])
          const ms = performance.now() - t0
          const status = yield* blobs.status(hash)
          if (got.size !== Number(args["size"]) || status !== "Complete") {
            return yield* Effect.dieMessage(`download ended ${status}`)
          }
          return { ms }
        })
      case "mem":
        return Effect.sync(() => {
          const m = process.memoryUsage()
          return { rss: mb(m.rss), heapUsed: mb(m.heapUsed), heapTotal: mb(m.heapTotal), external: mb(m.external), arrayBuffers: mb(m.arrayBuffers) }
        })
      case "memPeak":
        return Effect.sync(() => {
          const peak = memPeak
          memPeak = emptyPeak()
          return peak
        })
      case "delete":
        return blobs.delete(decodeHash(args["hash"]))
      case "profileStart":
        return Effect.async<boolean>((resume) => {
          session = new inspector.Session()
          session.connect()
          session.post("Profiler.enable", () =>
            session!.post("Profiler.setSamplingInterval", { interval: 200 }, () =>
              session!.post("Profiler.start", () => resume(Effect.succeed(true)))))
        })
      case "profileStop":
        return Effect.async<boolean>((resume) => {
          if (session === undefined) return resume(Effect.succeed(false))
          session.post("Profiler.stop", (err, result) => {
            if (err === null) fs.writeFileSync(String(args["file"]), JSON.stringify(result.profile))
            session!.disconnect()
            session = undefined
            resume(Effect.succeed(err === null))
          })
        })
      default:
        return Effect.dieMessage(`unknown command ${cmd}`)
    }
  }

  return yield* serveRunner(handle, scope)
}).pipe(Effect.scoped)

NodeRuntime.runMain(main)
