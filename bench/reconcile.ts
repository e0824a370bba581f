/**
 * reconcile: two file stores in one process (no network). Each side holds `entries` entries, a `diff` fraction of them
 * its own (uniform random keys, 8 authors); then one session A ⇄ B through the Ranger service.
 *
 * The shared part is written once into A's file and copied for B; it carries placeholder signatures since it is never
 * sent (only its fingerprints are). Each side's own entries are really signed: they travel and are verified.
 */
import { Context, Effect, Layer } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { blake3 } from "../src/internal/blake3.js"
import * as Reconcile from "../src/internal/reconcile.js"
import * as Capability from "../src/schema/Capability.js"
import { makeSignedEntry, type SignedEntry } from "../src/schema/Entry.js"
import { Author, Hash, NamespaceSecret } from "../src/schema/Keys.js"
import { encodedSize, type Message } from "../src/schema/Message.js"
import * as Crypto from "../src/services/Crypto.js"
import * as Ranger from "../src/services/Ranger.js"
import * as Replica from "../src/services/Replica.js"
import * as Store from "../src/services/Store.js"
import { numberFlag, peakRssMb, profiled, progress, randomBytes, tempDir } from "./util.js"

const AUTHORS = 8
const CHUNK = 5000

const randomKey = () => Buffer.from(randomBytes(12)).toString("hex")

export const reconcileBench = (flags: ReadonlyMap<string, string>) =>
  Effect.gen(function*() {
    const entries = numberFlag(flags, "entries", 100_000)
    const identical = flags.get("identical") === "true"
    const diff = identical ? 0 : numberFlag(flags, "diff", 0.01)
    const mode = flags.get("mode") ?? "default"
    const base = mode === "reference" ? Reconcile.REFERENCE : Reconcile.DEFAULT
    const leaf = flags.get("leaf")
    const config: Ranger.RangerConfig = {
      ...Ranger.defaultConfig,
      ...base,
      ...(leaf === undefined ? {} : { leafSize: Number(leaf), maxSetSize: Number(flags.get("set") ?? leaf) }),
      ...(flags.get("split") === undefined ? {} : { splitFactor: Number(flags.get("split")) }),
      ...(flags.get("items") === undefined ? {} : { subrangeItems: Number(flags.get("items")) }),
      ...(flags.get("dense") === undefined ? {} : { denseFraction: Number(flags.get("dense")) }),
      ...(flags.get("dense-set") === undefined ? {} : { denseSetSize: Number(flags.get("dense-set")) }),
      ...(flags.get("values") === undefined ? {} : { maxValueBytes: Number(flags.get("values")) }),
      maxMessages: 1_000_000
    }
    const dir = tempDir("rangedocs-bench-reconcile-")
    const fileA = path.join(dir, "a.sqlite")
    const fileB = path.join(dir, "b.sqlite")
    const ns = NamespaceSecret.generate()
    const authors = Array.from({ length: AUTHORS }, () => Author.generate())
    const own = Math.round(entries * diff)
    const shared = entries - own
    progress(`reconcile: ${entries} entries per side, ${own} own each, mode ${mode}, in ${dir}`)

    // 1. The shared part into A, then copied for B.
    const t0 = performance.now()
    yield* Effect.gen(function*() {
      const store = yield* Store.Store
      yield* store.importNamespace(new Capability.Write({ secret: ns }))
      for (const a of authors) yield* store.importAuthor(a)
      const sig = randomBytes(64)
      for (let done = 0; done < shared; done += CHUNK) {
        const batch: Array<SignedEntry> = []
        for (let i = done; i < Math.min(shared, done + CHUNK); i++) {
          const author = authors[i % AUTHORS]!
          batch.push(makeSignedEntry({
            namespace: ns.id,
            author: author.id,
            key: new TextEncoder().encode(randomKey()),
            len: 100n,
            hash: randomBytes(32),
            timestamp: 1_700_000_000_000_000n + BigInt(i),
            authorSignature: sig,
            namespaceSignature: sig
          }))
        }
        yield* store.putMany(batch)
        if ((done / CHUNK) % 20 === 0) progress(`  shared ${done}/${shared}`)
      }
    }).pipe(Effect.provide(Store.layerFile(fileA)), Effect.scoped)
    fs.copyFileSync(fileA, fileB)
    progress(`  shared part written in ${Math.round(performance.now() - t0)} ms`)

    // 2. Both sides, each with its own signed entries, then one session.
    const crypto = yield* Layer.build(Crypto.layer())
    const side = (file: string) =>
      Effect.gen(function*() {
        const stack = Ranger.layer(config).pipe(
          Layer.provideMerge(Replica.layer),
          Layer.provideMerge(Store.layerFile(file)),
          Layer.provide(Layer.succeedContext(crypto))
        )
        const ctx = yield* Layer.build(stack)
        const replica = Context.get(ctx, Replica.Replica)
        yield* replica.open(ns.id, { sync: true })
        const value = randomBytes(100)
        const hash = Hash.make(blake3(value))
        for (let done = 0; done < own; done += CHUNK) {
          yield* Effect.forEach(
            Array.from({ length: Math.min(CHUNK, own - done) }, (_, i) => i),
            (i) =>
              replica.insertLocal(ns.id, authors[(done + i) % AUTHORS]!.id, new TextEncoder().encode(randomKey()), hash, 100n),
            { concurrency: 256, discard: true }
          )
        }
        return ctx
      })
    const a = yield* side(fileA)
    const b = yield* side(fileB)
    progress(`  own entries written`)

    // Opening the range index of each side: one pass over its ids (reported, not part of the session time).
    const tIndex = performance.now()
    yield* Effect.provide(Effect.flatMap(Store.Store, (s) => s.rangeView(ns.id)), a)
    yield* Effect.provide(Effect.flatMap(Store.Store, (s) => s.rangeView(ns.id)), b)
    const indexMs = (performance.now() - tIndex) / 2

    const peerA = new Uint8Array(32).fill(1)
    const peerB = new Uint8Array(32).fill(2)
    const sessionA = yield* Effect.provide(Effect.flatMap(Ranger.Ranger, (r) => r.session(ns.id, peerB)), a)
    const sessionB = yield* Effect.provide(Effect.flatMap(Ranger.Ranger, (r) => r.session(ns.id, peerA)), b)

    const start = performance.now()
    const cpu0 = process.cpuUsage()
    let messages = 0
    let bytes = 0
    const verbose = flags.get("verbose") === "true"
    yield* profiled(flags, Effect.gen(function*() {
    let message: Message | undefined = yield* sessionA.initialMessage
    let turn: "a" | "b" = "b"
    while (message !== undefined) {
      messages++
      const size = encodedSize(message)
      bytes += size
      const t = performance.now()
      const next: Message | undefined = yield* (turn === "b" ? sessionB : sessionA).process(message)
      if (verbose) {
        let fps = 0
        let items = 0
        for (const p of message.parts) if (p._tag === "RangeFingerprint") fps++
        else items++
        progress(
          `  #${messages} to ${turn}: ${fps} fingerprints, ${items} items, ${message.valueCount} values, ${size} bytes; processed in ${
            Math.round(performance.now() - t)
          } ms`
        )
      }
      message = next
      turn = turn === "a" ? "b" : "a"
    }
    }))
    const ms = performance.now() - start
    const cpu = process.cpuUsage(cpu0)
    const outA = yield* sessionA.outcome
    const outB = yield* sessionB.outcome
    const fa = yield* Effect.provide(Effect.flatMap(Store.Store, (s) => s.rangeView(ns.id)), a)
    const fb = yield* Effect.provide(Effect.flatMap(Store.Store, (s) => s.rangeView(ns.id)), b)
    const converged = Reconcile.initialMessage(fa).parts[0]!._tag === "RangeFingerprint" &&
      Buffer.compare(
        (Reconcile.initialMessage(fa).parts[0] as { fingerprint: Uint8Array }).fingerprint,
        (Reconcile.initialMessage(fb).parts[0] as { fingerprint: Uint8Array }).fingerprint
      ) === 0
    progress(`  session: ${messages} messages, ${bytes} bytes, ${Math.round(ms)} ms; index ${Math.round(indexMs)} ms; converged ${converged}`)
    fs.rmSync(dir, { recursive: true, force: true })
    return {
      bench: "reconcile",
      entries,
      diff,
      mode,
      messages,
      bytes,
      entriesTransferred: outA.numSent + outB.numSent,
      ms: Math.round(ms),
      msIncludes: "the session only (both sides' processing, encoding for the byte count); not the index build",
      // CPU time of the process (all threads, crypto workers included) during the session: steadier than `ms` when
      // other work shares the machine.
      cpuMs: Math.round((cpu.user + cpu.system) / 1000),
      indexMs: Math.round(indexMs),
      converged,
      peakRssMb: peakRssMb()
    }
  }).pipe(Effect.scoped)

