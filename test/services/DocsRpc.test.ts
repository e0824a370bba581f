import { assert, describe, it } from "@effect/vitest"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import { RpcClient, RpcSerialization } from "@effect/rpc"
import {
  Chunk,
  Context,
  Deferred,
  Duration,
  Effect,
  Either,
  Exit,
  Fiber,
  Layer,
  Option,
  Redacted,
  Ref,
  Scope,
  Stream,
  TestClock
} from "effect"
import { spawnSync } from "node:child_process"
import * as diagnostics from "node:diagnostics_channel"
import * as http from "node:http"
import type * as net from "node:net"
import { Packr, Unpackr } from "msgpackr"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { randomBytes } from "node:crypto"
import { concatAll as concatBytes, equals, utf8 } from "../../src/internal/bytes.js"
import { Read } from "../../src/schema/Capability.js"
import { type ApiError, DocsError } from "../../src/schema/DocsErrors.js"
import { EverythingExcept, NothingExcept, Prefix } from "../../src/schema/DownloadPolicy.js"
import { OpenState } from "../../src/schema/Events.js"
import { Author, Hash, NamespaceSecret } from "../../src/schema/Keys.js"
import * as LiveEvent from "../../src/schema/LiveEvent.js"
import { Query } from "../../src/schema/Query.js"
import { BLOB_READ_MAX, CONTENT_REPLY_MAX, DocsRpcs, REQUEST_BODY_MAX, SetOutcome, UPLOAD_CHUNK_MAX } from "../../src/schema/Rpc.js"
import * as Blobs from "../../src/services/Blobs.js"
import * as Docs from "../../src/services/Docs.js"
import * as DocsRpc from "../../src/services/DocsRpc.js"
import { REPLY_END_GRACE } from "../../src/services/DocsRpcClient.js"
import { entryAt } from "../utils/entries.js"
import { eventually, record, startMemoryNode, startPersistentNode, type TestNode } from "../utils/nodes.js"

const str = (b: Uint8Array) => new TextDecoder().decode(b)

/** A temp directory, removed with the scope. */
const tempDir = Effect.acquireRelease(
  Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "rangedocs-rpc-"))),
  (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
)

/** Serves `node` over RPC (127.0.0.1, a free port) for the scope. */
const serve = (node: TestNode, options: DocsRpc.ServerOptions = {}) =>
  Layer.build(DocsRpc.layerServer(options).pipe(Layer.provide(Layer.succeedContext(node.context)))).pipe(
    Effect.orDie,
    Effect.map((ctx) => Context.get(ctx, DocsRpc.RpcServerInfo))
  )

/** An RPC client of `server` for the scope. */
const connect = (server: DocsRpc.ServerInfo) =>
  Effect.map(Layer.build(DocsRpc.layerClient(server)), (ctx) => Context.get(ctx, Docs.Docs))

/** A memory node, its RPC server and a client of it. */
const served = Effect.gen(function*() {
  const node = yield* startMemoryNode()
  const server = yield* serve(node)
  const client = yield* connect(server)
  return { node, server, client }
})

/** Counts the TCP connections this process opens to `url`'s port for the scope (Node's "net.client.socket" channel). */
const countConnections = (url: string) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const port = Number(new URL(url).port)
      let connections = 0
      const onSocket = (message: unknown) => {
        const socket = (message as { readonly socket: net.Socket }).socket
        socket.once("connect", () => {
          if (socket.remotePort === port) connections++
        })
      }
      diagnostics.subscribe("net.client.socket", onSocket)
      return { connections: () => connections, onSocket }
    }),
    ({ onSocket }) => Effect.sync(() => diagnostics.unsubscribe("net.client.socket", onSocket))
  )

/** The failure of `effect`, which must fail. */
const failure = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.flip(effect)

const assertError = (error: { readonly _tag: string; readonly message: string }, tag: string, message?: string) => {
  assert.strictEqual(error._tag, tag, `expected ${tag}, got ${error._tag}: ${error.message}`)
  if (message !== undefined) assert.strictEqual(error.message, message)
}

/** Every item of a stream that must end (within 5 s). */
const collect = <A, E>(stream: Stream.Stream<A, E>) =>
  Stream.runCollect(stream).pipe(
    Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => new DocsError({ message: "stream did not end" }) }),
    Effect.map(Chunk.toArray)
  )

const insertRemoteOf = (key: string) => (e: LiveEvent.LiveEvent): e is LiveEvent.InsertRemote =>
  e._tag === "InsertRemote" && str(e.entry.id.key) === key

const hasId = (ids: ReadonlyArray<Uint8Array>, id: Uint8Array) => ids.some((x) => equals(x, id))

describe("DocsRpc", () => {
  it.scopedLive("authors over RPC", () =>
    Effect.gen(function*() {
      const { client } = yield* served
      const first = yield* client.authorGetDefault
      const authors = yield* collect(client.authorList)
      assert.isTrue(hasId(authors, first), "the default author is listed")

      const created = yield* client.authorCreate
      assert.isTrue(hasId(yield* collect(client.authorList), created))
      const exported = yield* client.authorExport(created)
      assert.isTrue(Option.isSome(exported) && equals(exported.value.id, created), "export gives the secret")
      assert.isTrue(Option.isNone(yield* client.authorExport(Author.generate().id)))

      const outside = Author.generate()
      const imported = yield* client.authorImport(outside)
      assert.isTrue(equals(imported, outside.id))
      assert.isTrue(equals(yield* client.authorImport(outside), outside.id), "import is idempotent")

      yield* client.authorSetDefault(created)
      assert.isTrue(equals(yield* client.authorGetDefault, created))
      assertError(
        yield* failure(client.authorSetDefault(Author.generate().id)),
        "AuthorNotExists",
        "The author does not exist"
      )
      assertError(
        yield* failure(client.authorDelete(created)),
        "DefaultAuthorDelete",
        "Deleting the default author is not supported"
      )
      yield* client.authorDelete(imported)
      yield* client.authorDelete(Author.generate().id)
      const after = yield* collect(client.authorList)
      assert.isFalse(hasId(after, imported), "deleted author is gone")
      assert.isTrue(hasId(after, created) && hasId(after, first))
    }))

  it.scopedLive("blobs over RPC: list, a read in pieces of at most BLOB_READ_MAX, export with progress, gc by the documents' references", () =>
    Effect.gen(function*() {
      const { client, node } = yield* served
      const author = yield* client.authorGetDefault
      const docId = yield* client.create
      const big = new Uint8Array(randomBytes(2 * BLOB_READ_MAX + 123))
      const kept = yield* client.setStream(docId, author, utf8("big"), Stream.make(big))
      const old = (yield* client.set(docId, author, utf8("k"), utf8("old value"))).entry.contentHash
      yield* client.set(docId, author, utf8("k"), utf8("new value"))

      const listed = yield* collect(client.blobList)
      const item = listed.find((b) => equals(b.hash, kept.entry.contentHash))
      assert.deepStrictEqual(item && [item.size, item.have, item.status], [big.length, big.length, "Complete"])

      const pieces = yield* collect(client.blobRead(kept.entry.contentHash))
      assert.deepStrictEqual(pieces.map((p) => p.length), [BLOB_READ_MAX, BLOB_READ_MAX, 123])
      assert.isTrue(equals(concatBytes(pieces), big))
      const tail = yield* collect(client.blobRead(kept.entry.contentHash, { offset: big.length - 5, chunkSize: 2 }))
      assert.isTrue(equals(concatBytes(tail), big.subarray(big.length - 5)))
      const middle = yield* collect(client.blobRead(kept.entry.contentHash, { offset: 10, length: BLOB_READ_MAX + 1 }))
      assert.deepStrictEqual(middle.map((p) => p.length), [BLOB_READ_MAX, 1])
      assert.isTrue(equals(concatBytes(middle), big.subarray(10, 10 + BLOB_READ_MAX + 1)))
      assertError(yield* failure(Stream.runDrain(client.blobRead(Hash.make(new Uint8Array(32).fill(7))))), "BlobNotFound")

      const dir = yield* tempDir
      const seen: Array<readonly [number, number]> = []
      yield* client.exportFile(kept.entry.contentHash, `${dir}/out.bin`, (bytes, size) =>
        Effect.sync(() => void seen.push([bytes, size])))
      assert.deepStrictEqual(seen.at(-1), [big.length, big.length])

      const report = yield* client.blobGc
      assert.strictEqual(report.deleted, 1)
      assert.isFalse(yield* Context.get(node.context, Blobs.Blobs).has(old), "the replaced content is deleted")
      assert.isTrue(yield* Context.get(node.context, Blobs.Blobs).has(kept.entry.contentHash))
      const current = Option.getOrThrow(yield* client.getExact(docId, utf8("k"), author, false))
      assert.strictEqual(str(yield* client.readContent(current.contentHash)), "new value")
    }))

  it.scopedLive("a client's calls share one connection: a blob read in pieces and the calls around it", () =>
    Effect.gen(function*() {
      const { server } = yield* served
      const counted = yield* countConnections(server.url)
      const client = yield* connect(server)
      const author = yield* client.authorGetDefault
      const docId = yield* client.create
      const big = new Uint8Array(randomBytes(3 * BLOB_READ_MAX + 1))
      const set = yield* client.setStream(docId, author, utf8("big"), Stream.make(big))
      const pieces = yield* collect(client.blobRead(set.entry.contentHash))
      assert.strictEqual(pieces.length, 4)
      assert.isTrue(equals(concatBytes(pieces), big))
      yield* client.nodeStatus
      // Thirteen calls, one after another, took thirteen connections when each call's reply was aborted after its
      // Exit. Kept open, one connection serves them, two when a call starts while the last bytes of the previous
      // reply are still being read.
      assert.isAtMost(counted.connections(), 2)
    }))

  it.scoped("a reply that does not end after its Exit is dropped after REPLY_END_GRACE; the call itself returns at once", () =>
    Effect.gen(function*() {
      // A server that answers BlobGc's Exit and then holds the reply open, as a broken or hostile node could.
      const closed: Array<boolean> = []
      const server = yield* Effect.acquireRelease(
        Effect.async<http.Server>((resume) => {
          const s = http.createServer((req, res) => {
            const body: Array<Buffer> = []
            req.on("data", (c: Buffer) => body.push(c))
            req.on("end", () => {
              const [request] = new Unpackr({ useRecords: true }).unpackMultiple(Buffer.concat(body)) as [{ readonly id: string }]
              const at = closed.push(false) - 1
              res.socket!.on("close", () => void (closed[at] = true))
              res.writeHead(200, { "content-type": "application/msgpack" })
              res.write(new Packr({ useRecords: true }).pack({
                _tag: "Exit",
                requestId: request.id,
                exit: { _tag: "Success", value: { deleted: 1, kept: 2 } }
              }))
            })
          })
          s.listen(0, "127.0.0.1", () => resume(Effect.succeed(s)))
        }),
        (s) =>
          Effect.async<void>((resume) => {
            s.close(() => resume(Effect.void))
            s.closeAllConnections()
          })
      )
      const url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/rpc`
      const raw = yield* RpcClient.make(DocsRpcs).pipe(Effect.provide(DocsRpc.layerProtocol({ url, token: Redacted.make("t") })))
      const report = yield* raw.BlobGc()
      assert.deepStrictEqual([report.deleted, report.kept], [1, 2])
      const realPause = Effect.promise(() => new Promise((r) => setTimeout(r, 50)))
      yield* realPause
      yield* TestClock.adjust(Duration.subtract(Duration.decode(REPLY_END_GRACE), Duration.millis(100)))
      yield* realPause
      assert.deepStrictEqual(closed, [false], "held open within the grace")
      yield* TestClock.adjust(Duration.millis(200))
      for (let i = 0; i < 100 && !closed[0]; i++) yield* realPause
      assert.deepStrictEqual(closed, [true], "dropped after it")
    }))

  it.scopedLive("request bodies are bounded (413, or the connection ends); `set` of a value above one chunk goes as an upload", () =>
    Effect.gen(function*() {
      const { client, server } = yield* served
      const author = yield* client.authorGetDefault
      const docId = yield* client.create
      const big = new Uint8Array(randomBytes(2 * UPLOAD_CHUNK_MAX + 5))
      const outcome = yield* client.set(docId, author, utf8("big"), big)
      assert.strictEqual(outcome.entry.contentLen, BigInt(big.length))
      assert.isTrue(equals(concatBytes(yield* collect(client.blobRead(outcome.entry.contentHash))), big))

      const bearer = { authorization: `Bearer ${Redacted.value(server.token)}`, "content-type": "application/msgpack" }
      const declared = yield* Effect.promise(() =>
        fetch(server.url, { method: "POST", headers: bearer, body: new Uint8Array(REQUEST_BODY_MAX + 1) }))
      assert.strictEqual(declared.status, 413)
      // Chunked (no length): read until one byte too many, then the connection ends.
      const pieces = Math.ceil((REQUEST_BODY_MAX + 1) / 65536)
      let sent = 0
      const chunked = yield* Effect.promise(() =>
        fetch(server.url, {
          method: "POST",
          headers: bearer,
          body: new ReadableStream({
            pull: (controller) => {
              if (sent++ === pieces) controller.close()
              else controller.enqueue(new Uint8Array(65536))
            }
          }),
          duplex: "half"
        } as RequestInit).then((r) => r.status, () => "refused" as const))
      assert.strictEqual(chunked, "refused", "the node ends the connection instead of answering")
      // The node still serves.
      assert.isTrue(equals(yield* client.authorGetDefault, author))

      // A value read whole (ReadContent) is at most one reply: refused above it, before the node reads it.
      assert.isTrue(equals(yield* client.readContent(outcome.entry.contentHash), big))
      const huge = yield* client.set(docId, author, utf8("huge"), new Uint8Array(CONTENT_REPLY_MAX + 1))
      const refused = yield* failure(client.readContent(huge.entry.contentHash))
      assertError(refused, "DocsError")
      assert.include(refused.message, "read it in pieces")
      const exact = yield* client.set(docId, author, utf8("exact"), new Uint8Array(CONTENT_REPLY_MAX).fill(7))
      assert.strictEqual((yield* client.readContent(exact.entry.contentHash)).length, CONTENT_REPLY_MAX)
    }))

  it.scopedLive("documents, entries and their errors over RPC", () =>
    Effect.gen(function*() {
      const { client, node } = yield* served
      const author = yield* client.authorGetDefault
      const docId = yield* client.create
      assert.deepStrictEqual(yield* client.status(docId), new OpenState({ sync: false, subscribers: 0, handles: 1 }))
      yield* client.open(docId)
      assert.strictEqual((yield* client.status(docId)).handles, 2)
      yield* client.close(docId)
      assert.strictEqual((yield* client.status(docId)).handles, 1)

      const listed = yield* collect(client.list)
      assert.isTrue(listed.some((d) => equals(d.id, docId) && d.capability === "write"), "List streams the new doc")

      // Set / ReadContent / SetHash / GetExact / Get / Del
      const entry = (yield* client.set(docId, author, utf8("a/1"), utf8("one"))).entry
      assert.strictEqual(str(entry.key), "a/1")
      assert.strictEqual(entry.contentLen, 3n)
      assert.strictEqual(str(yield* client.readContent(entry.contentHash)), "one")
      yield* client.setHash(docId, author, utf8("a/2"), entry.contentHash, 3n)
      yield* client.set(docId, author, utf8("b"), utf8("bee"))
      // The prefix rule: a write at "a" removes the author's older "a/…" entries; both calls say how many.
      yield* client.setHash(docId, author, utf8("x/1"), entry.contentHash, 3n)
      assert.strictEqual((yield* client.setHash(docId, author, utf8("x"), entry.contentHash, 3n)).removed, 1)
      assert.strictEqual((yield* client.set(docId, author, utf8("x"), utf8("again"))).removed, 1)
      yield* client.del(docId, author, utf8("x"))
      const exact = yield* client.getExact(docId, utf8("a/2"), author, false)
      assert.isTrue(Option.isSome(exact) && equals(exact.value.contentHash, entry.contentHash))
      assert.deepStrictEqual((yield* collect(client.get(docId, Query.all()))).map((e) => str(e.key)), ["a/1", "a/2", "b"])
      assert.deepStrictEqual(
        (yield* collect(client.get(docId, Query.keyPrefix(utf8("a/")).withLimit(1)))).map((e) => str(e.key)),
        ["a/1"]
      )
      assert.strictEqual(yield* client.del(docId, author, utf8("a/")), 2)
      assert.isTrue(Option.isNone(yield* client.getExact(docId, utf8("a/1"), author, false)))
      const tombstone = yield* client.getExact(docId, utf8("a/"), author, true)
      assert.isTrue(Option.isSome(tombstone) && tombstone.value.isEmpty, "the tombstone shows with includeEmpty")
      assert.deepStrictEqual((yield* collect(client.get(docId, Query.all()))).map((e) => str(e.key)), ["b"])
      assert.strictEqual(str(yield* node.docs.readContent(entry.contentHash)), "one", "same node behind the client")

      // Insert errors
      assertError(
        yield* failure(client.set(docId, author, utf8("e"), new Uint8Array())),
        "EntryIsEmpty",
        "Attempted to insert an empty entry"
      )
      assertError(
        yield* failure(client.setHash(docId, author, utf8("e"), entry.contentHash, 0n)),
        "EntryIsEmpty",
        "Attempted to insert an empty entry"
      )
      assertError(
        yield* failure(client.set(docId, Author.generate().id, utf8("k"), utf8("v"))),
        "AuthorNotFound",
        "author not found"
      )

      // Download policy (any id for get; created docs only for set)
      assert.deepStrictEqual(yield* client.getDownloadPolicy(docId), new EverythingExcept({ filters: [] }))
      const policy = new NothingExcept({ filters: [new Prefix({ bytes: utf8("keep/") })] })
      yield* client.setDownloadPolicy(docId, policy)
      const got = yield* client.getDownloadPolicy(docId)
      assert.isTrue(
        got._tag === "NothingExcept" && got.filters.length === 1 && got.filters[0]!._tag === "Prefix" &&
          str(got.filters[0]!.bytes) === "keep/"
      )
      const unknown = NamespaceSecret.generate().id
      assert.strictEqual((yield* client.getDownloadPolicy(unknown))._tag, "EverythingExcept")
      assertError(yield* failure(client.setDownloadPolicy(unknown, policy)), "DocumentNotCreated", "document not created")
      assert.isTrue(Option.isNone(yield* client.getSyncPeers(docId)), "no sync peers yet")

      // Share / StartSync / Leave
      const ticket = yield* client.share(docId, "Read", "Addresses")
      assert.isTrue(ticket.capability._tag === "Read" && equals(ticket.capability.id, docId))
      const me = yield* node.network.addr
      assert.isTrue(equals(ticket.nodes[0]!.nodeId, me.nodeId), "the ticket names our node")
      assert.isAbove(ticket.nodes[0]!.addrs.length, 0)
      assert.isTrue((yield* client.status(docId)).sync, "share starts sync")
      yield* client.leave(docId)
      assert.isFalse((yield* client.status(docId)).sync)
      yield* client.startSync(docId, [])
      assert.isTrue((yield* client.status(docId)).sync)
      yield* client.leave(docId)
      const writeTicket = yield* client.share(docId, "Write", "Addresses")
      assert.strictEqual(writeTicket.capability._tag, "Write")
      assert.isTrue(writeTicket.capability._tag === "Write" && equals(writeTicket.capability.secret.id, docId))
      yield* client.leave(docId)

      // Unknown and closed documents
      assertError(yield* failure(client.open(unknown)), "ReplicaNotFound", "Replica not found")
      assertError(yield* failure(client.startSync(unknown, [])), "ReplicaNotFound", "Replica not found")
      const other = yield* client.create
      yield* client.close(other)
      yield* client.close(other) // closing a doc that is not open succeeds
      assertError(yield* failure(client.status(other)), "ReplicaNotOpen", "replica not open")
      assertError(yield* failure(client.getExact(other, utf8("k"), author, false)), "ReplicaNotOpen", "replica not open")
      assertError(yield* failure(collect(client.get(other, Query.all()))), "ReplicaNotOpen", "replica not open")
      assertError(yield* failure(client.getSyncPeers(other)), "ReplicaNotOpen", "replica not open")
      assertError(
        yield* failure(Effect.scoped(Effect.flatMap(client.subscribe(other), collect))),
        "ReplicaNotOpen",
        "replica not open"
      )

      // Read-only documents
      const readOnlyId = NamespaceSecret.generate().id
      assert.isTrue(equals(yield* client.import(new Read({ id: readOnlyId })), readOnlyId))
      assert.isTrue((yield* collect(client.list)).some((d) => equals(d.id, readOnlyId) && d.capability === "read"))
      assertError(
        yield* failure(client.set(readOnlyId, author, utf8("k"), utf8("v"))),
        "ReadOnly",
        "Attempted to insert to read only replica"
      )
      assertError(
        yield* failure(client.share(readOnlyId, "Write", "Addresses")),
        "ReadAccessOnly",
        "Replica allows read access only."
      )

      // Drop
      yield* client.open(docId)
      assertError(yield* failure(client.drop(docId)), "ReplicaNotClosed", "replica is not closed")
      yield* client.close(docId)
      yield* client.drop(docId)
      assert.isFalse((yield* collect(client.list)).some((d) => equals(d.id, docId)), "dropped doc is gone")
      assertError(yield* failure(client.open(docId)), "ReplicaNotFound")
    }))

  it.scopedLive("files, content, node status and stats over RPC", () =>
    Effect.gen(function*() {
      const { client, node, server } = yield* served
      const dir = yield* tempDir
      const author = yield* client.authorGetDefault
      const docId = yield* client.create
      const source = path.join(dir, "in.bin")
      const content = new Uint8Array(300_000).map((_, i) => (i * 7) % 251)
      fs.writeFileSync(source, content)
      const progress: Array<number> = []
      const outcome = yield* client.importFile(docId, author, utf8("file"), source, (bytes) =>
        Effect.sync(() => void progress.push(bytes)))
      assert.strictEqual(outcome.size, content.length)
      assert.strictEqual(str(outcome.key), "file")
      assert.isAbove(progress.length, 0, "progress is reported")
      const entry = yield* client.getExact(docId, utf8("file"), author, false)
      assert.isTrue(Option.isSome(entry) && equals(entry.value.contentHash, outcome.hash))
      assert.isTrue(equals(yield* client.readContent(outcome.hash), content))

      const target = path.join(dir, "out", "nested", "copy.bin")
      yield* client.exportFile(outcome.hash, target)
      assert.isTrue(equals(fs.readFileSync(target), content), "export creates parent directories")
      assertError(yield* failure(client.importFile(docId, author, utf8("x"), path.join(dir, "missing"))), "BlobStoreError")
      assertError(yield* failure(client.readContent(Hash.make(new Uint8Array(32).fill(9)))), "BlobNotFound")

      const status = yield* client.nodeStatus
      const me = yield* node.network.addr
      assert.isTrue(equals(status.nodeId, me.nodeId))
      assert.deepStrictEqual(status.rpcAddress, Option.some(server.url))
      assert.isAbove(status.addrs.length, 0)
      const stats = yield* client.stats
      assert.isAbove(Object.keys(stats).length, 0)
      assert.isTrue(Object.values(stats).every((n) => typeof n === "number"))
    }))

  it.scopedLive("Subscribe streams events and is released on the server when the client goes away", () =>
    Effect.gen(function*() {
      const { node, server } = yield* served
      const author = yield* node.docs.authorGetDefault
      const docId = yield* node.docs.create
      const base = (yield* node.docs.status(docId)).subscribers

      const clientScope = yield* Scope.make()
      const client = yield* Scope.extend(connect(server), clientScope)
      const events = yield* Scope.extend(client.subscribe(docId), clientScope)
      const seen = yield* Scope.extend(record(events), clientScope)
      assert.strictEqual((yield* node.docs.status(docId)).subscribers, base + 1)
      yield* client.set(docId, author, utf8("k"), utf8("v"))
      const local = yield* seen.until((e): e is LiveEvent.InsertLocal => e._tag === "InsertLocal")
      assert.strictEqual(str(local.entry.id.key), "k")

      yield* Scope.close(clientScope, Exit.void)
      // The count drops when the server notices; at the latest at the next insert (spec 06 §4.2).
      yield* node.docs.set(docId, author, utf8("k2"), utf8("v2"))
      yield* eventually(Effect.map(node.docs.status(docId), (s) => s.subscribers === base), 5_000, "subscriber released")

      // Dropping the document ends a subscriber's stream (spec 06 §3 Drop).
      const client2 = yield* connect(server)
      const events2 = yield* client2.subscribe(docId)
      const drained = yield* Effect.fork(collect(events2))
      yield* client2.drop(docId)
      const rest = yield* Fiber.join(drained)
      assert.isTrue(rest.every((e) => e._tag !== "InsertRemote"))
    }))

  it.scopedLive("the plain Subscribe request of DocsRpcs streams over HTTP and ends with the client", () =>
    Effect.gen(function*() {
      const { node, server } = yield* served
      const author = yield* node.docs.authorGetDefault
      const docId = yield* node.docs.create
      const raw = yield* RpcClient.make(DocsRpcs).pipe(Effect.provide(DocsRpc.layerProtocol(server)))
      const subscription = yield* Scope.make()
      const seen = yield* Scope.extend(record(raw.Subscribe({ docId })), subscription)
      yield* eventually(Effect.map(node.docs.status(docId), (s) => s.subscribers === 1), 5_000, "subscribed")
      yield* node.docs.set(docId, author, utf8("plain"), utf8("v"))
      const local = yield* seen.until((e): e is LiveEvent.InsertLocal => e._tag === "InsertLocal")
      assert.strictEqual(str(local.entry.id.key), "plain")
      yield* Scope.close(subscription, Exit.void)
      yield* node.docs.set(docId, author, utf8("after"), utf8("v"))
      yield* eventually(Effect.map(node.docs.status(docId), (s) => s.subscribers === 0), 5_000, "released")
      // A setup error ends the stream as its failure.
      const other = NamespaceSecret.generate().id
      assertError(yield* failure(collect(raw.Subscribe({ docId: other }))), "ReplicaNotOpen", "replica not open")
    }))

  it.scopedLive("two nodes over RPC: share from one, join from the other, entries and content arrive", () =>
    Effect.gen(function*() {
      const a = yield* served
      const b = yield* served
      const authorA = yield* a.client.authorGetDefault
      const docA = yield* Docs.createDoc(a.client)
      yield* docA.setBytes(authorA, utf8("hello"), utf8("world"))
      const ticket = yield* docA.share("Write", "Addresses")

      const [docB, events] = yield* Docs.importAndSubscribe(b.client, ticket)
      const seen = yield* record(events)
      yield* seen.until(insertRemoteOf("hello"))
      const entry = yield* docB.getExact(authorA, utf8("hello"))
      assert.isTrue(Option.isSome(entry))
      if (Option.isSome(entry)) {
        yield* eventually(Effect.map(Effect.either(Docs.readContent(b.client, entry.value)), Either.isRight), 10_000, "content")
        assert.strictEqual(str(yield* Docs.readContent(b.client, entry.value)), "world")
      }
      // Live from then on: a later write arrives without another join.
      yield* docA.setBytes(authorA, utf8("later"), utf8("again"))
      yield* seen.until(insertRemoteOf("later"))
      const peerA = (yield* a.node.network.addr).nodeId
      yield* eventually(
        Effect.map(docB.getSyncPeers, (peers) => Option.isSome(peers) && hasId(peers.value, peerA)),
        10_000,
        "A registered as a sync peer of B"
      )
      const statsB = yield* b.client.stats
      assert.isAtLeast(statsB["new_entries_remote"] ?? 0, 2, "B counted the remote entries")
      assert.isAtLeast((yield* a.client.stats)["new_entries_local"] ?? 0, 1, "A counted its live local entry")
    }))

  it.scopedLive("calls without the right token are refused; other paths get 404", () =>
    Effect.gen(function*() {
      const { server } = yield* served
      const wrong = yield* connect({ url: server.url, token: Redacted.make("0".repeat(64)) })
      const refused = yield* failure(wrong.authorGetDefault)
      assertError(refused, "DocsError", "RPC: the node refused the access token (401 Unauthorized)")
      assertError(yield* failure(collect(wrong.list)), "DocsError")

      const empty = yield* connect({ url: server.url, token: Redacted.make("") })
      assert.match((yield* failure(empty.create)).message, /401/)

      // A client that sends no authorization header at all.
      const missing = yield* Layer.build(
        Layer.scoped(Docs.Docs, DocsRpc.makeClient).pipe(
          Layer.provide(Layer.scoped(
            RpcClient.Protocol,
            Effect.flatMap(HttpClient.HttpClient, (http) =>
              RpcClient.makeProtocolHttp(http.pipe(
                HttpClient.mapRequest(HttpClientRequest.prependUrl(server.url)),
                HttpClient.filterStatusOk
              )))
          )),
          Layer.provide([RpcSerialization.layerMsgPack, FetchHttpClient.layer])
        )
      ).pipe(Effect.map(Context.get(Docs.Docs)))
      const refusedToo = yield* failure(missing.create)
      assertError(refusedToo, "DocsError", "RPC: the node refused the access token (401 Unauthorized)")

      const post = (url: string, headers: Record<string, string>) =>
        Effect.promise(() => fetch(url, { method: "POST", headers, body: new Uint8Array() }))
      const bearer = { authorization: `Bearer ${Redacted.value(server.token)}` }
      assert.strictEqual((yield* post(server.url, {})).status, 401)
      assert.strictEqual((yield* post(server.url, { authorization: "Bearer nope" })).status, 401)
      assert.strictEqual((yield* post(server.url.replace(/\/rpc$/, "/other"), bearer)).status, 404)
      assert.strictEqual((yield* post(server.url.replace(/\/rpc$/, "/"), bearer)).status, 404)
      // The right token still works after the refusals.
      const good = yield* connect(server)
      assert.isAbove((yield* good.authorGetDefault).length, 0)
    }))

  it.scopedLive("/metrics: the counters in Prometheus text behind the same token; 401 without it", () =>
    Effect.gen(function*() {
      const { server } = yield* served
      const client = yield* connect(server)
      yield* Docs.createDoc(client)
      const metricsUrl = server.url.replace(/\/rpc$/, DocsRpc.METRICS_PATH)
      const get = (headers: Record<string, string>) =>
        Effect.promise(async () => {
          const response = await fetch(metricsUrl, { headers })
          return { status: response.status, type: response.headers.get("content-type"), body: await response.text() }
        })
      assert.strictEqual((yield* get({})).status, 401)
      assert.strictEqual((yield* get({ authorization: "Bearer nope" })).status, 401)
      const ok = yield* get({ authorization: `Bearer ${Redacted.value(server.token)}` })
      assert.strictEqual(ok.status, 200)
      assert.match(ok.type ?? "", /^text\/plain; version=0\.0\.4/)
      assert.include(ok.body, "# TYPE rangedocs_new_entries_local_total counter")
      assert.match(ok.body, /^rangedocs_uptime_seconds \d+$/m)
      for (const line of ok.body.split("\n").filter((l) => l !== "" && !l.startsWith("#"))) {
        assert.match(line, /^rangedocs_[a-z0-9_]+ \d+$/)
      }
    }))

  it.scopedLive("the data directory: token file 0600 reused on restart, rpc.json while running, NodeUnreachable", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const run = Effect.gen(function*() {
        const scope = yield* Scope.make()
        yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void))
        const node = yield* Scope.extend(startPersistentNode(dir), scope)
        const server = yield* Scope.extend(serve(node, { dataDir: dir }), scope)
        return { node, server, stop: Scope.close(scope, Exit.void) }
      })
      const unreachable = (where: string) =>
        Effect.gen(function*() {
          const error = yield* Effect.scoped(failure(Layer.build(DocsRpc.layerClientFromDataDir(where))))
          assertError(error, "NodeUnreachable")
          assert.include(error.message, "no rangedocs node is running")
        })

      yield* unreachable(dir)
      const first = yield* run
      const tokenFile = path.join(dir, DocsRpc.TOKEN_FILE)
      assert.strictEqual(fs.statSync(tokenFile).mode & 0o777, 0o600)
      assert.strictEqual(fs.readFileSync(tokenFile, "utf8").trim(), Redacted.value(first.server.token))
      const connection = yield* DocsRpc.readConnection(dir)
      assert.strictEqual(connection.url, first.server.url)
      assert.strictEqual(Redacted.value(connection.token), Redacted.value(first.server.token))

      const docId = yield* Effect.scoped(Effect.gen(function*() {
        const client = yield* Effect.map(Layer.build(DocsRpc.layerClientFromDataDir(dir)), Context.get(Docs.Docs))
        return yield* client.create
      }))
      yield* first.stop
      assert.isFalse(fs.existsSync(path.join(dir, DocsRpc.RPC_FILE)), "rpc.json is removed on shutdown")
      yield* unreachable(dir)

      const second = yield* run
      assert.strictEqual(Redacted.value(second.server.token), Redacted.value(first.server.token), "token reused")
      yield* Effect.scoped(Effect.gen(function*() {
        const client = yield* Effect.map(Layer.build(DocsRpc.layerClientFromDataDir(dir)), Context.get(Docs.Docs))
        assert.isTrue(hasId((yield* collect(client.list)).map((d) => d.id), docId), "documents survive the restart")
      }))
      yield* second.stop

      // A stale rpc.json (its process is gone) and an empty directory are both unreachable.
      const dead = spawnSync(process.execPath, ["-e", ""]).pid
      fs.writeFileSync(path.join(dir, DocsRpc.RPC_FILE), JSON.stringify({ url: second.server.url, pid: dead }))
      yield* unreachable(dir)
      yield* unreachable(yield* tempDir)
    }))
})

// ---------------------------------------------------------------------------------------------------------------
// The Doc handle behaves the same embedded and over RPC

const docScenario = (api: Docs.DocsService) =>
  Effect.gen(function*() {
    const dir = yield* tempDir
    const author = yield* api.authorGetDefault
    const doc = yield* Docs.createDoc(api)
    assert.deepStrictEqual(yield* doc.status, new OpenState({ sync: false, subscribers: 0, handles: 1 }))
    const again = yield* Docs.openDoc(api, doc.id)
    assert.strictEqual((yield* doc.status).handles, 2)

    const seen = yield* record(yield* doc.subscribe())
    assert.strictEqual((yield* doc.status).subscribers, 1)
    const hash = yield* doc.setBytes(author, utf8("k1"), utf8("v1"))
    const local = yield* seen.until((e): e is LiveEvent.InsertLocal => e._tag === "InsertLocal")
    assert.strictEqual(str(local.entry.id.key), "k1")
    yield* doc.setHash(author, utf8("k2"), hash, 2n)
    const k1 = yield* doc.getExact(author, utf8("k1"))
    assert.isTrue(Option.isSome(k1) && equals(k1.value.record.hash, hash))
    if (Option.isSome(k1)) assert.strictEqual(str(yield* Docs.readContent(api, k1.value)), "v1")
    assert.deepStrictEqual(Chunk.toArray(yield* Stream.runCollect(doc.getMany())).map((e) => str(e.id.key)), ["k1", "k2"])
    const one = yield* doc.getOne(Query.keyExact(utf8("k2")))
    assert.isTrue(Option.isSome(one) && str(one.value.id.key) === "k2")

    const policy = new NothingExcept({ filters: [new Prefix({ bytes: utf8("x") })] })
    yield* doc.setDownloadPolicy(policy)
    assert.strictEqual((yield* doc.getDownloadPolicy)._tag, "NothingExcept")
    assert.isTrue(Option.isNone(yield* doc.getSyncPeers))

    const ticket = yield* doc.share("Read", "Addresses")
    assert.isTrue(ticket.capability._tag === "Read" && equals(ticket.capability.id, doc.id))
    // spec 06 §4.2: live sync counts one handle and one subscriber of its own.
    assert.deepStrictEqual(yield* doc.status, new OpenState({ sync: true, subscribers: 2, handles: 3 }))
    yield* doc.leave
    assert.deepStrictEqual(yield* doc.status, new OpenState({ sync: false, subscribers: 1, handles: 2 }))
    yield* doc.startSync([])
    assert.isTrue((yield* doc.status).sync)
    yield* doc.leave

    const source = path.join(dir, "in.txt")
    fs.writeFileSync(source, "file content")
    const imported = yield* doc.importFile(author, utf8("file"), source)
    assert.strictEqual(imported.size, 12)
    const fileEntry = yield* doc.getExact(author, utf8("file"))
    assert.isTrue(Option.isSome(fileEntry))
    if (Option.isSome(fileEntry)) {
      const target = path.join(dir, "a", "b", "out.txt")
      yield* doc.exportFile(fileEntry.value, target)
      assert.strictEqual(fs.readFileSync(target, "utf8"), "file content")
    }
    assert.strictEqual(yield* doc.del(author, utf8("k")), 2)
    assert.isTrue(Option.isNone(yield* doc.getExact(author, utf8("k1"))))
    assert.isTrue(Option.isSome(yield* doc.getExact(author, utf8("k"), true)), "tombstone with includeEmpty")

    // Closed handle: every method fails locally; the other handle is unaffected.
    yield* doc.close
    assert.isTrue(doc.isClosed)
    yield* doc.close
    const closed: ReadonlyArray<Effect.Effect<unknown, ApiError>> = [
      doc.setBytes(author, utf8("k"), utf8("v")),
      doc.setHash(author, utf8("k"), hash, 2n),
      doc.del(author, utf8("k")),
      doc.getExact(author, utf8("k1")),
      Stream.runDrain(doc.getMany()),
      doc.getOne(),
      doc.share("Read"),
      doc.startSync([]),
      doc.leave,
      Effect.scoped(doc.subscribe()),
      doc.status,
      doc.setDownloadPolicy(policy),
      doc.getDownloadPolicy,
      doc.getSyncPeers,
      doc.importFile(author, utf8("f"), source),
      ...(Option.isSome(k1) ? [doc.exportFile(k1.value, path.join(dir, "never"))] : [])
    ]
    for (const call of closed) {
      assertError(yield* failure(call), "DocClosed", "document is closed")
    }
    assert.isFalse(fs.existsSync(path.join(dir, "never")))
    assert.strictEqual((yield* again.status).handles, 1)
    yield* again.close
    assertError(yield* failure(api.status(doc.id)), "ReplicaNotOpen", "replica not open")
    assertError(yield* failure(Docs.openDoc(api, NamespaceSecret.generate().id)), "ReplicaNotFound", "Replica not found")
    return doc
  })

describe("Doc handle, embedded and over RPC", () => {
  it.scopedLive("embedded", () =>
    Effect.gen(function*() {
      const node = yield* startMemoryNode()
      yield* docScenario(Context.get(node.context, Docs.Docs))
    }))

  it.scopedLive("over RPC", () =>
    Effect.gen(function*() {
      const { client } = yield* served
      yield* docScenario(client)
    }))

  it.scopedLive("a closed handle does not contact the node", () =>
    Effect.gen(function*() {
      const node = yield* startMemoryNode()
      const serverScope = yield* Scope.make()
      yield* Effect.addFinalizer(() => Scope.close(serverScope, Exit.void))
      const server = yield* Scope.extend(serve(node), serverScope)
      const client = yield* connect(server)
      const doc = yield* Docs.createDoc(client)
      yield* doc.close
      yield* Scope.close(serverScope, Exit.void)
      // The server is gone: a call that reaches for it fails as a transport error, the closed handle as DocClosed.
      const unreachable = yield* failure(client.status(doc.id))
      assertError(unreachable, "DocsError")
      assert.include(unreachable.message, "cannot reach the node")
      assertError(yield* failure(doc.status), "DocClosed", "document is closed")
      assertError(yield* failure(doc.setBytes(yield* node.docs.authorGetDefault, utf8("k"), utf8("v"))), "DocClosed")
    }))
})

describe("DocsRpc upload sessions (issue 16, finding 3)", () => {
  const ns = NamespaceSecret.generate()
  const author = Author.generate()
  const stored = entryAt(ns, author, "big", 1n)

  /** Upload sessions over a `setStream` that counts the bytes it is fed and records how its stream ended. */
  const sessions = Effect.gen(function*() {
    const fed = yield* Ref.make(0)
    const ended = yield* Deferred.make<string>()
    const uploads = yield* DocsRpc.makeUploads({
      setStream: (_docId, _authorId, _key, data) =>
        Stream.runForEach(data, (c) => Ref.update(fed, (n) => n + c.length)).pipe(
          Effect.tapBoth({
            onFailure: (e) => Deferred.succeed(ended, `failed: ${String(e)}`),
            onSuccess: () => Deferred.succeed(ended, "ended")
          }),
          Effect.zipRight(Effect.map(Ref.get(fed), (removed) => new SetOutcome({ entry: stored, removed })))
        )
    })
    return { uploads, fed, ended }
  })

  it.scoped("chunks reach the stream in order; commit returns the write's outcome", () =>
    Effect.gen(function*() {
      const { ended, fed, uploads } = yield* sessions
      const id = yield* uploads.begin(ns.id, author.id, utf8("big"))
      for (let i = 0; i < 10; i++) yield* uploads.chunk(id, new Uint8Array(1000))
      const outcome = yield* uploads.commit(id)
      assert.strictEqual(outcome.removed, 10_000)
      assert.strictEqual(yield* Ref.get(fed), 10_000)
      assert.strictEqual(yield* Deferred.await(ended), "ended")
      assert.strictEqual(yield* uploads.size, 0)
      assertError(yield* failure(uploads.chunk(id, new Uint8Array(1))), "DocsError")
    }))

  it.scoped("an upload idle for UPLOAD_IDLE expires: its stream fails (the partial blob is discarded), it is forgotten", () =>
    Effect.gen(function*() {
      const { ended, uploads } = yield* sessions
      const id = yield* uploads.begin(ns.id, author.id, utf8("big"))
      yield* uploads.chunk(id, new Uint8Array(10))
      yield* TestClock.adjust(Duration.subtract(DocsRpc.UPLOAD_IDLE, Duration.seconds(1)))
      // A chunk restarts the idle timer.
      yield* uploads.chunk(id, new Uint8Array(10))
      yield* TestClock.adjust(Duration.subtract(DocsRpc.UPLOAD_IDLE, Duration.seconds(1)))
      assert.strictEqual(yield* uploads.size, 1)
      yield* TestClock.adjust(Duration.seconds(2))
      assert.include(yield* Deferred.await(ended), "expired")
      assert.strictEqual(yield* uploads.size, 0)
      assert.include((yield* failure(uploads.commit(id))).message, "no upload")
    }))

  it.scoped("at most MAX_UPLOADS at once; abort frees one", () =>
    Effect.gen(function*() {
      const { ended, uploads } = yield* sessions
      const ids: Array<string> = []
      for (let i = 0; i < DocsRpc.MAX_UPLOADS; i++) ids.push(yield* uploads.begin(ns.id, author.id, utf8(`k${i}`)))
      assert.include((yield* failure(uploads.begin(ns.id, author.id, utf8("one more")))).message, "too many uploads")
      yield* uploads.abort(ids[0]!)
      assert.include(yield* Deferred.await(ended), "aborted")
      yield* uploads.begin(ns.id, author.id, utf8("one more"))
    }))
})
