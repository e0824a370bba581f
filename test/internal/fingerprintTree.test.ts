import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import { FingerprintTree, type FingerprintTreeOptions } from "../../src/internal/fingerprintTree.js"

/** Deterministic PRNG (mulberry32) for the large tests and for picking probes. */
const prng = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = seed
  t = Math.imul(t ^ (t >>> 15), t | 1)
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

const randomBytes = (rand: () => number, n: number): Uint8Array => {
  const out = new Uint8Array(n)
  for (let i = 0; i < n; i++) out[i] = (rand() * 256) | 0
  return out
}

const randomKey = (rand: () => number, min: number, max: number): string => {
  const n = min + Math.floor(rand() * (max - min + 1))
  let s = ""
  for (let i = 0; i < n; i++) s += String.fromCharCode((rand() * 256) | 0)
  return s
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex")

/** The model: keys ascending, with their fingerprints. */
class Model {
  keys: Array<string> = []
  fps = new Map<string, Uint8Array>()

  lowerBound(key: string): number {
    let lo = 0
    let hi = this.keys.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (this.keys[mid]! < key) lo = mid + 1
      else hi = mid
    }
    return lo
  }

  insert(key: string, fp: Uint8Array): boolean {
    const isNew = !this.fps.has(key)
    if (isNew) this.keys.splice(this.lowerBound(key), 0, key)
    this.fps.set(key, Uint8Array.from(fp))
    return isNew
  }

  delete(key: string): Uint8Array | undefined {
    const fp = this.fps.get(key)
    if (fp === undefined) return undefined
    this.fps.delete(key)
    this.keys.splice(this.lowerBound(key), 1)
    return fp
  }

  xorScan(a: number, b: number): Uint8Array {
    const out = new Uint8Array(32)
    for (let i = a; i < b; i++) {
      const fp = this.fps.get(this.keys[i]!)!
      for (let j = 0; j < 32; j++) out[j] ^= fp[j]!
    }
    return out
  }
}

/** Compares everything the tree answers with the model; probes are extra keys (present or absent) to rank. */
const fullCheck = (tree: FingerprintTree, model: Model, probes: ReadonlyArray<string>, rand: () => number) => {
  tree.checkInvariants()
  const n = model.keys.length
  assert.strictEqual(tree.size, n)
  assert.deepStrictEqual(tree.keysInRange(0, n), model.keys)
  const out = new Uint8Array(32)
  const prefix = new Uint8Array(32)
  for (let i = 0; i < n; i++) {
    const key = model.keys[i]!
    assert.strictEqual(tree.select(i), key)
    assert.strictEqual(tree.rank(key), i)
    assert.strictEqual(hex(tree.fpAt(i)), hex(model.fps.get(key)!))
    tree.xorPrefix(i, out)
    assert.strictEqual(hex(out), hex(prefix))
    const fp = model.fps.get(key)!
    for (let j = 0; j < 32; j++) prefix[j] ^= fp[j]!
  }
  tree.xorPrefix(n, out)
  assert.strictEqual(hex(out), hex(prefix))
  for (const p of probes) {
    for (const q of [p, p + "\x00", p.slice(0, -1), p + "\xff"]) {
      assert.strictEqual(tree.rank(q), model.lowerBound(q), `rank(${JSON.stringify(q)})`)
      const fp = model.fps.get(q)
      const got = tree.get(q)
      assert.strictEqual(got === undefined ? undefined : hex(got), fp === undefined ? undefined : hex(fp))
      assert.strictEqual(tree.has(q), fp !== undefined)
    }
  }
  for (let t = 0; t < 20; t++) {
    const x = Math.floor(rand() * (n + 1))
    const y = Math.floor(rand() * (n + 1))
    const a = Math.min(x, y)
    const b = Math.max(x, y)
    assert.strictEqual(hex(tree.xorRange(a, b)), hex(model.xorScan(a, b)), `xorRange(${a}, ${b})`)
    assert.deepStrictEqual(tree.keysInRange(a, b), model.keys.slice(a, b))
  }
}

const byte = fc.integer({ min: 0, max: 255 }).map((c) => String.fromCharCode(c))
const keyArb = fc.oneof(
  { arbitrary: fc.string({ unit: fc.constantFrom("\x00", "\x01", "a", "\xfe", "\xff"), maxLength: 4 }), weight: 4 },
  { arbitrary: fc.string({ unit: byte, minLength: 5, maxLength: 40 }), weight: 1 }
)
const fpArb = fc.uint8Array({ minLength: 32, maxLength: 32 })
type Op =
  | { readonly t: "ins"; readonly key: string; readonly fp: Uint8Array }
  | { readonly t: "del"; readonly key: string }
  | { readonly t: "delAt"; readonly at: number }
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { arbitrary: fc.record({ t: fc.constant("ins" as const), key: keyArb, fp: fpArb }), weight: 6 },
  { arbitrary: fc.record({ t: fc.constant("del" as const), key: keyArb }), weight: 2 },
  { arbitrary: fc.record({ t: fc.constant("delAt" as const), at: fc.nat() }), weight: 2 }
)

const configs: ReadonlyArray<readonly [string, FingerprintTreeOptions]> = [
  ["capacities 4/4", { leafCapacity: 4, innerCapacity: 4 }],
  ["capacities 5/7", { leafCapacity: 5, innerCapacity: 7 }],
  ["default capacities", {}]
]

describe("FingerprintTree", () => {
  for (const [name, options] of configs) {
    it(`random insert/replace/delete sequences match a sorted-array model (${name})`, () => {
      fc.assert(
        fc.property(fc.array(opArb, { maxLength: 600 }), fc.integer(), (ops, seed) => {
          const rand = prng(seed)
          const tree = new FingerprintTree(options)
          const model = new Model()
          const probes: Array<string> = ["", "\x00", "\xff", "a"]
          ops.forEach((op, step) => {
            if (op.t === "ins") {
              probes.push(op.key)
              assert.strictEqual(tree.insert(op.key, op.fp), model.insert(op.key, op.fp))
              assert.strictEqual(hex(tree.get(op.key)!), hex(op.fp))
            } else {
              const key = op.t === "del" ? op.key : model.keys[op.at % Math.max(1, model.keys.length)] ?? "x"
              probes.push(key)
              const want = model.delete(key)
              const got = tree.delete(key)
              assert.strictEqual(got === undefined ? undefined : hex(got), want === undefined ? undefined : hex(want))
              assert.isFalse(tree.has(key))
            }
            assert.strictEqual(tree.size, model.keys.length)
            if (step % 50 === 49) fullCheck(tree, model, probes.slice(-30), rand)
          })
          fullCheck(tree, model, probes, rand)
        }),
        { numRuns: 60 }
      )
    })
  }

  it("100k random inserts then deleting half in random order keeps the invariants and a small depth", () => {
    const rand = prng(42)
    const tree = new FingerprintTree()
    const model = new Map<string, Uint8Array>()
    while (model.size < 100_000) {
      const key = randomKey(rand, 8, 40)
      const fp = randomBytes(rand, 32)
      assert.strictEqual(tree.insert(key, fp), !model.has(key))
      model.set(key, fp)
    }
    tree.checkInvariants()
    // Leaves hold ≥ 32 keys and inner nodes ≥ 16 children, so 100k keys fit in 4 levels.
    assert.isAtMost(tree.height, 4)
    const keys = [...model.keys()]
    for (let i = keys.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1))
      ;[keys[i], keys[j]] = [keys[j]!, keys[i]!]
    }
    for (let i = 0; i < 50_000; i++) {
      const key = keys[i]!
      assert.strictEqual(hex(tree.delete(key)!), hex(model.get(key)!))
      model.delete(key)
      if (i % 10_000 === 0) tree.checkInvariants()
    }
    tree.checkInvariants()
    assert.isAtMost(tree.height, 4)
    assert.strictEqual(tree.size, 50_000)
    const sorted = [...model.keys()].sort()
    assert.deepStrictEqual(tree.keysInRange(0, sorted.length), sorted)
    const prefixes: Array<string> = [hex(new Uint8Array(32))]
    const acc = new Uint8Array(32)
    for (const k of sorted) {
      const fp = model.get(k)!
      for (let j = 0; j < 32; j++) acc[j] ^= fp[j]!
      prefixes.push(hex(acc))
    }
    const out = new Uint8Array(32)
    for (let t = 0; t < 2000; t++) {
      const i = Math.floor(rand() * (sorted.length + 1))
      tree.xorPrefix(i, out)
      assert.strictEqual(hex(out), prefixes[i])
      if (i < sorted.length) {
        assert.strictEqual(tree.select(i), sorted[i])
        assert.strictEqual(tree.rank(sorted[i]!), i)
      }
    }
    for (let t = 0; t < 200; t++) {
      const x = Math.floor(rand() * (sorted.length + 1))
      const y = Math.floor(rand() * (sorted.length + 1))
      const a = Math.min(x, y)
      const b = Math.max(x, y)
      const want = Buffer.from(prefixes[a]!, "hex")
      const pb = Buffer.from(prefixes[b]!, "hex")
      for (let j = 0; j < 32; j++) want[j]! ^= pb[j]!
      assert.strictEqual(hex(tree.xorRange(a, b)), hex(want))
    }
    // Deleting the rest empties the tree back to a single leaf.
    for (let i = 50_000; i < keys.length; i++) assert.isDefined(tree.delete(keys[i]!))
    tree.checkInvariants()
    assert.strictEqual(tree.size, 0)
    assert.strictEqual(tree.height, 1)
    assert.strictEqual(hex(tree.xorRange(0, 0)), hex(new Uint8Array(32)))
  })

  it("stays balanced with minimal capacities (20k keys, deep tree)", () => {
    const rand = prng(7)
    const tree = new FingerprintTree({ leafCapacity: 4, innerCapacity: 4 })
    const model = new Model()
    for (let i = 0; i < 20_000; i++) {
      const key = randomKey(rand, 1, 6)
      const fp = randomBytes(rand, 32)
      assert.strictEqual(tree.insert(key, fp), model.insert(key, fp))
    }
    // Every node but the root has ≥ 2 entries: height ≤ log2(n) + 1.
    assert.isAtMost(tree.height, Math.floor(Math.log2(tree.size)) + 1)
    fullCheck(tree, model, model.keys.slice(0, 200), rand)
    const order = [...model.keys]
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1))
      ;[order[i], order[j]] = [order[j]!, order[i]!]
    }
    for (let i = 0; i < order.length - 100; i++) {
      tree.delete(order[i]!)
      model.delete(order[i]!)
      if (i % 2000 === 0) tree.checkInvariants()
    }
    assert.isAtMost(tree.height, Math.floor(Math.log2(tree.size)) + 1)
    fullCheck(tree, model, order.slice(-150), rand)
  })

  describe("fromSorted", () => {
    const sameTree = (a: FingerprintTree, b: FingerprintTree) => {
      assert.strictEqual(a.size, b.size)
      const ea = [...a.entries()].map(([k, fp]) => [k, hex(fp)])
      const eb = [...b.entries()].map(([k, fp]) => [k, hex(fp)])
      assert.deepStrictEqual(ea, eb)
      const x = new Uint8Array(32)
      const y = new Uint8Array(32)
      for (let i = 0; i <= a.size; i++) {
        a.xorPrefix(i, x)
        b.xorPrefix(i, y)
        assert.strictEqual(hex(x), hex(y))
      }
    }

    for (const [name, options] of configs) {
      it(`equals the incremental build, and stays correct under later updates (${name})`, () => {
        fc.assert(
          fc.property(
            fc.uniqueArray(fc.tuple(keyArb, fpArb), { selector: ([k]) => k, maxLength: 700 }),
            fc.array(opArb, { maxLength: 200 }),
            fc.integer(),
            (entries, ops, seed) => {
              const sorted = [...entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
              const bulk = FingerprintTree.fromSorted(sorted, options)
              bulk.checkInvariants()
              const incr = new FingerprintTree(options)
              const model = new Model()
              for (const [k, fp] of entries) {
                incr.insert(k, fp)
                model.insert(k, fp)
              }
              sameTree(bulk, incr)
              for (const op of ops) {
                if (op.t === "ins") {
                  assert.strictEqual(bulk.insert(op.key, op.fp), model.insert(op.key, op.fp))
                } else {
                  const key = op.t === "del" ? op.key : model.keys[op.at % Math.max(1, model.keys.length)] ?? ""
                  const want = model.delete(key)
                  const got = bulk.delete(key)
                  assert.strictEqual(got === undefined ? undefined : hex(got), want === undefined ? undefined : hex(want))
                }
              }
              fullCheck(bulk, model, model.keys.slice(0, 40), prng(seed))
            }
          ),
          { numRuns: 60 }
        )
      })
    }

    it("handles level boundaries in size", () => {
      const rand = prng(1)
      const pool: Array<[string, Uint8Array]> = []
      const seen = new Set<string>()
      while (pool.length < 70_000) {
        const k = randomKey(rand, 4, 12)
        if (seen.has(k)) continue
        seen.add(k)
        pool.push([k, randomBytes(rand, 32)])
      }
      pool.sort(([a], [b]) => (a < b ? -1 : 1))
      const sizes = [0, 1, 2, 31, 32, 33, 63, 64, 65, 96, 97, 127, 128, 129, 64 * 32, 64 * 32 + 1, 64 * 32 * 32 + 1, 70_000]
      for (const n of sizes) {
        const tree = FingerprintTree.fromSorted(pool.slice(0, n))
        tree.checkInvariants()
        assert.strictEqual(tree.size, n)
        if (n > 0) {
          assert.strictEqual(tree.select(n - 1), pool[n - 1]![0])
          assert.strictEqual(tree.select(0), pool[0]![0])
        }
        for (const [cap, m] of [[4, 4], [5, 7]] as const) {
          if (n > 3000) continue
          const small = FingerprintTree.fromSorted(pool.slice(0, n), { leafCapacity: cap, innerCapacity: m })
          small.checkInvariants()
          assert.deepStrictEqual(small.keysInRange(0, n), pool.slice(0, n).map(([k]) => k))
        }
      }
    })

    it("rejects unsorted or duplicate keys and bad fingerprints", () => {
      const fp = new Uint8Array(32)
      assert.throws(() => FingerprintTree.fromSorted([["b", fp], ["a", fp]]), RangeError)
      assert.throws(() => FingerprintTree.fromSorted([["a", fp], ["a", fp]]), RangeError)
      assert.throws(() => FingerprintTree.fromSorted([["a", new Uint8Array(31)]]), RangeError)
      // A proper prefix sorts first.
      const t = FingerprintTree.fromSorted([["", fp], ["\x00", fp], ["\x00\x00", fp], ["\x01", fp], ["\xff", fp]])
      assert.deepStrictEqual(t.keysInRange(0, 5), ["", "\x00", "\x00\x00", "\x01", "\xff"])
    })
  })

  it("copies fingerprints in and out, and checks its arguments", () => {
    const tree = new FingerprintTree()
    const fp = new Uint8Array(32).fill(7)
    assert.isTrue(tree.insert("k", fp))
    fp[0] = 99
    assert.strictEqual(tree.get("k")![0], 7)
    tree.get("k")![0] = 42
    assert.strictEqual(tree.fpAt(0)[0], 7)
    assert.isFalse(tree.insert("k", fp))
    assert.strictEqual(tree.get("k")![0], 99)
    // An unaligned view is accepted.
    const buf = new Uint8Array(40).fill(3)
    assert.isTrue(tree.insert("j", buf.subarray(1, 33)))
    assert.strictEqual(hex(tree.xorRange(0, 1)), hex(new Uint8Array(32).fill(3)))
    assert.strictEqual(tree.xorRange(0, 2)[0], 3 ^ 99)
    const out = new Uint8Array(32).fill(0xaa)
    tree.xorPrefix(0, out)
    assert.strictEqual(hex(out), hex(new Uint8Array(32)))
    assert.throws(() => tree.insert("x", new Uint8Array(16)), RangeError)
    assert.throws(() => tree.select(2), RangeError)
    assert.throws(() => tree.select(-1), RangeError)
    assert.throws(() => tree.fpAt(0.5), RangeError)
    assert.throws(() => tree.xorRange(1, 0), RangeError)
    assert.throws(() => tree.xorRange(0, 3), RangeError)
    assert.throws(() => tree.xorPrefix(0, new Uint8Array(8)), RangeError)
    assert.throws(() => tree.keysInRange(0, 3), RangeError)
    assert.throws(() => new FingerprintTree({ leafCapacity: 2 }), RangeError)
    assert.isUndefined(tree.delete("absent"))
    assert.strictEqual(tree.size, 2)
    const empty = new FingerprintTree()
    assert.strictEqual(empty.rank("a"), 0)
    assert.isUndefined(empty.get(""))
    assert.deepStrictEqual(empty.keysInRange(0, 0), [])
    empty.checkInvariants()
  })
})
