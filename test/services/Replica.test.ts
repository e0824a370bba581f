/**
 * The replica actor (spec 03 §5–7, spec 01 §8–11) through its public interface, against the memory and file stores
 * and with the worker-pool and inline Crypto layers. Every test builds a fresh stack (and file).
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import { afterAll, assert, describe, it } from "@effect/vitest"
import {
  Cause,
  Chunk,
  Context,
  Deferred,
  Effect,
  Either,
  Exit,
  FastCheck as fc,
  Fiber,
  Layer,
  Option,
  Scope,
  Stream,
  TestClock,
  TestServices
} from "effect"
import { spawn } from "node:child_process"
import { randomBytes } from "node:crypto"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { blake3 } from "../../src/internal/blake3.js"
import { compare, equals, startsWith, toHex, utf8 } from "../../src/internal/bytes.js"
import { MAX_TIMESTAMP_FUTURE_SHIFT, PublicKeyCache, signEntry, verifySignedEntry } from "../../src/internal/signing.js"
import * as AuthorHeads from "../../src/schema/AuthorHeads.js"
import * as Capability from "../../src/schema/Capability.js"
import * as DownloadPolicy from "../../src/schema/DownloadPolicy.js"
import {
  compareRecords,
  EMPTY,
  Entry,
  EntryRecord,
  RecordIdentifier,
  type SignedEntry,
  signedEntryEquals,
  U64
} from "../../src/schema/Entry.js"
import type { StoreError } from "../../src/schema/Errors.js"
import type { ReplicaEvent } from "../../src/schema/Events.js"
import { Author, type AuthorId, Hash, type NamespaceId, NamespaceSecret } from "../../src/schema/Keys.js"
import { Query } from "../../src/schema/Query.js"
import * as Crypto from "../../src/services/Crypto.js"
import * as Replica from "../../src/services/Replica.js"
import * as Store from "../../src/services/Store.js"
import { entryAt, key, modelPut, tombstoneAt, withFields } from "../utils/entries.js"

// ---------------------------------------------------------------------------------------------------------------
// Fixtures

const dir = mkdtempSync(join(tmpdir(), "rangedocs-replica-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
let files = 0
const freshFile = () => join(dir, `replica-${++files}.db`)

type Stack = Layer.Layer<Replica.Replica | Store.Store, StoreError>

const STORES: ReadonlyArray<readonly [string, () => Layer.Layer<Store.Store, StoreError>]> = [
  ["memory", () => Store.layerMemory],
  ["file", () => Store.layerFile(freshFile())]
]
const CRYPTOS: ReadonlyArray<readonly [string, () => Layer.Layer<Crypto.Crypto>]> = [
  ["workers", () => Crypto.layer(1)],
  ["inline", () => Crypto.layerInline]
]
const makeStack = (store: Layer.Layer<Store.Store, StoreError>, crypto: Layer.Layer<Crypto.Crypto>): Stack =>
  Replica.layer.pipe(Layer.provideMerge(store), Layer.provide(crypto))

/**
 * The load tests (a second or so each) run on two of the four stacks, which between them have both stores and both
 * crypto kinds. On all four they took a third of the file's time.
 */
const LOAD_STACKS: ReadonlyArray<string> = ["memory, workers", "file, inline"]

const COMBOS = STORES.flatMap(([storeName, store]) =>
  CRYPTOS.map(([cryptoName, crypto]) => ({
    name: `${storeName}, ${cryptoName}`,
    stack: () => makeStack(store(), crypto()),
    load: LOAD_STACKS.includes(`${storeName}, ${cryptoName}`)
  }))
)

const PEER = new Uint8Array(32).fill(7)
const seeded = (n: number) => new Uint8Array(32).fill(n)

const content = (text: string) => {
  const bytes = utf8(text)
  return { hash: Hash.make(blake3(bytes)), len: BigInt(bytes.length) }
}

const keyText = (k: Uint8Array) => (k.every((b) => b >= 0x20 && b < 0x7f) ? Buffer.from(k).toString("latin1") : `[${[...k]}]`)
/** `key` (with `~` for a tombstone). */
const label = (e: SignedEntry) => `${keyText(e.key)}${e.isEmpty ? "~" : ""}`
const eventLabel = (e: ReplicaEvent) =>
  e._tag === "LocalInsert"
    ? `Local ${label(e.entry)}`
    : `Remote ${label(e.entry)} ${e.shouldDownload ? "download" : "skip"} ${e.remoteContentStatus}`

/** A signed entry with some of its fields replaced (signatures are kept unless replaced). */

const flipped = (bytes: Uint8Array, at = 10) => {
  const out = Uint8Array.from(bytes)
  out[at] = out[at]! ^ 0x01
  return out
}

/** An entry with an arbitrary record, signed correctly (e.g. len 0 with a non-empty hash). */
const signedRecord = (ns: NamespaceSecret, author: Author, k: string, len: bigint, hash: Uint8Array, timestamp: bigint) =>
  signEntry(
    ns,
    author,
    new Entry({
      id: new RecordIdentifier({ namespace: ns.id, author: author.id, key: key(k) }),
      record: new EntryRecord({ len: U64.make(len), hash: Hash.make(hash), timestamp: U64.make(timestamp) })
    })
  )

/** Fails the test unless `effect` fails with `tag`; returns that error. */
const expectError = <A, E extends { readonly _tag: string }, R, T extends E["_tag"]>(
  effect: Effect.Effect<A, E, R>,
  tag: T
): Effect.Effect<Extract<E, { readonly _tag: T }>, never, R> =>
  Effect.flatMap(
    Effect.either(effect),
    Either.match({
      onLeft: (e) =>
        isTagged(e, tag) ? Effect.succeed(e) : Effect.dieMessage(`expected ${tag}, got ${e._tag}: ${e}`),
      onRight: () => Effect.dieMessage(`expected ${tag}, got a success`)
    })
  )
const isTagged = <E extends { readonly _tag: string }, T extends E["_tag"]>(
  e: E,
  tag: T
): e is Extract<E, { readonly _tag: T }> => e._tag === tag

const collect = <A, E, R>(stream: Stream.Stream<A, E, R>) => Effect.map(Stream.runCollect(stream), Chunk.toArray)


const byAuthorKey = (x: SignedEntry, y: SignedEntry) => compare(x.author, y.author) || compare(x.key, y.key)

const assertSameEntries = (actual: ReadonlyArray<SignedEntry>, expected: ReadonlyArray<SignedEntry>, what = "") => {
  assert.deepStrictEqual(actual.map(label), expected.map(label), what)
  actual.forEach((e, i) => assert.isTrue(signedEntryEquals(e, expected[i]!), `${what} #${i} ${label(e)} byte-equal`))
}

/**
 * Builds `stack` in its own scope, keeps 64 writes of unique keys in flight until `acknowledged` of them succeeded,
 * then closes the layer. Every writer must end, interrupted (spec 03 §6: shutdown); returns the acknowledged entries.
 */
const writeThroughShutdown = (stack: Stack, acknowledged: number) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const replica = Context.get(yield* Layer.buildWithScope(stack, scope), Replica.Replica)
    const author = yield* replica.createAuthor
    const ns = yield* replica.createReplica()
    const enough = yield* Deferred.make<void>()
    const acked: Array<SignedEntry> = []
    let next = 0
    const writer = Effect.suspend(() => {
      const i = next++
      const { hash, len } = content(`value ${i}`)
      return replica.insertLocal(ns, author.id, utf8(`k/${i}`), hash, len)
    }).pipe(
      Effect.flatMap((o) => {
        acked.push(o.entry)
        return acked.length === acknowledged ? Deferred.succeed(enough, undefined) : Effect.void
      }),
      Effect.forever
    )
    const writers = yield* Effect.forEach(Array.from({ length: 64 }), () => Effect.fork(writer))
    yield* Deferred.await(enough)
    yield* Scope.close(scope, Exit.void)
    // Generous: the file runs at the lowest priority beside the others (vitest.shared.ts, BACKGROUND_TESTS).
    const exits = yield* Effect.forEach(writers, (f) => Effect.timeout(Fiber.await(f), "30 seconds"), {
      concurrency: "unbounded"
    })
    for (const exit of exits) {
      assert.isTrue(Exit.isFailure(exit) && Cause.isInterruptedOnly(exit.cause), "the writer was interrupted")
    }
    return { ns, acked }
  })

/** The replica with one author and one fresh document, and helpers bound to them. */
const harness = (options?: Replica.OpenOptions) =>
  Effect.gen(function*() {
    const replica = yield* Replica.Replica
    const store = yield* Store.Store
    const author = yield* replica.createAuthor
    const ns = yield* replica.createReplica(options)
    const secret = yield* replica.exportSecretKey(ns)
    const put = (k: string | Uint8Array, text = "value", who: AuthorId = author.id) => {
      const { hash, len } = content(text)
      return replica.insertLocal(ns, who, key(k), hash, len)
    }
    const list = (q: Query = Query.all()) => collect(replica.getMany(ns, q))
    /** Subscribes now; `until(k)` reads the events up to the first one at key `k` (the sentinel). */
    const listen = Effect.map(replica.subscribe(ns), (stream) => ({
      stream,
      until: (k: string) =>
        collect(Stream.takeUntil(stream, (e) => keyText(e.entry.key) === k)).pipe(
          Effect.map((events) => events.map(eventLabel))
        )
    }))
    const exact = (k: string | Uint8Array, who: AuthorId = author.id, includeEmpty = false) =>
      replica.getExact(ns, who, key(k), includeEmpty)
    return { replica, store, author, ns, secret, put, list, listen, exact }
  })

// ---------------------------------------------------------------------------------------------------------------
// The shared suite

for (const combo of COMBOS) {
  describe(`Replica (${combo.name})`, () => {
    /** A second, independent node (another actor on its own store), built in the test's scope. */
    const otherNode = Effect.map(Layer.build(combo.stack()), (ctx) => Context.get(ctx, Replica.Replica))
    const test = <A, E>(
      title: string,
      body: (
        other: typeof otherNode
      ) => Effect.Effect<A, E, Replica.Replica | Store.Store | Scope.Scope | TestServices.TestServices>
    ) => it.effect(title, () => body(otherNode).pipe(Effect.scoped, Effect.provide(combo.stack())))
    /** A load test: defined on the stacks marked `load` only (see COMBOS); the others do not have it at all. */
    const loadTest: typeof test = (title, body) => {
      if (combo.load) test(title, body)
    }
    /** A group of load tests only: not defined where they are not (vitest refuses an empty suite). */
    const loadDescribe = (title: string, body: () => void) => {
      if (combo.load) describe(title, body)
    }

    describe("open and close (spec 03 §6)", () => {
      test("createReplica opens one handle; handles are counted; sync is a sticky OR", () =>
        Effect.gen(function*() {
          const { ns, replica } = yield* harness()
          const state = () => Effect.map(replica.state(ns), (s) => `${s.handles}:${s.sync}:${s.subscribers}`)
          assert.strictEqual(yield* state(), "1:false:0")
          yield* replica.open(ns)
          assert.strictEqual(yield* state(), "2:false:0")
          yield* replica.open(ns, { sync: true })
          assert.strictEqual(yield* state(), "3:true:0")
          yield* replica.open(ns, { sync: false })
          assert.strictEqual(yield* state(), "4:true:0", "a later open cannot turn sync off")
          for (const left of [3, 2, 1]) {
            assert.isFalse(yield* replica.close(ns))
            assert.strictEqual(yield* state(), `${left}:true:0`)
          }
          assert.isTrue(yield* replica.close(ns), "the last handle")
          yield* expectError(replica.state(ns), "ReplicaNotOpen")
          assert.isTrue(yield* replica.close(ns), "closing a replica that is not open")
          yield* replica.open(ns)
          assert.strictEqual(yield* state(), "1:false:0", "a fresh open starts over")
          yield* replica.setSync(ns, true)
          assert.strictEqual(yield* state(), "1:true:0")
          const synced = yield* replica.createReplica({ sync: true })
          const syncedState = yield* replica.state(synced)
          assert.isTrue(syncedState.handles === 1 && syncedState.sync)
        }))

      test("an unknown namespace: open → ReplicaNotFound, close → true, reads → ReplicaNotOpen", () =>
        Effect.gen(function*() {
          const replica = yield* Replica.Replica
          const unknown = NamespaceSecret.generate().id
          const notFound = yield* expectError(replica.open(unknown), "ReplicaNotFound")
          assert.isTrue(equals(notFound.namespace, unknown))
          yield* expectError(replica.open(unknown, { sync: true }), "ReplicaNotFound")
          assert.isTrue(yield* replica.close(unknown))
          yield* expectError(replica.state(unknown), "ReplicaNotOpen")
          assert.deepStrictEqual(yield* replica.listReplicas, [])
        }))

      test("operations on a closed replica fail with ReplicaNotOpen", () =>
        Effect.gen(function*() {
          const { ns, replica, author, put, exact, secret } = yield* harness({ sync: true })
          yield* put("a")
          assert.isTrue(yield* replica.close(ns))
          const notOpen = [
            yield* expectError(put("b"), "ReplicaNotOpen"),
            yield* expectError(replica.deletePrefix(ns, author.id, utf8("a")), "ReplicaNotOpen"),
            yield* expectError(exact("a"), "ReplicaNotOpen"),
            yield* expectError(collect(replica.getMany(ns, Query.all())), "ReplicaNotOpen"),
            yield* expectError(replica.state(ns), "ReplicaNotOpen"),
            yield* expectError(replica.setSync(ns, true), "ReplicaNotOpen"),
            yield* expectError(replica.capability(ns), "ReplicaNotOpen"),
            yield* expectError(Effect.scoped(replica.subscribe(ns)), "ReplicaNotOpen"),
            yield* expectError(replica.exportSecretKey(ns), "ReplicaNotOpen"),
            yield* expectError(replica.getSyncPeers(ns), "ReplicaNotOpen"),
            yield* expectError(replica.insertRemote(ns, entryAt(secret, author, "r", 1n), PEER, "Complete"), "ReplicaNotOpen"),
            yield* expectError(replica.insertRemoteMany(ns, [], PEER), "ReplicaNotOpen")
          ]
          for (const e of notOpen) assert.isTrue(equals(e.namespace, ns), e._tag)
          // The data is still there once reopened.
          yield* replica.open(ns)
          assert.isTrue(Option.isSome(yield* exact("a")))
        }))
    })

    describe("insertLocal (spec 01 §10)", () => {
      test("returns the signed entry and the removed count", () =>
        Effect.gen(function*() {
          const { put, exact, author, ns, secret } = yield* harness()
          const first = yield* put("a/b", "one")
          assert.strictEqual(first.removed, 0)
          const e = first.entry
          assert.isTrue(equals(e.namespace, ns) && equals(e.author, author.id) && keyText(e.key) === "a/b")
          assert.strictEqual(toHex(e.contentHash), toHex(content("one").hash))
          assert.strictEqual(e.contentLen, 3n)
          assert.strictEqual(verifySignedEntry(new PublicKeyCache(), e), "ok")
          assert.isTrue(signedEntryEquals(e, signEntry(secret, author, e.entry)), "the same bytes as signEntry")
          assert.strictEqual((yield* put("a/c")).removed, 0)
          assert.strictEqual((yield* put("a")).removed, 2, "a/b and a/c are older and below a")
          const last = yield* put("a", "two")
          assert.strictEqual(last.removed, 1)
          const stored = yield* exact("a")
          assert.isTrue(Option.isSome(stored) && signedEntryEquals(stored.value, last.entry))
        }))

      test("EntryIsEmpty for len 0 or the empty hash, before any other check", () =>
        Effect.gen(function*() {
          const { replica, ns, author, store } = yield* harness()
          const { hash } = content("x")
          const attempts = (target: NamespaceId, who: AuthorId) => [
            replica.insertLocal(target, who, utf8("k"), hash, 0n),
            replica.insertLocal(target, who, utf8("k"), EMPTY, 5n),
            replica.insertLocal(target, who, utf8("k"), EMPTY, 0n)
          ]
          for (const attempt of attempts(ns, author.id)) yield* expectError(attempt, "EntryIsEmpty")
          const readOnly = NamespaceSecret.generate().id
          yield* replica.importNamespace(new Capability.Read({ id: readOnly }))
          yield* replica.open(readOnly)
          for (const attempt of attempts(readOnly, author.id)) yield* expectError(attempt, "EntryIsEmpty")
          for (const attempt of attempts(ns, Author.generate().id)) yield* expectError(attempt, "EntryIsEmpty")
          for (const attempt of attempts(NamespaceSecret.generate().id, author.id)) yield* expectError(attempt, "EntryIsEmpty")
          assert.isTrue(yield* replica.close(ns))
          for (const attempt of attempts(ns, author.id)) yield* expectError(attempt, "EntryIsEmpty")
          assert.strictEqual(yield* store.count(ns), 0)
        }))

      test("ReadOnly for a Read capability", () =>
        Effect.gen(function*() {
          const { replica, author } = yield* harness()
          const other = NamespaceSecret.generate()
          const id = yield* replica.importNamespace(new Capability.Read({ id: other.id }))
          assert.isTrue(equals(id, other.id))
          yield* replica.open(id)
          const { hash, len } = content("v")
          const e1 = yield* expectError(replica.insertLocal(id, author.id, utf8("k"), hash, len), "ReadOnly")
          assert.isTrue(equals(e1.namespace, id))
          yield* expectError(replica.deletePrefix(id, author.id, utf8("k")), "ReadOnly")
          yield* expectError(replica.exportSecretKey(id), "ReadOnly")
          assert.strictEqual((yield* replica.capability(id))._tag, "Read")
          const kinds = (yield* replica.listReplicas).filter(([n]) => equals(n, id)).map(([, kind]) => kind)
          assert.deepStrictEqual(kinds, ["read"])
        }))

      test("AuthorNotFound for an unknown or deleted author", () =>
        Effect.gen(function*() {
          const { replica, ns, put, author } = yield* harness()
          const stranger = Author.generate()
          const e = yield* expectError(put("k", "v", stranger.id), "AuthorNotFound")
          assert.isTrue(equals(e.author, stranger.id))
          yield* expectError(replica.deletePrefix(ns, stranger.id, utf8("k")), "AuthorNotFound")
          yield* put("k")
          yield* replica.deleteAuthor(author.id)
          yield* expectError(put("k2"), "AuthorNotFound")
          yield* expectError(replica.deletePrefix(ns, author.id, utf8("")), "AuthorNotFound")
          yield* replica.importAuthor(author)
          assert.strictEqual((yield* put("k2")).removed, 0)
        }))

      test("NewerEntryExists when a peer with a fast clock wrote the key or a prefix", () =>
        Effect.gen(function*() {
          const { replica, ns, secret, author, put, exact, listen } = yield* harness({ sync: true })
          yield* TestClock.setTime(1_000_000)
          const now = 1_000_000_000n
          const ahead = now + 300_000_000n
          const atKey = entryAt(secret, author, "k", ahead, "from the future")
          const atPrefix = entryAt(secret, author, "p", ahead)
          assert.strictEqual(yield* replica.insertRemote(ns, atKey, PEER, "Complete"), 0)
          assert.strictEqual(yield* replica.insertRemote(ns, atPrefix, PEER, "Complete"), 0)
          const events = yield* listen
          const newer = yield* expectError(put("k"), "NewerEntryExists")
          assert.isTrue(equals(newer.namespace, ns) && equals(newer.author, author.id))
          assert.strictEqual(keyText(newer.key), "k")
          assert.strictEqual(newer.timestamp, ahead)
          const below = yield* expectError(put("p/x"), "NewerEntryExists")
          assert.strictEqual(keyText(below.key), "p")
          yield* expectError(replica.deletePrefix(ns, author.id, utf8("k")), "NewerEntryExists")
          // Another author is not blocked.
          const other = yield* replica.createAuthor
          assert.strictEqual((yield* put("k", "mine", other.id)).removed, 0)
          const kept = yield* exact("k")
          assert.isTrue(Option.isSome(kept) && signedEntryEquals(kept.value, atKey))
          // Once the clock passes the peer's, local writes win again.
          yield* TestClock.adjust("6 minutes")
          const later = yield* put("k")
          assert.strictEqual(later.removed, 1)
          assert.isTrue(later.entry.timestamp > ahead)
          yield* put("end")
          assert.deepStrictEqual(yield* events.until("end"), ["Local k", "Local k", "Local end"], "none for refused writes")
        }))

      test("timestamps strictly increase across quick writes while the clock stands still", () =>
        Effect.gen(function*() {
          const { put, replica, ns, author } = yield* harness()
          const sequential: Array<bigint> = []
          for (let i = 0; i < 30; i++) {
            sequential.push((yield* put(`s${i}`)).entry.timestamp)
            if (i % 3 === 0) sequential.push((yield* replica.deletePrefix(ns, author.id, utf8(`s${i}`))).entry.timestamp)
          }
          for (let i = 1; i < sequential.length; i++) assert.isTrue(sequential[i]! > sequential[i - 1]!, `#${i}`)
          const concurrent = yield* Effect.forEach(
            Array.from({ length: 300 }, (_, i) => i),
            (i) => (i % 5 === 0 ? replica.deletePrefix(ns, author.id, utf8(`c${i}`)) : put(`c${i}`)),
            { concurrency: "unbounded" }
          )
          const stamps = concurrent.map((o) => o.entry.timestamp)
          assert.strictEqual(new Set(stamps).size, stamps.length, "all distinct")
          assert.isTrue(stamps.every((t) => t > sequential[sequential.length - 1]!))
          // The clock stepping back does not make timestamps go back.
          yield* TestClock.setTime(10_000)
          const high = (yield* put("t")).entry.timestamp
          assert.strictEqual(high, 10_000_000n)
          yield* TestClock.setTime(5_000)
          assert.isTrue((yield* put("t")).entry.timestamp > high)
        }))
    })

    describe("deletePrefix", () => {
      test("removes the author's entries below the prefix and leaves a tombstone", () =>
        Effect.gen(function*() {
          const { replica, ns, author, put, list, exact, secret } = yield* harness()
          const other = yield* replica.createAuthor
          for (const k of ["a", "a/b", "a/c", "ab", "b"]) yield* put(k)
          yield* put("a/b", "theirs", other.id)
          const deleted = yield* replica.deletePrefix(ns, author.id, utf8("a"))
          assert.strictEqual(deleted.removed, 4, "a, a/b, a/c and ab")
          const tomb = deleted.entry
          assert.isTrue(tomb.isEmpty && tomb.contentLen === 0n && keyText(tomb.key) === "a")
          assert.strictEqual(verifySignedEntry(new PublicKeyCache(), tomb), "ok")
          assert.isTrue(signedEntryEquals(tomb, signEntry(secret, author, tomb.entry)))
          const mine = Query.author(author.id)
          assert.deepStrictEqual((yield* list(mine)).map(label), ["b"])
          assert.deepStrictEqual((yield* list(mine.withIncludeEmpty())).map(label), ["a~", "b"])
          assert.deepStrictEqual((yield* list(Query.author(other.id))).map(label), ["a/b"], "other author untouched")
          assert.isTrue(Option.isNone(yield* exact("a")))
          const stored = yield* exact("a", author.id, true)
          assert.isTrue(Option.isSome(stored) && signedEntryEquals(stored.value, tomb))
          assert.strictEqual((yield* replica.deletePrefix(ns, author.id, utf8("a"))).removed, 1, "the older tombstone")
          assert.strictEqual((yield* replica.deletePrefix(ns, author.id, utf8("zzz"))).removed, 0)
          assert.strictEqual((yield* replica.deletePrefix(ns, author.id, new Uint8Array())).removed, 3, "everything")
          assert.deepStrictEqual((yield* list(mine.withIncludeEmpty())).map(label), ["~"])
          assert.strictEqual((yield* put("a/x")).removed, 0, "newer writes below the tombstone are accepted")
          assert.deepStrictEqual((yield* list(Query.author(other.id))).map(label), ["a/b"])
        }))
    })

    describe("insertRemote (spec 01 §8, §10)", () => {
      test("SyncNotEnabled until the replica is opened with sync", () =>
        Effect.gen(function*() {
          const { replica, ns, secret, author, store } = yield* harness()
          const e = entryAt(secret, author, "k", 1n)
          const refused = yield* expectError(replica.insertRemote(ns, e, PEER, "Complete"), "SyncNotEnabled")
          assert.isTrue(equals(refused.namespace, ns))
          yield* expectError(replica.insertRemoteMany(ns, [[e, "Complete"]], PEER), "SyncNotEnabled")
          assert.strictEqual(yield* store.count(ns), 0)
          yield* replica.open(ns, { sync: true })
          assert.strictEqual(yield* replica.insertRemote(ns, e, PEER, "Complete"), 0)
          assert.strictEqual(yield* store.count(ns), 1)
        }))

      test("entries written by another node are accepted, with RemoteInsert events and the download policy", (other) =>
        Effect.gen(function*() {
          const writer = yield* other
          const author = yield* writer.createAuthor
          const ns = yield* writer.createReplica()
          const write = (k: string, text = "v") => {
            const c = content(text)
            return Effect.map(writer.insertLocal(ns, author.id, utf8(k), c.hash, c.len), (o) => o.entry)
          }
          const dl = yield* write("dl/one")
          const plain = yield* write("other")
          const gone = (yield* writer.deletePrefix(ns, author.id, utf8("gone"))).entry

          const replica = yield* Replica.Replica
          yield* replica.importNamespace(new Capability.Read({ id: ns }))
          yield* replica.open(ns, { sync: true })
          // A subscription is read once: the events are checked at the end, each decided when it was published.
          const events = yield* replica.subscribe(ns)

          // The default policy downloads everything.
          assert.strictEqual(yield* replica.insertRemote(ns, dl, PEER, "Complete"), 0)
          const onlyDl = new DownloadPolicy.NothingExcept({ filters: [new DownloadPolicy.Prefix({ bytes: utf8("dl/") })] })
          yield* replica.setDownloadPolicy(ns, onlyDl)
          const dl2 = yield* write("dl/two")
          const results = yield* replica.insertRemoteMany(
            ns,
            [[plain, "Missing"], [gone, "Incomplete"], [dl2, "Complete"]],
            PEER
          )
          assert.deepStrictEqual(results.map(Either.map((o) => o.removed)), [Either.right(0), Either.right(0), Either.right(0)])
          const notOther = new DownloadPolicy.EverythingExcept({ filters: [new DownloadPolicy.Exact({ bytes: utf8("other") })] })
          yield* replica.setDownloadPolicy(ns, notOther)
          const policy = yield* replica.getDownloadPolicy(ns)
          assert.strictEqual(policy._tag, "EverythingExcept")
          assert.strictEqual(yield* replica.insertRemote(ns, yield* write("other", "v2"), PEER, "Complete"), 1)
          assert.strictEqual(yield* replica.insertRemote(ns, yield* write("other/x"), PEER, "Missing"), 0)
          // The same entry again is refused (an equal record) and publishes nothing.
          yield* expectError(replica.insertRemote(ns, dl, PEER, "Complete"), "NewerEntryExists")
          yield* replica.insertRemote(ns, yield* write("end"), PEER, "Complete")

          const received = yield* collect(Stream.takeUntil(events, (e) => keyText(e.entry.key) === "end"))
          assert.deepStrictEqual(received.map(eventLabel), [
            "Remote dl/one download Complete",
            "Remote other skip Missing",
            "Remote gone~ skip Incomplete",
            "Remote dl/two download Complete",
            "Remote other skip Complete",
            "Remote other/x download Missing",
            "Remote end download Complete"
          ])
          for (const e of received) {
            assert.isTrue(e._tag === "RemoteInsert" && equals(e.from, PEER) && equals(e.namespace, ns))
          }
          // Byte-equal to the writer's copies.
          const mine = yield* collect(replica.getMany(ns, Query.all().withIncludeEmpty()))
          const theirs = yield* collect(writer.getMany(ns, Query.all().withIncludeEmpty()))
          assertSameEntries(mine, theirs)
        }))

      test("rejected entries are not stored and publish no event", () =>
        Effect.gen(function*() {
          const { replica, ns, secret, store, listen } = yield* harness({ sync: true })
          yield* TestClock.setTime(2_000_000)
          const now = 2_000_000_000n
          const author = Author.generate()
          const other = NamespaceSecret.generate()
          const good = entryAt(secret, author, "k", now)
          const events = yield* listen
          const insert = (e: SignedEntry) => replica.insertRemote(ns, e, PEER, "Complete")

          const foreign = yield* expectError(insert(entryAt(other, author, "k", now)), "InvalidNamespace")
          assert.isTrue(equals(foreign.namespace, ns) && equals(foreign.got, other.id))
          const badNs = yield* expectError(
            insert(withFields(good, { namespaceSignature: flipped(good.signature.namespace) })),
            "BadSignature"
          )
          assert.strictEqual(badNs.reason, "signature")
          assert.isTrue(equals(badNs.author, author.id))
          yield* expectError(insert(withFields(good, { authorSignature: flipped(good.signature.author, 40) })), "BadSignature")
          yield* expectError(insert(withFields(good, { timestamp: now + 1n })), "BadSignature")
          const badKey = yield* expectError(insert(withFields(good, { author: seeded(0) })), "BadSignature")
          assert.strictEqual(badKey.reason, "key")
          const future = now + MAX_TIMESTAMP_FUTURE_SHIFT + 1n
          const tooFar = yield* expectError(insert(entryAt(secret, author, "k", future)), "TooFarInTheFuture")
          assert.strictEqual(tooFar.timestamp, future)
          assert.strictEqual(tooFar.now, now)
          yield* expectError(insert(signedRecord(secret, author, "k", 0n, content("x").hash, now)), "InvalidEmptyEntry")
          yield* expectError(insert(signedRecord(secret, author, "k", 5n, EMPTY, now)), "InvalidEmptyEntry")
          yield* expectError(replica.insertRemote(other.id, good, PEER, "Complete"), "ReplicaNotOpen")

          assert.strictEqual(yield* store.count(ns), 0)
          assert.isTrue(Option.isNone(yield* replica.getExact(ns, author.id, utf8("k"), true)))
          assert.deepStrictEqual(yield* collect(replica.getMany(ns, Query.all().withIncludeEmpty())), [])
          // Exactly ten minutes ahead is accepted (spec 01 §8: equality passes).
          assert.strictEqual(yield* insert(entryAt(secret, author, "edge", now + MAX_TIMESTAMP_FUTURE_SHIFT)), 0)
          assert.deepStrictEqual(yield* events.until("edge"), ["Remote edge download Complete"])
        }))

      test("insertRemoteMany returns one result per entry, in order, for a mixed batch", () =>
        Effect.gen(function*() {
          const { replica, ns, secret, list, listen } = yield* harness({ sync: true })
          yield* TestClock.setTime(3_000_000)
          const now = 3_000_000_000n
          const author = Author.generate()
          const events = yield* listen
          const forged = entryAt(secret, author, "c", now)
          const batch: ReadonlyArray<SignedEntry> = [
            entryAt(secret, author, "a", now - 10n),
            entryAt(NamespaceSecret.generate(), author, "x", now),
            entryAt(secret, author, "b", now - 10n),
            withFields(forged, { namespaceSignature: flipped(forged.signature.namespace) }),
            entryAt(secret, author, "a", now - 5n, "newer"),
            entryAt(secret, author, "d", now + MAX_TIMESTAMP_FUTURE_SHIFT + 1n),
            entryAt(secret, author, "a/old", now - 7n),
            signedRecord(secret, author, "e", 0n, content("e").hash, now),
            tombstoneAt(secret, author, "b", now),
            entryAt(secret, author, "end", now)
          ]
          const results = yield* replica.insertRemoteMany(ns, batch.map((e) => [e, "Complete"] as const), PEER)
          assert.deepStrictEqual(
            results.map(Either.match({ onLeft: (e) => e._tag, onRight: (o) => `Inserted(${o.removed})` })),
            [
              "Inserted(0)",
              "InvalidNamespace",
              "Inserted(0)",
              "BadSignature",
              "Inserted(1)",
              "TooFarInTheFuture",
              "NewerEntryExists",
              "InvalidEmptyEntry",
              "Inserted(1)",
              "Inserted(0)"
            ]
          )
          results.forEach((r, i) => {
            if (Either.isRight(r)) assert.isTrue(signedEntryEquals(r.right.entry, batch[i]!), `#${i} is the entry given`)
          })
          assert.deepStrictEqual((yield* list(Query.all().withIncludeEmpty())).map(label), ["a", "b~", "end"])
          assert.deepStrictEqual(yield* events.until("end"), [
            "Remote a download Complete",
            "Remote b download Complete",
            "Remote a download Complete",
            "Remote b~ download Complete",
            "Remote end download Complete"
          ])
          assert.deepStrictEqual(yield* replica.insertRemoteMany(ns, [], PEER), [])
        }))

      loadTest("prepareRemoteMany: nothing is stored until its effect runs, then the same results as insertRemoteMany", () =>
        Effect.gen(function*() {
          const { replica, ns, secret, store } = yield* harness({ sync: true })
          const author = Author.generate()
          // Over two chunks of checks, with a forged and a foreign entry in each.
          const batch = Array.from({ length: 1100 }, (_, i) => {
            const e = entryAt(secret, author, `k/${i}`, BigInt(i + 1))
            if (i % 500 === 7) return withFields(e, { authorSignature: flipped(e.signature.author) })
            if (i % 500 === 9) return entryAt(NamespaceSecret.generate(), author, `k/${i}`, 1n)
            return e
          }).map((e) => [e, "Missing"] as const)
          const store_ = yield* replica.prepareRemoteMany(ns, batch, PEER)
          // Real time (the test clock would not move): long enough for the checks of every chunk to finish.
          yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 300)))
          assert.strictEqual(yield* store.count(ns), 0, "checked, not stored")
          const results = yield* store_
          const tags = results.map(Either.match({ onLeft: (e) => e._tag, onRight: () => "ok" }))
          assert.strictEqual(tags.length, batch.length)
          tags.forEach((t, i) => {
            const want = i % 500 === 7 ? "BadSignature" : i % 500 === 9 ? "InvalidNamespace" : "ok"
            assert.strictEqual(t, want, `#${i}`)
          })
          assert.strictEqual(yield* store.count(ns), batch.length - 6)
          // A prepared batch that is never stored leaves the store alone.
          yield* replica.prepareRemoteMany(ns, [[entryAt(secret, author, "never", 5n), "Missing"]], PEER)
          assert.strictEqual(yield* store.count(ns), batch.length - 6)
          yield* expectError(replica.prepareRemoteMany(NamespaceSecret.generate().id, [], PEER), "ReplicaNotOpen")
        }))

      loadTest("a batch larger than the inbox is applied in order", () =>
        Effect.gen(function*() {
          const { replica, ns, secret, store } = yield* harness({ sync: true })
          const author = Author.generate()
          const n = Replica.INBOX_CAPACITY + 500
          // Every entry is newer than the one before at its key (or its prefix): any reordering would refuse one.
          const batch = Array.from(
            { length: n },
            (_, i) => [entryAt(secret, author, i % 2 === 0 ? "k" : "k/sub", BigInt(i + 1)), "Complete"] as const
          )
          const results = yield* replica.insertRemoteMany(ns, batch, PEER)
          const summary = results.map(Either.match({ onLeft: (e) => e._tag, onRight: (o) => o.removed }))
          assert.deepStrictEqual(summary, Array.from({ length: n }, (_, i) => (i === 0 ? 0 : i % 2 === 0 ? 2 : 0)))
          assert.strictEqual(yield* store.count(ns), 2)
        }))

      // A load test (see COMBOS).
      if (combo.load) {
        it.effect.prop(
          "random mixed batches: every entry gets the verdict of its kind",
          [
            fc.array(
              fc.constantFrom("good", "foreign", "nsSig", "authorSig", "future", "emptyHash", "zeroLen", "badKey"),
              { maxLength: 24 }
            )
          ],
          ([kinds]) =>
            Effect.gen(function*() {
              const { replica, ns, secret, store } = yield* harness({ sync: true })
              const author = Author.generate()
              const now = 1_000n
              yield* TestClock.setTime(1)
              const make = (kind: string, i: number): readonly [SignedEntry, string] => {
                const e = entryAt(secret, author, `${kind}/${i}`, now)
                switch (kind) {
                  case "foreign":
                    return [entryAt(NamespaceSecret.generate(), author, "f", now), "InvalidNamespace"]
                  case "nsSig":
                    return [withFields(e, { namespaceSignature: flipped(e.signature.namespace, i % 64) }), "BadSignature"]
                  case "authorSig":
                    return [withFields(e, { authorSignature: flipped(e.signature.author, i % 64) }), "BadSignature"]
                  case "badKey":
                    return [withFields(e, { author: seeded(0) }), "BadSignature"]
                  case "future":
                    return [entryAt(secret, author, `f/${i}`, now + MAX_TIMESTAMP_FUTURE_SHIFT + 1n), "TooFarInTheFuture"]
                  case "emptyHash":
                    return [signedRecord(secret, author, `e/${i}`, 3n, EMPTY, now), "InvalidEmptyEntry"]
                  case "zeroLen":
                    return [signedRecord(secret, author, `z/${i}`, 0n, content("z").hash, now), "InvalidEmptyEntry"]
                  default:
                    return [e, "Inserted(0)"]
                }
              }
              const cases = kinds.map(make)
              const results = yield* replica.insertRemoteMany(ns, cases.map(([e]) => [e, "Missing"] as const), PEER)
              assert.deepStrictEqual(
                results.map(Either.match({ onLeft: (e) => e._tag, onRight: (o) => `Inserted(${o.removed})` })),
                cases.map(([, expected]) => expected)
              )
              assert.strictEqual(yield* store.count(ns), kinds.filter((k) => k === "good").length)
            }).pipe(Effect.provide(combo.stack())),
          { fastCheck: { numRuns: 12 } }
        )
      }
    })

    describe("events (spec 01 §11)", () => {
      test("LocalInsert and RemoteInsert follow the write; refused and rejected writes publish nothing", () =>
        Effect.gen(function*() {
          const { replica, ns, author, secret, put, listen } = yield* harness({ sync: true })
          const events = yield* listen
          yield* put("a")
          yield* expectError(replica.insertLocal(ns, author.id, utf8("a"), EMPTY, 0n), "EntryIsEmpty")
          yield* expectError(put("a", "v", Author.generate().id), "AuthorNotFound")
          yield* replica.deletePrefix(ns, author.id, utf8("a"))
          // 500 s ahead of the (test) clock: accepted, and newer than any local write for now.
          yield* replica.insertRemote(ns, entryAt(secret, author, "n", 500_000_000n), PEER, "Incomplete")
          yield* expectError(put("n/x"), "NewerEntryExists")
          yield* expectError(replica.insertRemote(ns, entryAt(secret, author, "n", 1n), PEER, "Complete"), "NewerEntryExists")
          const far = entryAt(secret, author, "far", 1n << 60n)
          yield* expectError(replica.insertRemote(ns, far, PEER, "Complete"), "TooFarInTheFuture")
          yield* put("end")
          assert.deepStrictEqual(yield* events.until("end"), [
            "Local a",
            "Local a~",
            "Remote n download Incomplete",
            "Local end"
          ])
        }))

      test("an event is published only once its entry is readable", () =>
        Effect.gen(function*() {
          const { replica, ns, put } = yield* harness()
          const stream = yield* replica.subscribe(ns)
          const checker = yield* stream.pipe(
            Stream.takeUntil((e) => keyText(e.entry.key) === "end"),
            Stream.mapEffect((e) => Effect.map(replica.getExact(ns, e.entry.author, e.entry.key, true), Option.isSome)),
            Stream.runCollect,
            Effect.fork
          )
          yield* Effect.forEach(Array.from({ length: 100 }, (_, i) => `k${i}`), (k) => put(k), { concurrency: 16 })
          yield* put("end")
          const seen = Chunk.toArray(yield* Fiber.join(checker))
          assert.strictEqual(seen.length, 101)
          assert.isTrue(seen.every((readable) => readable))
        }))

      test("two subscribers both receive every event; state counts subscribers", () =>
        Effect.gen(function*() {
          const { replica, ns, put } = yield* harness()
          yield* Effect.scoped(Effect.gen(function*() {
            const one = yield* replica.subscribe(ns)
            assert.strictEqual((yield* replica.state(ns)).subscribers, 1)
            const two = yield* replica.subscribe(ns)
            assert.strictEqual((yield* replica.state(ns)).subscribers, 2)
            yield* put("x")
            yield* put("y")
            const upToY = (s: typeof one) => Effect.map(collect(Stream.take(s, 2)), (es) => es.map(eventLabel))
            assert.deepStrictEqual(yield* upToY(one), ["Local x", "Local y"])
            assert.deepStrictEqual(yield* upToY(two), ["Local x", "Local y"])
          }))
          assert.strictEqual((yield* replica.state(ns)).subscribers, 0, "unsubscribed when the scope closed")
        }))

      test("a sink gets every event right after its commit, in order, alongside streams; removed with its scope", () =>
        Effect.gen(function*() {
          const { replica, ns, put } = yield* harness()
          const seen: Array<readonly [string, boolean]> = []
          yield* Effect.scoped(Effect.gen(function*() {
            // Readable when the sink runs: it is called after the commit. A failing sink does not stop the replica.
            yield* replica.subscribeSink(ns, (e) =>
              Effect.map(replica.getExact(ns, e.entry.author, e.entry.key, true).pipe(Effect.orDie), (found) => {
                seen.push([eventLabel(e), Option.isSome(found)])
              }))
            yield* replica.subscribeSink(ns, () => Effect.die("a broken sink"))
            const stream = yield* replica.subscribe(ns)
            assert.strictEqual((yield* replica.state(ns)).subscribers, 3)
            for (const k of ["a", "b", "c"]) yield* put(k)
            assert.deepStrictEqual(seen, [["Local a", true], ["Local b", true], ["Local c", true]])
            const streamed = yield* collect(Stream.take(stream, 3))
            assert.deepStrictEqual(streamed.map(eventLabel), ["Local a", "Local b", "Local c"])
          }))
          assert.strictEqual((yield* replica.state(ns)).subscribers, 0)
          yield* put("d")
          assert.strictEqual(seen.length, 3, "no event after the scope closed")
        }))

      test("no event is missed when inserting right after subscribing", () =>
        Effect.gen(function*() {
          const { replica, ns, put } = yield* harness()
          const stream = yield* replica.subscribe(ns)
          yield* Effect.all([put("p"), put("q"), put("r")], { concurrency: "unbounded" })
          const got = yield* collect(Stream.take(stream, 3))
          assert.deepStrictEqual(got.map(eventLabel).sort(), ["Local p", "Local q", "Local r"])
        }))

      test("closing the last handle ends subscriber streams, after the events already published", () =>
        Effect.gen(function*() {
          const { replica, ns, put } = yield* harness()
          yield* replica.open(ns)
          const running = yield* Effect.fork(collect(yield* replica.subscribe(ns)))
          const idle = yield* replica.subscribe(ns)
          yield* put("a")
          yield* put("b")
          assert.isFalse(yield* replica.close(ns))
          yield* Effect.yieldNow()
          assert.isTrue(Option.isNone(yield* Fiber.poll(running)), "still open: one handle left")
          assert.isTrue(yield* replica.close(ns))
          assert.deepStrictEqual((yield* Fiber.join(running)).map(eventLabel), ["Local a", "Local b"])
          // A subscriber that had not read anything yet still gets what was published before the close.
          assert.deepStrictEqual((yield* collect(idle)).map(eventLabel), ["Local a", "Local b"])
          // Reopened: a new subscription works again.
          yield* replica.open(ns)
          const again = yield* replica.subscribe(ns)
          yield* put("c")
          assert.deepStrictEqual((yield* collect(Stream.take(again, 1))).map(eventLabel), ["Local c"])
        }))
      loadTest("a subscriber that does not read holds the actor once its mailbox is full; a close does not wait for it", () =>
        Effect.gen(function*() {
          const { replica, ns, put } = yield* harness()
          yield* replica.open(ns)
          const pull = yield* replica.subscribePull(ns)
          // Concurrent writes (a group commit each batch, not a transaction per entry): only the count matters here.
          const fill = (prefix: string) =>
            Effect.forEach(Array.from({ length: Replica.EVENT_CAPACITY }, (_, i) => `${prefix}${i}`), (k) => put(k), {
              concurrency: 64,
              discard: true
            })
          yield* fill("k")
          // The next event has no room: its insert waits until the subscriber reads.
          const blocked = yield* Effect.fork(put("over"))
          yield* TestServices.provideLive(Effect.sleep("100 millis"))
          assert.isTrue(Option.isNone(yield* Fiber.poll(blocked)), "held by the full subscriber")
          assert.strictEqual((yield* pull).length, Replica.EVENT_CAPACITY)
          yield* Fiber.join(blocked)
          assert.deepStrictEqual((yield* pull).map(eventLabel), ["Local over"])
          // Full again, then closed: the close goes through and the subscription ends without its backlog.
          yield* fill("j")
          assert.isFalse(yield* replica.close(ns))
          assert.isTrue(yield* replica.close(ns))
          assert.strictEqual((yield* Effect.flip(pull))._tag, "NoSuchElementException")
        }))

      test("subscribePull: the events in order, in batches, then NoSuchElement once the replica closed", () =>
        Effect.gen(function*() {
          const { replica, ns, put } = yield* harness()
          yield* replica.open(ns)
          const pull = yield* replica.subscribePull(ns)
          assert.strictEqual((yield* replica.state(ns)).subscribers, 1)
          yield* put("a")
          yield* put("b")
          yield* put("c")
          const first = yield* pull
          assert.isAtLeast(first.length, 1)
          const seen = [...first]
          while (seen.length < 3) seen.push(...(yield* pull))
          assert.deepStrictEqual(seen.map(eventLabel), ["Local a", "Local b", "Local c"])
          yield* put("d")
          assert.isFalse(yield* replica.close(ns))
          assert.isTrue(yield* replica.close(ns))
          // What was published before the close comes first, then the end (again on every later pull).
          assert.deepStrictEqual((yield* pull).map(eventLabel), ["Local d"])
          assert.strictEqual((yield* Effect.flip(pull))._tag, "NoSuchElementException")
          assert.strictEqual((yield* Effect.flip(pull))._tag, "NoSuchElementException")
        }))
    })

    describe("capabilities", () => {
      test("importing Write over Read upgrades an open replica in place", () =>
        Effect.gen(function*() {
          const { replica, author } = yield* harness()
          const secret = NamespaceSecret.generate()
          const ns = yield* replica.importNamespace(new Capability.Read({ id: secret.id }))
          yield* replica.open(ns)
          const { hash, len } = content("v")
          yield* expectError(replica.insertLocal(ns, author.id, utf8("k"), hash, len), "ReadOnly")
          yield* expectError(replica.exportSecretKey(ns), "ReadOnly")
          assert.isTrue(equals(yield* replica.importNamespace(new Capability.Write({ secret })), ns))
          const inserted = yield* replica.insertLocal(ns, author.id, utf8("k"), hash, len)
          assert.strictEqual(verifySignedEntry(new PublicKeyCache(), inserted.entry), "ok")
          assert.strictEqual((yield* replica.state(ns)).handles, 1, "not reopened")
          assert.strictEqual((yield* replica.exportSecretKey(ns)).toSecretHex(), secret.toSecretHex())
          // Importing Read again does not downgrade.
          yield* replica.importNamespace(new Capability.Read({ id: ns }))
          assert.strictEqual((yield* replica.capability(ns))._tag, "Write")
          assert.isTrue(yield* replica.close(ns))
          yield* replica.open(ns)
          assert.strictEqual((yield* replica.capability(ns))._tag, "Write", "persisted")
          const kinds = (yield* replica.listReplicas).filter(([n]) => equals(n, ns)).map(([, kind]) => kind)
          assert.deepStrictEqual(kinds, ["write"])
        }))
    })

    describe("dropReplica", () => {
      test("refused while another handle is open; then removes entries, policy and peers", () =>
        Effect.gen(function*() {
          const { replica, ns, put, store } = yield* harness()
          yield* put("a")
          yield* put("b")
          yield* replica.setDownloadPolicy(ns, new DownloadPolicy.NothingExcept({ filters: [] }))
          yield* replica.registerUsefulPeer(ns, PEER)
          yield* replica.open(ns)
          const subscription = yield* replica.subscribe(ns)
          const refused = yield* expectError(replica.dropReplica(ns), "ReplicaNotClosed")
          assert.isTrue(equals(refused.namespace, ns))
          // Drop closes one handle first (spec 03 §6), so one is left.
          assert.strictEqual((yield* replica.state(ns)).handles, 1)
          assert.strictEqual(yield* store.count(ns), 2)
          yield* replica.dropReplica(ns)
          assert.deepStrictEqual(yield* collect(subscription), [], "subscriber streams end")
          yield* expectError(replica.open(ns), "ReplicaNotFound")
          assert.strictEqual(yield* store.count(ns), 0)
          assert.isTrue(Option.isNone(yield* store.getSyncPeers(ns)))
          assert.strictEqual((yield* replica.getDownloadPolicy(ns))._tag, "EverythingExcept", "back to the default")
          assert.isTrue(Option.isNone(yield* store.getCapability(ns)))
          assert.isFalse((yield* replica.listReplicas).some(([n]) => equals(n, ns)))
          // A replica that is not open can be dropped directly.
          const closed = yield* replica.createReplica()
          assert.isTrue(yield* replica.close(closed))
          yield* replica.dropReplica(closed)
          yield* expectError(replica.open(closed), "ReplicaNotFound")
        }))
    })

    describe("peers, policies, authors and reads", () => {
      test("registerUsefulPeer / getSyncPeers: an LRU of 5, most recent first", () =>
        Effect.gen(function*() {
          const { replica, ns } = yield* harness()
          yield* expectError(replica.registerUsefulPeer(NamespaceSecret.generate().id, PEER), "DocumentNotCreated")
          assert.isTrue(Option.isNone(yield* replica.getSyncPeers(ns)))
          for (const n of [1, 2, 3, 4, 5, 6, 7]) yield* replica.registerUsefulPeer(ns, seeded(n))
          yield* replica.registerUsefulPeer(ns, seeded(4))
          const peers = yield* replica.getSyncPeers(ns)
          assert.deepStrictEqual(Option.map(peers, (ps) => ps.map((p) => p[0])), Option.some([4, 7, 6, 5, 3]))
          assert.isTrue(yield* replica.close(ns))
          yield* replica.registerUsefulPeer(ns, seeded(9))
          yield* expectError(replica.getSyncPeers(ns), "ReplicaNotOpen")
          yield* replica.open(ns)
          const after = yield* replica.getSyncPeers(ns)
          assert.deepStrictEqual(Option.map(after, (ps) => ps.map((p) => p[0])), Option.some([9, 4, 7, 6, 5]))
        }))

      test("download policy: default, set while closed, used by the next open", () =>
        Effect.gen(function*() {
          const { replica, ns, secret, author } = yield* harness()
          assert.deepStrictEqual(yield* replica.getDownloadPolicy(ns), DownloadPolicy.defaultPolicy)
          const unknown = NamespaceSecret.generate().id
          yield* expectError(replica.setDownloadPolicy(unknown, DownloadPolicy.defaultPolicy), "DocumentNotCreated")
          assert.isTrue(yield* replica.close(ns))
          const policy = new DownloadPolicy.NothingExcept({ filters: [new DownloadPolicy.Exact({ bytes: utf8("wanted") })] })
          yield* replica.setDownloadPolicy(ns, policy)
          const back = yield* replica.getDownloadPolicy(ns)
          assert.strictEqual(back._tag, "NothingExcept")
          assert.deepStrictEqual(back.filters.map(DownloadPolicy.filterToString), ["exact:utf8:wanted"])
          yield* replica.open(ns, { sync: true })
          const stream = yield* replica.subscribe(ns)
          yield* replica.insertRemote(ns, entryAt(secret, author, "wanted", 1n), PEER, "Complete")
          yield* replica.insertRemote(ns, entryAt(secret, author, "wanted/not", 2n), PEER, "Complete")
          assert.deepStrictEqual((yield* collect(Stream.take(stream, 2))).map(eventLabel), [
            "Remote wanted download Complete",
            "Remote wanted/not skip Complete"
          ])
        }))

      test("authors: create, import, export, list, delete", () =>
        Effect.gen(function*() {
          const replica = yield* Replica.Replica
          const created = yield* replica.createAuthor
          const fixed = Author.fromSeed(seeded(42))
          assert.isTrue(equals(yield* replica.importAuthor(fixed), fixed.id))
          assert.isTrue(equals(yield* replica.importAuthor(fixed), fixed.id), "idempotent")
          assert.deepStrictEqual((yield* replica.listAuthors).map(toHex), [toHex(created.id), toHex(fixed.id)].sort())
          const exported = yield* replica.exportAuthor(fixed.id)
          assert.strictEqual(Option.map(exported, (a) => a.toSecretHex()).pipe(Option.getOrNull), fixed.toSecretHex())
          assert.isTrue(Option.isNone(yield* replica.exportAuthor(Author.generate().id)))
          yield* replica.deleteAuthor(created.id)
          yield* replica.deleteAuthor(created.id)
          assert.isTrue(Option.isNone(yield* replica.exportAuthor(created.id)))
          assert.deepStrictEqual((yield* replica.listAuthors).map(toHex), [toHex(fixed.id)])
        }))

      test("listReplicas is ascending by id, with kinds", () =>
        Effect.gen(function*() {
          const replica = yield* Replica.Replica
          const w1 = yield* replica.createReplica()
          const w2 = yield* replica.createReplica()
          const r = yield* replica.importNamespace(new Capability.Read({ id: NamespaceSecret.generate().id }))
          const expected = [[w1, "write"], [w2, "write"], [r, "read"]] as const
          assert.deepStrictEqual(
            (yield* replica.listReplicas).map(([id, kind]) => `${toHex(id)}:${kind}`),
            expected.map(([id, kind]) => `${toHex(id)}:${kind}`).sort()
          )
        }))

      test("getLatestForEachAuthor and hasNewsForUs", () =>
        Effect.gen(function*() {
          const { replica, ns, put, author } = yield* harness()
          const other = yield* replica.createAuthor
          yield* put("a")
          const mine = (yield* put("b")).entry
          const theirs = (yield* put("c", "v", other.id)).entry
          const latest = yield* replica.getLatestForEachAuthor(ns)
          const expected = [mine, theirs].sort((x, y) => compare(x.author, y.author))
          assert.deepStrictEqual(
            latest.map((l) => `${toHex(l.author)}:${l.timestamp}:${keyText(l.key)}`),
            expected.map((e) => `${toHex(e.author)}:${e.timestamp}:${keyText(e.key)}`)
          )
          const heads = (pairs: ReadonlyArray<readonly [AuthorId, bigint]>) => AuthorHeads.fromEntries(pairs)
          assert.strictEqual(yield* replica.hasNewsForUs(ns, AuthorHeads.empty), 0)
          assert.strictEqual(yield* replica.hasNewsForUs(ns, heads([[author.id, mine.timestamp]])), 0)
          assert.strictEqual(yield* replica.hasNewsForUs(ns, heads([[author.id, mine.timestamp + 1n]])), 1)
          const ahead = heads([
            [author.id, mine.timestamp + 1n],
            [other.id, theirs.timestamp + 1n],
            [Author.generate().id, 1n]
          ])
          assert.strictEqual(yield* replica.hasNewsForUs(ns, ahead), 3)
        }))

      test("flush waits for earlier writes; contentHashes sees every entry", () =>
        Effect.gen(function*() {
          const { replica, ns, author, put } = yield* harness()
          yield* replica.flush
          const writes = yield* Effect.forEach(["x", "y", "z"], (k) => put(k, `content ${k}`), { concurrency: "unbounded" })
          yield* replica.deletePrefix(ns, author.id, utf8("y"))
          yield* replica.flush
          const hashes = (yield* collect(replica.contentHashes)).map(toHex).sort()
          const expected = [...writes.filter((w) => keyText(w.entry.key) !== "y").map((w) => w.entry.contentHash), EMPTY]
          assert.deepStrictEqual(hashes, expected.map(toHex).sort())
        }))
    })

    loadDescribe("group commit under load", () => {
      test("2000 concurrent inserts (64 in flight) all succeed and are all readable", () =>
        Effect.gen(function*() {
          const { put, list } = yield* harness()
          const keys = new Set<string>()
          while (keys.size < 2000) keys.add(randomBytes(12).toString("hex"))
          const outcomes = yield* Effect.forEach([...keys], (k) => put(k), { concurrency: 64 })
          assert.isTrue(outcomes.every((o) => o.removed === 0))
          assert.strictEqual(new Set(outcomes.map((o) => o.entry.timestamp)).size, 2000)
          const stored = yield* list()
          assert.strictEqual(stored.length, 2000)
          assert.deepStrictEqual(stored.map((e) => keyText(e.key)).sort(), [...keys].sort())
        }))

      test("concurrent writes of the same keys keep exactly the newest entry per (author, key)", () =>
        Effect.gen(function*() {
          const { replica, put, list, author } = yield* harness()
          const authors = [author.id, (yield* replica.createAuthor).id, (yield* replica.createAuthor).id]
          const keys = ["k1", "k2", "x", "y/z"]
          const jobs = Array.from({ length: 600 }, (_, i) => ({ who: authors[i % 3]!, k: keys[(i >> 2) % 4]!, i }))
          const outcomes = yield* Effect.forEach(jobs, ({ i, k, who }) => put(k, `v${i}`, who), { concurrency: "unbounded" })
          const stored = yield* list()
          assert.strictEqual(stored.length, authors.length * keys.length, "one per (author, key)")
          for (const e of stored) {
            const newest = outcomes
              .filter((o) => equals(o.entry.author, e.author) && equals(o.entry.key, e.key))
              .reduce((a, b) => (a.entry.timestamp > b.entry.timestamp ? a : b))
            assert.isTrue(signedEntryEquals(e, newest.entry), label(e))
          }
          // Each (author, key) wrote 50 times: every write but the first removed exactly its predecessor.
          assert.strictEqual(outcomes.reduce((n, o) => n + o.removed, 0), 600 - authors.length * keys.length)
        }))

      test("concurrent writes and deletes with colliding prefixes agree with the rules replayed in timestamp order", () =>
        Effect.gen(function*() {
          const { replica, ns, put, list, author } = yield* harness()
          const authors = [author.id, (yield* replica.createAuthor).id]
          const keys = ["", "a", "ab", "a/b", "b", "ba", "a/bc"]
          const outcomes = yield* Effect.forEach(
            Array.from({ length: 400 }, (_, i) => i),
            (i) => {
              const who = authors[i % 2]!
              const k = keys[(i * 7 + (i >> 3)) % keys.length]!
              return i % 5 === 4 && k !== "" ? replica.deletePrefix(ns, who, utf8(k)) : put(k, `v${i}`, who)
            },
            { concurrency: 32 }
          )
          const model: Array<SignedEntry> = []
          for (const o of [...outcomes].sort((x, y) => (x.entry.timestamp < y.entry.timestamp ? -1 : 1))) {
            assert.strictEqual(modelPut(model, o.entry), o.removed, label(o.entry))
          }
          assertSameEntries(yield* list(Query.all().withIncludeEmpty()), model.sort(byAuthorKey))
        }))
    })

    describe("shutdown (spec 03 §6)", () => {
      it.live("closing the layer with writes in flight answers every caller", () =>
        Effect.gen(function*() {
          const { acked } = yield* writeThroughShutdown(combo.stack(), 300)
          assert.isTrue(acked.length >= 300)
        }))
    })

    describe("secrets", () => {
      test("no error, error message or event shows an author or namespace secret", (other) =>
        Effect.gen(function*() {
          const { replica, ns, secret, author, put, listen } = yield* harness()
          const readOnly = NamespaceSecret.generate()
          const foreign = NamespaceSecret.generate()
          const secrets = [author.toSecretHex(), secret.toSecretHex(), readOnly.toSecretHex(), foreign.toSecretHex()]
          const events = yield* listen
          yield* replica.importNamespace(new Capability.Read({ id: readOnly.id }))
          yield* replica.open(readOnly.id)
          yield* TestClock.setTime(1_000)
          const { hash, len } = content("v")
          const errors: Array<{ readonly _tag: string; readonly message: string }> = [
            yield* expectError(replica.insertLocal(ns, author.id, utf8("k"), hash, 0n), "EntryIsEmpty"),
            yield* expectError(replica.insertLocal(readOnly.id, author.id, utf8("k"), hash, len), "ReadOnly"),
            yield* expectError(replica.exportSecretKey(readOnly.id), "ReadOnly"),
            yield* expectError(put("k", "v", Author.generate().id), "AuthorNotFound"),
            yield* expectError(replica.open(foreign.id), "ReplicaNotFound"),
            yield* expectError(replica.state(foreign.id), "ReplicaNotOpen"),
            yield* expectError(replica.registerUsefulPeer(foreign.id, PEER), "DocumentNotCreated"),
            yield* expectError(replica.insertRemote(ns, entryAt(secret, author, "k", 1n), PEER, "Complete"), "SyncNotEnabled")
          ]
          yield* replica.open(ns, { sync: true })
          yield* replica.insertRemote(ns, entryAt(secret, author, "far", 500_000_000n), PEER, "Complete")
          const good = entryAt(secret, author, "k", 1n)
          const remote = (e: SignedEntry) => replica.insertRemote(ns, e, PEER, "Complete")
          errors.push(
            yield* expectError(put("far/x"), "NewerEntryExists"),
            yield* expectError(remote(entryAt(foreign, author, "k", 1n)), "InvalidNamespace"),
            yield* expectError(remote(withFields(good, { authorSignature: flipped(good.signature.author) })), "BadSignature"),
            yield* expectError(remote(entryAt(secret, author, "k", 1n << 50n)), "TooFarInTheFuture"),
            yield* expectError(remote(signedRecord(secret, author, "k", 0n, hash, 1n)), "InvalidEmptyEntry")
          )
          yield* replica.open(ns)
          errors.push(yield* expectError(replica.dropReplica(ns), "ReplicaNotClosed"))
          const node = yield* other
          yield* node.importNamespace(new Capability.Write({ secret }))
          yield* node.importAuthor(author)
          yield* node.open(ns)
          const written = yield* node.insertLocal(ns, author.id, utf8("from node"), hash, len)
          yield* replica.insertRemote(ns, written.entry, PEER, "Complete")
          yield* put("end")

          const texts = (x: unknown) => [String(x), JSON.stringify(x, jsonReplacer), Cause.pretty(Cause.fail(x))]
          for (const e of errors) {
            for (const text of [e.message, ...texts(e)]) {
              for (const s of secrets) assert.notInclude(text, s, `${e._tag}: ${text}`)
            }
          }
          const published = yield* collect(Stream.takeUntil(events.stream, (e) => keyText(e.entry.key) === "end"))
          assert.deepStrictEqual(published.map(eventLabel), [
            "Remote far download Complete",
            "Remote from node download Complete",
            "Local end"
          ])
          for (const event of published) {
            for (const text of texts(event)) for (const s of secrets) assert.notInclude(text, s, event._tag)
          }
        }))
    })
  })
}

/** JSON for errors and events: bigints as decimal, bytes as hex, so that secret bytes would show as their hex. */
const jsonReplacer = (_: string, value: unknown) =>
  typeof value === "bigint" ? value.toString() : value instanceof Uint8Array ? toHex(value) : value

// ---------------------------------------------------------------------------------------------------------------
// Persistence

describe("Replica (file) persistence", () => {
  for (const [cryptoName, crypto] of CRYPTOS) {
    it.effect(`entries, authors and capabilities survive closing the layer (${cryptoName})`, () =>
      Effect.gen(function*() {
        const path = freshFile()
        const fixed = Author.fromSeed(seeded(5))
        const readOnly = NamespaceSecret.generate().id
        const session = <A, E>(body: Effect.Effect<A, E, Replica.Replica | Store.Store | Scope.Scope>) =>
          body.pipe(Effect.scoped, Effect.provide(makeStack(Store.layerFile(path), crypto())))

        const first = yield* session(Effect.gen(function*() {
          const replica = yield* Replica.Replica
          const created = yield* replica.createAuthor
          yield* replica.importAuthor(fixed)
          const ns = yield* replica.createReplica({ sync: true })
          const secret = yield* replica.exportSecretKey(ns)
          yield* replica.importNamespace(new Capability.Read({ id: readOnly }))
          const { hash, len } = content("persisted")
          yield* Effect.forEach(
            Array.from({ length: 300 }, (_, i) => i),
            (i) => replica.insertLocal(ns, i % 2 === 0 ? created.id : fixed.id, utf8(`k/${i % 50}/${i}`), hash, len),
            { concurrency: 64 }
          )
          yield* replica.deletePrefix(ns, created.id, utf8("k/1"))
          yield* replica.insertLocal(ns, fixed.id, Uint8Array.from([0, 255]), hash, len)
          yield* replica.insertRemote(ns, entryAt(secret, Author.generate(), "remote", 1n), PEER, "Missing")
          const entries = yield* collect(replica.getMany(ns, Query.all().withIncludeEmpty()))
          return { ns, secret, created, entries }
        }))
        assert.isTrue(first.entries.length > 150)

        yield* session(Effect.gen(function*() {
          const replica = yield* Replica.Replica
          assert.deepStrictEqual((yield* replica.listAuthors).map(toHex), [toHex(first.created.id), toHex(fixed.id)].sort())
          for (const a of [first.created, fixed]) {
            const back = yield* replica.exportAuthor(a.id)
            assert.strictEqual(Option.map(back, (x) => x.toSecretHex()).pipe(Option.getOrNull), a.toSecretHex())
          }
          assert.deepStrictEqual(
            (yield* replica.listReplicas).map(([id, kind]) => `${toHex(id)}:${kind}`),
            [`${toHex(first.ns)}:write`, `${toHex(readOnly)}:read`].sort()
          )
          yield* expectError(replica.state(first.ns), "ReplicaNotOpen")
          yield* replica.open(first.ns)
          const cap = yield* replica.capability(first.ns)
          assert.isTrue(cap._tag === "Write" && cap.secret.toSecretHex() === first.secret.toSecretHex())
          const entries = yield* collect(replica.getMany(first.ns, Query.all().withIncludeEmpty()))
          assertSameEntries(entries, first.entries)
          // Writes go on with the stored author and capability.
          yield* TestClock.setTime(10_000_000)
          const { hash, len } = content("again")
          const again = yield* replica.insertLocal(first.ns, fixed.id, utf8("k/1/1"), hash, len)
          assert.strictEqual(verifySignedEntry(new PublicKeyCache(), again.entry), "ok")
        }))
      }))

    it.live(`every write acknowledged before the layer closed is in the file (${cryptoName})`, () =>
      Effect.gen(function*() {
        const path = freshFile()
        const { acked, ns } = yield* writeThroughShutdown(makeStack(Store.layerFile(path), crypto()), 500)
        yield* Effect.gen(function*() {
          const replica = yield* Replica.Replica
          yield* replica.open(ns)
          const stored = yield* collect(replica.getMany(ns, Query.all()))
          assert.isTrue(stored.length >= acked.length)
          for (const e of acked) {
            const back = yield* replica.getExact(ns, e.author, e.key)
            assert.isTrue(Option.isSome(back) && signedEntryEquals(back.value, e), label(e))
          }
        }).pipe(Effect.scoped, Effect.provide(makeStack(Store.layerFile(path), crypto())))
      }))
  }
})

// ---------------------------------------------------------------------------------------------------------------
// Crash safety

const ROOT = fileURLToPath(new URL("../..", import.meta.url))

/** Runs test/utils/crash-writer.ts on `path` and kills it with SIGKILL ~300 ms after its first commit. */
const crashWriter = (path: string) =>
  Effect.acquireRelease(
    Effect.sync(() =>
      spawn(process.execPath, ["--import", "tsx", "test/utils/crash-writer.ts", path], {
        cwd: ROOT,
        stdio: ["ignore", "pipe", "pipe"]
      })
    ),
    (child) => Effect.sync(() => void (child.exitCode === null && child.signalCode === null && child.kill("SIGKILL")))
  ).pipe(
    Effect.tap((child) =>
      Effect.async<void, string>((resume) => {
        let stdout = ""
        let stderr = ""
        let done = false
        const finish = (result: Effect.Effect<void, string>) => {
          if (!done) resume(result)
          done = true
        }
        child.stdout.on("data", (chunk: Buffer) => {
          stdout += chunk.toString()
          if (stdout.includes("ready")) finish(Effect.void)
        })
        child.stderr.on("data", (chunk: Buffer) => void (stderr += chunk.toString()))
        child.on("exit", (code) => finish(Effect.fail(`writer exited (${code}) before it was ready: ${stderr}`)))
      })
    ),
    Effect.tap(() => Effect.sleep("300 millis")),
    Effect.flatMap((child) =>
      Effect.async<NodeJS.Signals | null>((resume) => {
        if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.succeed(child.signalCode))
        child.on("exit", (_, signal) => resume(Effect.succeed(signal)))
        child.kill("SIGKILL")
      })
    )
  )

describe("Replica (file) crash safety", () => {
  it.live("a writer killed mid-flight leaves a consistent database", () =>
    Effect.gen(function*() {
      const path = freshFile()
      assert.strictEqual(yield* Effect.scoped(crashWriter(path)), "SIGKILL")

      yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const store = yield* Store.Store
        const check = yield* sql<{ integrity_check: string }>`PRAGMA integrity_check`
        assert.deepStrictEqual(check.map((r) => r.integrity_check), ["ok"])
        assert.strictEqual((yield* store.listAuthors).length, 2)
        const namespaces = yield* store.listNamespaces
        assert.strictEqual(namespaces.length, 1)
        const ns = namespaces[0]![0]
        const entries = yield* collect(store.getMany(ns, Query.all().withIncludeEmpty()))
        assert.isTrue(entries.length > 0, "the first commit survived")
        // The insert rule as an invariant: no stored entry lies below (or at) a stored prefix at least as new.
        for (const e of entries) {
          for (const p of entries) {
            if (p === e || !equals(p.author, e.author) || !startsWith(e.key, p.key)) continue
            assert.isTrue(
              compareRecords(p.record, e.record) < 0,
              `${label(p)}@${p.timestamp} blocks or should have removed ${label(e)}@${e.timestamp}`
            )
          }
        }
      }).pipe(Effect.provide(Store.layer.pipe(Layer.provideMerge(SqliteClient.layer({ filename: path })))))
    }), 30_000)
})

describe("Replica with a crypto pool that fails", () => {
  it.effect("prepareRemoteMany: a check that dies fails the store step instead of leaving it waiting", () =>
    Effect.gen(function*() {
      let calls = 0
      // The second chunk's verification dies (as when a worker is lost); the first one succeeds.
      const dying = Layer.succeed(Crypto.Crypto, Crypto.Crypto.of({
        signEntries: (requests) => Effect.sync(() => requests.map((r) => signEntry(r.namespace, r.author, r.entry))),
        verifyEntries: (cache, entries) =>
          ++calls === 2
            ? Effect.dieMessage("crypto worker exited")
            : Effect.sync(() => entries.map((e) => verifySignedEntry(cache, e)))
      }))
      const exit = yield* Effect.gen(function*() {
        const { replica, ns, secret } = yield* harness({ sync: true })
        const author = Author.generate()
        const batch = Array.from({ length: 700 }, (_, i) => [entryAt(secret, author, `k/${i}`, BigInt(i + 1)), "Missing"] as const)
        const store = yield* replica.prepareRemoteMany(ns, batch, PEER)
        // Without the fix this waits forever (the test times out).
        return yield* Effect.exit(store)
      }).pipe(Effect.provide(makeStack(Store.layerMemory, dying)))
      assert.isTrue(Exit.isFailure(exit) && Cause.isDie(exit.cause), `died: ${Exit.isFailure(exit) ? Cause.pretty(exit.cause) : "succeeded"}`)
    }))
})
