/**
 * The client half of the Docs RPC API (spec 06 §3): `DocsService` implemented on top of an `RpcClient`, so `Doc`
 * handles and programs work unchanged against a remote node. It imports only `DocsApi` and the schemas, never the
 * node (libp2p, SQLite), so the CLI's client commands load quickly; `DocsRpc.ts` (the server) re-exports it.
 *
 * Transport: streaming HTTP with msgpack. Every request carries the node's access token
 * (`authorization: Bearer <token>`) from `<dataDir>/rpc-token`; the server's URL is in `<dataDir>/rpc.json` while it
 * runs, so a client on the same machine needs only the data directory.
 */
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientError from "@effect/platform/HttpClientError"
import * as HttpBody from "@effect/platform/HttpBody"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Rpc from "@effect/rpc/Rpc"
import * as RpcClient from "@effect/rpc/RpcClient"
import { RpcClientError } from "@effect/rpc/RpcClientError"
import type { FromClientEncoded, FromServerEncoded } from "@effect/rpc/RpcMessage"
import * as RpcSerialization from "@effect/rpc/RpcSerialization"
import * as Chunk from "effect/Chunk"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Exit from "effect/Exit"
import * as Context from "effect/Context"
import * as Layer from "effect/Layer"
import * as Mailbox from "effect/Mailbox"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { ApiError, DocsError } from "../schema/DocsErrors.js"
import { U64 } from "../schema/Entry.js"
import { type AuthorId, NamespaceId } from "../schema/Keys.js"
import { LiveEvent } from "../schema/LiveEvent.js"
import { BLOB_READ_MAX, DocsRpcs, layerMsgPack, UPLOAD_CHUNK_MAX } from "../schema/Rpc.js"
import { Docs, type DocsService, type ImportFileOutcome } from "./DocsApi.js"

export const RPC_PATH = "/rpc"

/** How long a client here keeps an idle connection to a node open. */
const CLIENT_IDLE_MS = 4_000
/** How long the node's RPC server keeps an idle connection open: well above CLIENT_IDLE_MS. */
export const SERVER_KEEP_ALIVE_MS = 15_000
export const RPC_FILE = "rpc.json"
export const TOKEN_FILE = "rpc-token"

/** A client could not reach a node: none runs for the data directory, or it refused our token. */
export class NodeUnreachable extends Schema.TaggedError<NodeUnreachable>()("NodeUnreachable", {
  reason: Schema.String
}) {
  override get message() {
    return this.reason
  }
}

export const isErrno = (cause: unknown, code: string) =>
  cause instanceof Error && "code" in cause && cause.code === code

// ---------------------------------------------------------------------------------------------------------------
// The served group

/** The first item of `SubscribeAcked`: the node has subscribed, so no later event is missed. */
export class Subscribed extends Schema.TaggedClass<Subscribed>()("Subscribed", {}) {}

/**
 * What the node serves: `DocsRpcs` plus `SubscribeAcked`, a `Subscribe` whose first item confirms the subscription.
 * Over HTTP nothing else tells a client when the server has subscribed, and `DocsService.subscribe` promises that no
 * event after it returns is missed (importAndSubscribe relies on it). Clients built on `DocsRpcs` alone still work.
 */
export class ServedRpcs extends DocsRpcs.add(
  Rpc.make("SubscribeAcked", {
    payload: { docId: NamespaceId },
    success: Schema.Union(Subscribed, LiveEvent),
    error: ApiError,
    stream: true
  })
) {}

const RpcFile = Schema.parseJson(Schema.Struct({ url: Schema.String, pid: Schema.Number }))

// ---------------------------------------------------------------------------------------------------------------
// Client

const clientError = (error: ApiError | RpcClientError): ApiError => {
  if (error._tag !== "RpcClientError") return error
  const cause = error.cause
  if (HttpClientError.isHttpClientError(cause)) {
    if (cause._tag === "ResponseError" && cause.response.status === 401) {
      return new DocsError({ message: "RPC: the node refused the access token (401 Unauthorized)" })
    }
    if (cause._tag === "ResponseError" && cause.reason === "StatusCode") {
      return new DocsError({ message: `RPC: the node answered ${cause.response.status} to ${cause.methodAndUrl}` })
    }
    if (cause._tag === "RequestError" && cause.reason === "Transport") {
      return new DocsError({ message: `RPC: cannot reach the node at ${cause.request.url}` })
    }
  }
  return new DocsError({ message: `RPC: ${error.message}` })
}

/** `data` regrouped into chunks of exactly `size` bytes (the last one shorter): few, full RPC calls. */
export const rechunk = <E>(data: Stream.Stream<Uint8Array, E>, size: number): Stream.Stream<Uint8Array, E> =>
  Stream.suspend(() => {
    let buffer = new Uint8Array(size)
    let filled = 0
    const take = (piece: Uint8Array): Array<Uint8Array> => {
      const full: Array<Uint8Array> = []
      let offset = 0
      while (offset < piece.length) {
        const n = Math.min(size - filled, piece.length - offset)
        buffer.set(piece.subarray(offset, offset + n), filled)
        filled += n
        offset += n
        if (filled === size) {
          full.push(buffer)
          buffer = new Uint8Array(size)
          filled = 0
        }
      }
      return full
    }
    return Stream.concat(
      Stream.mapConcat(data, take),
      Stream.suspend(() => filled > 0 ? Stream.make(buffer.subarray(0, filled)) : Stream.empty)
    )
  })

const SUBSCRIBE_BUFFER = 64
const notSubscribed = Exit.fail(new DocsError({ message: "RPC: the subscription ended before it started" }))

/** `DocsService` over an RPC client. */
export const makeClient = Effect.gen(function*() {
  const client = yield* RpcClient.make(ServedRpcs)
  const call = <A>(effect: Effect.Effect<A, ApiError | RpcClientError>): Effect.Effect<A, ApiError> =>
    Effect.mapError(effect, clientError)
  const stream = <A>(s: Stream.Stream<A, ApiError | RpcClientError>): Stream.Stream<A, ApiError> =>
    Stream.mapError(s, clientError)
  const upload = <E>(docId: NamespaceId, authorId: AuthorId, key: Uint8Array, data: Stream.Stream<Uint8Array, E>) =>
    Effect.gen(function*() {
      const uploadId = yield* call(client.BeginUpload({ docId, authorId, key }))
      yield* rechunk(data, UPLOAD_CHUNK_MAX).pipe(
        Stream.runForEach((bytes) => call(client.UploadChunk({ uploadId, bytes }))),
        Effect.onError(() => Effect.ignore(client.AbortUpload({ uploadId })))
      )
      return yield* call(client.CommitUpload({ uploadId }))
    })

  const service: DocsService = {
    create: call(client.Create()),
    open: (docId) => call(client.Open({ docId })),
    close: (docId) => call(client.Close({ docId })),
    status: (docId) => call(client.Status({ docId })),
    list: stream(client.List()),
    drop: (docId) => call(client.Drop({ docId })),
    import: (capability) => call(client.Import({ capability })),
    // A value larger than one upload chunk goes as an upload: the node reads no request body above REQUEST_BODY_MAX.
    set: (docId, authorId, key, value) =>
      value.length > UPLOAD_CHUNK_MAX
        ? upload(docId, authorId, key, Stream.make(value))
        : call(client.Set({ docId, authorId, key, value })),
    setStream: (docId, authorId, key, data) => upload(docId, authorId, key, data),
    setHash: (docId, authorId, key, hash, size) => call(client.SetHash({ docId, authorId, key, hash, size: U64.make(size) })),
    get: (docId, query) => stream(client.Get({ docId, query })),
    getExact: (docId, key, authorId, includeEmpty) => call(client.GetExact({ docId, key, authorId, includeEmpty })),
    del: (docId, authorId, prefix) => call(client.Del({ docId, authorId, prefix })),
    startSync: (docId, peers) => call(client.StartSync({ docId, peers })),
    leave: (docId) => call(client.Leave({ docId })),
    share: (docId, mode, addrOptions) => call(client.Share({ docId, mode, addrOptions })),
    // Returns once the node confirms the subscription (or fails with its setup error, e.g. ReplicaNotOpen, as the
    // embedded API does). The response is read in the background for the caller's scope; events wait in a bounded
    // buffer, and when it is full the node's sender waits (spec 06 §3: 64 items client-side in the reference).
    subscribe: (docId) =>
      Effect.gen(function*() {
        const ready = yield* Deferred.make<void, ApiError>()
        const mailbox = yield* Mailbox.make<LiveEvent, ApiError>({ capacity: SUBSCRIBE_BUFFER })
        yield* stream(client.SubscribeAcked({ docId })).pipe(
          Stream.runForEach((item) =>
            item._tag === "Subscribed" ? Deferred.succeed(ready, undefined) : mailbox.offer(item)
          ),
          Effect.onExit((exit) =>
            Effect.zipRight(
              Deferred.done(ready, Exit.isSuccess(exit) ? notSubscribed : exit),
              mailbox.done(exit)
            )
          ),
          Effect.forkScoped
        )
        yield* Deferred.await(ready)
        return Mailbox.toStream(mailbox)
      }),
    getDownloadPolicy: (docId) => call(client.GetDownloadPolicy({ docId })),
    setDownloadPolicy: (docId, policy) => call(client.SetDownloadPolicy({ docId, policy })),
    getSyncPeers: (docId) => call(client.GetSyncPeers({ docId })),
    authorList: stream(client.AuthorList()),
    authorCreate: call(client.AuthorCreate()),
    authorGetDefault: call(client.AuthorGetDefault()),
    authorSetDefault: (authorId) => call(client.AuthorSetDefault({ authorId })),
    authorImport: (author) => call(client.AuthorImport({ author })),
    authorExport: (authorId) => call(client.AuthorExport({ authorId })),
    authorDelete: (authorId) => call(client.AuthorDelete({ authorId })),
    importFile: (docId, authorId, key, path, onProgress) =>
      client.ImportFile({ docId, authorId, key, path }).pipe(
        Stream.mapError(clientError),
        Stream.runFoldEffect(Option.none<ImportFileOutcome>(), (acc, item) =>
          item._tag === "Progress"
            ? Effect.as(onProgress === undefined ? Effect.void : onProgress(item.bytes), acc)
            : Effect.succeed(Option.some({ hash: item.hash, size: item.size, key: item.key }))),
        Effect.flatMap(Option.match({
          onNone: () => Effect.fail(new DocsError({ message: "import ended without a result" })),
          onSome: Effect.succeed
        }))
      ),
    exportFile: (hash, path, onProgress) =>
      client.ExportFile({ hash, path }).pipe(
        Stream.mapError(clientError),
        Stream.runForEach((item) => onProgress === undefined ? Effect.void : onProgress(item.bytes, item.size))
      ),
    readContent: (hash) => call(client.ReadContent({ hash })),
    blobList: stream(client.BlobList()),
    // One request per piece, the next sent when the stream is pulled: the node holds one piece at a time.
    blobRead: (hash, options) => {
      const piece = Math.max(1, Math.min(BLOB_READ_MAX, Math.floor(options?.chunkSize ?? BLOB_READ_MAX)))
      const start = options?.offset ?? 0
      const end = options?.length === undefined ? Infinity : start + Math.max(0, Math.floor(options.length))
      return Stream.paginateChunkEffect(start, (offset) => {
        const length = Math.min(piece, end - offset)
        return Effect.map(
          call(client.BlobRead({ hash, offset, length })),
          (bytes) =>
            [
              bytes.length === 0 ? Chunk.empty<Uint8Array>() : Chunk.of(bytes),
              bytes.length < length || offset + bytes.length >= end ? Option.none<number>() : Option.some(offset + bytes.length)
            ] as const
        )
      })
    },
    blobGc: call(client.BlobGc()),
    nodeStatus: call(client.NodeStatus()),
    stats: call(client.Stats())
  }
  return Docs.of(service)
})

export interface Connection {
  readonly url: string
  readonly token: Redacted.Redacted<string>
}

/** How long a reply may take to end after its Exit before the connection is dropped instead of kept. */
export const REPLY_END_GRACE = "5 seconds"

/**
 * @effect/rpc's HTTP protocol (`RpcClient.makeProtocolHttp`: one POST per call, the reply streamed as msgpack), but a
 * call that got its Exit lets its reply end instead of aborting it. @effect/rpc interrupts the call's sender as soon
 * as the Exit is decoded, before the HTTP reply's last bytes are read: Node then destroys the connection, and every
 * call costs a new one. Here the reply is read by a fiber of its own (a daemon: a protocol layer is often provided to
 * `RpcClient.make` alone, so its scope ends before the calls): interrupted before the Exit (a stream the caller
 * dropped, a client closing), it aborts the request as before; after it, the reply's end is awaited (at most
 * REPLY_END_GRACE) and the connection goes back to the agent for the next call. msgpack only (upstream also speaks
 * JSON, which no layer here uses).
 */
const makeHttpProtocol = (client: HttpClient.HttpClient) =>
  RpcClient.Protocol.make(Effect.fnUntraced(function*(writeResponse) {
    const serialization = yield* RpcSerialization.RpcSerialization
    const failed = (cause: unknown) =>
      new RpcClientError({ reason: "Protocol", message: "Failed to send HTTP request", cause })
    const send = (request: FromClientEncoded): Effect.Effect<void, RpcClientError> => {
      if (request._tag !== "Request") return Effect.void
      const parser = serialization.unsafeMake()
      // msgpack encodes to bytes (layerProtocol provides `layerMsgPack`).
      const body = HttpBody.uint8Array(parser.encode(request) as Uint8Array, serialization.contentType)
      let exited = false
      const read = client.post("", { body }).pipe(
        Effect.flatMap((response) =>
          Stream.runForEachChunk(response.stream, (chunk) =>
            Effect.forEach(
              Chunk.toReadonlyArray(chunk).flatMap((bytes) => parser.decode(bytes) as ReadonlyArray<FromServerEncoded>),
              (message) => {
                if (message._tag === "Exit" && message.requestId === request.id) exited = true
                return writeResponse(message)
              },
              { discard: true }
            ))
        ),
        Effect.mapError(failed)
      )
      // Forked and watched in one uninterruptible step: an interrupt between the two would leave the reader running.
      // The reader and the watch after the Exit are interruptible (a fiber inherits its parent's interruptibility, and
      // the handler runs uninterruptibly).
      return Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(Effect.forkDaemon(Effect.interruptible(read)), (fiber) =>
          restore(Fiber.join(fiber)).pipe(Effect.onInterrupt(() =>
            exited
              ? Fiber.await(fiber).pipe(
                Effect.timeout(REPLY_END_GRACE),
                Effect.catchAll(() => Fiber.interrupt(fiber)),
                Effect.interruptible,
                Effect.forkDaemon,
                Effect.asVoid
              )
              : Fiber.interrupt(fiber)
          )))
      )
    }
    return { send, supportsAck: false, supportsTransferables: false }
  }))

/**
 * Node's HTTP client with connections kept open between calls: `NodeHttpClient.layer`'s agent opens a connection per
 * call (a 100 MiB `doc get` is 25 `BlobRead` calls). An idle connection is closed after CLIENT_IDLE_MS, well before
 * the node's server would close it (`SERVER_KEEP_ALIVE_MS`), so that a call never goes out on a connection the server is
 * closing at that moment.
 */
const keepAliveHttpClient = NodeHttpClient.layerWithoutAgent.pipe(
  Layer.provide(NodeHttpClient.makeAgentLayer({ keepAlive: true, timeout: CLIENT_IDLE_MS }))
)

/**
 * The RPC transport to a node (HTTP, msgpack, the token as bearer), for `RpcClient.make(DocsRpcs)` when a program
 * wants the raw RPC client rather than `DocsService`.
 */
export const layerProtocol = (options: Connection): Layer.Layer<RpcClient.Protocol> =>
  Layer.scoped(
    RpcClient.Protocol,
    Effect.flatMap(HttpClient.HttpClient, (client) =>
      makeHttpProtocol(client.pipe(
        HttpClient.mapRequest(HttpClientRequest.prependUrl(options.url)),
        HttpClient.mapRequest(HttpClientRequest.bearerToken(Redacted.value(options.token))),
        // Without it, a refusal's body would be read as msgpack and the call would wait forever.
        HttpClient.filterStatusOk
      )))
  ).pipe(Layer.provide([layerMsgPack, keepAliveHttpClient]))

/** `Docs` served by a remote node at `url`, authenticating with `token`. */
export const layerClient = (options: Connection): Layer.Layer<Docs> =>
  Layer.scoped(Docs, makeClient).pipe(Layer.provide(layerProtocol(options)))

/** URL and token of the node running for `dataDir`; NodeUnreachable when none runs there. */
export const readConnection = (dataDir: string): Effect.Effect<Connection, NodeUnreachable> =>
  Effect.gen(function*() {
    const notRunning = new NodeUnreachable({
      reason: `no rangedocs node is running for ${dataDir}; start one with: rangedocs start --data-dir ${dataDir}`
    })
    const text = yield* Effect.tryPromise(() => fs.readFile(path.join(dataDir, RPC_FILE), "utf8")).pipe(
      Effect.mapError(() => notRunning)
    )
    const info = yield* Schema.decodeUnknown(RpcFile)(text).pipe(Effect.mapError(() => notRunning))
    // Signal 0 only checks the process exists; EPERM means it does, under another user.
    const alive = yield* Effect.sync(() => {
      try {
        return process.kill(info.pid, 0)
      } catch (cause) {
        return isErrno(cause, "EPERM")
      }
    })
    if (!alive) return yield* notRunning
    const token = yield* Effect.tryPromise(() => fs.readFile(path.join(dataDir, TOKEN_FILE), "utf8")).pipe(
      Effect.mapError(() => new NodeUnreachable({ reason: `cannot read the RPC token in ${dataDir}` }))
    )
    return { url: info.url, token: Redacted.make(token.trim()) }
  })

/** `Docs` of the node running for `dataDir` (reads its `rpc.json` and `rpc-token`). */
export const layerClientFromDataDir = (dataDir: string): Layer.Layer<Docs, NodeUnreachable> =>
  Layer.unwrapEffect(Effect.map(readConnection(dataDir), layerClient))

/** The `DocsService` of the node running for `dataDir`, for the scope (what the CLI's client commands use). */
export const connect = (dataDir: string): Effect.Effect<DocsService, NodeUnreachable, Scope.Scope> =>
  Effect.flatMap(readConnection(dataDir), (connection) =>
    Effect.map(Layer.build(layerClient(connection)), (context) => Context.get(context, Docs)))
