/**
 * reconcile: two file stores in one process (no network). Each side holds `entries` entries, a `diff` fraction of them
 * its own (uniform random keys, 8 authors); then one session A ⇄ B through the Ranger service.
 *
 * The shared part is written once into A's file and copied for B; it carries placeholder signatures since it is never
 * sent (only its fingerprints are). Each side's own entries are really signed: they travel and are verified.
 */
import { Context, Effect, Exit, Layer, Scope } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { blake3 } from "../src/internal/blake3.js"
import * as Reconcile from "../src/internal/reconcile.js"
import * as Capability from "../src/schema/Capability.js"
import { makeSignedEntry, type SignedEntry } from "../src/schema/Entry.js"
import { Author, Hash, NamespaceSecret } from "../src/schema/Keys.js"
import { encodedSize, type Message } from "../src/schema/Message.js"
import { encodeCompactMessage } from "../src/schema/SyncMessage.js"
// nostr-tools exports its NIP-77 module only through the package's index.
import { nip77 } from "nostr-tools"
import * as Crypto from "../src/services/Crypto.js"
import * as Ranger from "../src/services/Ranger.js"
import * as Replica from "../src/services/Replica.js"
import * as Store from "../src/services/Store.js"
import { median, numberFlag, peakRssMb, profiled, progress, randomBytes, tempDir } from "./util.js"

const AUTHORS = 8
const CHUNK = 5000

const randomKey = () => Buffer.from(randomBytes(12)).toString("hex")

export const reconcileBench = (flags: ReadonlyMap<string, string>) =>
  Effect.gen(function*() {
    const entries = numberFlag(flags, "entries", 100_000)
    const identical = flags.get("identical") === "true"
    // --cold: both stores are opened, indexed and closed once (as by an earlier run of the node), then opened again
    // from disk and timed from there: `ms` includes opening them and whatever index the session builds.
    const cold = flags.get("cold") === "true"
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
    const open = (file: string) =>
      Effect.gen(function*() {
        const stack = Ranger.layer(config).pipe(
          Layer.provideMerge(Replica.layer),
          Layer.provideMerge(Store.layerFile(file)),
          Layer.provide(Layer.succeedContext(crypto))
        )
        const ctx = yield* Layer.build(stack)
        yield* Context.get(ctx, Replica.Replica).open(ns.id, { sync: true })
        return ctx
      })
    const side = (file: string) =>
      Effect.gen(function*() {
        const ctx = yield* open(file)
        const replica = Context.get(ctx, Replica.Replica)
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
    const first = yield* Scope.make()
    let a = yield* Scope.extend(side(fileA), first)
    let b = yield* Scope.extend(side(fileB), first)
    progress(`  own entries written`)

    // Opening the range index of each side: one pass over its ids (reported, not part of the session time).
    const tIndex = performance.now()
    const mem0 = process.memoryUsage()
    yield* Effect.provide(Effect.flatMap(Store.Store, (s) => s.rangeView(ns.id)), a)
    const mem1 = process.memoryUsage()
    yield* Effect.provide(Effect.flatMap(Store.Store, (s) => s.rangeView(ns.id)), b)
    const indexMs = (performance.now() - tIndex) / 2
    // Heap and buffers the first index added (no forced GC: an upper bound, garbage of the build included).
    const indexBytesPerEntry = Math.round(
      (mem1.heapUsed + mem1.arrayBuffers - mem0.heapUsed - mem0.arrayBuffers) / Math.max(1, entries)
    )

    // The peer: negentropy (NIP-77, nostr-tools) over the same two sets, each entry as a 32-byte id (BLAKE3 of its
    // record identifier; timestamps all 0, so its order is the ids'), in the same process before our session.
    const neg = flags.get("negentropy") === "false" ? undefined : yield* Effect.sync(() => negentropyPeer(
      Context.get(a, Store.Store),
      Context.get(b, Store.Store),
      numberFlag(flags, "neg-frame", 4 << 20)
    )).pipe(Effect.flatten)
    if (neg !== undefined) {
      progress(`  negentropy: ${neg.messages} messages, ${neg.bytes} bytes, ${neg.ms} ms, ${neg.differences} differences`)
    }

    let openMs = 0
    const peerA = new Uint8Array(32).fill(1)
    const peerB = new Uint8Array(32).fill(2)
    const sessions = (ctxA: Context.Context<Ranger.Ranger>, ctxB: Context.Context<Ranger.Ranger>) =>
      Effect.all([
        Effect.provide(Effect.flatMap(Ranger.Ranger, (r) => r.session(ns.id, peerB)), ctxA),
        Effect.provide(Effect.flatMap(Ranger.Ranger, (r) => r.session(ns.id, peerA)), ctxB)
      ])
    // `--rounds N` with `--identical --cold`: N − 1 more cold starts before the reported one (a session between
    // identical sets changes nothing, so each starts from the same disk state); `coldMs` lists all N.
    const coldMs: Array<number> = []
    if (cold) {
      yield* Scope.close(first, Exit.void)
      progress(`  stores closed; opening them again`)
      const extra = identical ? Math.max(0, numberFlag(flags, "rounds", 1) - 1) : 0
      for (let round = 0; round < extra; round++) {
        coldMs.push(yield* Effect.scoped(Effect.gen(function*() {
          const t = performance.now()
          const [sA, sB] = yield* sessions(yield* open(fileA), yield* open(fileB))
          yield* exchange(sA, sB, mode, () => {})
          return Math.round(performance.now() - t)
        })))
        progress(`  cold round ${round + 1}: ${coldMs[coldMs.length - 1]} ms`)
      }
      const tOpen = performance.now()
      a = yield* open(fileA)
      b = yield* open(fileB)
      openMs = performance.now() - tOpen
    } else yield* Effect.addFinalizer(() => Scope.close(first, Exit.void))

    const [sessionA, sessionB] = yield* sessions(a, b)

    const start = performance.now()
    const cpu0 = process.cpuUsage()
    let messages = 0
    let bytes = 0
    const verbose = flags.get("verbose") === "true"
    yield* profiled(flags, exchange(sessionA, sessionB, mode, (message, size, turn, processMs) => {
      messages++
      bytes += size
      if (verbose) {
        let fps = 0
        let items = 0
        for (const p of message.parts) if (p._tag === "RangeFingerprint") fps++
        else items++
        progress(
          `  #${messages} to ${turn}: ${fps} fingerprints, ${items} items, ${message.valueCount} values, ${size} bytes; processed in ${
            Math.round(processMs)
          } ms`
        )
      }
    }))
    const ms = performance.now() - start + openMs
    if (cold) coldMs.push(Math.round(ms))
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
      msIncludes: cold
        ? "opening both stores from disk, then the session with whatever index it builds"
        : "the session only (both sides' processing, encoding for the byte count); not the index build",
      cold,
      ...(coldMs.length > 1 ? { coldMs, coldMedianMs: median(coldMs) } : {}),
      // CPU time of the process (all threads, crypto workers included) during the session: steadier than `ms` when
      // other work shares the machine.
      cpuMs: Math.round((cpu.user + cpu.system) / 1000),
      indexMs: Math.round(indexMs),
      indexBytesPerEntry,
      ...(neg === undefined ? {} : {
        negentropyMs: neg.ms,
        negentropyBytes: neg.bytes,
        negentropyMessages: neg.messages,
        msRatio: Math.round((ms / neg.ms) * 100) / 100,
        bytesRatio: Math.round((bytes / neg.bytes) * 100) / 100
      }),
      converged,
      peakRssMb: peakRssMb()
    }
  }).pipe(Effect.scoped)

/**
 * Runs a session from A's initial message to its end, B answering first; `each` sees every message with its encoded
 * size (default mode travels in the compact codec, `COMPACT_SYNC_PROTOCOL`; reference mode in spec 02's), the side it
 * went to and how long that side took to process it.
 */
const exchange = (
  sessionA: Ranger.Session,
  sessionB: Ranger.Session,
  mode: string,
  each: (message: Message, size: number, turn: "a" | "b", processMs: number) => void
) =>
  Effect.gen(function*() {
    let message: Message | undefined = yield* sessionA.initialMessage
    let turn: "a" | "b" = "b"
    while (message !== undefined) {
      const size = mode === "default" ? encodeCompactMessage(message).length : encodedSize(message)
      const t = performance.now()
      const next: Message | undefined = yield* (turn === "b" ? sessionB : sessionA).process(message)
      each(message, size, turn, performance.now() - t)
      message = next
      turn = turn === "a" ? "b" : "a"
    }
  })

/** Negentropy between the two stores' sets (ids only: it finds the differences, the entries would travel after). */
const negentropyPeer = (a: Store.StoreService, b: Store.StoreService, frameSizeLimit: number) =>
  Effect.gen(function*() {
    const load = (store: Store.StoreService) =>
      Effect.gen(function*() {
        const ns = (yield* store.listNamespaces)[0]![0]
        const view = yield* store.rangeView(ns)
        const storage = new nip77.NegentropyStorageVector()
        for (let i = 0; i < view.size(); i++) storage.insert(0, Buffer.from(blake3(view.idAt(i))).toString("hex"))
        storage.seal()
        return storage
      })
    const sa = yield* load(a)
    const sb = yield* load(b)
    const start = performance.now()
    const na = new nip77.Negentropy(sa, frameSizeLimit)
    const nb = new nip77.Negentropy(sb, frameSizeLimit)
    let messages = 0
    let bytes = 0
    let differences = 0
    let message: string | null = na.initiate()
    while (message !== null) {
      messages++
      bytes += message.length / 2
      const reply: string | null = nb.reconcile(message)
      if (reply === null) break
      messages++
      bytes += reply.length / 2
      message = na.reconcile(reply, () => differences++, () => differences++)
    }
    return { messages, bytes, differences, ms: Math.round(performance.now() - start) }
  })
