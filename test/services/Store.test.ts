/**
 * The Store service (spec 03) against both implementations: `layerMemory` and `layerFile` on a fresh file per test.
 * Insert rules are spec 01 §9 with option B of §13 (tombstones and the empty key block older inserts).
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
// effect's bundled fast-check (3.x): it.effect.prop runs the property with that copy, not the project's fast-check 4.
import { Chunk, Data, Effect, Exit, FastCheck as fc, Layer, Option, Stream, TestClock, type TestServices } from "effect"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { blake3 } from "../../src/internal/blake3.js"
import { compare, equals, toHex, utf8 } from "../../src/internal/bytes.js"
import * as AuthorHeads from "../../src/schema/AuthorHeads.js"
import * as Capability from "../../src/schema/Capability.js"
import * as DownloadPolicy from "../../src/schema/DownloadPolicy.js"
import { EMPTY, entryFingerprint, type SignedEntry, signedEntryEquals } from "../../src/schema/Entry.js"
import { Author, type AuthorId, Hash, type NamespaceId, NamespaceSecret } from "../../src/schema/Keys.js"
import { Query } from "../../src/schema/Query.js"
import * as Store from "../../src/services/Store.js"
import { entryAt, modelPut, tombstoneAt } from "../utils/entries.js"
import { byAuthorKey, modelQuery } from "../utils/queryModel.js"

// ---------------------------------------------------------------------------------------------------------------
// Fixtures

const dir = mkdtempSync(join(tmpdir(), "rangedocs-store-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
let files = 0
const freshFile = () => join(dir, `store-${++files}.db`)

const STORES: ReadonlyArray<readonly [string, () => Layer.Layer<Store.Store, unknown>]> = [
  ["memory", () => Store.layerMemory],
  ["file", () => Store.layerFile(freshFile())]
]

const seeded = (n: number) => new Uint8Array(32).fill(n)
const byId = <A extends { readonly id: Uint8Array }>(xs: ReadonlyArray<A>): Array<A> =>
  [...xs].sort((x, y) => compare(x.id, y.id))
/** Three authors with fixed seeds, ascending by id: a1 < a2 < a3. */
const [a1, a2, a3] = byId([Author.fromSeed(seeded(1)), Author.fromSeed(seeded(2)), Author.fromSeed(seeded(3))]) as [
  Author,
  Author,
  Author
]
const nsA = NamespaceSecret.fromSeed(seeded(11))
const nsB = NamespaceSecret.fromSeed(seeded(12))

const names = new Map([[toHex(a1.id), "a1"], [toHex(a2.id), "a2"], [toHex(a3.id), "a3"]])
const nameOf = (author: Uint8Array) => names.get(toHex(author)) ?? toHex(author).slice(0, 6)
const keyText = (k: Uint8Array) => (k.every((b) => b >= 0x20 && b < 0x7f) ? Buffer.from(k).toString("latin1") : `[${[...k]}]`)
/** `key@author` (and `~` for a tombstone): compact, readable expectations. */
const label = (e: SignedEntry) => `${keyText(e.key)}@${nameOf(e.author)}${e.isEmpty ? "~" : ""}`

const outcome = (o: Store.PutOutcome) => (o._tag === "Inserted" ? `Inserted(${o.removed})` : "NotInserted")

const bytes = (...xs: Array<number>) => Uint8Array.from(xs)

/** Random puts over two namespaces and three authors: keys of up to `keyLength` bytes from `alphabet`. */
const arbPuts = (alphabet: ReadonlyArray<number>, keyLength: number, count: number) =>
  fc.array(
    fc.record({
      ns: fc.integer({ min: 0, max: 1 }),
      author: fc.integer({ min: 0, max: 2 }),
      key: fc.array(fc.constantFrom(...alphabet), { maxLength: keyLength }),
      ts: fc.integer({ min: 0, max: 6 }),
      content: fc.constantFrom<string | null>(null, "a", "b")
    }),
    { maxLength: count }
  )

class Boom extends Data.TaggedError("Boom")<{}> {}

/** The store with helpers bound to it. */
const harness = Effect.gen(function*() {
  const store = yield* Store.Store
  const put = (e: SignedEntry) => Effect.map(store.unsafePut(e), outcome)
  const list = (ns: NamespaceId, q: Query) =>
    store.getMany(ns, q).pipe(Stream.runCollect, Effect.map((c) => Chunk.toArray(c)))
  const labels = (ns: NamespaceId, q: Query) => Effect.map(list(ns, q), (es) => es.map(label))
  const writeNs = (ns: NamespaceSecret) => store.importNamespace(new Capability.Write({ secret: ns }))
  return { store, put, list, labels, writeNs }
})



const assertSameEntries = (actual: ReadonlyArray<SignedEntry>, expected: ReadonlyArray<SignedEntry>, what = "") => {
  assert.deepStrictEqual(actual.map(label), expected.map(label), what)
  assert.strictEqual(actual.length, expected.length, what)
  actual.forEach((e, i) => assert.isTrue(signedEntryEquals(e, expected[i]!), `${what} #${i} ${label(e)} byte-equal`))
}

const policyText = (p: DownloadPolicy.DownloadPolicy) =>
  `${p._tag}(${p.filters.map(DownloadPolicy.filterToString).join(",")})`

// ---------------------------------------------------------------------------------------------------------------
// The shared suite

for (const [storeName, makeLayer] of STORES) {
  describe(`Store (${storeName})`, () => {
    /** Each test gets a fresh store (and a fresh file). */
    const test = <A, E>(title: string, body: Effect.Effect<A, E, Store.Store | TestServices.TestServices>) =>
      it.effect(title, () => Effect.provide(body, makeLayer()))

    describe("insert semantics (spec 01 §9, option B)", () => {
      test("a newer entry wins at the same key; older, equal and identical ones are refused", Effect.gen(function*() {
        const { put, store, labels } = yield* harness
        assert.strictEqual(yield* put(entryAt(nsA, a1, "foo", 5n, "one")), "Inserted(0)")
        assert.strictEqual(yield* put(entryAt(nsA, a1, "foo", 6n, "two")), "Inserted(1)")
        const refused = yield* store.unsafePut(entryAt(nsA, a1, "foo", 4n, "three"))
        assert.strictEqual(refused._tag, "NotInserted")
        if (refused._tag === "NotInserted") {
          assert.strictEqual(toHex(refused.newer.key), toHex(utf8("foo")))
          assert.strictEqual(refused.newer.timestamp, 6n)
        }
        assert.strictEqual(yield* put(entryAt(nsA, a1, "foo", 6n, "two")), "NotInserted", "identical re-insert")
        const stored = yield* store.getExact(nsA.id, a1.id, utf8("foo"), false)
        assert.isTrue(Option.isSome(stored) && signedEntryEquals(stored.value, entryAt(nsA, a1, "foo", 6n, "two")))
        assert.deepStrictEqual(yield* labels(nsA.id, Query.all()), ["foo@a1"])
      }))

      test("equal timestamps are broken by the hash bytes, at the same key and across prefixes", Effect.gen(function*() {
        const { put, store } = yield* harness
        const [low, high] = ["x", "y"].sort((p, q) => compare(blake3(utf8(p)), blake3(utf8(q))))
        assert.strictEqual(yield* put(entryAt(nsA, a1, "k", 5n, low)), "Inserted(0)")
        assert.strictEqual(yield* put(entryAt(nsA, a1, "k", 5n, high)), "Inserted(1)")
        assert.strictEqual(yield* put(entryAt(nsA, a1, "k", 5n, low)), "NotInserted")
        const kept = yield* store.getExact(nsA.id, a1.id, utf8("k"), false)
        assert.strictEqual(Option.map(kept, (e) => toHex(e.contentHash)).pipe(Option.getOrNull), toHex(blake3(utf8(high))))
        // A prefix with the same timestamp: the higher hash below survives, the lower is removed / refused.
        assert.strictEqual(yield* put(entryAt(nsA, a2, "p/hi", 5n, high)), "Inserted(0)")
        assert.strictEqual(yield* put(entryAt(nsA, a2, "p/lo", 5n, low)), "Inserted(0)")
        assert.strictEqual(yield* put(entryAt(nsA, a2, "p", 5n, low)), "Inserted(1)", "removes p/lo (equal record)")
        assert.isTrue(Option.isSome(yield* store.getExact(nsA.id, a2.id, utf8("p/hi"), false)))
        assert.strictEqual(yield* put(entryAt(nsA, a2, "p/new", 5n, low)), "NotInserted", "equal to its prefix")
        assert.strictEqual(yield* put(entryAt(nsA, a2, "p/new", 5n, high)), "Inserted(0)", "higher hash than its prefix")
      }))

      test("an entry removes the older entries below it and keeps the newer ones", Effect.gen(function*() {
        const { put, labels, store } = yield* harness
        for (const [k, t] of [["foo/bar", 5n], ["food", 7n], ["foo/x", 20n], ["fo", 3n], ["bar", 1n]] as const) {
          assert.strictEqual(yield* put(entryAt(nsA, a1, k, t)), "Inserted(0)")
        }
        assert.strictEqual(yield* put(entryAt(nsA, a2, "foo/bar", 1n)), "Inserted(0)")
        assert.strictEqual(yield* put(entryAt(nsB, a1, "foo/bar", 1n)), "Inserted(0)")
        // "food" starts with "foo": removed too.
        assert.strictEqual(yield* put(entryAt(nsA, a1, "foo", 10n)), "Inserted(2)")
        assert.deepStrictEqual(yield* labels(nsA.id, Query.author(a1.id)), ["bar@a1", "fo@a1", "foo@a1", "foo/x@a1"])
        assert.deepStrictEqual(yield* labels(nsA.id, Query.author(a2.id)), ["foo/bar@a2"], "other author untouched")
        assert.deepStrictEqual(yield* labels(nsB.id, Query.all()), ["foo/bar@a1"], "other namespace untouched")

        // Older than a stored prefix: refused, reporting the blocking prefix.
        const refused = yield* store.unsafePut(entryAt(nsA, a1, "foo/bar", 5n))
        assert.strictEqual(refused._tag, "NotInserted")
        if (refused._tag === "NotInserted") {
          assert.strictEqual(keyText(refused.newer.key), "foo")
          assert.strictEqual(refused.newer.timestamp, 10n)
        }
        assert.strictEqual(yield* put(entryAt(nsA, a1, "foo/bar", 10n)), "NotInserted", "equal to the prefix")
        assert.strictEqual(yield* put(entryAt(nsA, a1, "foo/bar", 11n)), "Inserted(0)")
        assert.strictEqual(yield* put(entryAt(nsA, a1, "foo/x/y", 15n)), "NotInserted", "below the newer foo/x")
        assert.strictEqual(yield* put(entryAt(nsA, a1, "foo/x/y", 25n)), "Inserted(0)")
        // foo@10, foo/bar@11, foo/x@20, foo/x/y@25 — but not food (gone) nor fo.
        assert.strictEqual(yield* put(entryAt(nsA, a1, "foo", 30n)), "Inserted(4)")
        // fo@3 and the equal-record foo@30 (same timestamp and content) start with "fo".
        assert.strictEqual(yield* put(entryAt(nsA, a1, "fo", 30n)), "Inserted(2)")
        assert.deepStrictEqual(yield* labels(nsA.id, Query.author(a1.id)), ["bar@a1", "fo@a1"])
      }))

      test("tombstones block older inserts below and at their key (option B)", Effect.gen(function*() {
        const { put, store, labels } = yield* harness
        for (const [k, t] of [["a", 1n], ["a/b", 2n], ["a/c", 3n], ["ab", 4n]] as const) {
          assert.strictEqual(yield* put(entryAt(nsA, a1, k, t)), "Inserted(0)")
        }
        // The tombstone at "a" removes a, a/b, a/c and "ab" (which starts with "a").
        assert.strictEqual(yield* put(tombstoneAt(nsA, a1, "a", 10n)), "Inserted(4)")
        assert.deepStrictEqual(yield* labels(nsA.id, Query.all()), [])
        assert.deepStrictEqual(yield* labels(nsA.id, Query.all().withIncludeEmpty()), ["a@a1~"])
        assert.strictEqual(yield* put(entryAt(nsA, a1, "a/b", 5n)), "NotInserted", "older, below a tombstone")
        assert.strictEqual(yield* put(entryAt(nsA, a1, "a", 9n)), "NotInserted", "older, at the tombstone's key")
        assert.strictEqual(yield* put(tombstoneAt(nsA, a1, "a", 10n)), "NotInserted", "identical tombstone")
        assert.strictEqual(yield* put(tombstoneAt(nsA, a1, "a/b", 7n)), "NotInserted", "older tombstone below")
        const still = yield* store.getExact(nsA.id, a1.id, utf8("a"), true)
        assert.isTrue(Option.isSome(still) && still.value.isEmpty && still.value.timestamp === 10n)
        assert.strictEqual(yield* put(entryAt(nsA, a2, "a/b", 1n)), "Inserted(0)", "another author is not blocked")
        assert.strictEqual(yield* put(entryAt(nsA, a1, "a/b", 11n)), "Inserted(0)")
        assert.strictEqual(yield* put(tombstoneAt(nsA, a1, "a", 12n)), "Inserted(2)", "newer tombstone, old one + a/b")
        assert.strictEqual(yield* put(entryAt(nsA, a1, "a", 13n)), "Inserted(1)", "a value replaces an older tombstone")
        assert.deepStrictEqual(yield* labels(nsA.id, Query.all().withIncludeEmpty()), ["a@a1", "a/b@a2"])
      }))

      test("the empty key blocks and removes everything of its author only", Effect.gen(function*() {
        const { put, labels } = yield* harness
        const keys = [utf8("x"), utf8("y/z"), bytes(0), bytes(255), bytes(255, 255)]
        for (const [i, k] of keys.entries()) assert.strictEqual(yield* put(entryAt(nsA, a1, k, BigInt(i + 1))), "Inserted(0)")
        assert.strictEqual(yield* put(entryAt(nsA, a2, "x", 1n)), "Inserted(0)")
        assert.strictEqual(yield* put(entryAt(nsB, a1, "x", 1n)), "Inserted(0)")
        assert.strictEqual(yield* put(entryAt(nsA, a1, "", 4n)), "Inserted(4)", "all but [255,255]@5")
        assert.deepStrictEqual(yield* labels(nsA.id, Query.author(a1.id)), ["@a1", "[255,255]@a1"])
        assert.strictEqual(yield* put(entryAt(nsA, a1, "q", 3n)), "NotInserted", "the empty key is a prefix of every key")
        assert.strictEqual(yield* put(entryAt(nsA, a1, "q", 6n)), "Inserted(0)")
        assert.strictEqual(yield* put(tombstoneAt(nsA, a1, "", 10n)), "Inserted(3)")
        assert.deepStrictEqual(yield* labels(nsA.id, Query.author(a1.id).withIncludeEmpty()), ["@a1~"])
        for (const k of [utf8("q"), bytes(0), bytes(255, 255, 255), new Uint8Array()]) {
          assert.strictEqual(yield* put(entryAt(nsA, a1, k, 9n)), "NotInserted", keyText(k))
        }
        assert.strictEqual(yield* put(entryAt(nsA, a1, bytes(0), 11n)), "Inserted(0)")
        // Other authors and namespaces never feel it.
        assert.strictEqual(yield* put(entryAt(nsA, a2, "y", 1n)), "Inserted(0)")
        assert.deepStrictEqual(yield* labels(nsA.id, Query.author(a2.id)), ["x@a2", "y@a2"])
        assert.deepStrictEqual(yield* labels(nsB.id, Query.all()), ["x@a1"])
        // An older empty key is accepted and removes nothing newer.
        assert.strictEqual(yield* put(entryAt(nsA, a3, "z", 5n)), "Inserted(0)")
        assert.strictEqual(yield* put(entryAt(nsA, a3, "", 1n)), "Inserted(0)")
        assert.strictEqual(yield* put(entryAt(nsA, a3, "w", 2n)), "Inserted(0)")
        assert.strictEqual(yield* put(entryAt(nsA, a3, "v", 1n)), "NotInserted")
      }))

      test("binary keys: prefix [1,255] spares [2] and [2,0]; prefixes ending in 0xFF are exact", Effect.gen(function*() {
        const { put, labels } = yield* harness
        const setup: Array<readonly [Uint8Array, bigint]> = [
          [bytes(2), 1n],
          [bytes(2, 0), 2n],
          [bytes(1, 254), 1n],
          [bytes(1, 254, 255), 2n],
          [bytes(0, 255), 1n],
          [bytes(1, 255, 0), 1n],
          [bytes(1, 255, 255), 1n],
          [bytes(255), 0n],
          [bytes(255, 254), 1n],
          [bytes(255, 255, 0), 1n],
          [bytes(255, 255, 255), 1n],
          [bytes(255, 255, 255, 255), 2n]
        ]
        for (const [k, t] of setup) assert.strictEqual(yield* put(entryAt(nsA, a1, k, t)), "Inserted(0)", keyText(k))
        assert.deepStrictEqual(yield* labels(nsA.id, Query.keyPrefix(bytes(1, 255))), [
          "[1,255,0]@a1",
          "[1,255,255]@a1"
        ])
        assert.deepStrictEqual(yield* labels(nsA.id, Query.keyPrefix(bytes(255, 255))), [
          "[255,255,0]@a1",
          "[255,255,255]@a1",
          "[255,255,255,255]@a1"
        ])
        assert.strictEqual(yield* put(entryAt(nsA, a1, bytes(1, 255), 5n)), "Inserted(2)")
        assert.strictEqual(yield* put(tombstoneAt(nsA, a1, bytes(255, 255), 5n)), "Inserted(3)")
        assert.deepStrictEqual(yield* labels(nsA.id, Query.all().withIncludeEmpty()), [
          "[0,255]@a1",
          "[1,254]@a1",
          "[1,254,255]@a1",
          "[1,255]@a1",
          "[2]@a1",
          "[2,0]@a1",
          "[255]@a1",
          "[255,254]@a1",
          "[255,255]@a1~"
        ])
        assert.strictEqual(yield* put(entryAt(nsA, a1, bytes(2, 1), 3n)), "Inserted(0)", "[1,255] is no prefix of [2,1]")
        assert.strictEqual(yield* put(entryAt(nsA, a1, bytes(1, 255, 7), 4n)), "NotInserted")
        assert.strictEqual(yield* put(entryAt(nsA, a1, bytes(255, 255, 1), 4n)), "NotInserted")
        assert.strictEqual(yield* put(entryAt(nsA, a1, bytes(255, 0), 4n)), "Inserted(0)")
        // [255] at 6 removes everything starting with 255: [255]@0, [255,0], [255,254] and the tombstone.
        assert.strictEqual(yield* put(entryAt(nsA, a1, bytes(255), 6n)), "Inserted(4)")
      }))

      test("u64 timestamps above 2^63 keep their order", Effect.gen(function*() {
        const { put, store } = yield* harness
        const max = (1n << 64n) - 1n
        assert.strictEqual(yield* put(entryAt(nsA, a1, "t", (1n << 63n) - 1n)), "Inserted(0)")
        assert.strictEqual(yield* put(entryAt(nsA, a1, "t", 1n << 63n)), "Inserted(1)")
        assert.strictEqual(yield* put(entryAt(nsA, a1, "t", (1n << 63n) - 1n)), "NotInserted")
        assert.strictEqual(yield* put(entryAt(nsA, a1, "t/u", (1n << 63n) + 1n)), "Inserted(0)")
        assert.strictEqual(yield* put(entryAt(nsA, a1, "t", max)), "Inserted(2)")
        const got = yield* store.getExact(nsA.id, a1.id, utf8("t"), false)
        assert.strictEqual(Option.map(got, (e) => e.timestamp).pipe(Option.getOrNull), max)
        const latest = yield* store.getLatestForEachAuthor(nsA.id)
        assert.deepStrictEqual(latest.map((l) => l.timestamp), [max])
      }))

      test("withTransaction commits together and rolls back on failure", Effect.gen(function*() {
        const { store, put } = yield* harness
        const failed = yield* store.withTransaction(
          Effect.zipRight(store.unsafePut(entryAt(nsA, a1, "k", 1n)), Effect.fail(new Boom()))
        ).pipe(Effect.flip)
        assert.strictEqual(failed._tag, "Boom")
        assert.strictEqual(yield* store.count(nsA.id), 0)
        yield* store.withTransaction(Effect.all([store.unsafePut(entryAt(nsA, a1, "k", 1n)), store.unsafePut(entryAt(nsA, a1, "k/l", 2n))]))
        assert.strictEqual(yield* store.count(nsA.id), 2)
        assert.strictEqual(yield* put(entryAt(nsA, a1, "k/l", 2n)), "NotInserted")
      }))
    })

    it.effect.prop(
      "random puts agree with a literal model of spec 01 §9 option B",
      [
        arbPuts([0x00, 0x01, 0xff], 3, 40),
        fc.record({
          flat: fc.boolean(),
          sortBy: fc.constantFrom("AuthorKey" as const, "KeyAuthor" as const),
          desc: fc.boolean(),
          author: fc.option(fc.integer({ min: 0, max: 2 }), { nil: undefined }),
          key: fc.oneof(
            fc.constant(undefined),
            fc.record({
              exact: fc.boolean(),
              bytes: fc.array(fc.constantFrom(0x00, 0x01, 0xff), { maxLength: 2 })
            })
          ),
          offset: fc.integer({ min: 0, max: 3 }),
          limit: fc.option(fc.integer({ min: 0, max: 5 }), { nil: undefined }),
          includeEmpty: fc.boolean()
        })
      ],
      ([puts, qa]) =>
        Effect.gen(function*() {
          const { store } = yield* harness
          const nss = [nsA, nsB]
          const authors = [a1, a2, a3]
          const model: Array<SignedEntry> = []
          for (const [i, p] of puts.entries()) {
            const e = entryAt(nss[p.ns]!, authors[p.author]!, Uint8Array.from(p.key), BigInt(p.ts), p.content)
            const put = modelPut(model, e)
            const expected = put === "NotInserted" ? put : `Inserted(${put})`
            assert.strictEqual(outcome(yield* store.unsafePut(e)), expected, `put #${i} ${label(e)}@${p.ts}`)
          }
          for (const ns of nss) {
            const mine = model.filter((e) => equals(e.namespace, ns.id))
            const all = Chunk.toArray(yield* Stream.runCollect(store.getMany(ns.id, Query.all().withIncludeEmpty())))
            assertSameEntries(all, [...mine].sort(byAuthorKey), "contents")
            assert.strictEqual(yield* store.count(ns.id), mine.length)
            let q = qa.flat ? Query.all().sortBy(qa.sortBy, qa.desc ? "Desc" : "Asc") : Query.singleLatestPerKey()
              .sortDirection(qa.desc ? "Desc" : "Asc")
            if (qa.author !== undefined) q = q.withAuthor(authors[qa.author]!.id)
            if (qa.key !== undefined) {
              const k = Uint8Array.from(qa.key.bytes)
              q = qa.key.exact ? q.withKeyExact(k) : q.withKeyPrefix(k)
            }
            q = q.withOffset(qa.offset).withIncludeEmpty(qa.includeEmpty)
            if (qa.limit !== undefined) q = q.withLimit(qa.limit)
            const got = Chunk.toArray(yield* Stream.runCollect(store.getMany(ns.id, q)))
            assertSameEntries(got, modelQuery(mine, q), "query")
          }
        }).pipe(Effect.provide(makeLayer())),
      { fastCheck: { numRuns: 100 } }
    )

    test("with the range index loaded, a put finds a stored prefix that is not its neighbour (spec 01 §9)", Effect.gen(function*() {
      const { store, labels } = yield* harness
      yield* store.rangeView(nsA.id)
      const put = (k: string, ts: bigint) => Effect.map(store.putMany([entryAt(nsA, a1, k, ts)]), (os) => os.map(outcome))
      assert.deepStrictEqual(yield* put("a", 5n), ["Inserted(0)"])
      assert.deepStrictEqual(yield* put("a0b", 6n), ["Inserted(0)"])
      // The stored neighbour of "a0c" is "a0b"; the blocking prefix "a" lies further back.
      assert.deepStrictEqual(yield* put("a0c", 2n), ["NotInserted"])
      assert.deepStrictEqual(yield* put("a0c", 7n), ["Inserted(0)"])
      // The neighbour is itself the prefix.
      assert.deepStrictEqual(yield* put("a0c/d", 3n), ["NotInserted"])
      // The empty key blocks every older key of its author; other authors are free.
      assert.deepStrictEqual(
        Array.from(yield* store.putMany([entryAt(nsA, a1, "", 4n), entryAt(nsA, a2, "zz", 1n)]), outcome),
        ["Inserted(0)", "Inserted(0)"]
      )
      assert.deepStrictEqual(yield* put("zz", 3n), ["NotInserted"])
      assert.deepStrictEqual(yield* labels(nsA.id, Query.all()), ["@a1", "a@a1", "a0b@a1", "a0c@a1", "zz@a2"])
    }))

    test("the range view reads scattered ranks by primary key, across statement batches, in any namespace", Effect.gen(function*() {
      const { store } = yield* harness
      const mine = Array.from({ length: 700 }, (_, i) => entryAt(nsA, i % 3 === 0 ? a1 : a2, `k/${i}`, BigInt(i + 1)))
      yield* store.putMany([...mine, entryAt(nsB, a1, "k/5", 1n), entryAt(nsB, a1, "zz", 1n)])
      const view = yield* store.rangeView(nsA.id)
      const sorted = [...mine].sort((x, y) => compare(x.entry.id.toBytes(), y.entry.id.toBytes()))
      // Every third rank (over two full batches and a padded one), and a single rank.
      for (const ranks of [sorted.map((_, i) => i).filter((i) => i % 3 !== 1), [350]]) {
        const got = yield* view.entriesAtRanks(ranks)
        assert.deepStrictEqual([...got.keys()].sort((x, y) => x - y), ranks)
        for (const r of ranks) assert.isTrue(signedEntryEquals(got.get(r)!, sorted[r]!), `rank ${r}`)
      }
      // After a write at a key, its rank reads the new record (here a tombstone).
      const removed = sorted[10]!
      const ranks = [9, 10, 11]
      yield* store.putMany([tombstoneAt(nsA, removed.author === a1.id ? a1 : a2, new TextDecoder().decode(removed.key), 10_000n)])
      const after = yield* store.rangeView(nsA.id)
      const got = yield* after.entriesAtRanks(ranks)
      assert.isTrue(signedEntryEquals(got.get(9)!, sorted[9]!))
      assert.isTrue(got.get(10)!.isEmpty)
      assert.isTrue(signedEntryEquals(got.get(11)!, sorted[11]!))
    }))

    it.effect.prop(
      "putMany with the range index loaded (batched new keys) agrees with the model; the index equals a scan",
      [
        arbPuts([0x00, 0x01], 4, 300),
        fc.array(fc.integer({ min: 1, max: 200 }), { minLength: 1, maxLength: 6 }),
        fc.array(fc.integer({ min: 0, max: 2 }), { maxLength: 3 })
      ],
      ([puts, sizes, preloaded]) =>
        Effect.gen(function*() {
          const { store } = yield* harness
          const nss = [nsA, nsB]
          const authors = [a1, a2, a3]
          // Some entries are stored before the index is built (it is read from the database), the rest after.
          const model: Array<SignedEntry> = []
          const entries = puts.map((p) =>
            entryAt(nss[p.ns]!, authors[p.author]!, Uint8Array.from(p.key), BigInt(p.ts), p.content)
          )
          const before = Math.min(entries.length, preloaded.length * 5)
          const expected = entries.map((e) => {
            const put = modelPut(model, e)
            return put === "NotInserted" ? put : `Inserted(${put})`
          })
          const got: Array<string> = []
          for (const o of yield* store.putMany(entries.slice(0, before))) got.push(outcome(o))
          for (const ns of nss) yield* store.rangeView(ns.id)
          for (let at = before, b = 0; at < entries.length; at += sizes[b++ % sizes.length]!) {
            const batch = entries.slice(at, at + sizes[b % sizes.length]!)
            for (const o of yield* store.putMany(batch)) got.push(outcome(o))
          }
          assert.deepStrictEqual(got, expected)
          for (const ns of nss) {
            const mine = model.filter((e) => equals(e.namespace, ns.id)).sort(byAuthorKey)
            const all = Chunk.toArray(yield* Stream.runCollect(store.getMany(ns.id, Query.all().withIncludeEmpty())))
            assertSameEntries(all, mine, "contents")
            const view = yield* store.rangeView(ns.id)
            assert.strictEqual(view.size(), mine.length)
            const scan = new Uint8Array(32)
            mine.forEach((e, i) => {
              assert.strictEqual(toHex(view.idAt(i)), toHex(e.entry.id.toBytes()))
              assert.isTrue(view.holds(e))
              const fp = entryFingerprint(e.entry)
              for (let j = 0; j < 32; j++) scan[j]! ^= fp[j]!
              const out = new Uint8Array(32)
              view.xorInto(0, i + 1, out)
              assert.strictEqual(toHex(out), toHex(scan), `prefix xor of ${i + 1}`)
            })
          }
        }).pipe(Effect.provide(makeLayer())),
      { fastCheck: { numRuns: 60 } }
    )

    describe("queries (spec 03 §4)", () => {
      /** The example of spec 03 §4: hi/world@a2, hi/world@a1, hi/moon@a2, hi@a3, written in that order. */
      const example = Effect.gen(function*() {
        const h = yield* harness
        yield* h.writeNs(nsA)
        for (const [i, [k, a]] of ([["hi/world", a2], ["hi/world", a1], ["hi/moon", a2], ["hi", a3]] as const).entries()) {
          assert.strictEqual(yield* h.put(entryAt(nsA, a, k, BigInt(i + 1))), "Inserted(0)")
        }
        return h
      })

      test("the spec's three listed results", Effect.gen(function*() {
        const { labels } = yield* example
        assert.deepStrictEqual(yield* labels(nsA.id, Query.all()), ["hi/world@a1", "hi/moon@a2", "hi/world@a2", "hi@a3"])
        assert.deepStrictEqual(yield* labels(nsA.id, Query.singleLatestPerKey()), ["hi@a3", "hi/moon@a2", "hi/world@a1"])
        assert.deepStrictEqual(yield* labels(nsA.id, Query.all().sortBy("KeyAuthor", "Desc")), [
          "hi/world@a2",
          "hi/world@a1",
          "hi/moon@a2",
          "hi@a3"
        ])
      }))

      test("derived orders: KeyAuthor Asc, AuthorKey Desc, SingleLatestPerKey Desc", Effect.gen(function*() {
        const { labels } = yield* example
        assert.deepStrictEqual(yield* labels(nsA.id, Query.all().sortBy("KeyAuthor")), [
          "hi@a3",
          "hi/moon@a2",
          "hi/world@a1",
          "hi/world@a2"
        ])
        assert.deepStrictEqual(yield* labels(nsA.id, Query.all().sortBy("AuthorKey", "Desc")), [
          "hi@a3",
          "hi/world@a2",
          "hi/moon@a2",
          "hi/world@a1"
        ])
        assert.deepStrictEqual(yield* labels(nsA.id, Query.singleLatestPerKey().sortDirection("Desc")), [
          "hi/world@a1",
          "hi/moon@a2",
          "hi@a3"
        ])
      }))

      test("author and key filters", Effect.gen(function*() {
        const { labels } = yield* example
        assert.deepStrictEqual(yield* labels(nsA.id, Query.author(a2.id)), ["hi/moon@a2", "hi/world@a2"])
        assert.deepStrictEqual(yield* labels(nsA.id, Query.author(a2.id).sortBy("KeyAuthor", "Desc")), [
          "hi/world@a2",
          "hi/moon@a2"
        ])
        assert.deepStrictEqual(yield* labels(nsA.id, Query.keyExact(utf8("hi/world"))), ["hi/world@a1", "hi/world@a2"])
        assert.deepStrictEqual(yield* labels(nsA.id, Query.keyExact(utf8("hi/world")).sortBy("KeyAuthor", "Desc")), [
          "hi/world@a2",
          "hi/world@a1"
        ])
        assert.deepStrictEqual(yield* labels(nsA.id, Query.keyExact(utf8("hi/"))), [])
        assert.deepStrictEqual(yield* labels(nsA.id, Query.keyPrefix(utf8("hi/"))), [
          "hi/world@a1",
          "hi/moon@a2",
          "hi/world@a2"
        ])
        assert.deepStrictEqual(yield* labels(nsA.id, Query.keyPrefix(utf8("hi"))), [
          "hi/world@a1",
          "hi/moon@a2",
          "hi/world@a2",
          "hi@a3"
        ])
        assert.deepStrictEqual(yield* labels(nsA.id, Query.keyPrefix(utf8("hi/w")).sortBy("KeyAuthor")), [
          "hi/world@a1",
          "hi/world@a2"
        ])
        assert.deepStrictEqual(yield* labels(nsA.id, Query.keyPrefix(utf8("hi")).withAuthor(a3.id)), ["hi@a3"])
        assert.deepStrictEqual(yield* labels(nsA.id, Query.keyPrefix(utf8("ho"))), [])
        // The last key filter wins.
        assert.deepStrictEqual(yield* labels(nsA.id, Query.keyPrefix(utf8("hi/")).withKeyExact(utf8("hi"))), ["hi@a3"])
        assert.deepStrictEqual(yield* labels(nsA.id, Query.singleLatestPerKey().withKeyPrefix(utf8("hi/"))), [
          "hi/moon@a2",
          "hi/world@a1"
        ])
      }))

      test("SingleLatestPerKey applies the author filter before grouping", Effect.gen(function*() {
        const { labels } = yield* example
        // a1's hi/world is newer, yet a2's own hi/world is returned.
        assert.deepStrictEqual(yield* labels(nsA.id, Query.singleLatestPerKey().withAuthor(a2.id)), [
          "hi/moon@a2",
          "hi/world@a2"
        ])
        assert.deepStrictEqual(yield* labels(nsA.id, Query.singleLatestPerKey().withAuthor(a1.id)), ["hi/world@a1"])
      }))

      test("offset and limit apply after ordering and grouping", Effect.gen(function*() {
        const { labels } = yield* example
        const all = Query.all()
        assert.deepStrictEqual(yield* labels(nsA.id, all.withOffset(1).withLimit(2)), ["hi/moon@a2", "hi/world@a2"])
        assert.deepStrictEqual(yield* labels(nsA.id, all.withLimit(1)), ["hi/world@a1"])
        assert.deepStrictEqual(yield* labels(nsA.id, all.withLimit(0)), [])
        assert.deepStrictEqual(yield* labels(nsA.id, all.withOffset(3).withLimit(10)), ["hi@a3"])
        assert.deepStrictEqual(yield* labels(nsA.id, all.withOffset(4)), [])
        assert.deepStrictEqual(yield* labels(nsA.id, all.sortBy("KeyAuthor", "Desc").withOffset(1).withLimit(2)), [
          "hi/world@a1",
          "hi/moon@a2"
        ])
        assert.deepStrictEqual(yield* labels(nsA.id, Query.singleLatestPerKey().withOffset(1).withLimit(1)), [
          "hi/moon@a2"
        ])
        assert.deepStrictEqual(yield* labels(nsA.id, Query.singleLatestPerKey().sortDirection("Desc").withOffset(2)), [
          "hi@a3"
        ])
      }))

      test("tombstones are hidden unless includeEmpty", Effect.gen(function*() {
        const { labels, put } = yield* example
        // deletePrefix("hi/") by a2, newer than a2's entries.
        assert.strictEqual(yield* put(tombstoneAt(nsA, a2, "hi/", 10n)), "Inserted(2)")
        assert.deepStrictEqual(yield* labels(nsA.id, Query.all()), ["hi/world@a1", "hi@a3"])
        assert.deepStrictEqual(yield* labels(nsA.id, Query.all().withIncludeEmpty()), [
          "hi/world@a1",
          "hi/@a2~",
          "hi@a3"
        ])
        assert.deepStrictEqual(yield* labels(nsA.id, Query.all().sortBy("KeyAuthor").withIncludeEmpty()), [
          "hi@a3",
          "hi/@a2~",
          "hi/world@a1"
        ])
        assert.deepStrictEqual(yield* labels(nsA.id, Query.author(a2.id)), [])
        assert.deepStrictEqual(yield* labels(nsA.id, Query.keyPrefix(utf8("hi/")).withIncludeEmpty()), [
          "hi/world@a1",
          "hi/@a2~"
        ])
        // Offset counts only visible results.
        assert.deepStrictEqual(yield* labels(nsA.id, Query.all().withOffset(1)), ["hi@a3"])
        assert.deepStrictEqual(yield* labels(nsA.id, Query.singleLatestPerKey()), ["hi@a3", "hi/world@a1"])
        assert.deepStrictEqual(yield* labels(nsA.id, Query.singleLatestPerKey().withIncludeEmpty()), [
          "hi@a3",
          "hi/@a2~",
          "hi/world@a1"
        ])
      }))

      test("SingleLatestPerKey drops a key whose newest entry is a tombstone", Effect.gen(function*() {
        const { labels, put } = yield* example
        assert.strictEqual(yield* put(tombstoneAt(nsA, a2, "hi/world", 20n)), "Inserted(1)")
        // a1 still holds an older value at hi/world, but the key's newest entry is a deletion.
        assert.deepStrictEqual(yield* labels(nsA.id, Query.singleLatestPerKey()), ["hi@a3", "hi/moon@a2"])
        assert.deepStrictEqual(yield* labels(nsA.id, Query.singleLatestPerKey().withIncludeEmpty()), [
          "hi@a3",
          "hi/moon@a2",
          "hi/world@a2~"
        ])
        assert.deepStrictEqual(yield* labels(nsA.id, Query.singleLatestPerKey().withOffset(1)), ["hi/moon@a2"])
        assert.deepStrictEqual(yield* labels(nsA.id, Query.singleLatestPerKey().withAuthor(a1.id)), ["hi/world@a1"])
        assert.deepStrictEqual(yield* labels(nsA.id, Query.keyExact(utf8("hi/world"))), ["hi/world@a1"])
        // A newer value by a1 brings the key back.
        assert.strictEqual(yield* put(entryAt(nsA, a1, "hi/world", 30n)), "Inserted(1)")
        assert.deepStrictEqual(yield* labels(nsA.id, Query.singleLatestPerKey()), ["hi@a3", "hi/moon@a2", "hi/world@a1"])
      }))

      test("SingleLatestPerKey keeps the first entry met on a timestamp tie", Effect.gen(function*() {
        const { labels, put } = yield* harness
        assert.strictEqual(yield* put(entryAt(nsA, a3, "k", 7n, "three")), "Inserted(0)")
        assert.strictEqual(yield* put(entryAt(nsA, a1, "k", 7n, "one")), "Inserted(0)")
        assert.strictEqual(yield* put(entryAt(nsA, a2, "k", 7n, "two")), "Inserted(0)")
        assert.deepStrictEqual(yield* labels(nsA.id, Query.singleLatestPerKey()), ["k@a1"])
        assert.deepStrictEqual(yield* labels(nsA.id, Query.singleLatestPerKey().sortDirection("Desc")), ["k@a3"])
      }))

      test("key order compares the key as a whole before the author", Effect.gen(function*() {
        const { labels, put } = yield* harness
        // Concatenating key‖author would sort [1]‖a3 after [1,0]‖a1 whenever a3's first byte is above 0.
        assert.isAbove(a3.id[0]!, 0)
        assert.strictEqual(yield* put(entryAt(nsA, a3, bytes(1), 1n)), "Inserted(0)")
        assert.strictEqual(yield* put(entryAt(nsA, a1, bytes(1, 0), 1n)), "Inserted(0)")
        assert.strictEqual(yield* put(entryAt(nsA, a2, bytes(0, 255), 1n)), "Inserted(0)")
        assert.strictEqual(yield* put(entryAt(nsA, a1, new Uint8Array(), 0n)), "Inserted(0)")
        assert.deepStrictEqual(yield* labels(nsA.id, Query.all().sortBy("KeyAuthor")), [
          "@a1",
          "[0,255]@a2",
          "[1]@a3",
          "[1,0]@a1"
        ])
        assert.deepStrictEqual(yield* labels(nsA.id, Query.singleLatestPerKey()), [
          "@a1",
          "[0,255]@a2",
          "[1]@a3",
          "[1,0]@a1"
        ])
        assert.deepStrictEqual(yield* labels(nsA.id, Query.keyPrefix(bytes(1))), ["[1,0]@a1", "[1]@a3"])
        assert.deepStrictEqual(yield* labels(nsA.id, Query.keyPrefix(new Uint8Array()).sortBy("KeyAuthor", "Desc")), [
          "[1,0]@a1",
          "[1]@a3",
          "[0,255]@a2",
          "@a1"
        ])
      }))

      test(`more than 2 × PAGE_SIZE + 7 entries stream completely, in order, in every order`, Effect.gen(function*() {
        const { store } = yield* harness
        const authors = [a1, a2, a3]
        const perAuthor = 370
        assert.isAbove(perAuthor * authors.length, Store.PAGE_SIZE * 2 + 7)
        const written: Array<SignedEntry> = []
        yield* store.withTransaction(Effect.gen(function*() {
          for (let i = 0; i < perAuthor; i++) {
            for (const [j, a] of authors.entries()) {
              const k = `k${String(i).padStart(4, "0")}`
              const ts = BigInt(1 + ((i * 7 + j * 5) % 11))
              const e = j === 1 && i % 13 === 0 ? tombstoneAt(nsA, a, k, ts) : entryAt(nsA, a, k, ts, `${i}/${j}`)
              assert.strictEqual(outcome(yield* store.unsafePut(e)), "Inserted(0)")
              written.push(e)
            }
          }
        }))
        // Noise in another namespace must not leak into any page.
        yield* store.unsafePut(entryAt(nsB, a1, "k0000", 1n))
        assert.strictEqual(yield* store.count(nsA.id), perAuthor * authors.length)
        const queries: Array<readonly [string, Query]> = [
          ["all", Query.all()],
          ["all+empty", Query.all().withIncludeEmpty()],
          ["all desc", Query.all().sortBy("AuthorKey", "Desc").withIncludeEmpty()],
          ["key/author", Query.all().sortBy("KeyAuthor").withIncludeEmpty()],
          ["key/author desc", Query.all().sortBy("KeyAuthor", "Desc")],
          ["author a2", Query.author(a2.id).withIncludeEmpty()],
          ["author a2 desc", Query.author(a2.id).sortBy("KeyAuthor", "Desc")],
          ["prefix", Query.keyPrefix(utf8("k01")).sortBy("KeyAuthor")],
          ["latest", Query.singleLatestPerKey()],
          ["latest+empty", Query.singleLatestPerKey().withIncludeEmpty()],
          ["latest desc", Query.singleLatestPerKey().sortDirection("Desc").withIncludeEmpty()],
          ["offset/limit", Query.all().sortBy("KeyAuthor").withOffset(500).withLimit(600)],
          ["latest offset/limit", Query.singleLatestPerKey().withOffset(100).withLimit(200)]
        ]
        for (const [what, q] of queries) {
          const got = Chunk.toArray(yield* Stream.runCollect(store.getMany(nsA.id, q)))
          const ids = new Set(got.map((e) => toHex(e.author) + toHex(e.key)))
          assert.strictEqual(ids.size, got.length, `${what}: no duplicates`)
          assertSameEntries(got, modelQuery(written, q), what)
        }
        const all = Chunk.toArray(yield* Stream.runCollect(store.getMany(nsA.id, Query.all().withIncludeEmpty())))
        assert.strictEqual(all.length, perAuthor * authors.length)
        const hashes = Chunk.toArray(yield* Stream.runCollect(store.contentHashes))
        assert.strictEqual(hashes.length, perAuthor * authors.length + 1)
      }))
    })

    describe("reads", () => {
      test("getExact returns tombstones only with includeEmpty; count includes them", Effect.gen(function*() {
        const { store, put } = yield* harness
        assert.strictEqual(yield* put(entryAt(nsA, a1, "v", 1n)), "Inserted(0)")
        assert.strictEqual(yield* put(tombstoneAt(nsA, a1, "t", 2n)), "Inserted(0)")
        assert.strictEqual(yield* put(entryAt(nsB, a1, "v", 1n)), "Inserted(0)")
        const v = yield* store.getExact(nsA.id, a1.id, utf8("v"), false)
        assert.isTrue(Option.isSome(v) && signedEntryEquals(v.value, entryAt(nsA, a1, "v", 1n)))
        assert.isTrue(Option.isNone(yield* store.getExact(nsA.id, a1.id, utf8("t"), false)))
        const t = yield* store.getExact(nsA.id, a1.id, utf8("t"), true)
        assert.isTrue(Option.isSome(t) && t.value.isEmpty && signedEntryEquals(t.value, tombstoneAt(nsA, a1, "t", 2n)))
        assert.isTrue(Option.isNone(yield* store.getExact(nsA.id, a2.id, utf8("v"), true)), "other author")
        assert.isTrue(Option.isNone(yield* store.getExact(nsA.id, a1.id, utf8("vv"), true)), "longer key")
        assert.isTrue(Option.isNone(yield* store.getExact(nsA.id, a1.id, new Uint8Array(), true)), "empty key")
        assert.strictEqual(yield* store.count(nsA.id), 2)
        assert.strictEqual(yield* store.count(nsB.id), 1)
        assert.strictEqual(yield* store.count(NamespaceSecret.fromSeed(seeded(99)).id), 0)
      }))

      test("contentHashes covers every namespace and yields EMPTY for tombstones", Effect.gen(function*() {
        const { store, put } = yield* harness
        assert.deepStrictEqual(Chunk.toArray(yield* Stream.runCollect(store.contentHashes)), [])
        yield* put(entryAt(nsA, a1, "x", 1n, "same"))
        yield* put(entryAt(nsB, a2, "y", 1n, "same"))
        yield* put(entryAt(nsA, a2, "z", 1n, "other"))
        yield* put(tombstoneAt(nsB, a1, "gone", 1n))
        const got = Chunk.toArray(yield* Stream.runCollect(store.contentHashes)).map(toHex).sort()
        const want = [blake3(utf8("same")), blake3(utf8("same")), blake3(utf8("other")), EMPTY].map(toHex).sort()
        assert.deepStrictEqual(got, want)
      }))

      test("getLatestForEachAuthor keeps each author's maximum, ascending by author", Effect.gen(function*() {
        const { store, put } = yield* harness
        yield* put(entryAt(nsA, a2, "x", 10n))
        yield* put(entryAt(nsA, a1, "p", 3n))
        // Older entries arriving later for other keys do not move the head back.
        yield* put(entryAt(nsA, a2, "y", 5n))
        yield* put(tombstoneAt(nsA, a3, "q", 8n))
        yield* put(entryAt(nsB, a1, "far", 100n))
        const latest = (yield* store.getLatestForEachAuthor(nsA.id)).map((l) =>
          `${nameOf(l.author)}:${l.timestamp}:${keyText(l.key)}`
        )
        assert.deepStrictEqual(latest, ["a1:3:p", "a2:10:x", "a3:8:q"])
        // Removal of the head entry keeps the maximum (spec 03 §2 recommendation).
        yield* put(entryAt(nsA, a2, "", 11n))
        yield* put(entryAt(nsA, a2, "z", 4n))
        const again = (yield* store.getLatestForEachAuthor(nsA.id)).map((l) => `${nameOf(l.author)}:${l.timestamp}`)
        assert.deepStrictEqual(again, ["a1:3", "a2:11", "a3:8"])
        assert.deepStrictEqual(yield* store.getLatestForEachAuthor(NamespaceSecret.fromSeed(seeded(98)).id), [])
      }))

      test("hasNewsForUs counts authors the heads know newer data of", Effect.gen(function*() {
        const { store, put } = yield* harness
        yield* put(entryAt(nsA, a1, "x", 10n))
        yield* put(entryAt(nsA, a2, "x", 5n))
        yield* put(entryAt(nsB, a3, "x", 50n))
        const heads = (pairs: Array<readonly [AuthorId, bigint]>) => AuthorHeads.fromEntries(pairs)
        assert.strictEqual(yield* store.hasNewsForUs(nsA.id, AuthorHeads.empty), 0)
        assert.strictEqual(yield* store.hasNewsForUs(nsA.id, heads([[a1.id, 10n], [a2.id, 4n]])), 0)
        assert.strictEqual(yield* store.hasNewsForUs(nsA.id, heads([[a1.id, 11n]])), 1)
        // a3 has data only in nsB: unknown here.
        assert.strictEqual(yield* store.hasNewsForUs(nsA.id, heads([[a1.id, 10n], [a2.id, 6n], [a3.id, 1n]])), 2)
        assert.strictEqual(yield* store.hasNewsForUs(nsB.id, heads([[a3.id, 50n]])), 0)
        assert.strictEqual(yield* store.hasNewsForUs(nsB.id, heads([[a1.id, 1n], [a2.id, 1n], [a3.id, 51n]])), 3)
      }))
    })

    describe("namespaces", () => {
      test("importNamespace: Inserted, NoChange, Upgraded", Effect.gen(function*() {
        const { store } = yield* harness
        const read = new Capability.Read({ id: nsA.id })
        const write = new Capability.Write({ secret: nsA })
        assert.strictEqual(yield* store.importNamespace(read), "Inserted")
        assert.strictEqual(yield* store.importNamespace(read), "NoChange")
        assert.strictEqual((yield* store.getCapability(nsA.id)).pipe(Option.map((c) => c._tag), Option.getOrNull), "Read")
        assert.strictEqual(yield* store.importNamespace(write), "Upgraded")
        assert.strictEqual(yield* store.importNamespace(write), "NoChange")
        assert.strictEqual(yield* store.importNamespace(read), "NoChange", "Write never downgrades")
        const cap = yield* store.getCapability(nsA.id)
        assert.isTrue(Option.isSome(cap) && cap.value._tag === "Write")
        if (Option.isSome(cap) && cap.value._tag === "Write") {
          assert.strictEqual(cap.value.secret.toSecretHex(), nsA.toSecretHex())
          assert.strictEqual(toHex(cap.value.id), toHex(nsA.id))
        }
        // Write first, then Read.
        assert.strictEqual(yield* store.importNamespace(new Capability.Write({ secret: nsB })), "Inserted")
        assert.strictEqual(yield* store.importNamespace(new Capability.Read({ id: nsB.id })), "NoChange")
        assert.strictEqual((yield* store.getCapability(nsB.id)).pipe(Option.map((c) => c.kind), Option.getOrNull), "write")
        assert.isTrue(Option.isNone(yield* store.getCapability(NamespaceSecret.fromSeed(seeded(97)).id)))
        // The stored capability is looked up by the imported one's id, so a mismatch cannot arise here; merge itself
        // refuses different ids.
        const mismatch = Capability.merge(read, new Capability.Read({ id: nsB.id }))
        assert.isTrue(mismatch._tag === "Left" && mismatch.left._tag === "NamespaceMismatch")
      }))

      test("listNamespaces is ascending by id with kinds", Effect.gen(function*() {
        const { store } = yield* harness
        assert.deepStrictEqual(yield* store.listNamespaces, [])
        const secrets = [20, 21, 22, 23, 24].map((n) => NamespaceSecret.fromSeed(seeded(n)))
        for (const [i, s] of secrets.entries()) {
          yield* store.importNamespace(i % 2 === 0 ? new Capability.Write({ secret: s }) : new Capability.Read({ id: s.id }))
        }
        const expected = secrets
          .map((s, i) => `${toHex(s.id)}:${i % 2 === 0 ? "write" : "read"}`)
          .sort()
        assert.deepStrictEqual((yield* store.listNamespaces).map(([id, kind]) => `${toHex(id)}:${kind}`), expected)
      }))

      test("openReplica fails with ReplicaNotFound for an unknown namespace", Effect.gen(function*() {
        const { store, writeNs } = yield* harness
        const err = yield* Effect.flip(store.openReplica(nsA.id))
        assert.strictEqual(err._tag, "ReplicaNotFound")
        yield* writeNs(nsA)
        const cap = yield* store.openReplica(nsA.id)
        assert.strictEqual(toHex(cap.id), toHex(nsA.id))
        assert.strictEqual(cap._tag, "Write")
      }))

      test("opening a namespace without entries gives it its (empty) range index; a stored one waits for a session", Effect.gen(function*() {
        const { store, put, writeNs, labels } = yield* harness
        yield* writeNs(nsA)
        yield* writeNs(nsB)
        yield* put(entryAt(nsB, a1, "x", 1n))
        // Neither has an index or a kept summary yet.
        assert.isTrue(Option.isNone(yield* store.rangeSummary(nsA.id)))
        yield* store.openReplica(nsA.id)
        yield* store.openReplica(nsB.id)
        // The empty one is indexed (its writes need no candidate query); the stored one is not built at open.
        assert.strictEqual(Option.getOrThrow(yield* store.rangeSummary(nsA.id)).size, 0)
        assert.isTrue(Option.isNone(yield* store.rangeSummary(nsB.id)))
        // Writes through the index still follow spec 01 §9 (a stored prefix blocks an older key).
        yield* put(entryAt(nsA, a1, "a", 5n))
        assert.strictEqual(yield* put(entryAt(nsA, a1, "ab", 4n)), "NotInserted")
        assert.strictEqual(yield* put(entryAt(nsA, a1, "ab", 6n)), "Inserted(0)")
        assert.strictEqual(Option.getOrThrow(yield* store.rangeSummary(nsA.id)).size, 2)
        assert.deepStrictEqual(yield* labels(nsA.id, Query.all()), ["a@a1", "ab@a1"])
      }))

      test("removeReplica: refused while open, then deletes entries, policy, peers and the namespace", Effect.gen(function*() {
        const { store, put, writeNs, labels } = yield* harness
        yield* writeNs(nsA)
        yield* writeNs(nsB)
        yield* store.importAuthor(a1)
        const policy = new DownloadPolicy.NothingExcept({ filters: [new DownloadPolicy.Prefix({ bytes: utf8("a") })] })
        for (const ns of [nsA, nsB]) {
          yield* put(entryAt(ns, a1, "x", 1n))
          yield* put(tombstoneAt(ns, a1, "y", 2n))
          yield* store.registerUsefulPeer(ns.id, seeded(7))
          yield* store.setDownloadPolicy(ns.id, policy)
        }
        yield* store.openReplica(nsA.id)
        yield* store.openReplica(nsA.id)
        const notClosed = yield* Effect.flip(store.removeReplica(nsA.id))
        assert.strictEqual(notClosed._tag, "ReplicaNotClosed")
        assert.strictEqual(yield* store.count(nsA.id), 2)
        // A set, not a counter: one close is enough at this level.
        yield* store.closeReplica(nsA.id)
        yield* store.removeReplica(nsA.id)
        assert.strictEqual(yield* store.count(nsA.id), 0)
        assert.deepStrictEqual(yield* labels(nsA.id, Query.all().withIncludeEmpty()), [])
        assert.isTrue(Option.isNone(yield* store.getExact(nsA.id, a1.id, utf8("y"), true)))
        assert.isTrue(Option.isNone(yield* store.getSyncPeers(nsA.id)))
        assert.strictEqual(policyText(yield* store.getDownloadPolicy(nsA.id)), "EverythingExcept()")
        assert.deepStrictEqual(yield* store.getLatestForEachAuthor(nsA.id), [])
        assert.isTrue(Option.isNone(yield* store.getCapability(nsA.id)))
        assert.deepStrictEqual((yield* store.listNamespaces).map(([id]) => toHex(id)), [toHex(nsB.id)])
        assert.strictEqual((yield* Effect.flip(store.openReplica(nsA.id)))._tag, "ReplicaNotFound")
        assert.strictEqual((yield* Effect.flip(store.registerUsefulPeer(nsA.id, seeded(8))))._tag, "DocumentNotCreated")
        assert.strictEqual((yield* Effect.flip(store.setDownloadPolicy(nsA.id, policy)))._tag, "DocumentNotCreated")
        // Authors and the other namespace are untouched.
        assert.deepStrictEqual((yield* store.listAuthors).map(toHex), [toHex(a1.id)])
        assert.strictEqual(yield* store.count(nsB.id), 2)
        assert.strictEqual(Option.map(yield* store.getSyncPeers(nsB.id), (ps) => ps.length).pipe(Option.getOrNull), 1)
        assert.strictEqual(policyText(yield* store.getDownloadPolicy(nsB.id)), policyText(policy))
        // Recreate: empty.
        assert.strictEqual(yield* writeNs(nsA), "Inserted")
        yield* store.openReplica(nsA.id)
        assert.strictEqual(yield* store.count(nsA.id), 0)
        assert.isTrue(Option.isNone(yield* store.getSyncPeers(nsA.id)))
        assert.strictEqual(policyText(yield* store.getDownloadPolicy(nsA.id)), "EverythingExcept()")
        assert.strictEqual(yield* put(entryAt(nsA, a1, "x", 1n)), "Inserted(0)", "nothing left to block")
      }))

      test("removeReplica checks the open mark when it runs, not when it is built", Effect.gen(function*() {
        const { store, writeNs, put } = yield* harness
        yield* writeNs(nsA)
        yield* put(entryAt(nsA, a1, "x", 1n))
        const remove = store.removeReplica(nsA.id)
        yield* store.openReplica(nsA.id)
        assert.strictEqual((yield* Effect.flip(remove))._tag, "ReplicaNotClosed")
        assert.strictEqual(yield* store.count(nsA.id), 1)
        yield* store.closeReplica(nsA.id)
        yield* remove
        assert.strictEqual(yield* store.count(nsA.id), 0)
      }))
    })

    describe("authors", () => {
      test("import, get, list ascending, delete, re-import", Effect.gen(function*() {
        const { store } = yield* harness
        assert.deepStrictEqual(yield* store.listAuthors, [])
        for (const a of [a3, a1, a2]) yield* store.importAuthor(a)
        yield* store.importAuthor(a1)
        assert.deepStrictEqual((yield* store.listAuthors).map(toHex), [a1, a2, a3].map((a) => toHex(a.id)))
        const got = yield* store.getAuthor(a2.id)
        assert.isTrue(Option.isSome(got))
        if (Option.isSome(got)) {
          assert.strictEqual(got.value.toSecretHex(), a2.toSecretHex())
          assert.strictEqual(toHex(got.value.id), toHex(a2.id))
        }
        const stranger = Author.fromSeed(seeded(42))
        assert.isTrue(Option.isNone(yield* store.getAuthor(stranger.id)))
        yield* store.deleteAuthor(a2.id)
        yield* store.deleteAuthor(a2.id)
        yield* store.deleteAuthor(stranger.id)
        assert.isTrue(Option.isNone(yield* store.getAuthor(a2.id)))
        assert.deepStrictEqual((yield* store.listAuthors).map(toHex), [a1, a3].map((a) => toHex(a.id)))
        yield* store.importAuthor(a2)
        assert.deepStrictEqual((yield* store.listAuthors).map(toHex), [a1, a2, a3].map((a) => toHex(a.id)))
      }))
    })

    describe("sync peers (spec 03 §3)", () => {
      const peer = (n: number) => seeded(100 + n)
      const peersOf = (store: Store.StoreService, ns: NamespaceId) =>
        Effect.map(store.getSyncPeers(ns), Option.map((ps) => ps.map((p) => p[0]! - 100)))

      test("unknown namespace → DocumentNotCreated; none when empty", Effect.gen(function*() {
        const { store, writeNs } = yield* harness
        assert.strictEqual((yield* Effect.flip(store.registerUsefulPeer(nsA.id, peer(1))))._tag, "DocumentNotCreated")
        yield* writeNs(nsA)
        assert.isTrue(Option.isNone(yield* store.getSyncPeers(nsA.id)))
        yield* store.registerUsefulPeer(nsA.id, peer(1))
        assert.deepStrictEqual(yield* peersOf(store, nsA.id), Option.some([1]))
        assert.isTrue(Option.isNone(yield* store.getSyncPeers(nsB.id)))
      }))

      test("an LRU of 5, newest first, within one clock tick", Effect.gen(function*() {
        const { store, writeNs } = yield* harness
        yield* writeNs(nsA)
        yield* writeNs(nsB)
        for (let i = 1; i <= 5; i++) yield* store.registerUsefulPeer(nsA.id, peer(i))
        assert.deepStrictEqual(yield* peersOf(store, nsA.id), Option.some([5, 4, 3, 2, 1]))
        yield* store.registerUsefulPeer(nsA.id, peer(3))
        assert.deepStrictEqual(yield* peersOf(store, nsA.id), Option.some([3, 5, 4, 2, 1]), "moved to the front")
        yield* store.registerUsefulPeer(nsA.id, peer(3))
        assert.deepStrictEqual(yield* peersOf(store, nsA.id), Option.some([3, 5, 4, 2, 1]), "already in front")
        yield* store.registerUsefulPeer(nsA.id, peer(6))
        assert.deepStrictEqual(yield* peersOf(store, nsA.id), Option.some([6, 3, 5, 4, 2]), "evicts the oldest")
        yield* store.registerUsefulPeer(nsA.id, peer(2))
        yield* store.registerUsefulPeer(nsA.id, peer(7))
        assert.deepStrictEqual(yield* peersOf(store, nsA.id), Option.some([7, 2, 6, 3, 5]))
        for (let i = 10; i < 60; i++) yield* store.registerUsefulPeer(nsA.id, peer(i))
        assert.deepStrictEqual(yield* peersOf(store, nsA.id), Option.some([59, 58, 57, 56, 55]))
        assert.isTrue(Option.isNone(yield* store.getSyncPeers(nsB.id)), "per namespace")
        yield* store.registerUsefulPeer(nsB.id, peer(1))
        assert.deepStrictEqual(yield* peersOf(store, nsB.id), Option.some([1]))
        assert.deepStrictEqual(yield* peersOf(store, nsA.id), Option.some([59, 58, 57, 56, 55]))
      }))

      test("order follows registrations even when the clock moves or steps back", Effect.gen(function*() {
        const { store, writeNs } = yield* harness
        yield* writeNs(nsA)
        yield* TestClock.setTime(1_000_000)
        yield* store.registerUsefulPeer(nsA.id, peer(1))
        yield* TestClock.adjust("1 second")
        yield* store.registerUsefulPeer(nsA.id, peer(2))
        yield* TestClock.setTime(5)
        yield* store.registerUsefulPeer(nsA.id, peer(3))
        yield* store.registerUsefulPeer(nsA.id, peer(1))
        assert.deepStrictEqual(yield* peersOf(store, nsA.id), Option.some([1, 3, 2]))
      }))
    })

    describe("download policy (spec 03 §3)", () => {
      test("default, roundtrip, unknown namespace", Effect.gen(function*() {
        const { store, writeNs } = yield* harness
        assert.strictEqual(policyText(yield* store.getDownloadPolicy(nsA.id)), "EverythingExcept()")
        assert.strictEqual((yield* Effect.flip(store.setDownloadPolicy(nsA.id, DownloadPolicy.defaultPolicy)))._tag, "DocumentNotCreated")
        yield* writeNs(nsA)
        yield* writeNs(nsB)
        const { Prefix, Exact, NothingExcept, EverythingExcept } = DownloadPolicy
        const policies = [
          new NothingExcept({ filters: [] }),
          new NothingExcept({ filters: [new Prefix({ bytes: utf8("memes/") }), new Exact({ bytes: bytes(0xff, 0) })] }),
          new EverythingExcept({ filters: [new Exact({ bytes: new Uint8Array() }), new Prefix({ bytes: bytes(1, 255) })] }),
          new EverythingExcept({ filters: [] })
        ]
        for (const p of policies) {
          yield* store.setDownloadPolicy(nsA.id, p)
          const back = yield* store.getDownloadPolicy(nsA.id)
          assert.strictEqual(policyText(back), policyText(p))
          assert.strictEqual(back._tag, p._tag)
          assert.deepStrictEqual(back.filters.map((f) => [f._tag, toHex(f.bytes)]), p.filters.map((f) => [f._tag, toHex(f.bytes)]))
          assert.strictEqual(DownloadPolicy.matches(back, utf8("memes/x")), DownloadPolicy.matches(p, utf8("memes/x")))
        }
        assert.strictEqual(policyText(yield* store.getDownloadPolicy(nsB.id)), "EverythingExcept()", "per namespace")
      }))
    })

    describe("live set and wanted content (findings 3, 4)", () => {
      test("setLive / listLive; removeReplica forgets the mark", Effect.gen(function*() {
        const { store, writeNs } = yield* harness
        yield* writeNs(nsA)
        yield* writeNs(nsB)
        assert.deepStrictEqual(yield* store.listLive, [])
        yield* store.setLive(nsA.id, true)
        yield* store.setLive(nsA.id, true)
        yield* store.setLive(nsB.id, true)
        assert.deepStrictEqual((yield* store.listLive).map(toHex), [toHex(nsA.id), toHex(nsB.id)].sort())
        yield* store.setLive(nsB.id, false)
        assert.deepStrictEqual((yield* store.listLive).map(toHex), [toHex(nsA.id)])
        yield* store.removeReplica(nsA.id)
        assert.deepStrictEqual(yield* store.listLive, [])
      }))

      test("wanted hashes: add (idempotent), page, count, remove by hash across documents, clear", Effect.gen(function*() {
        const { store, writeNs } = yield* harness
        yield* writeNs(nsA)
        yield* writeNs(nsB)
        const hashes = Array.from({ length: 10 }, (_, i) => Hash.make(blake3(utf8(`h${i}`)))).sort(compare)
        yield* store.addWanted(nsA.id, hashes)
        yield* store.addWanted(nsA.id, hashes.slice(0, 3))
        yield* store.addWanted(nsB.id, hashes.slice(0, 2))
        assert.strictEqual(yield* store.countWanted(nsA.id), 10)
        const first = yield* store.listWanted(nsA.id, 4)
        const rest = yield* store.listWanted(nsA.id, 100, first[first.length - 1])
        assert.deepStrictEqual([...first, ...rest].map(toHex), hashes.map(toHex))
        yield* store.removeWanted(hashes[0]!)
        assert.strictEqual(yield* store.countWanted(nsA.id), 9)
        assert.deepStrictEqual((yield* store.listWanted(nsB.id, 10)).map(toHex), [toHex(hashes[1]!)])
        yield* store.clearWanted(nsA.id)
        assert.strictEqual(yield* store.countWanted(nsA.id), 0)
        assert.strictEqual(yield* store.countWanted(nsB.id), 1)
        yield* store.removeReplica(nsB.id)
        assert.strictEqual(yield* store.countWanted(nsB.id), 0)
      }))
    })
  })
}

// ---------------------------------------------------------------------------------------------------------------
// Persistence

describe("Store (file) reopen", () => {
  it.effect("everything written comes back after reopening the file", () =>
    Effect.gen(function*() {
      const path = freshFile()
      const nsRead = NamespaceSecret.fromSeed(seeded(13))
      const policy = new DownloadPolicy.NothingExcept({
        filters: [new DownloadPolicy.Prefix({ bytes: utf8("a") }), new DownloadPolicy.Exact({ bytes: bytes(0xff) })]
      })
      const written = [
        entryAt(nsA, a1, "hello", 5n, "world"),
        entryAt(nsA, a2, bytes(0, 255), 6n, "binary"),
        tombstoneAt(nsA, a2, "gone", 7n),
        entryAt(nsA, a3, "", 1n),
        entryAt(nsB, a1, "b", (1n << 64n) - 1n)
      ]
      yield* Effect.gen(function*() {
        const { store, put, writeNs } = yield* harness
        yield* store.importAuthor(a1)
        yield* store.importAuthor(a2)
        yield* writeNs(nsA)
        yield* writeNs(nsB)
        yield* store.importNamespace(new Capability.Read({ id: nsRead.id }))
        for (const e of written) assert.strictEqual(yield* put(e), "Inserted(0)")
        // Nanosecond stamps of a real clock exceed 2^53: the next session must continue after them exactly.
        yield* TestClock.setTime(1_700_000_000_000)
        for (const n of [1, 2, 3]) yield* store.registerUsefulPeer(nsA.id, seeded(100 + n))
        yield* store.setDownloadPolicy(nsA.id, policy)
        yield* store.setLive(nsA.id, true)
        yield* store.openReplica(nsA.id)
      }).pipe(Effect.provide(Store.layerFile(path)))

      yield* Effect.gen(function*() {
        const { store, put, list } = yield* harness
        assert.deepStrictEqual((yield* store.listAuthors).map(toHex), [toHex(a1.id), toHex(a2.id)].sort())
        const author = yield* store.getAuthor(a2.id)
        assert.strictEqual(Option.map(author, (a) => a.toSecretHex()).pipe(Option.getOrNull), a2.toSecretHex())
        assert.deepStrictEqual(
          (yield* store.listNamespaces).map(([id, kind]) => `${toHex(id)}:${kind}`),
          [`${toHex(nsA.id)}:write`, `${toHex(nsB.id)}:write`, `${toHex(nsRead.id)}:read`].sort()
        )
        const cap = yield* store.getCapability(nsA.id)
        assert.isTrue(Option.isSome(cap) && cap.value._tag === "Write" && cap.value.secret.toSecretHex() === nsA.toSecretHex())
        for (const ns of [nsA, nsB]) {
          const back = yield* list(ns.id, Query.all().withIncludeEmpty())
          assertSameEntries(back, written.filter((e) => equals(e.namespace, ns.id)).sort(byAuthorKey), "entries")
        }
        assert.deepStrictEqual(
          (yield* store.getLatestForEachAuthor(nsA.id)).map((l) => `${nameOf(l.author)}:${l.timestamp}`),
          ["a1:5", "a2:7", "a3:1"]
        )
        const peers = yield* store.getSyncPeers(nsA.id)
        assert.deepStrictEqual(Option.map(peers, (ps) => ps.map((p) => p[0])), Option.some([103, 102, 101]))
        assert.strictEqual(policyText(yield* store.getDownloadPolicy(nsA.id)), policyText(policy))
        assert.deepStrictEqual((yield* store.listLive).map(toHex), [toHex(nsA.id)], "the live set survives")
        // Stored entries still block, stamps keep increasing across sessions, open marks are not persisted.
        assert.strictEqual(yield* put(entryAt(nsA, a1, "hello/x", 4n)), "NotInserted")
        assert.strictEqual(yield* put(entryAt(nsA, a3, "z", 1n)), "NotInserted", "blocked by a3's empty key")
        yield* store.registerUsefulPeer(nsA.id, seeded(104))
        yield* store.registerUsefulPeer(nsA.id, seeded(101))
        const after = yield* store.getSyncPeers(nsA.id)
        assert.deepStrictEqual(Option.map(after, (ps) => ps.map((p) => p[0])), Option.some([101, 104, 103, 102]))
        yield* store.removeReplica(nsA.id)
        assert.strictEqual(yield* store.count(nsA.id), 0)
      }).pipe(Effect.provide(Store.layerFile(path)))
    }))

  it.effect("a file that is not a store database fails to open", () =>
    Effect.gen(function*() {
      const path = freshFile()
      writeFileSync(path, "this is not an SQLite database, just some text that is long enough to have a header".repeat(50))
      const exit = yield* Effect.exit(Effect.provide(Store.Store, Store.layerFile(path)))
      assert.isTrue(Exit.isFailure(exit))
    }))
})
