/**
 * The Blobs service against both implementations (`layerMemory` and `layer(dataDir)` on a fresh directory and SQLite
 * file per test), plus disk-only checks: restart, index repair, and bounded memory for a 100 MiB file.
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
// effect's bundled fast-check (3.x): it.effect.prop runs the property with that copy, not the project's fast-check 4.
import { Chunk, Effect, Either, Exit, FastCheck as fc, Layer, Option, Schema, Scope, Stream, TestClock, type TestServices } from "effect"
import { randomBytes } from "node:crypto"
import { existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync, writeSync, closeSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { blake3 } from "../../src/internal/blake3.js"
import { concat, equals, toHex } from "../../src/internal/bytes.js"
import { BlobError } from "../../src/schema/BlobErrors.js"
import { EMPTY } from "../../src/schema/Entry.js"
import { Hash } from "../../src/schema/Keys.js"
import * as Blobs from "../../src/services/Blobs.js"

// ---------------------------------------------------------------------------------------------------------------
// Fixtures

const root = mkdtempSync(join(tmpdir(), "rangedocs-blobs-"))
afterAll(() => rmSync(root, { recursive: true, force: true }))
let dirs = 0
const freshDir = () => {
  const d = join(root, `d${++dirs}`)
  mkdirSync(d)
  return d
}

const sqlite = (dataDir: string) => Layer.orDie(SqliteClient.layer({ filename: join(dataDir, "index.sqlite") }))
const diskLayer = (dataDir: string, config?: Blobs.BlobsConfig) =>
  Blobs.layer(dataDir, config).pipe(Layer.provide(sqlite(dataDir)))

const IMPLS: ReadonlyArray<readonly [string, (config?: Blobs.BlobsConfig) => Layer.Layer<Blobs.Blobs, unknown>]> = [
  ["memory", (config) => Blobs.layerMemory(config)],
  ["disk", (config) => diskLayer(freshDir(), config)]
]

const utf8 = (s: string) => new TextEncoder().encode(s)
const random = (n: number) => new Uint8Array(randomBytes(n))
const hashOf = (bytes: Uint8Array) => Hash.make(blake3(bytes))
const collect = <A, E, R>(s: Stream.Stream<A, E, R>) => Effect.map(Stream.runCollect(s), Chunk.toArray)
const tagOf = <A, E extends { readonly _tag: string }, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.map(Effect.either(effect), Either.match({ onLeft: (e) => e._tag, onRight: () => "ok" }))

/** Lets forked work that waits on real I/O (the disk store) finish: a few real milliseconds. */
const settle = Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, 50)))
/** Polls `check` (real time, up to 5 s). */
const until = (check: Effect.Effect<boolean, unknown>): Effect.Effect<void> =>
  Effect.gen(function*() {
    for (let i = 0; i < 100; i++) {
      if (yield* Effect.orDie(check)) return
      yield* settle
    }
    assert.fail("timed out")
  })

const addAll = (blobs: Blobs.BlobsService, contents: ReadonlyArray<Uint8Array>) =>
  Effect.scoped(Effect.forEach(contents, (c) => blobs.addBytes(c)))

// ---------------------------------------------------------------------------------------------------------------
// Shared suite

for (const [name, makeLayer] of IMPLS) {
  describe(`Blobs (${name})`, () => {
    const test = <A, E>(
      title: string,
      body: Effect.Effect<A, E, Blobs.Blobs | Scope.Scope | TestServices.TestServices>,
      config?: Blobs.BlobsConfig
    ) => it.scoped(title, () => Effect.provide(body, makeLayer(config)))

    test("add, read, readRange, status, has, info", Effect.gen(function*() {
      const blobs = yield* Blobs.Blobs
      const bytes = utf8("hello blob world")
      const added = yield* blobs.addBytes(bytes)
      assert.strictEqual(toHex(added.hash), toHex(blake3(bytes)))
      assert.strictEqual(added.size, bytes.length)
      assert.deepStrictEqual(yield* blobs.read(added.hash), bytes)
      assert.deepStrictEqual(yield* blobs.readRange(added.hash, 6, 4), utf8("blob"))
      assert.deepStrictEqual(yield* blobs.readRange(added.hash, 16, 0), new Uint8Array(0))
      assert.strictEqual(yield* tagOf(blobs.readRange(added.hash, 10, 7)), "BlobRangeError")
      assert.strictEqual(yield* tagOf(blobs.readRange(added.hash, -1, 2)), "BlobRangeError")
      assert.strictEqual(yield* blobs.status(added.hash), "Complete")
      assert.isTrue(yield* blobs.has(added.hash))
      assert.deepStrictEqual(yield* blobs.info(added.hash), Option.some({ hash: added.hash, size: 16, have: 16, status: "Complete" as const }))
      // Adding the same content again is idempotent.
      assert.strictEqual(toHex((yield* blobs.addBytes(bytes)).hash), toHex(added.hash))
      assert.strictEqual((yield* collect(blobs.list)).length, 1)

      const absent = hashOf(utf8("never added"))
      assert.strictEqual(yield* blobs.status(absent), "Missing")
      assert.isFalse(yield* blobs.has(absent))
      assert.isTrue(Option.isNone(yield* blobs.info(absent)))
      assert.strictEqual(yield* tagOf(blobs.read(absent)), "BlobNotFound")
      assert.strictEqual(yield* tagOf(blobs.readRange(absent, 0, 0)), "BlobNotFound")
      assert.strictEqual(yield* tagOf(collect(blobs.readStream(absent))), "BlobNotFound")
    }))

    test("readStream from offsets in chunks of a given size", Effect.gen(function*() {
      const blobs = yield* Blobs.Blobs
      const bytes = random(200_000)
      const { hash } = yield* blobs.addBytes(bytes)
      const cases: ReadonlyArray<readonly [number | undefined, number | undefined, number]> = [
        [undefined, undefined, 65536],
        [0, 1000, 1000],
        [12_345, 4096, 4096],
        [199_999, 7, 7],
        [200_000, 10, 10],
        [5, 1_000_000, 1_000_000]
      ]
      for (const [offset, chunkSize, max] of cases) {
        const options = { ...(offset === undefined ? {} : { offset }), ...(chunkSize === undefined ? {} : { chunkSize }) }
        const chunks = yield* collect(blobs.readStream(hash, options))
        for (const c of chunks) assert.isTrue(c.length > 0 && c.length <= max, `chunk of ${c.length}`)
        assert.isTrue(equals(concat(...chunks), bytes.subarray(offset ?? 0)), `offset ${offset} chunk ${chunkSize}`)
      }
      assert.strictEqual(yield* tagOf(collect(blobs.readStream(hash, { offset: 200_001 }))), "BlobRangeError")
    }))

    test("openReader fills the caller's buffers, reused, up to the end of the blob", Effect.gen(function*() {
      const blobs = yield* Blobs.Blobs
      const bytes = random(200_000)
      const { hash } = yield* blobs.addBytes(bytes)
      const reader = yield* blobs.openReader(hash)
      assert.strictEqual(reader.size, bytes.length)
      const buffer = new Uint8Array(65_536)
      const parts: Array<Uint8Array> = []
      for (let offset = 7;;) {
        const n = yield* reader.read(offset, buffer)
        if (n === 0) break
        parts.push(buffer.slice(0, n))
        offset += n
      }
      assert.isTrue(equals(concat(...parts), bytes.subarray(7)))
      assert.strictEqual(yield* reader.read(200_000, buffer), 0)
      assert.strictEqual(yield* tagOf(reader.read(-1, buffer)), "BlobRangeError")
      assert.strictEqual(yield* tagOf(reader.read(200_001, buffer)), "BlobRangeError")
      assert.strictEqual((yield* blobs.openReader(EMPTY)).size, 0)
      assert.strictEqual(yield* tagOf(blobs.openReader(hashOf(utf8("never added")))), "BlobNotFound")
      // Errors carry the Hash itself (issue 15), which survives the RPC error schema's encoding.
      const missing = hashOf(utf8("never added"))
      const notFound = yield* Effect.flip(blobs.openReader(missing))
      assert.isTrue(notFound._tag === "BlobNotFound" && equals(notFound.hash, missing))
      const range = yield* Effect.flip(reader.read(-1, buffer))
      assert.isTrue(range._tag === "BlobRangeError" && equals(range.hash, hash))
      if (notFound._tag === "BlobNotFound") {
        const decoded = Schema.decodeUnknownSync(BlobError)(Schema.encodeSync(BlobError)(notFound))
        assert.isTrue(decoded._tag === "BlobNotFound" && equals(decoded.hash, missing))
        assert.include(decoded.message, toHex(missing))
      }
    }))

    test("addBytes of a blob being downloaded completes it; the partial's writer then finds it Complete", Effect.gen(function*() {
      const blobs = yield* Blobs.Blobs
      const bytes = random(10_000)
      const hash = hashOf(bytes)
      const partial = yield* blobs.openPartial(hash, bytes.length)
      yield* partial.write(bytes.subarray(0, 4_000))
      assert.strictEqual(yield* blobs.status(hash), "Incomplete")
      assert.deepStrictEqual(yield* blobs.addBytes(bytes), { hash, size: bytes.length })
      assert.strictEqual(yield* blobs.status(hash), "Complete")
      yield* partial.write(bytes.subarray(4_000))
      assert.deepStrictEqual(yield* partial.commit, { hash, size: bytes.length })
      assert.isTrue(equals(yield* blobs.read(hash), bytes))
      // Adding it again changes nothing; a later openPartial finds it Complete.
      assert.deepStrictEqual(yield* blobs.addBytes(bytes), { hash, size: bytes.length })
      assert.strictEqual(yield* (yield* blobs.openPartial(hash, bytes.length)).offset, bytes.length)
    }))

    test("bytes handed to an add or a partial write are copied: the caller may reuse its Buffer at once", Effect.gen(function*() {
      const blobs = yield* Blobs.Blobs
      const buffer = Buffer.alloc(1000)
      const parts = [1, 2, 3].map((n) => new Uint8Array(1000).fill(n))
      const expected = concat(...parts)
      // One Buffer refilled for every chunk (Buffer.slice would be a view of it).
      const reused = Stream.fromIterable(parts).pipe(
        Stream.rechunk(1),
        Stream.mapEffect((p) => Effect.sync(() => (buffer.set(p), buffer)))
      )
      const added = yield* blobs.addStream(reused)
      assert.isTrue(equals(yield* blobs.read(added.hash), expected))
      buffer.fill(9)
      const small = Buffer.from(parts[0]!)
      const one = yield* blobs.addBytes(small)
      small.fill(9)
      assert.isTrue(equals(yield* blobs.read(one.hash), parts[0]!))
      const partial = yield* blobs.openPartial(hashOf(expected), expected.length)
      for (const p of parts) {
        buffer.set(p)
        yield* partial.write(buffer)
      }
      buffer.fill(9)
      assert.deepStrictEqual(yield* partial.commit, { hash: hashOf(expected), size: expected.length })
    }))

    test("the empty hash is always Complete", Effect.gen(function*() {
      const blobs = yield* Blobs.Blobs
      assert.strictEqual(yield* blobs.status(EMPTY), "Complete")
      assert.isTrue(yield* blobs.has(EMPTY))
      assert.deepStrictEqual(yield* blobs.read(EMPTY), new Uint8Array(0))
      assert.deepStrictEqual(yield* collect(blobs.readStream(EMPTY)), [])
      assert.deepStrictEqual(yield* blobs.info(EMPTY), Option.some({ hash: EMPTY, size: 0, have: 0, status: "Complete" as const }))
      const added = yield* blobs.addBytes(new Uint8Array(0))
      assert.strictEqual(toHex(added.hash), toHex(EMPTY))
      yield* blobs.delete(EMPTY)
      assert.strictEqual(yield* blobs.status(EMPTY), "Complete")
      const partial = yield* blobs.openPartial(EMPTY, 0)
      assert.deepStrictEqual(yield* partial.commit, { hash: EMPTY, size: 0 })
      const out = join(freshDir(), "empty")
      yield* blobs.exportFile(EMPTY, out)
      assert.strictEqual(readFileSync(out).length, 0)
    }))

    test("exportFile creates parent directories and replaces the target", Effect.gen(function*() {
      const blobs = yield* Blobs.Blobs
      const bytes = random(70_000)
      const { hash } = yield* blobs.addBytes(bytes)
      const dir = freshDir()
      const out = join(dir, "a", "b", "c.bin")
      yield* blobs.exportFile(hash, out)
      assert.isTrue(equals(readFileSync(out), bytes))
      writeFileSync(out, "old")
      yield* blobs.exportFile(hash, out)
      assert.isTrue(equals(readFileSync(out), bytes))
      assert.deepStrictEqual(readdirSync(join(dir, "a", "b")), ["c.bin"])
      assert.strictEqual(yield* tagOf(blobs.exportFile(hashOf(utf8("nope")), join(dir, "x"))), "BlobNotFound")
    }))

    test("list in hash order with partials; delete complete and partial", Effect.gen(function*() {
      const blobs = yield* Blobs.Blobs
      const contents = [utf8("one"), utf8("two"), utf8("three"), utf8("four")]
      const added = yield* addAll(blobs, contents)
      const partialBytes = random(1000)
      const partialHash = hashOf(partialBytes)
      const partial = yield* blobs.openPartial(partialHash, 1000)
      yield* partial.write(partialBytes.subarray(0, 300))
      const listed = yield* collect(blobs.list)
      const expected = [...added.map((a) => toHex(a.hash)), toHex(partialHash)].sort()
      assert.deepStrictEqual(listed.map((i) => toHex(i.hash)), expected)
      const p = listed.find((i) => equals(i.hash, partialHash))
      assert.deepStrictEqual(p && { size: p.size, have: p.have, status: p.status }, { size: 1000, have: 300, status: "Incomplete" })
      assert.strictEqual(yield* blobs.status(partialHash), "Incomplete")
      assert.isFalse(yield* blobs.has(partialHash))
      assert.strictEqual(yield* tagOf(blobs.read(partialHash)), "BlobNotFound")

      yield* blobs.delete(added[0]!.hash)
      yield* blobs.delete(partialHash)
      yield* blobs.delete(hashOf(utf8("absent")))
      assert.strictEqual(yield* blobs.status(added[0]!.hash), "Missing")
      assert.strictEqual(yield* blobs.status(partialHash), "Missing")
      assert.strictEqual((yield* collect(blobs.list)).length, 3)
      // The deleted partial's handle no longer writes.
      assert.strictEqual(yield* tagOf(partial.write(partialBytes.subarray(300, 400))), "BlobStoreError")
    }))

    test("addStream and addFile report progress", Effect.gen(function*() {
      const blobs = yield* Blobs.Blobs
      const bytes = random(300_000)
      const seen: Array<number> = []
      const onProgress = (n: number) => Effect.sync(() => void seen.push(n))
      const chunks = [bytes.subarray(0, 1), bytes.subarray(1, 100_000), bytes.subarray(100_000)]
      const a = yield* blobs.addStream(Stream.fromIterable(chunks), { onProgress })
      assert.deepStrictEqual(seen, [1, 100_000, 300_000])
      assert.strictEqual(toHex(a.hash), toHex(blake3(bytes)))
      const file = join(freshDir(), "in.bin")
      writeFileSync(file, bytes)
      seen.length = 0
      const b = yield* blobs.addFile(file, { onProgress })
      assert.strictEqual(toHex(b.hash), toHex(a.hash))
      assert.strictEqual(seen.at(-1), 300_000)
      assert.strictEqual(yield* tagOf(blobs.addFile(join(freshDir(), "missing.bin"))), "BlobStoreError")
    }))

    test("a failing source stores nothing", Effect.gen(function*() {
      const blobs = yield* Blobs.Blobs
      const source = Stream.concat(Stream.make(utf8("partial content")), Stream.fail("boom" as const))
      assert.deepStrictEqual(yield* Effect.flip(blobs.addStream(source)), "boom")
      assert.deepStrictEqual(yield* collect(blobs.list), [])
    }))

    test("partial: write, reopen at the offset, commit", Effect.gen(function*() {
      const blobs = yield* Blobs.Blobs
      const bytes = random(100_000)
      const hash = hashOf(bytes)
      const first = yield* blobs.openPartial(hash, bytes.length)
      assert.strictEqual(yield* first.offset, 0)
      yield* first.write(bytes.subarray(0, 30_000))
      yield* first.write(bytes.subarray(30_000, 40_000))
      assert.strictEqual(yield* first.offset, 40_000)
      assert.strictEqual(yield* blobs.status(hash), "Incomplete")
      assert.strictEqual(yield* tagOf(first.commit), "BlobCorrupt") // incomplete: kept
      assert.strictEqual(yield* blobs.status(hash), "Incomplete")

      const second = yield* blobs.openPartial(hash, bytes.length)
      assert.strictEqual(yield* second.offset, 40_000)
      // The first handle is superseded.
      assert.strictEqual(yield* tagOf(first.write(bytes.subarray(40_000, 41_000))), "BlobStoreError")
      yield* second.write(bytes.subarray(40_000))
      assert.deepStrictEqual(yield* second.commit, { hash, size: bytes.length })
      assert.strictEqual(yield* blobs.status(hash), "Complete")
      assert.isTrue(equals(yield* blobs.read(hash), bytes))
      // Committing again, or opening a Complete blob, succeeds without doing anything.
      assert.deepStrictEqual(yield* second.commit, { hash, size: bytes.length })
      const again = yield* blobs.openPartial(hash, bytes.length)
      assert.strictEqual(yield* again.offset, bytes.length)
      yield* again.discard
      assert.deepStrictEqual(yield* again.commit, { hash, size: bytes.length })
      assert.strictEqual(yield* blobs.status(hash), "Complete")
    }))

    test("partial: wrong bytes fail the commit and are discarded", Effect.gen(function*() {
      const blobs = yield* Blobs.Blobs
      const bytes = random(5000)
      const hash = hashOf(bytes)
      const partial = yield* blobs.openPartial(hash, 5000)
      const wrong = bytes.slice()
      wrong[4000] = wrong[4000]! ^ 1
      yield* partial.write(wrong)
      const error = yield* Effect.flip(partial.commit)
      assert.strictEqual(error._tag, "BlobCorrupt")
      assert.strictEqual(yield* blobs.status(hash), "Missing")
      assert.deepStrictEqual(yield* collect(blobs.list), [])
      // A fresh attempt starts at 0.
      const retry = yield* blobs.openPartial(hash, 5000)
      assert.strictEqual(yield* retry.offset, 0)
      yield* retry.write(bytes)
      yield* retry.commit
      assert.isTrue(yield* blobs.has(hash))
    }))

    test("partial: bytes beyond the announced size are rejected and discarded", Effect.gen(function*() {
      const blobs = yield* Blobs.Blobs
      const bytes = random(1000)
      const hash = hashOf(bytes)
      const partial = yield* blobs.openPartial(hash, 1000)
      yield* partial.write(bytes.subarray(0, 900))
      assert.strictEqual(yield* tagOf(partial.write(random(101))), "BlobCorrupt")
      assert.strictEqual(yield* blobs.status(hash), "Missing")
      // Another announced size for the same hash starts over.
      const a = yield* blobs.openPartial(hash, 1000)
      yield* a.write(bytes.subarray(0, 10))
      const b = yield* blobs.openPartial(hash, 999)
      assert.strictEqual(yield* b.offset, 0)
      assert.strictEqual((yield* blobs.info(hash)).pipe(Option.map((i) => i.size), Option.getOrElse(() => -1)), 999)
    }))

    test("maxBlobSize is enforced", Effect.gen(function*() {
      const blobs = yield* Blobs.Blobs
      assert.strictEqual(yield* tagOf(blobs.addBytes(random(1001))), "BlobTooLarge")
      const stream = Stream.fromIterable([random(600), random(600)])
      assert.strictEqual(yield* tagOf(blobs.addStream(stream)), "BlobTooLarge")
      const file = join(freshDir(), "big")
      writeFileSync(file, random(1001))
      assert.strictEqual(yield* tagOf(blobs.addFile(file)), "BlobTooLarge")
      assert.strictEqual(yield* tagOf(blobs.openPartial(hashOf(utf8("x")), 1001)), "BlobTooLarge")
      assert.deepStrictEqual(yield* collect(blobs.list), [])
      assert.strictEqual((yield* blobs.addBytes(random(1000))).size, 1000)
    }), { maxBlobSize: 1000 })

    test("gc deletes unreferenced blobs, keeps referenced and tagged ones", Effect.gen(function*() {
      const blobs = yield* Blobs.Blobs
      const [referenced, unreferenced] = yield* addAll(blobs, [utf8("referenced"), utf8("unreferenced")])
      const held = yield* Scope.make()
      const tagged = yield* blobs.addBytes(utf8("tagged")).pipe(Scope.extend(held))
      const protectedOnly = hashOf(utf8("protected before it is stored"))
      yield* blobs.protect(protectedOnly).pipe(Scope.extend(held))
      const partialBytes = utf8("partial")
      const partial = yield* blobs.openPartial(hashOf(partialBytes), partialBytes.length)
      yield* partial.write(partialBytes.subarray(0, 3))

      const failing = Stream.concat(Stream.make(referenced!.hash), Stream.fail("docs gone"))
      const aborted = yield* Effect.flip(blobs.gc(failing))
      assert.strictEqual(aborted._tag, "GcAborted")
      const defect = yield* Effect.flip(blobs.gc(Stream.die("crash")))
      assert.strictEqual(defect._tag, "GcAborted")
      assert.strictEqual((yield* collect(blobs.list)).length, 4)

      const report = yield* blobs.gc(Stream.make(referenced!.hash, EMPTY))
      assert.deepStrictEqual(report, { deleted: 2, kept: 2 })
      assert.isTrue(yield* blobs.has(referenced!.hash))
      assert.isTrue(yield* blobs.has(tagged.hash))
      assert.isFalse(yield* blobs.has(unreferenced!.hash))
      assert.strictEqual(yield* blobs.status(partial.hash), "Missing")

      // The tag ends with its scope; a protect of something stored later covers it too.
      yield* blobs.addBytes(utf8("protected before it is stored")).pipe(Effect.scoped)
      assert.deepStrictEqual(yield* blobs.gc(Stream.make(referenced!.hash)), { deleted: 0, kept: 3 })
      yield* Scope.close(held, Exit.void)
      assert.deepStrictEqual(yield* blobs.gc(Stream.make(referenced!.hash)), { deleted: 2, kept: 1 })
      assert.isFalse(yield* blobs.has(tagged.hash))
    }))

    test("collect keeps what the registered protectors yield; without a protector it deletes nothing", Effect.gen(function*() {
      const blobs = yield* Blobs.Blobs
      const [referenced, unreferenced] = yield* addAll(blobs, [utf8("referenced"), utf8("unreferenced")])
      assert.strictEqual((yield* Effect.flip(blobs.collect))._tag, "GcAborted")
      assert.strictEqual((yield* collect(blobs.list)).length, 2)
      const docs = yield* Scope.make()
      yield* blobs.addGcProtector(Stream.make(referenced!.hash)).pipe(Scope.extend(docs))
      yield* blobs.addGcProtector(Stream.empty).pipe(Scope.extend(docs))
      assert.deepStrictEqual(yield* blobs.collect, { deleted: 1, kept: 1 })
      assert.isTrue(yield* blobs.has(referenced!.hash))
      assert.isFalse(yield* blobs.has(unreferenced!.hash))
      // A protector ends with its scope.
      yield* Scope.close(docs, Exit.void)
      assert.strictEqual((yield* Effect.flip(blobs.collect))._tag, "GcAborted")
      assert.isTrue(yield* blobs.has(referenced!.hash))
    }))

    test("a blob tagged while gc reads the protected set is kept, though its tag is gone when gc deletes", Effect.gen(function*() {
      const blobs = yield* Blobs.Blobs
      const racing = utf8("added and referenced while the protector was read")
      // The add (tag, store, untag) happens after the protector passed the place its entry lands in.
      const protector = Stream.execute(Effect.scoped(blobs.addBytes(racing)))
      assert.deepStrictEqual(yield* blobs.gc(protector), { deleted: 0, kept: 1 })
      assert.isTrue(yield* blobs.has(hashOf(racing)))
      // The next run, with the add long done, deletes it (nothing protects it now).
      assert.deepStrictEqual(yield* blobs.gc(Stream.empty), { deleted: 1, kept: 0 })
    }))

    test("gcInterval: collect runs after each interval on the clock", Effect.gen(function*() {
      const blobs = yield* Blobs.Blobs
      yield* blobs.addGcProtector(Stream.empty)
      const first = yield* Effect.scoped(blobs.addBytes(utf8("first")))
      yield* settle // the scheduler's fiber starts and sleeps on the clock
      yield* TestClock.adjust("9999 millis")
      yield* settle
      assert.isTrue(yield* blobs.has(first.hash), "no run before the interval")
      yield* TestClock.adjust("1 millis")
      yield* until(Effect.map(blobs.has(first.hash), (has) => !has))
      const second = yield* Effect.scoped(blobs.addBytes(utf8("second")))
      yield* TestClock.adjust("9 seconds")
      yield* settle
      assert.isTrue(yield* blobs.has(second.hash))
      yield* TestClock.adjust("1 seconds")
      yield* until(Effect.map(blobs.has(second.hash), (has) => !has))
    }), { gcInterval: "10 seconds" })

    test("no gcInterval: nothing runs on its own", Effect.gen(function*() {
      const blobs = yield* Blobs.Blobs
      yield* blobs.addGcProtector(Stream.empty)
      const added = yield* Effect.scoped(blobs.addBytes(utf8("kept")))
      yield* TestClock.adjust("1 days")
      yield* settle
      assert.isTrue(yield* blobs.has(added.hash))
    }))

    test("concurrent writers of one partial are serialised", Effect.gen(function*() {
      const blobs = yield* Blobs.Blobs
      const bytes = random(64 * 1024)
      const hash = hashOf(bytes)
      const partial = yield* blobs.openPartial(hash, bytes.length)
      const pieces = Array.from({ length: 16 }, (_, i) => bytes.subarray(i * 4096, (i + 1) * 4096))
      // Writes from several fibers land whole and in call order.
      yield* Effect.forEach(pieces, (p) => partial.write(p), { concurrency: "unbounded", discard: true })
      yield* partial.commit
      assert.isTrue(equals(yield* blobs.read(hash), bytes))
    }))

    it.effect.prop(
      "addStream: any content in any chunking reads back with its BLAKE3 hash",
      [fc.uint8Array({ maxLength: 3000 }), fc.array(fc.nat({ max: 3000 }), { maxLength: 8 })],
      ([content, cuts]) =>
        Effect.gen(function*() {
          const blobs = yield* Blobs.Blobs
          const points = [0, ...cuts.map((c) => Math.min(c, content.length)).sort((a, b) => a - b), content.length]
          const chunks = points.slice(1).map((end, i) => content.slice(points[i]!, end))
          const added = yield* blobs.addStream(Stream.fromIterable(chunks))
          assert.strictEqual(toHex(added.hash), toHex(blake3(content)))
          assert.strictEqual(added.size, content.length)
          assert.isTrue(equals(yield* blobs.read(added.hash), content))
          assert.isTrue(equals(concat(...(yield* collect(blobs.readStream(added.hash, { chunkSize: 1 + (cuts[0] ?? 0) })))), content))
        }).pipe(Effect.scoped, Effect.provide(makeLayer())),
      { fastCheck: { numRuns: 25 } }
    )
  })
}

// ---------------------------------------------------------------------------------------------------------------
// Disk only

describe("Blobs (disk)", () => {
  it.scoped("complete blobs and partials survive a restart", () =>
    Effect.gen(function*() {
      const dir = freshDir()
      const bytes = random(50_000)
      const hash = hashOf(bytes)
      const kept = utf8("kept across restarts")
      yield* Effect.scoped(Effect.gen(function*() {
        const blobs = yield* Blobs.Blobs
        yield* blobs.addBytes(kept)
        const partial = yield* blobs.openPartial(hash, bytes.length)
        yield* partial.write(bytes.subarray(0, 20_000))
      }).pipe(Effect.provide(diskLayer(dir))))

      yield* Effect.scoped(Effect.gen(function*() {
        const blobs = yield* Blobs.Blobs
        assert.isTrue(equals(yield* blobs.read(hashOf(kept)), kept))
        assert.strictEqual(yield* blobs.status(hash), "Incomplete")
        const partial = yield* blobs.openPartial(hash, bytes.length)
        assert.strictEqual(yield* partial.offset, 20_000)
        yield* partial.write(bytes.subarray(20_000))
        yield* partial.commit
      }).pipe(Effect.provide(diskLayer(dir))))

      yield* Effect.scoped(Effect.gen(function*() {
        const blobs = yield* Blobs.Blobs
        assert.isTrue(equals(yield* blobs.read(hash), bytes))
        assert.deepStrictEqual((yield* collect(blobs.list)).map((i) => i.status), ["Complete", "Complete"])
      }).pipe(Effect.provide(diskLayer(dir))))
    }))

  it.scoped("startup repairs the index from the files and empties tmp", () =>
    Effect.gen(function*() {
      const dir = freshDir()
      const a = utf8("renamed, index not written")
      const b = utf8("indexed, file lost")
      const c = random(300)
      yield* Effect.scoped(Effect.gen(function*() {
        const blobs = yield* Blobs.Blobs
        yield* addAll(blobs, [a, b])
        const partial = yield* blobs.openPartial(hashOf(c), 300)
        yield* partial.write(c.subarray(0, 100))
      }).pipe(Effect.provide(diskLayer(dir))))
      const hexA = toHex(hashOf(a))
      const hexB = toHex(hashOf(b))
      // Simulated crashes: a's row lost, b's file lost, a stray partial without a row, leftovers in tmp.
      yield* Effect.scoped(Effect.gen(function*() {
        const sql = yield* SqliteClient.SqliteClient
        yield* sql`DELETE FROM blobs WHERE hash = ${Buffer.from(hexA, "hex")}`
      }).pipe(Effect.provide(sqlite(dir)), Effect.orDie))
      rmSync(join(dir, "blobs", hexB.slice(0, 2), hexB))
      const stray = toHex(hashOf(utf8("stray")))
      writeFileSync(join(dir, "blobs", "partial", stray), "xx")
      writeFileSync(join(dir, "blobs", "tmp", "leftover"), "yy")

      yield* Effect.scoped(Effect.gen(function*() {
        const blobs = yield* Blobs.Blobs
        const listed = yield* collect(blobs.list)
        assert.deepStrictEqual(
          listed.map((i) => [toHex(i.hash), i.status, i.have]).sort(),
          [[hexA, "Complete", a.length], [toHex(hashOf(c)), "Incomplete", 100]].sort()
        )
        assert.isTrue(equals(yield* blobs.read(hashOf(a)), a))
        assert.strictEqual(yield* blobs.status(hashOf(b)), "Missing")
        assert.isFalse(existsSync(join(dir, "blobs", "partial", stray)))
        assert.deepStrictEqual(readdirSync(join(dir, "blobs", "tmp")), [])
      }).pipe(Effect.provide(diskLayer(dir))))
    }))

  it.scoped("a deleted file reads as not found", () => {
    const dir = freshDir()
    return Effect.gen(function*() {
      const blobs = yield* Blobs.Blobs
      const { hash } = yield* blobs.addBytes(utf8("soon gone"))
      const hex = toHex(hash)
      rmSync(join(dir, "blobs", hex.slice(0, 2), hex))
      assert.strictEqual(yield* tagOf(blobs.read(hash)), "BlobNotFound")
    }).pipe(Effect.provide(diskLayer(dir)))
  })

  it.scoped("a 100 MiB file is added with bounded memory", () => {
    const dir = freshDir()
    return Effect.gen(function*() {
      const file = join(dir, "big.bin")
      const fd = openSync(file, "w")
      const size = 100 * 1024 * 1024
      const chunk = randomBytes(1024 * 1024)
      for (let i = 0; i < 100; i++) {
        chunk.writeUInt32LE(i, 0)
        writeSync(fd, chunk)
      }
      closeSync(fd)
      const blobs = yield* Blobs.Blobs
      global.gc?.()
      const before = process.memoryUsage().rss
      let peak = before
      const { hash } = yield* blobs.addFile(file, {
        onProgress: () => Effect.sync(() => void (peak = Math.max(peak, process.memoryUsage().rss)))
      })
      const growth = (Math.max(peak, process.memoryUsage().rss) - before) / (1024 * 1024)
      assert.isBelow(growth, 50, `RSS grew by ${growth.toFixed(1)} MiB`)
      assert.strictEqual(yield* blobs.status(hash), "Complete")
      // Streamed back with bounded memory too, and the same digest.
      const { Blake3Hasher } = yield* Effect.promise(() => import("@napi-rs/blake-hash"))
      const hasher = new Blake3Hasher()
      let total = 0
      yield* Stream.runForEach(blobs.readStream(hash, { chunkSize: 1024 * 1024 }), (c) =>
        Effect.sync(() => {
          hasher.update(Buffer.from(c.buffer, c.byteOffset, c.byteLength))
          total += c.length
        }))
      assert.strictEqual(total, size)
      assert.strictEqual(hasher.digestBuffer().toString("hex"), toHex(hash))
      rmSync(file)
    }).pipe(Effect.provide(diskLayer(dir)))
  }, 60_000)
})
