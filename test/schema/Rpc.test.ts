import { assert, describe, it } from "@effect/vitest"
import { FetchHttpClient, HttpServer } from "@effect/platform"
import { RpcClient, RpcSchema, RpcSerialization, RpcServer } from "@effect/rpc"
import { Chunk, Effect, Either, Layer, Option, Redacted, Schema, Stream } from "effect"
import { inspect } from "node:util"
import { toHex, utf8 } from "../../src/internal/bytes.js"
import { Read, Write } from "../../src/schema/Capability.js"
import * as BlobErrors from "../../src/schema/BlobErrors.js"
import * as DocsErrors from "../../src/schema/DocsErrors.js"
import { EverythingExcept, Exact, NothingExcept, Prefix } from "../../src/schema/DownloadPolicy.js"
import { SignedEntry, U64 } from "../../src/schema/Entry.js"
import * as Errors from "../../src/schema/Errors.js"
import { OpenState } from "../../src/schema/Events.js"
import { Author, Hash, NamespaceSecret, secretSeed } from "../../src/schema/Keys.js"
import * as LiveEvent from "../../src/schema/LiveEvent.js"
import * as NetworkErrors from "../../src/schema/NetworkErrors.js"
import { NodeAddr, NodeId } from "../../src/schema/NodeAddr.js"
import { Query } from "../../src/schema/Query.js"
import {
  AuthorFromRpc,
  BLOB_READ_MAX,
  BlobListItem,
  DocListItem,
  DocsRpcs,
  GcReport,
  NodeInfo,
  SetOutcome,
  UPLOAD_CHUNK_MAX,
  UploadChunkBytes,
  UploadId
} from "../../src/schema/Rpc.js"
import * as SyncErrors from "../../src/schema/SyncErrors.js"
import { DocTicket } from "../../src/schema/Ticket.js"
import { entryAt, tombstoneAt } from "../utils/entries.js"

const wire = RpcSerialization.msgPack.unsafeMake()
const throughMsgPack = (value: unknown): unknown => {
  const bytes = wire.encode(value)
  assert.instanceOf(bytes, Uint8Array)
  const out = wire.decode(bytes as Uint8Array)
  assert.strictEqual(out.length, 1)
  return out[0]
}

/** A comparable rendering of encoded values: bytes (Uint8Array or Buffer) as hex, bigints tagged, keys sorted. */
const normalize = (u: unknown): unknown => {
  if (u instanceof Uint8Array) return `bytes:${toHex(u)}`
  if (typeof u === "bigint") return `bigint:${u}`
  if (Redacted.isRedacted(u)) throw new TypeError("a Redacted value reached the wire")
  if (Array.isArray(u)) return u.map(normalize)
  if (typeof u === "object" && u !== null) {
    return Object.fromEntries(Object.keys(u).sort().map((k) => [k, normalize((u as Record<string, unknown>)[k])]))
  }
  return u
}

const decodeWith = (schema: Schema.Schema.AnyNoContext, u: unknown): unknown => Schema.decodeUnknownSync(schema)(u)
const encodeWith = (schema: Schema.Schema.AnyNoContext, u: unknown): unknown => Schema.encodeUnknownSync(schema)(u)

/** Encode with the schema, send through msgpack, decode; the decoded value encodes to what was sent. */
const roundTrip = (schema: Schema.Schema.AnyNoContext, value: unknown): unknown => {
  const encoded = encodeWith(schema, value)
  const decoded = decodeWith(schema, throughMsgPack(encoded))
  assert.deepStrictEqual(normalize(encodeWith(schema, decoded)), normalize(encoded))
  return decoded
}

const seed = (n: number) => new Uint8Array(32).fill(n)
const ns = NamespaceSecret.fromSeed(seed(1))
const author = Author.fromSeed(seed(2))
const docId = ns.id
const authorId = author.id
const nodeId = NodeId.make(Author.fromSeed(seed(3)).id)
const MAX_U64 = U64.make((1n << 64n) - 1n)
const entry = entryAt(ns, author, "a/b", MAX_U64)
const uploadId = "0123456789abcdef0123456789abcdef"
const tombstone = tombstoneAt(ns, author, "a", 1_700_000_000_000_000n)
const node = new NodeAddr({ nodeId, addrs: ["/ip4/127.0.0.1/tcp/4001", "/ip6/::1/tcp/4001"] })
const hash = Hash.make(seed(4))

const liveEvents = [
  new LiveEvent.InsertLocal({ entry: entry.entry }),
  new LiveEvent.InsertRemote({ from: nodeId, entry: tombstone.entry, contentStatus: "Missing" }),
  new LiveEvent.ContentReady({ hash }),
  new LiveEvent.PendingContentReady(),
  new LiveEvent.NeighborUp({ peer: nodeId }),
  new LiveEvent.NeighborDown({ peer: nodeId }),
  new LiveEvent.SyncFinished({
    event: new LiveEvent.SyncEvent({
      peer: nodeId,
      origin: { _tag: "Connect", reason: "DirectJoin" },
      started: 1,
      finished: 2,
      result: { _tag: "Ok", details: new LiveEvent.SyncDetails({ entriesReceived: 3, entriesSent: 4 }) }
    })
  }),
  new LiveEvent.SyncFinished({
    event: new LiveEvent.SyncEvent({
      peer: nodeId,
      origin: { _tag: "Accept" },
      started: 1,
      finished: 2,
      result: { _tag: "Err", error: "stream reset" }
    })
  })
]

const policy = new NothingExcept({ filters: [new Prefix({ bytes: utf8("memes/") }), new Exact({ bytes: seed(9) })] })

interface Sample {
  readonly payloads: ReadonlyArray<unknown>
  readonly successes: ReadonlyArray<unknown>
}
const doc = (successes: ReadonlyArray<unknown> = [undefined]): Sample => ({ payloads: [{ docId }], successes })

const samples: Record<string, Sample> = {
  Open: doc(),
  Close: doc(),
  Status: doc([new OpenState({ sync: true, subscribers: 2, handles: 3 })]),
  List: { payloads: [undefined], successes: [new DocListItem({ id: docId, capability: "write" })] },
  Create: { payloads: [undefined], successes: [docId] },
  Drop: doc(),
  Import: {
    payloads: [{ capability: new Write({ secret: ns }) }, { capability: new Read({ id: docId }) }],
    successes: [docId]
  },
  Set: {
    payloads: [{ docId, authorId, key: utf8("a/b"), value: utf8("value") }],
    successes: [new SetOutcome({ entry, removed: 0 }), new SetOutcome({ entry: tombstone, removed: 2 })]
  },
  SetHash: {
    payloads: [{ docId, authorId, key: utf8("k"), hash, size: MAX_U64 }],
    successes: [new SetOutcome({ entry, removed: 1 })]
  },
  Get: {
    payloads: [
      { docId, query: Query.all() },
      { docId, query: Query.singleLatestPerKey().withAuthor(authorId).withKeyPrefix(utf8("a")).withLimit(5) },
      { docId, query: Query.keyExact(utf8("x")).sortBy("KeyAuthor", "Desc").withOffset(2).withIncludeEmpty() }
    ],
    successes: [entry, tombstone]
  },
  GetExact: {
    payloads: [{ docId, key: utf8("a/b"), authorId, includeEmpty: true }],
    successes: [Option.some(entry), Option.none()]
  },
  Del: { payloads: [{ docId, authorId, prefix: utf8("a/") }], successes: [0, 12] },
  StartSync: { payloads: [{ docId, peers: [node] }, { docId, peers: [] }], successes: [undefined] },
  Leave: doc(),
  Share: {
    payloads: [{ docId, mode: "Write", addrOptions: "RelayAndAddresses" }, { docId, mode: "Read", addrOptions: "Id" }],
    successes: [
      new DocTicket({ capability: new Write({ secret: ns }), nodes: [node] }),
      new DocTicket({ capability: new Read({ id: docId }), nodes: [] })
    ]
  },
  Subscribe: doc(liveEvents),
  GetDownloadPolicy: doc([policy, new EverythingExcept({ filters: [] })]),
  SetDownloadPolicy: { payloads: [{ docId, policy }], successes: [undefined] },
  GetSyncPeers: doc([Option.some([nodeId, nodeId]), Option.none()]),
  AuthorList: { payloads: [undefined], successes: [authorId] },
  AuthorCreate: { payloads: [undefined], successes: [authorId] },
  AuthorGetDefault: { payloads: [undefined], successes: [authorId] },
  AuthorSetDefault: { payloads: [{ authorId }], successes: [undefined] },
  AuthorImport: { payloads: [{ author }], successes: [authorId] },
  AuthorExport: { payloads: [{ authorId }], successes: [Option.some(author), Option.none()] },
  AuthorDelete: { payloads: [{ authorId }], successes: [undefined] },
  ImportFile: {
    payloads: [{ docId, authorId, key: utf8("f"), path: "/tmp/some file.bin" }],
    successes: [{ _tag: "Progress", bytes: 65536 }, { _tag: "Done", hash, size: 70000, key: utf8("f") }]
  },
  ExportFile: { payloads: [{ hash, path: "/tmp/out/x.bin" }], successes: [{ _tag: "Progress", bytes: 1048576, size: 3145728 }] },
  ReadContent: { payloads: [{ hash }], successes: [utf8("value"), new Uint8Array()] },
  BlobList: {
    payloads: [undefined],
    successes: [
      new BlobListItem({ hash, size: 10, have: 10, status: "Complete" }),
      new BlobListItem({ hash, size: 10, have: 4, status: "Incomplete" })
    ]
  },
  BlobRead: {
    payloads: [{ hash, offset: 0, length: BLOB_READ_MAX }, { hash, offset: 5, length: 0 }],
    successes: [utf8("value"), new Uint8Array()]
  },
  BlobGc: { payloads: [undefined], successes: [new GcReport({ deleted: 0, kept: 3 })] },
  BeginUpload: { payloads: [{ docId, authorId, key: utf8("big") }], successes: [uploadId] },
  UploadChunk: { payloads: [{ uploadId, bytes: new Uint8Array(UPLOAD_CHUNK_MAX) }], successes: [undefined] },
  CommitUpload: { payloads: [{ uploadId }], successes: [new SetOutcome({ entry, removed: 3 })] },
  AbortUpload: { payloads: [{ uploadId }], successes: [undefined] },
  NodeStatus: {
    payloads: [undefined],
    successes: [
      new NodeInfo({ nodeId, addrs: node.addrs, rpcAddress: Option.some("http://127.0.0.1:7777/rpc") }),
      new NodeInfo({ nodeId, addrs: [], rpcAddress: Option.none() })
    ]
  },
  Stats: { payloads: [undefined], successes: [{ "sync.sessions": 3, "gossip.received": 0, "bytes.in": 1.5e12 }] }
}

const errors: ReadonlyArray<DocsErrors.ApiError> = [
  new DocsErrors.DocsError({ message: "boom" }),
  new DocsErrors.ReplicaClosed({ namespace: docId }),
  new DocsErrors.ReadAccessOnly({ namespace: docId }),
  new DocsErrors.AuthorNotExists({ author: authorId }),
  new DocsErrors.DefaultAuthorDelete({ author: authorId }),
  new DocsErrors.DocClosed({ namespace: docId }),
  new DocsErrors.EntryMissingAfterInsert({ namespace: docId, author: authorId, key: utf8("k") }),
  new DocsErrors.InvalidTicket({ reason: "truncated" }),
  new Errors.ReplicaNotOpen({ namespace: docId }),
  new Errors.ReplicaNotFound({ namespace: docId }),
  new Errors.ReplicaNotClosed({ namespace: docId }),
  new Errors.SyncNotEnabled({ namespace: docId }),
  new Errors.AuthorNotFound({ author: authorId }),
  new Errors.DocumentNotCreated({ namespace: docId }),
  new Errors.ReadOnly({ namespace: docId }),
  new Errors.EntryIsEmpty({ namespace: docId }),
  new Errors.NewerEntryExists({ namespace: docId, author: authorId, key: utf8("k"), timestamp: MAX_U64 }),
  new Errors.NamespaceMismatch({ namespace: docId }),
  new Errors.InvalidNamespace({ namespace: docId, got: docId }),
  new Errors.BadSignature({ namespace: docId, author: authorId, reason: "signature" }),
  new Errors.TooFarInTheFuture({ namespace: docId, timestamp: MAX_U64, now: 1n }),
  new Errors.InvalidEmptyEntry({ namespace: docId }),
  new Errors.RunawaySession({ namespace: docId, messages: 10 }),
  new Errors.InvalidEntriesFromPeer({ namespace: docId, count: 2, first: "bad signature" }),
  new Errors.StoreError({ method: "put", cause: new Error("disk full") }),
  new BlobErrors.BlobNotFound({ hash }),
  new BlobErrors.BlobCorrupt({ hash, reason: "hash mismatch" }),
  new BlobErrors.BlobTooLarge({ size: 10, max: 5 }),
  new BlobErrors.BlobRangeError({ hash, offset: 1, length: 2, size: 1 }),
  new BlobErrors.BlobStoreError({ op: "add", reason: "EIO" }),
  new BlobErrors.GcAborted({ reason: "protect failed" }),
  new BlobErrors.DownloadFailed({ hash, attempts: 3, reason: "no provider" }),
  new SyncErrors.SyncConnectError({ peer: nodeId, reason: "timeout" }),
  new SyncErrors.RemoteAbort({ peer: nodeId, namespace: docId, reason: "NotFound" }),
  new SyncErrors.SyncRejected({ peer: nodeId, reason: "AlreadySyncing" }),
  new SyncErrors.SyncProtocolError({ peer: nodeId, reason: "bad frame" }),
  new SyncErrors.SyncCloseError({ peer: nodeId, reason: "drain timeout" }),
  new SyncErrors.SyncLimitExceeded({ peer: nodeId, namespace: docId, limit: "initParts", max: 16, got: 200_000 }),
  new SyncErrors.TooManyInvalidEntries({ peer: nodeId, namespace: docId, invalid: 1001, received: 1500, first: "BadSignature" }),
  new SyncErrors.PeerCoolingDown({ peer: nodeId, untilMs: 1_800_000_000_000 }),
  new Errors.KeyTooLong({ namespace: docId, length: 1 << 20, max: 8192 }),
  new NetworkErrors.DialError({ nodeId, reason: "refused" }),
  new NetworkErrors.DialError({ nodeId, reason: "refused", protocol: "/iroh-sync/1" }),
  new NetworkErrors.NotEd25519Peer({ peerId: "Qm…", keyType: "RSA" }),
  new NetworkErrors.NetworkError({ method: "start", cause: new Error("EADDRINUSE") }),
  new NetworkErrors.StreamError({ protocol: "/iroh-sync/1", reason: "reset" })
]

const schemasOf = (tag: string) => {
  const rpc = DocsRpcs.requests.get(tag)
  assert.isDefined(rpc, tag)
  const stream = RpcSchema.isStreamSchema(rpc!.successSchema) ? rpc!.successSchema : undefined
  return {
    payload: rpc!.payloadSchema,
    success: stream === undefined ? rpc!.successSchema : stream.success,
    error: stream === undefined ? rpc!.errorSchema : stream.failure,
    stream: stream !== undefined
  }
}

describe("DocsRpcs", () => {
  it("an upload chunk is bounded (UPLOAD_CHUNK_MAX bytes)", () => {
    const decode = Schema.decodeUnknownEither(Schema.Struct({ uploadId: UploadId, bytes: UploadChunkBytes }))
    assert.isTrue(Either.isRight(decode({ uploadId, bytes: new Uint8Array(UPLOAD_CHUNK_MAX) })))
    assert.isTrue(Either.isLeft(decode({ uploadId, bytes: new Uint8Array(UPLOAD_CHUNK_MAX + 1) })))
    assert.isTrue(Either.isLeft(decode({ uploadId: "../x", bytes: new Uint8Array(1) })))
  })

  it("has the 26 requests of spec 06 §3 plus the node's twelve; List, Get, Subscribe, AuthorList, ImportFile, ExportFile, BlobList stream", () => {
    const tags = [...DocsRpcs.requests.keys()]
    assert.deepStrictEqual(tags, Object.keys(samples))
    assert.strictEqual(tags.length, 38)
    assert.deepStrictEqual(tags.slice(0, 26), [
      "Open", "Close", "Status", "List", "Create", "Drop", "Import", "Set", "SetHash", "Get", "GetExact", "Del",
      "StartSync", "Leave", "Share", "Subscribe", "GetDownloadPolicy", "SetDownloadPolicy", "GetSyncPeers",
      "AuthorList", "AuthorCreate", "AuthorGetDefault", "AuthorSetDefault", "AuthorImport", "AuthorExport", "AuthorDelete"
    ])
    assert.deepStrictEqual(tags.filter((t) => schemasOf(t).stream), [
      "List", "Get", "Subscribe", "AuthorList", "ImportFile", "ExportFile", "BlobList"
    ])
  })

  describe("every request survives msgpack: payload, success, error", () => {
    for (const [tag, sample] of Object.entries(samples)) {
      it(tag, () => {
        const { error, payload, success } = schemasOf(tag)
        for (const p of sample.payloads) roundTrip(payload, p)
        for (const s of sample.successes) roundTrip(success, s)
        for (const e of errors) {
          const decoded = roundTrip(error, e)
          assert.strictEqual((decoded as DocsErrors.ApiError)._tag, e._tag)
          // StoreError/NetworkError have no message of their own: theirs renders the Defect cause, which decodes as an Error.
          if (!("cause" in e)) assert.strictEqual((decoded as DocsErrors.ApiError).message, e.message)
        }
      })
    }
  })

  it("ApiError covers every error sample", () => {
    assert.strictEqual(new Set(errors.map((e) => e._tag)).size, DocsErrors.ApiError.members.length)
  })

  it("decoded values are the domain classes, with bigints and bytes intact", () => {
    const got = roundTrip(schemasOf("Set").success, new SetOutcome({ entry, removed: 2 }))
    assert.instanceOf(got, SetOutcome)
    assert.instanceOf((got as SetOutcome).entry, SignedEntry)
    const e = (got as SetOutcome).entry
    assert.strictEqual(e.timestamp, MAX_U64)
    assert.strictEqual(typeof e.contentLen, "bigint")
    assert.strictEqual(toHex(e.key), toHex(utf8("a/b")))
    assert.strictEqual(toHex(e.signature.author), toHex(entry.signature.author))

    const imported = roundTrip(schemasOf("Import").payload, { capability: new Write({ secret: ns }) })
    const cap = (imported as { readonly capability: Write }).capability
    assert.instanceOf(cap, Write)
    assert.strictEqual(toHex(secretSeed(cap.secret)), toHex(seed(1)))
    assert.strictEqual(toHex(cap.id), toHex(docId))

    const exported = roundTrip(schemasOf("AuthorExport").success, Option.some(author))
    assert.isTrue(Option.isOption(exported))
    const a = Option.getOrThrow(exported as Option.Option<Author>)
    assert.instanceOf(a, Author)
    assert.strictEqual(toHex(a.id), toHex(authorId))

    const ticket = roundTrip(schemasOf("Share").success, new DocTicket({ capability: new Write({ secret: ns }), nodes: [node] }))
    assert.instanceOf(ticket, DocTicket)
    assert.deepStrictEqual((ticket as DocTicket).nodes[0]!.addrs, node.addrs)

    const policyBack = roundTrip(schemasOf("GetDownloadPolicy").success, policy)
    assert.instanceOf(policyBack, NothingExcept)
    const event = roundTrip(schemasOf("Subscribe").success, liveEvents[1])
    assert.instanceOf(event, LiveEvent.InsertRemote)
  })

  describe("msgpack findings", () => {
    it("bigint u64 values survive as bigint (msgpack uint64), up to 2^64 - 1", () => {
      for (const n of [0n, 1n, (1n << 53n) + 1n, 1n << 63n, (1n << 64n) - 1n]) {
        const back = throughMsgPack({ n }) as { readonly n: unknown }
        assert.strictEqual(back.n, n)
      }
    })

    it("Redacted does not survive (it becomes an empty map): secrets need the …FromRpc schemas", () => {
      assert.deepStrictEqual(throughMsgPack({ seed: Redacted.make(seed(1)) }), { seed: {} })
      const raw = Schema.encodeSync(Author)(author)
      assert.throws(() => Schema.decodeUnknownSync(Author)(throughMsgPack(raw)))
    })
  })

  describe("secrets", () => {
    const secretHex = toHex(seed(2))
    const leaks = (s: string) => s.includes(secretHex) || s.includes("2,2,2,2,2,2,2,2")

    it("a bad Author payload fails without quoting its bytes", () => {
      const schema: Schema.Schema.AnyNoContext = schemasOf("AuthorImport").payload
      const result = Schema.decodeUnknownEither(schema)({ author: seed(2).subarray(1) })
      assert.isTrue(Either.isLeft(result))
      if (Either.isLeft(result)) {
        assert.include(result.left.message, "Author: expected 32 bytes, got 31")
        assert.isFalse(leaks(result.left.message))
        assert.isFalse(leaks(inspect(result.left, { depth: 20 })))
      }
    })

    it("decoded secrets print redacted", () => {
      const schema = schemasOf("AuthorImport").payload
      const payload = decodeWith(schema, throughMsgPack(encodeWith(schema, { author })))
      assert.isFalse(leaks(inspect(payload, { depth: 20 })))
      assert.isFalse(leaks(JSON.stringify(payload)))
      assert.isFalse(leaks(String((payload as { readonly author: Author }).author)))
      assert.strictEqual(toHex(secretSeed((payload as { readonly author: Author }).author)), secretHex)
      const direct = Schema.decodeSync(AuthorFromRpc)(seed(2))
      assert.isFalse(leaks(inspect(direct)))
    })
  })
})

// One in-process HTTP server and client with msgpack serialization: the whole @effect/rpc stack, no sockets.
const stubHandlers = DocsRpcs.toLayer({
  Open: () => Effect.fail(new Errors.ReplicaNotFound({ namespace: docId })),
  Close: () => Effect.void,
  Status: () => Effect.succeed(new OpenState({ sync: false, subscribers: 0, handles: 1 })),
  List: () => Stream.make(new DocListItem({ id: docId, capability: "read" })),
  Create: () => Effect.succeed(docId),
  Drop: () => Effect.fail(new Errors.ReplicaNotClosed({ namespace: docId })),
  Import: ({ capability }) => Effect.succeed(capability.id),
  Set: () => Effect.succeed(new SetOutcome({ entry, removed: 1 })),
  SetHash: () => Effect.fail(new Errors.NewerEntryExists({ namespace: docId, author: authorId, key: utf8("k"), timestamp: MAX_U64 })),
  Get: () => Stream.make(entry, tombstone),
  GetExact: () => Effect.succeed(Option.some(entry)),
  Del: () => Effect.succeed(2),
  StartSync: () => Effect.void,
  Leave: () => Effect.void,
  Share: () => Effect.succeed(new DocTicket({ capability: new Write({ secret: ns }), nodes: [node] })),
  Subscribe: () => Stream.concat(Stream.fromIterable(liveEvents), Stream.fail(new Errors.ReplicaNotOpen({ namespace: docId }))),
  GetDownloadPolicy: () => Effect.succeed(policy),
  SetDownloadPolicy: () => Effect.void,
  GetSyncPeers: () => Effect.succeed(Option.none()),
  AuthorList: () => Stream.make(authorId),
  AuthorCreate: () => Effect.succeed(authorId),
  AuthorGetDefault: () => Effect.succeed(authorId),
  AuthorSetDefault: () => Effect.fail(new DocsErrors.AuthorNotExists({ author: authorId })),
  AuthorImport: ({ author }) => Effect.succeed(author.id),
  AuthorExport: () => Effect.succeed(Option.some(author)),
  AuthorDelete: () => Effect.fail(new DocsErrors.DefaultAuthorDelete({ author: authorId })),
  ImportFile: ({ key }) =>
    Stream.make({ _tag: "Progress", bytes: 3 } as const, { _tag: "Done", hash, size: 3, key } as const),
  ExportFile: () => Stream.fail(new BlobErrors.BlobNotFound({ hash })),
  BeginUpload: () => Effect.succeed(uploadId),
  UploadChunk: () => Effect.void,
  CommitUpload: () => Effect.succeed(new SetOutcome({ entry, removed: 0 })),
  AbortUpload: () => Effect.void,
  ReadContent: () => Effect.succeed(utf8("value")),
  BlobList: () => Stream.empty,
  BlobRead: () => Effect.succeed(utf8("value")),
  BlobGc: () => Effect.succeed(new GcReport({ deleted: 1, kept: 2 })),
  NodeStatus: () => Effect.succeed(new NodeInfo({ nodeId, addrs: node.addrs, rpcAddress: Option.none() })),
  Stats: () => Effect.succeed({ "sync.sessions": 1 })
})

const inProcessClient = Effect.gen(function*() {
  const web = RpcServer.toWebHandler(DocsRpcs, {
    layer: Layer.mergeAll(stubHandlers, RpcSerialization.layerMsgPack, HttpServer.layerContext)
  })
  yield* Effect.addFinalizer(() => Effect.promise(() => web.dispose()))
  const fetchViaHandler: typeof fetch = (input, init) => web.handler(new Request(input, init))
  return yield* RpcClient.make(DocsRpcs).pipe(
    Effect.provide(
      RpcClient.layerProtocolHttp({ url: "http://rangedocs.local/rpc" }).pipe(
        Layer.provide([FetchHttpClient.layer, RpcSerialization.layerMsgPack]),
        Layer.provide(Layer.succeed(FetchHttpClient.Fetch, fetchViaHandler))
      )
    )
  )
})

describe("DocsRpcs through a msgpack HTTP server and client", () => {
  it.live("values, streams and typed errors arrive as the domain types", () =>
    Effect.gen(function*() {
      const client = yield* inProcessClient
      const outcome = yield* client.Set({ docId, authorId, key: utf8("a/b"), value: utf8("value") })
      assert.strictEqual(outcome.removed, 1)
      const set = outcome.entry
      assert.instanceOf(set, SignedEntry)
      assert.strictEqual(set.timestamp, MAX_U64)
      assert.strictEqual(toHex(set.signature.namespace), toHex(entry.signature.namespace))

      const got = yield* Stream.runCollect(client.Get({ docId, query: Query.all() }))
      assert.deepStrictEqual(Chunk.toArray(got).map((e) => e.timestamp), [entry.timestamp, tombstone.timestamp])

      assert.strictEqual(toHex(yield* client.AuthorImport({ author })), toHex(authorId))
      const exported = Option.getOrThrow(yield* client.AuthorExport({ authorId }))
      assert.strictEqual(toHex(secretSeed(exported)), toHex(seed(2)))
      assert.strictEqual(toHex(yield* client.Import({ capability: new Write({ secret: ns }) })), toHex(docId))
      const ticket = yield* client.Share({ docId, mode: "Write", addrOptions: "RelayAndAddresses" })
      assert.instanceOf(ticket.capability, Write)
      assert.strictEqual(toHex(ticket.capability.id), toHex(docId))

      const open = yield* Effect.flip(client.Open({ docId }))
      assert.strictEqual(open._tag, "ReplicaNotFound")
      assert.strictEqual(open.message, "Replica not found")
      const newer = yield* Effect.flip(client.SetHash({ docId, authorId, key: utf8("k"), hash, size: U64.make(1n) }))
      assert.strictEqual(newer._tag, "NewerEntryExists")
      if (newer._tag === "NewerEntryExists") assert.strictEqual(newer.timestamp, MAX_U64)

      const events: Array<string> = []
      const end = yield* client.Subscribe({ docId }).pipe(
        Stream.runForEach((e) => Effect.sync(() => events.push(e._tag))),
        Effect.flip
      )
      assert.deepStrictEqual(events, liveEvents.map((e) => e._tag))
      assert.strictEqual(end._tag, "ReplicaNotOpen")
      assert.deepStrictEqual(yield* client.Stats(), { "sync.sessions": 1 })

      const progress = Chunk.toArray(yield* Stream.runCollect(client.ImportFile({ docId, authorId, key: utf8("f"), path: "/x" })))
      assert.deepStrictEqual(progress.map((p) => p._tag), ["Progress", "Done"])
      assert.strictEqual(toHex(yield* client.ReadContent({ hash })), toHex(utf8("value")))
      assert.strictEqual((yield* Effect.flip(Stream.runDrain(client.ExportFile({ hash, path: "/x" }))))._tag, "BlobNotFound")
    }).pipe(Effect.scoped))
})
