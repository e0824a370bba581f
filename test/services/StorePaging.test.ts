/**
 * Paging through a document's entries (issue 18 and issue 19's paging task): `getMany` applies offset and limit in
 * SQL, so any page costs O(limit) rows read into JS, and its results equal the naive evaluation of the query over
 * every stored entry (sort, filter, group per key, then slice).
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import { assert, describe, it } from "@effect/vitest"
import { Chunk, Effect, FastCheck as fc, Layer, Metric, Stream } from "effect"
import { u64FromBytesBE } from "../../src/internal/bytes.js"
import * as Capability from "../../src/schema/Capability.js"
import { EMPTY, makeSignedEntry, type SignedEntry } from "../../src/schema/Entry.js"
import { Author, type NamespaceId, NamespaceSecret } from "../../src/schema/Keys.js"
import { Query } from "../../src/schema/Query.js"
import * as Store from "../../src/services/Store.js"
import { entryAt } from "../utils/entries.js"
import { modelQuery } from "../utils/queryModel.js"

const stack = () => Layer.provideMerge(Store.layer, Layer.orDie(SqliteClient.layer({ filename: ":memory:" })))

const seeded = (n: number) => new Uint8Array(32).fill(n)
const authors = [Author.fromSeed(seeded(1)), Author.fromSeed(seeded(2)), Author.fromSeed(seeded(3))]
const ns = NamespaceSecret.fromSeed(seeded(11))

interface Row {
  readonly author: Uint8Array
  readonly key: Uint8Array
  readonly ts: Uint8Array
  readonly len: Uint8Array
  readonly hash: Uint8Array
  readonly ns_sig: Uint8Array
  readonly author_sig: Uint8Array
}

/** Every stored entry of `ns`, read with plain SQL (not through the code under test). */
const stored = (id: NamespaceId) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql.unsafe<Row>(
      `SELECT author, key, ts, len, hash, ns_sig, author_sig FROM records WHERE ns = ?`,
      [id]
    ).withoutTransform
    return rows.map((r) =>
      makeSignedEntry({
        namespace: id,
        author: r.author,
        key: r.key,
        timestamp: u64FromBytesBE(r.ts),
        len: u64FromBytesBE(r.len),
        hash: r.hash,
        namespaceSignature: r.ns_sig,
        authorSignature: r.author_sig
      })
    )
  })


const ids = (es: ReadonlyArray<SignedEntry>) =>
  es.map((e) => `${Buffer.from(e.key).toString("hex")}@${e.author[0]}:${e.timestamp}${e.isEmpty ? "~" : ""}`)

const rowsRead = Metric.value(Store.queryRowsRead).pipe(Effect.map((s) => s.count))

const collect = (store: Store.StoreService, id: NamespaceId, q: Query) =>
  Effect.map(Stream.runCollect(store.getMany(id, q)), Chunk.toArray)

describe("Store paging", () => {
  it.effect.prop(
    "offset and limit pages equal the naive evaluation of every query kind",
    [
      fc.array(
        fc.record({
          author: fc.integer({ min: 0, max: 2 }),
          key: fc.array(fc.constantFrom(0x00, 0x01, 0x61, 0xff), { minLength: 1, maxLength: 3 }),
          // Few timestamps: ties between authors of one key are common.
          ts: fc.integer({ min: 1, max: 4 }),
          content: fc.constantFrom<string | null>(null, "a", "b")
        }),
        { maxLength: 60 }
      ),
      fc.array(
        fc.record({
          flat: fc.boolean(),
          sortBy: fc.constantFrom("AuthorKey" as const, "KeyAuthor" as const),
          desc: fc.boolean(),
          author: fc.option(fc.integer({ min: 0, max: 2 }), { nil: undefined }),
          key: fc.option(
            fc.record({ exact: fc.boolean(), bytes: fc.array(fc.constantFrom(0x00, 0x61, 0xff), { maxLength: 2 }) }),
            { nil: undefined }
          ),
          offset: fc.integer({ min: 0, max: 40 }),
          limit: fc.option(fc.integer({ min: 0, max: 30 }), { nil: undefined }),
          includeEmpty: fc.boolean()
        }),
        { minLength: 1, maxLength: 6 }
      )
    ],
    ([puts, queries]) =>
      Effect.gen(function*() {
        const store = yield* Store.Store
        for (const p of puts) {
          yield* store.unsafePut(entryAt(ns, authors[p.author]!, Uint8Array.from(p.key), BigInt(p.ts), p.content))
        }
        const all = yield* stored(ns.id)
        for (const qa of queries) {
          let q = qa.flat
            ? Query.all().sortBy(qa.sortBy, qa.desc ? "Desc" : "Asc")
            : Query.singleLatestPerKey().sortDirection(qa.desc ? "Desc" : "Asc")
          if (qa.author !== undefined) q = q.withAuthor(authors[qa.author]!.id)
          if (qa.key !== undefined) {
            const k = Uint8Array.from(qa.key.bytes)
            q = qa.key.exact ? q.withKeyExact(k) : q.withKeyPrefix(k)
          }
          q = q.withOffset(qa.offset).withIncludeEmpty(qa.includeEmpty)
          if (qa.limit !== undefined) q = q.withLimit(qa.limit)
          const expected = modelQuery(all, q)
          const before = yield* rowsRead
          const got = yield* collect(store, ns.id, q)
          assert.deepStrictEqual(ids(got), ids(expected), JSON.stringify(qa))
          // Only the page's rows reach JS.
          assert.strictEqual((yield* rowsRead) - before, got.length)
        }
      }).pipe(Effect.provide(stack())),
    { fastCheck: { numRuns: 60 } }
  )

  it.effect("a page in the middle of 100k entries reads only its rows, in every query kind", () =>
    Effect.gen(function*() {
      const store = yield* Store.Store
      const sql = yield* SqlClient.SqlClient
      yield* store.importNamespace(new Capability.Write({ secret: ns }))
      // 100k rows written by SQL (signatures are not checked by reads): two authors share every key, timestamps
      // vary per row, every tenth row is a tombstone.
      const [x, y] = [authors[0]!.id, authors[1]!.id]
      yield* sql.unsafe(
        `WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < 99999)
         INSERT INTO records (ns, author, key, ts, len, hash, ns_sig, author_sig)
         SELECT ?, CASE WHEN i % 2 = 0 THEN ? ELSE ? END, CAST(printf('k%07d', i / 2) AS BLOB),
           unhex(printf('%016x', (i * 7919) % 1000 + 1)), unhex('0000000000000001'),
           CASE WHEN i % 10 = 3 THEN ? ELSE randomblob(32) END, zeroblob(64), zeroblob(64)
         FROM c`,
        [ns.id, x, y, EMPTY]
      ).withoutTransform
      const all = yield* stored(ns.id)
      assert.strictEqual(all.length, 100_000)
      const queries = [
        Query.all().sortBy("KeyAuthor").withOffset(50_000).withLimit(50),
        Query.all().sortBy("AuthorKey", "Desc").withOffset(60_000).withLimit(50).withIncludeEmpty(),
        Query.singleLatestPerKey().withOffset(25_000).withLimit(50),
        Query.singleLatestPerKey().sortDirection("Desc").withOffset(30_000).withLimit(50).withIncludeEmpty(),
        Query.author(y).withOffset(20_000).withLimit(50),
        Query.keyPrefix(Buffer.from("k003")).sortBy("KeyAuthor").withOffset(10_000).withLimit(50),
        // Longer than one SQL page: the keyset continuation after the offset.
        Query.all().sortBy("KeyAuthor").withOffset(40_000).withLimit(Store.PAGE_SIZE * 2 + 17)
      ]
      for (const q of queries) {
        const expected = modelQuery(all, q)
        assert.isTrue(expected.length > 0)
        const before = yield* rowsRead
        const got = yield* collect(store, ns.id, q)
        assert.deepStrictEqual(ids(got), ids(expected))
        assert.strictEqual((yield* rowsRead) - before, expected.length, "rows read into JS")
      }
    }).pipe(Effect.provide(stack())), { timeout: 120_000 })
})
