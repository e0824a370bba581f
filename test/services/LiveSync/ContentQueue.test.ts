/** The engine's content queue (spec 05 §9, finding 4): properties over random event sequences. */
import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import { toHex } from "../../../src/internal/bytes.js"
import { Hash } from "../../../src/schema/Keys.js"
import * as ContentQueue from "../../../src/services/LiveSync/ContentQueue.js"

const HASHES = Array.from({ length: 8 }, (_, i) => Hash.make(new Uint8Array(32).fill(i + 1)))
const DOCS = ["d0", "d1"]
const PEERS = ["p0", "p1", "p2", "p3"]

type Step =
  | { readonly _tag: "want"; readonly ns: number; readonly hash: number; readonly peer: number; readonly has: boolean }
  | { readonly _tag: "provide"; readonly ns: number; readonly hash: number; readonly peer: number; readonly only: boolean }
  | { readonly _tag: "done"; readonly pick: number; readonly ok: boolean }
  | { readonly _tag: "complete"; readonly hash: number }
  | { readonly _tag: "retry"; readonly hash: number }
  | { readonly _tag: "leave"; readonly ns: number }

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ _tag: fc.constant("want" as const), ns: fc.nat(1), hash: fc.nat(7), peer: fc.nat(3), has: fc.boolean() }) },
  { weight: 3, arbitrary: fc.record({ _tag: fc.constant("provide" as const), ns: fc.nat(1), hash: fc.nat(7), peer: fc.nat(3), only: fc.boolean() }) },
  { weight: 4, arbitrary: fc.record({ _tag: fc.constant("done" as const), pick: fc.nat(), ok: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ _tag: fc.constant("complete" as const), hash: fc.nat(7) }) },
  { weight: 1, arbitrary: fc.record({ _tag: fc.constant("retry" as const), hash: fc.nat(7) }) },
  { weight: 1, arbitrary: fc.record({ _tag: fc.constant("leave" as const), ns: fc.nat(1) }) }
)

const configArb = fc.record({
  maxInFlight: fc.integer({ min: 1, max: 3 }),
  maxWanted: fc.integer({ min: 1, max: 4 }),
  maxProviders: fc.integer({ min: 1, max: 2 })
})

describe("LiveSync/ContentQueue", () => {
  it("bounded, and a wanted hash is never forgotten until its content is complete or its document leaves", () => {
    fc.assert(
      fc.property(configArb, fc.array(stepArb, { maxLength: 80 }), (config, steps) => {
        const q = ContentQueue.make<string>(config)
        /** What the store remembers: `ns/hash`. */
        const stored = new Set<string>()
        /** What the documents still need: `ns/hash`. */
        const needed = new Set<string>()
        const running = new Set<string>()
        const apply = (decisions: ReadonlyArray<ContentQueue.Decision>) => {
          for (const d of decisions) {
            switch (d._tag) {
              case "Remember":
                stored.add(`${d.ns}/${toHex(d.hash)}`)
                break
              case "Forget":
                for (const k of [...stored]) if (k.endsWith(toHex(d.hash))) stored.delete(k)
                break
              case "Download":
                assert.isFalse(running.has(toHex(d.hash)), "one download per hash")
                running.add(toHex(d.hash))
                break
              case "Cancel":
                running.delete(toHex(d.hash))
                break
            }
          }
        }
        for (const step of steps) {
          switch (step._tag) {
            case "want": {
              const ns = DOCS[step.ns]!
              needed.add(`${ns}/${toHex(HASHES[step.hash]!)}`)
              apply(ContentQueue.want(q, ns, HASHES[step.hash]!, [PEERS[step.peer]!, PEERS[step.peer]!], step.has))
              break
            }
            case "provide": {
              const ns = DOCS[step.ns]!
              if (!step.only) needed.add(`${ns}/${toHex(HASHES[step.hash]!)}`)
              apply(ContentQueue.provide(q, ns, HASHES[step.hash]!, [PEERS[step.peer]!, PEERS[step.peer]!], step.only))
              break
            }
            case "done": {
              const all = [...running]
              if (all.length === 0) break
              const key = all[step.pick % all.length]!
              running.delete(key)
              const hash = HASHES.find((h) => toHex(h) === key)!
              apply(ContentQueue.downloaded(q, hash, step.ok))
              if (step.ok) for (const k of [...needed]) if (k.endsWith(key)) needed.delete(k)
              break
            }
            case "retry":
              apply(ContentQueue.retry(q, HASHES[step.hash]!).decisions)
              break
            case "complete": {
              const key = toHex(HASHES[step.hash]!)
              if (running.has(key)) break
              apply(ContentQueue.complete(q, HASHES[step.hash]!))
              for (const k of [...needed]) if (k.endsWith(key)) needed.delete(k)
              break
            }
            case "leave": {
              const ns = DOCS[step.ns]!
              apply(ContentQueue.leave(q, ns))
              for (const k of [...needed]) if (k.startsWith(`${ns}/`)) needed.delete(k)
              for (const k of [...stored]) if (k.startsWith(`${ns}/`)) stored.delete(k) // the shell clears the store
              break
            }
          }
          assert.isAtMost(q.inFlight.size, config.maxInFlight)
          assert.isAtMost(q.wanted.size, config.maxWanted)
          assert.strictEqual(q.inFlight.size, running.size)
          for (const [key, set] of q.providers) {
            assert.isAtMost(set.size, config.maxProviders)
            assert.isTrue(q.wanted.has(key) || q.inFlight.has(key), "providers only for hashes held")
          }
          for (const k of needed) assert.isTrue(stored.has(k), `${k} remembered`)
        }
      }),
      { numRuns: 1000 }
    )
  })

  it("a download starts with a provider that has the content; a freed slot goes to the next hash with a provider", () => {
    const q = ContentQueue.make<string>({ maxInFlight: 1, maxWanted: 10, maxProviders: 4 })
    const [h0, h1, h2] = HASHES
    const tags = (ds: ReadonlyArray<ContentQueue.Decision>) => ds.map((d) => d._tag)
    assert.deepStrictEqual(tags(ContentQueue.want(q, "d0", h0!, ["p", "p"], true)), ["Remember", "Download"])
    assert.deepStrictEqual(tags(ContentQueue.want(q, "d0", h1!, ["p", "p"], true)), ["Remember"], "no slot")
    assert.deepStrictEqual(tags(ContentQueue.want(q, "d0", h2!, ["p", "p"], false)), ["Remember"], "no provider has it")
    assert.isTrue(ContentQueue.isQueued(q, "d0"))
    assert.deepStrictEqual(tags(ContentQueue.downloaded(q, h0!, true)), ["Forget", "ContentReady", "Download"], "h1 next")
    assert.deepStrictEqual(tags(ContentQueue.downloaded(q, h1!, false)), ["Drained"], "h1 parked, h2 has no provider")
    assert.deepStrictEqual(tags(ContentQueue.provide(q, "d0", h2!, ["p2", "p2"], true)), ["Download"], "a new provider")
    assert.deepStrictEqual(tags(ContentQueue.retry(q, h1!).decisions), [], "no slot: h1 waits for one")
    assert.deepStrictEqual(tags(ContentQueue.downloaded(q, h2!, true)), ["Forget", "ContentReady", "Download"])
    assert.deepStrictEqual(tags(ContentQueue.downloaded(q, h1!, true)), ["Forget", "ContentReady", "Drained"])
  })
})
