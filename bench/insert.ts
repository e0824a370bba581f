/**
 * insert: N entries with random keys and 100-byte values written through the replica actor into a file store, with up
 * to 64 writes in flight. Ceiling: the same cryptography without any store (two node:crypto signatures and one BLAKE3
 * per entry), measured in the same run.
 *
 * On a shared machine both wall figures move with the load; the CPU figures do not as much: `mainCpuUsPerEntry` is
 * the main thread's CPU per entry (the actor, SQLite, Effect; signing runs in the Crypto workers), `cpuUsPerEntry`
 * every thread's, `ceilingCpuUsPerEntry` the ceiling's (one thread). `cpuRatio` = ceiling CPU / main-thread CPU per
 * entry: the wall ratio the insert path reaches on an idle machine when the main thread is its bound.
 */
import { Effect, Layer } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { blake3 } from "../src/internal/blake3.js"
import { signEntry } from "../src/internal/signing.js"
import { Entry, EntryRecord, RecordIdentifier, U64 } from "../src/schema/Entry.js"
import { Author, Hash, NamespaceSecret } from "../src/schema/Keys.js"
import * as Crypto from "../src/services/Crypto.js"
import * as Replica from "../src/services/Replica.js"
import * as Store from "../src/services/Store.js"
import { mainThreadCpuMs, numberFlag, progress, randomBytes, tempDir } from "./util.js"

const signCeiling = (n: number) => {
  const ns = NamespaceSecret.generate()
  const author = Author.generate()
  const values = Array.from({ length: 256 }, () => randomBytes(100))
  const start = performance.now()
  const cpu0 = mainThreadCpuMs()
  for (let i = 0; i < n; i++) {
    const value = values[i % values.length]!
    signEntry(
      ns,
      author,
      new Entry({
        id: new RecordIdentifier({ namespace: ns.id, author: author.id, key: randomBytes(16) }),
        record: new EntryRecord({ len: U64.make(100n), hash: Hash.make(blake3(value)), timestamp: U64.make(BigInt(i)) })
      })
    )
  }
  return { perSec: n / ((performance.now() - start) / 1000), cpuUsPerEntry: (1000 * (mainThreadCpuMs() - cpu0)) / n }
}

export const insertBench = (flags: ReadonlyMap<string, string>) =>
  Effect.gen(function*() {
    const entries = numberFlag(flags, "entries", 50_000)
    const inFlight = numberFlag(flags, "in-flight", 64)
    const dir = tempDir("rangedocs-bench-insert-")
    const file = path.join(dir, "docs.sqlite")
    progress(`insert: ${entries} entries, ${inFlight} in flight, store ${file}`)
    const keys = Array.from({ length: entries }, () => randomBytes(16))
    const values = Array.from({ length: 1024 }, () => randomBytes(100))

    const { cpuMs, mainCpuMs, ms } = yield* Effect.gen(function*() {
      const replica = yield* Replica.Replica
      const author = yield* replica.createAuthor
      const ns = yield* replica.createReplica()
      const start = performance.now()
      const main0 = mainThreadCpuMs()
      const all0 = process.cpuUsage()
      yield* Effect.forEach(
        keys,
        (key, i) => {
          const value = values[i % values.length]!
          return replica.insertLocal(ns, author.id, key, Hash.make(blake3(value)), BigInt(value.length))
        },
        { concurrency: inFlight, discard: true }
      )
      yield* replica.flush
      const all = process.cpuUsage(all0)
      return {
        ms: performance.now() - start,
        mainCpuMs: mainThreadCpuMs() - main0,
        cpuMs: (all.user + all.system) / 1000
      }
    }).pipe(Effect.provide(Replica.layer.pipe(Layer.provide([Store.layerFile(file), Crypto.layer()]))), Effect.scoped)

    fs.rmSync(dir, { recursive: true, force: true })
    const entriesPerSec = entries / (ms / 1000)
    progress(`insert: ${Math.round(entriesPerSec)} entries/s; measuring the signing ceiling`)
    const ceiling = signCeiling(Math.min(entries, 20_000))
    const signCeilingPerSec = ceiling.perSec
    const mainCpuUsPerEntry = (1000 * mainCpuMs) / entries
    return {
      bench: "insert",
      entries,
      ms: Math.round(ms),
      entriesPerSec: Math.round(entriesPerSec),
      signCeilingPerSec: Math.round(signCeilingPerSec),
      ratio: Number((entriesPerSec / signCeilingPerSec).toFixed(3)),
      mainCpuUsPerEntry: Math.round(mainCpuUsPerEntry),
      cpuUsPerEntry: Math.round((1000 * cpuMs) / entries),
      ceilingCpuUsPerEntry: Math.round(ceiling.cpuUsPerEntry),
      cpuRatio: Number((ceiling.cpuUsPerEntry / mainCpuUsPerEntry).toFixed(3)),
      load: os.loadavg()[0]
    }
  })
