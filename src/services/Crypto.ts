/**
 * Ed25519 signing and verification of entries in batches, spread over worker threads (`layer`) or on the calling
 * thread (`layerInline`). Signatures are the replica's main CPU cost (two per entry); the actor and sync intake hand
 * whole batches here so the store work on the main thread overlaps with the cryptography on the other cores.
 *
 * Strictness checks that need no curve arithmetic (canonical S, small-order R, valid public keys through the
 * PublicKeyCache) run on the calling thread; workers run only node:crypto's sign/verify.
 */
import { Context, Effect, Layer } from "effect"
import * as os from "node:os"
import { Worker } from "node:worker_threads"
import { concatAll } from "../internal/bytes.js"
import * as Ed from "../internal/ed25519.js"
import { type PublicKeyCache, signEntry, verifySignedEntry, withSignatures } from "../internal/signing.js"
import { type Entry, type SignedEntry, signingBytes } from "../schema/Entry.js"
import { type Author, type NamespaceSecret, secretSeed } from "../schema/Keys.js"

export interface SignRequest {
  readonly namespace: NamespaceSecret
  readonly author: Author
  readonly entry: Entry
}

export type Verdict = "ok" | "key" | "signature"

export interface CryptoService {
  /** Signs every entry with its namespace and author keys (spec 01 §5), in order. */
  readonly signEntries: (requests: ReadonlyArray<SignRequest>) => Effect.Effect<ReadonlyArray<SignedEntry>>
  /** Strictly verifies both signatures of every entry, in order (spec 01 §5). */
  readonly verifyEntries: (
    keys: PublicKeyCache,
    entries: ReadonlyArray<SignedEntry>
  ) => Effect.Effect<ReadonlyArray<Verdict>>
}

export class Crypto extends Context.Tag("docs/Crypto")<Crypto, CryptoService>() {}

const inline: CryptoService = {
  signEntries: (requests) =>
    Effect.sync(() => requests.map(({ author, entry, namespace }) => signEntry(namespace, author, entry))),
  verifyEntries: (keys, entries) => Effect.sync(() => entries.map((e) => verifySignedEntry(keys, e)))
}

/** Everything on the calling thread. */
export const layerInline: Layer.Layer<Crypto> = Layer.succeed(Crypto, Crypto.of(inline))

// ---------------------------------------------------------------------------------------------------------------
// Worker pool

/**
 * Young generation of each worker, in MB. A worker keeps nothing but its bounded key cache, and every batch is garbage
 * within one call: a small young space suffices, where the default one grows to tens of MB per worker under a sync.
 */
const WORKER_YOUNG_MB = 4

/**
 * The worker's code: packed batches of (32-byte key, message[, signature]) in, packed signatures or verdicts out.
 * Key objects are cached per worker (bounded). Evaluated as a script so it needs no file next to the compiled module.
 */
const WORKER_SOURCE = `
const { parentPort } = require("node:worker_threads")
const crypto = require("node:crypto")
const PKCS8 = Buffer.from("302e020100300506032b657004220420", "hex")
const SPKI = Buffer.from("302a300506032b6570032100", "hex")
const cache = new Map()
const keyOf = (kind, raw) => {
  const id = kind + Buffer.from(raw).toString("latin1")
  let key = cache.get(id)
  if (key === undefined) {
    key = kind === "s"
      ? crypto.createPrivateKey({ key: Buffer.concat([PKCS8, raw]), format: "der", type: "pkcs8" })
      : crypto.createPublicKey({ key: Buffer.concat([SPKI, raw]), format: "der", type: "spki" })
    if (cache.size >= 4096) cache.delete(cache.keys().next().value)
    cache.set(id, key)
  }
  return key
}
parentPort.on("message", ({ id, op, keys, data, offsets }) => {
  const n = offsets.length - 1
  if (op === "sign") {
    const out = new Uint8Array(n * 64)
    for (let i = 0; i < n; i++) {
      const msg = data.subarray(offsets[i], offsets[i + 1])
      out.set(crypto.sign(null, msg, keyOf("s", keys.subarray(i * 32, i * 32 + 32))), i * 64)
    }
    parentPort.postMessage({ id, out }, [out.buffer])
  } else {
    const out = new Uint8Array(n)
    for (let i = 0; i < n; i++) {
      const end = offsets[i + 1]
      const msg = data.subarray(offsets[i], end - 64)
      const sig = data.subarray(end - 64, end)
      out[i] = crypto.verify(null, msg, keyOf("v", keys.subarray(i * 32, i * 32 + 32)), sig) ? 1 : 0
    }
    parentPort.postMessage({ id, out }, [out.buffer])
  }
})
`

/**
 * `n` signature operations, each packed straight into the buffer sent to a worker (no per-item copies that would
 * live until the worker answers).
 */
interface Task {
  readonly op: "sign" | "verify"
  readonly n: number
  /** Item i's 32-byte seed (sign) or public key (verify). */
  readonly key: (i: number) => Uint8Array
  /** Item i's message; for verify the 64-byte signature follows it in the packed data. */
  readonly message: (i: number) => Uint8Array
  /** Item i's signature (verify only). */
  readonly signature?: (i: number) => Uint8Array
}

/** Below this many signature operations a batch runs on the calling thread: a round trip costs more. */
export const INLINE_BELOW = 8

const pack = (task: Task, from: number, to: number) => {
  const extra = task.signature === undefined ? 0 : 64
  const keys = new Uint8Array((to - from) * 32)
  let size = 0
  for (let i = from; i < to; i++) size += task.message(i).length + extra
  const data = new Uint8Array(size)
  const offsets = new Array<number>(to - from + 1)
  let o = 0
  for (let i = from; i < to; i++) {
    keys.set(task.key(i), (i - from) * 32)
    offsets[i - from] = o
    const message = task.message(i)
    data.set(message, o)
    o += message.length
    if (task.signature !== undefined) {
      data.set(task.signature(i), o)
      o += 64
    }
  }
  offsets[to - from] = o
  return { keys, data, offsets }
}

const makePool = (size: number) =>
  Effect.gen(function*() {
    /** Calls in flight: the worker slot each went to, and how to resume its caller. */
    const pending = new Map<number, { readonly slot: number; readonly resume: (out: Effect.Effect<Uint8Array>) => void }>()
    let nextId = 0
    let closing = false
    /** A worker that dies fails its calls as defects; its slot starts a fresh one on the next call. */
    const workers: Array<Worker | undefined> = new Array(size).fill(undefined)
    const spawn = (slot: number) => {
      const w = new Worker(WORKER_SOURCE, { eval: true, resourceLimits: { maxYoungGenerationSizeMb: WORKER_YOUNG_MB } })
      w.on("message", ({ id, out }: { id: number; out: Uint8Array }) => {
        const call = pending.get(id)
        pending.delete(id)
        call?.resume(Effect.succeed(out))
      })
      const fail = (cause: unknown) => {
        if (workers[slot] !== w) return
        workers[slot] = undefined
        for (const [id, call] of pending) {
          if (call.slot !== slot) continue
          pending.delete(id)
          call.resume(Effect.die(cause))
        }
      }
      w.on("error", fail)
      w.on("exit", (code) => fail(new Error(`crypto worker exited with code ${code}`)))
      workers[slot] = w
      return w
    }
    // Started on first use, not with the layer: a worker holds about 10 MB (its own V8 heap), which a node that never
    // signs or verifies (a blob server, a reader) should not pay; the first batch waits the tens of milliseconds a
    // worker takes to start.
    yield* Effect.addFinalizer(() =>
      Effect.promise(() => {
        closing = true
        return Promise.all(workers.map((w) => w?.terminate()))
      })
    )

    const call = (slot: number, op: Task["op"], packed: ReturnType<typeof pack>) =>
      Effect.async<Uint8Array>((resume) => {
        if (closing) return resume(Effect.interrupt)
        const id = nextId++
        pending.set(id, { slot, resume })
        const worker = workers[slot] ?? spawn(slot)
        worker.postMessage({ id, op, ...packed }, [packed.keys.buffer, packed.data.buffer])
        return Effect.sync(() => void pending.delete(id))
      })

    /** Splits a task evenly over up to `width` workers; results come back in order. */
    const run = (task: Task, width: number): Effect.Effect<ReadonlyArray<Uint8Array>> => {
      const parts = Math.max(1, Math.min(width, size, Math.ceil(task.n / INLINE_BELOW)))
      const per = Math.ceil(task.n / parts)
      return Effect.forEach(
        Array.from({ length: parts }, (_, p) => p),
        (p) => call(p, task.op, pack(task, p * per, Math.min(task.n, (p + 1) * per))),
        { concurrency: "unbounded" }
      )
    }
    return run
  })

/**
 * A pool of `size` worker threads (default: one per core, at most 4), terminated when the layer's scope closes.
 * Signing uses all but one of them: the main thread keeps a core for SQLite and Effect while the actor writes the
 * previous batch. Verification, which the main thread waits for, uses them all.
 */
export const layer = (size: number = Math.max(1, Math.min(4, os.availableParallelism()))): Layer.Layer<Crypto> =>
  Layer.scoped(
    Crypto,
    Effect.gen(function*() {
      const run = yield* makePool(size)

      const signEntries: CryptoService["signEntries"] = (requests) => {
        if (requests.length * 2 < INLINE_BELOW) return inline.signEntries(requests)
        const messages = requests.map((r) => signingBytes(r.entry))
        // Items 2i and 2i + 1: entry i by its author, then by its namespace.
        const task: Task = {
          op: "sign",
          n: requests.length * 2,
          key: (i) => secretSeed(i % 2 === 0 ? requests[i >> 1]!.author : requests[i >> 1]!.namespace),
          message: (i) => messages[i >> 1]!
        }
        return Effect.map(run(task, Math.max(1, size - 1)), (outs) => {
          const sigs = concatAll(outs)
          return requests.map((r, i) =>
            withSignatures(r.entry, sigs.slice(i * 128, i * 128 + 64), sigs.slice(i * 128 + 64, i * 128 + 128))
          )
        })
      }

      const verifyEntries: CryptoService["verifyEntries"] = (cache, entries) => {
        if (entries.length * 2 < INLINE_BELOW) return inline.verifyEntries(cache, entries)
        const verdicts = new Array<Verdict>(entries.length)
        /** Entries to verify, with their signing bytes. */
        const checked: Array<SignedEntry> = []
        const messages: Array<Uint8Array> = []
        const index: Array<number> = []
        entries.forEach((e, i) => {
          const { id } = e.entry
          if (cache.get(id.namespace) === undefined || cache.get(id.author) === undefined) {
            verdicts[i] = "key"
            return
          }
          if (!Ed.isStrictSignatureShape(e.signature.namespace) || !Ed.isStrictSignatureShape(e.signature.author)) {
            verdicts[i] = "signature"
            return
          }
          checked.push(e)
          messages.push(signingBytes(e.entry))
          index.push(i)
        })
        if (index.length === 0) return Effect.succeed(verdicts)
        // Items 2j and 2j + 1: checked entry j by its namespace, then by its author.
        const task: Task = {
          op: "verify",
          n: checked.length * 2,
          key: (i) => (i % 2 === 0 ? checked[i >> 1]!.entry.id.namespace : checked[i >> 1]!.entry.id.author),
          message: (i) => messages[i >> 1]!,
          signature: (i) => (i % 2 === 0 ? checked[i >> 1]!.signature.namespace : checked[i >> 1]!.signature.author)
        }
        return Effect.map(run(task, size), (outs) => {
          const ok = concatAll(outs)
          index.forEach((i, j) => {
            verdicts[i] = ok[2 * j] === 1 && ok[2 * j + 1] === 1 ? "ok" : "signature"
          })
          return verdicts
        })
      }

      return Crypto.of({ signEntries, verifyEntries })
    })
  )
