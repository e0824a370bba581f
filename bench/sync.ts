/**
 * sync: two nodes in one process over loopback TCP (libp2p, noise, yamux) with file stores. The first holds `entries`
 * entries; the second is empty, or with `--diff d` holds all but a `d` fraction of them plus `d` of its own. The second
 * syncs with the first. Ceiling: node:crypto verifying two signatures per entry on all cores (the Crypto worker pool),
 * nothing else, measured in the same run.
 */
import { Context, Effect, Layer } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { blake3 } from "../src/internal/blake3.js"
import { PublicKeyCache } from "../src/internal/signing.js"
import * as Capability from "../src/schema/Capability.js"
import { Entry, EntryRecord, RecordIdentifier, type SignedEntry, U64 } from "../src/schema/Entry.js"
import { Author, Hash, NamespaceSecret } from "../src/schema/Keys.js"
import * as Crypto from "../src/services/Crypto.js"
import * as Network from "../src/services/Network.js"
import * as Ranger from "../src/services/Ranger.js"
import * as Replica from "../src/services/Replica.js"
import * as Store from "../src/services/Store.js"
import * as Sync from "../src/services/Sync.js"
import { numberFlag, peakRssMb, progress, randomBytes, tempDir } from "./util.js"

const AUTHORS = 8
const CHUNK = 5000

export const syncBench = (flags: ReadonlyMap<string, string>) =>
  Effect.gen(function*() {
    const entries = numberFlag(flags, "entries", 100_000)
    const diff = numberFlag(flags, "diff", 0)
    const dir = tempDir("rangedocs-bench-sync-")
    const fileA = path.join(dir, "a.sqlite")
    const fileB = path.join(dir, "b.sqlite")
    const ns = NamespaceSecret.generate()
    const authors = Array.from({ length: AUTHORS }, () => Author.generate())
    const crypto = yield* Layer.build(Crypto.layer())
    const signer = Context.get(crypto, Crypto.Crypto)
    const value = randomBytes(100)
    const hash = Hash.make(blake3(value))
    let ts = 1_700_000_000_000_000n
    const signedBatch = (n: number) =>
      signer.signEntries(Array.from({ length: n }, (_, i) => ({
        namespace: ns,
        author: authors[i % AUTHORS]!,
        entry: new Entry({
          id: new RecordIdentifier({
            namespace: ns.id,
            author: authors[i % AUTHORS]!.id,
            key: new TextEncoder().encode(Buffer.from(randomBytes(12)).toString("hex"))
          }),
          record: new EntryRecord({ len: U64.make(100n), hash, timestamp: U64.make(ts++) })
        })
      })))
    const fill = (file: string, count: number) =>
      Effect.gen(function*() {
        const store = yield* Store.Store
        yield* store.importNamespace(new Capability.Write({ secret: ns }))
        for (let done = 0; done < count; done += CHUNK) {
          yield* store.putMany(yield* signedBatch(Math.min(CHUNK, count - done)))
        }
      }).pipe(Effect.provide(Store.layerFile(file)), Effect.scoped)

    // A holds `entries`; B holds all but `diff` of them (a copy of A's file before A's own part) plus `diff` of its own.
    const own = Math.round(entries * diff)
    progress(`sync: ${entries} entries, diff ${diff}, in ${dir}`)
    yield* fill(fileA, entries - own)
    if (diff > 0) {
      fs.copyFileSync(fileA, fileB)
      yield* fill(fileB, own)
    }
    yield* fill(fileA, own)
    progress(`  stores written`)

    const node = (file: string) =>
      Layer.build(
        Sync.layer().pipe(
          Layer.provideMerge(Ranger.layer()),
          Layer.provideMerge(Replica.layer),
          Layer.provideMerge(Layer.merge(Store.layerFile(file), Network.layer())),
          Layer.provide(Layer.succeedContext(crypto))
        )
      )
    const a = yield* node(fileA)
    const b = yield* node(fileB)
    for (const ctx of [a, b]) {
      const replica = Context.get(ctx, Replica.Replica)
      yield* replica.importNamespace(new Capability.Write({ secret: ns }))
      yield* replica.open(ns.id, { sync: true })
    }
    const addrA = yield* Context.get(a, Network.Network).addr

    const start = performance.now()
    const finished = yield* Context.get(b, Sync.Sync).syncWith(ns.id, addrA)
    const ms = performance.now() - start
    const received = finished.outcome.numRecv
    const entriesPerSec = received / (ms / 1000)
    progress(`  synced: ${received} entries received in ${Math.round(ms)} ms; measuring the verification ceiling`)

    // The ceiling: strict verification of two signatures per entry on the worker pool, nothing else.
    const sample: Array<SignedEntry> = []
    for (let i = 0; i < 4; i++) sample.push(...(yield* signedBatch(CHUNK)))
    const keys = new PublicKeyCache()
    const t0 = performance.now()
    yield* signer.verifyEntries(keys, sample)
    const verifyCeilingPerSec = sample.length / ((performance.now() - t0) / 1000)
    fs.rmSync(dir, { recursive: true, force: true })
    return {
      bench: "sync",
      entries,
      diff,
      ms: Math.round(ms),
      entriesPerSec: Math.round(entriesPerSec),
      bytes: finished.traffic.bytesSent + finished.traffic.bytesReceived,
      messages: finished.traffic.messagesSent + finished.traffic.messagesReceived,
      verifyCeilingPerSec: Math.round(verifyCeilingPerSec),
      ratio: Number((entriesPerSec / verifyCeilingPerSec).toFixed(3)),
      peakRssMb: peakRssMb()
    }
  }).pipe(Effect.scoped)
