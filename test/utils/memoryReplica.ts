/**
 * A plain in-memory replica for reconciliation tests: a sorted array with spec 01 §9 (option B) insert rules and
 * fingerprints by scanning — the simplest model the real store must agree with.
 */
import { Effect } from "effect"
import { EMPTY_HASH } from "../../src/internal/blake3.js"
import { compare, concat } from "../../src/internal/bytes.js"
import type { Hooks, RangeView } from "../../src/internal/reconcile.js"
import { compareRecords, type ContentStatus, entryFingerprint, type SignedEntry } from "../../src/schema/Entry.js"
import { startsWith } from "../../src/internal/bytes.js"

export const idOf = (e: SignedEntry) => concat(e.entry.id.namespace, e.entry.id.author, e.entry.id.key)

export class MemoryReplica {
  entries: Array<{ id: Uint8Array; fp: Uint8Array; entry: SignedEntry }> = []
  received: Array<SignedEntry> = []
  constructor(readonly namespace: Uint8Array) {}

  /** spec 01 §9 with option B; returns whether it was inserted. */
  put(e: SignedEntry): boolean {
    const mine = this.entries.filter(
      (s) => compare(s.entry.author, e.author) === 0 && compare(s.entry.namespace, e.namespace) === 0
    )
    for (const s of mine) {
      if (startsWith(e.key, s.entry.key) && compareRecords(e.record, s.entry.record) <= 0) return false
    }
    this.entries = this.entries.filter(
      (s) =>
        !(compare(s.entry.author, e.author) === 0 && compare(s.entry.namespace, e.namespace) === 0 &&
          startsWith(s.entry.key, e.key) && compareRecords(s.entry.record, e.record) <= 0)
    )
    const id = idOf(e)
    let i = 0
    while (i < this.entries.length && compare(this.entries[i]!.id, id) < 0) i++
    this.entries.splice(i, 0, { id, fp: entryFingerprint(e.entry), entry: e })
    return true
  }

  fingerprint(): Uint8Array {
    const out = Uint8Array.from(EMPTY_HASH)
    for (const { fp } of this.entries) for (let i = 0; i < 32; i++) out[i]! ^= fp[i]!
    return out
  }

  view(): RangeView<never> {
    return {
      size: () => this.entries.length,
      rank: (id) => {
        let lo = 0
        let hi = this.entries.length
        while (lo < hi) {
          const mid = (lo + hi) >> 1
          if (compare(this.entries[mid]!.id, id) < 0) lo = mid + 1
          else hi = mid
        }
        return lo
      },
      idAt: (i) => this.entries[i]!.id,
      xorInto: (a, b, out) => {
        out.fill(0)
        for (let i = a; i < b; i++) for (let j = 0; j < 32; j++) out[j]! ^= this.entries[i]!.fp[j]!
      },
      entries: (a, b) => Effect.succeed(this.entries.slice(a, b).map((e) => e.entry)),
      entriesAtRanks: (ranks) => Effect.succeed(new Map(ranks.map((r) => [r, this.entries[r]!.entry] as const))),
      defaultId: concat(this.namespace, new Uint8Array(32)),
      holds: (e) => {
        const id = idOf(e)
        const fp = entryFingerprint(e.entry)
        return this.entries.some((s) => compare(s.id, id) === 0 && compare(s.fp, fp) === 0)
      }
    }
  }

  hooks(): Hooks<never> {
    return {
      insert: (values) =>
        Effect.succeed(Effect.sync(() => {
          for (const [v] of values) {
            this.received.push(v)
            if (compare(v.namespace, this.namespace) === 0) this.put(v)
          }
        })),
      statusOf: (entries) => Effect.succeed(entries.map((): ContentStatus => "Complete"))
    }
  }
}
