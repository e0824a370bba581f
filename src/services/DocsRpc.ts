/**
 * The Docs API over @effect/rpc (spec 06 §3): the server's handlers forward every request to `Docs`, so the embedded
 * API and RPC share one code path; the client implements `DocsService` again on top of an `RpcClient`, so `Doc`
 * handles and programs work unchanged against a remote node.
 *
 * Transport: streaming HTTP with msgpack, on loopback by default. Every request must carry the node's access token
 * (`authorization: Bearer <token>`); the token is a random secret kept in `<dataDir>/rpc-token` (mode 0600), and
 * the server's URL is written to `<dataDir>/rpc.json` while it runs, so a client on the same machine needs only the
 * data directory.
 */
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpApp from "@effect/platform/HttpApp"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientError from "@effect/platform/HttpClientError"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { Rpc, RpcClient, RpcSerialization, RpcServer } from "@effect/rpc"
import type { RpcClientError } from "@effect/rpc/RpcClientError"
import { Clock, Context, Deferred, Effect, Exit, Layer, Mailbox, Option, Redacted, Schema, Scope, Stream } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs/promises"
import * as http from "node:http"
import * as path from "node:path"
import { secretFile } from "../internal/files.js"
import * as Metrics from "../internal/metrics.js"
import { ApiError, DocsError } from "../schema/DocsErrors.js"
import { U64 } from "../schema/Entry.js"
import { NamespaceId } from "../schema/Keys.js"
import { LiveEvent } from "../schema/LiveEvent.js"
import { DocsRpcs, type ImportFileProgress } from "../schema/Rpc.js"
import * as Docs from "./Docs.js"

export const RPC_PATH = "/rpc"
/**
 * The node's counters in Prometheus' text format, behind the same token (Prometheus sends it with
 * `authorization: { credentials_file: <dataDir>/rpc-token }`).
 */
export const METRICS_PATH = "/metrics"
export const RPC_FILE = "rpc.json"
export const TOKEN_FILE = "rpc-token"
export const DEFAULT_RPC_HOST = "127.0.0.1"

/** A client could not reach a node: none runs for the data directory, or it refused our token. */
export class NodeUnreachable extends Schema.TaggedError<NodeUnreachable>()("NodeUnreachable", {
  reason: Schema.String
}) {
  override get message() {
    return this.reason
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Token and address files

const isErrno = (cause: unknown, code: string) => cause instanceof Error && "code" in cause && cause.code === code

/** The node's access token from `<dataDir>/rpc-token`, created (random, mode 0600) when missing, tightened to 0600. */
export const loadOrCreateToken = (dataDir: string): Effect.Effect<Redacted.Redacted<string>, DocsError> =>
  secretFile(path.join(dataDir, TOKEN_FILE)).pipe(
    Effect.mapError((error) => new DocsError({ message: `could not set up the RPC token: ${error.message}` })),
    Effect.zipRight(loadOrCreateTokenFile(dataDir))
  )

const loadOrCreateTokenFile = (dataDir: string): Effect.Effect<Redacted.Redacted<string>, DocsError> =>
  Effect.tryPromise({
    try: async () => {
      const file = path.join(dataDir, TOKEN_FILE)
      try {
        const text = (await fs.readFile(file, "utf8")).trim()
        if (/^[0-9a-f]{64}$/.test(text)) return Redacted.make(text)
      } catch (cause) {
        if (!isErrno(cause, "ENOENT")) throw cause
      }
      await fs.mkdir(dataDir, { recursive: true, mode: 0o700 })
      const token = crypto.randomBytes(32).toString("hex")
      const tmp = `${file}.${process.pid}.tmp`
      await fs.writeFile(tmp, token, { mode: 0o600 })
      await fs.rename(tmp, file)
      return Redacted.make(token)
    },
    catch: (cause) => new DocsError({ message: `could not set up the RPC token: ${String(cause)}` })
  })

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
// Server

const progressStream = <E>(run: (onProgress: (bytes: number) => Effect.Effect<void>) => Effect.Effect<Docs.ImportFileOutcome, E>) =>
  Stream.unwrapScoped(Effect.gen(function*() {
    const mailbox = yield* Mailbox.make<ImportFileProgress, E>({ capacity: 16, strategy: "sliding" })
    yield* Effect.forkScoped(
      run((bytes) => Effect.asVoid(mailbox.offer({ _tag: "Progress", bytes }))).pipe(
        Effect.flatMap((done) =>
          mailbox.offer({ _tag: "Done", hash: done.hash, size: done.size, key: done.key })
        ),
        Effect.exit,
        Effect.flatMap((exit) => mailbox.done(Exit.asVoid(exit)))
      )
    )
    return Mailbox.toStream(mailbox)
  }))

/** The handlers of every request, each forwarding to `Docs`. */
export const handlers = (rpcAddress: Option.Option<string>) =>
  ServedRpcs.toLayer(Effect.gen(function*() {
    const docs = yield* Docs.Docs
    return {
      Open: ({ docId }) => docs.open(docId),
      Close: ({ docId }) => docs.close(docId),
      Status: ({ docId }) => docs.status(docId),
      List: () => docs.list,
      Create: () => docs.create,
      Drop: ({ docId }) => docs.drop(docId),
      Import: ({ capability }) => docs.import(capability),
      Set: ({ authorId, docId, key, value }) => docs.set(docId, authorId, key, value),
      SetHash: ({ authorId, docId, hash, key, size }) => docs.setHash(docId, authorId, key, hash, size),
      Get: ({ docId, query }) => docs.get(docId, query),
      GetExact: ({ authorId, docId, includeEmpty, key }) => docs.getExact(docId, key, authorId, includeEmpty),
      Del: ({ authorId, docId, prefix }) => docs.del(docId, authorId, prefix),
      StartSync: ({ docId, peers }) => docs.startSync(docId, peers),
      Leave: ({ docId }) => docs.leave(docId),
      Share: ({ addrOptions, docId, mode }) => docs.share(docId, mode, addrOptions),
      Subscribe: ({ docId }) => Stream.unwrapScoped(docs.subscribe(docId)),
      SubscribeAcked: ({ docId }) =>
        Stream.unwrapScoped(
          Effect.map(
            docs.subscribe(docId),
            (events): Stream.Stream<Subscribed | LiveEvent, ApiError> => Stream.concat(Stream.make(new Subscribed()), events)
          )
        ),
      GetDownloadPolicy: ({ docId }) => docs.getDownloadPolicy(docId),
      SetDownloadPolicy: ({ docId, policy }) => docs.setDownloadPolicy(docId, policy),
      GetSyncPeers: ({ docId }) => docs.getSyncPeers(docId),
      AuthorList: () => docs.authorList,
      AuthorCreate: () => docs.authorCreate,
      AuthorGetDefault: () => docs.authorGetDefault,
      AuthorSetDefault: ({ authorId }) => docs.authorSetDefault(authorId),
      AuthorImport: ({ author }) => docs.authorImport(author),
      AuthorExport: ({ authorId }) => docs.authorExport(authorId),
      AuthorDelete: ({ authorId }) => docs.authorDelete(authorId),
      ImportFile: ({ authorId, docId, key, path }) =>
        progressStream((onProgress) => docs.importFile(docId, authorId, key, path, onProgress)),
      ExportFile: ({ hash, path }) => docs.exportFile(hash, path),
      ReadContent: ({ hash }) => docs.readContent(hash),
      NodeStatus: () =>
        Effect.map(docs.nodeStatus, (info) => ({ ...info, rpcAddress })),
      Stats: () => docs.stats
    }
  }))

const sameToken = (given: string | undefined, expected: Redacted.Redacted<string>) => {
  const want = Buffer.from(`Bearer ${Redacted.value(expected)}`)
  const got = Buffer.from(given ?? "")
  return got.length === want.length && crypto.timingSafeEqual(got, want)
}

export interface ServerOptions {
  /** Default 127.0.0.1: the API can write to every document, so it is not exposed beyond this machine unless asked. */
  readonly host?: string
  /** Default 0 (a free port). */
  readonly port?: number
  /** The access token; default: `<dataDir>/rpc-token` (created if missing) or, without a data directory, random. */
  readonly token?: Redacted.Redacted<string>
  /** Writes `rpc.json` (URL and pid) there while serving, and keeps the token there. */
  readonly dataDir?: string
}

export interface ServerInfo {
  readonly url: string
  readonly token: Redacted.Redacted<string>
}

export class RpcServerInfo extends Context.Tag("docs/RpcServerInfo")<RpcServerInfo, ServerInfo>() {}

/**
 * Serves the Docs RPC group over HTTP (msgpack) on `host:port`, refusing requests without the token (401). Provides
 * the URL and token it serves with.
 */
export const layerServer = (options: ServerOptions = {}): Layer.Layer<RpcServerInfo, DocsError, Docs.Docs> =>
  Layer.scoped(
    RpcServerInfo,
    Effect.gen(function*() {
      const token = options.token ??
        (options.dataDir === undefined
          ? Redacted.make(crypto.randomBytes(32).toString("hex"))
          : yield* loadOrCreateToken(options.dataDir))
      const host = options.host ?? DEFAULT_RPC_HOST
      const server = yield* Layer.build(
        NodeHttpServer.layer(() => http.createServer(), { host, port: options.port ?? 0 })
      ).pipe(Effect.mapError((e) => new DocsError({ message: `RPC server: ${e.message}` })))
      const httpServer = Context.get(server, HttpServer.HttpServer)
      const address = httpServer.address
      const url = address._tag === "TcpAddress"
        ? `http://${address.hostname.includes(":") ? `[${address.hostname}]` : address.hostname}:${address.port}${RPC_PATH}`
        : `unix:${address.path}`
      const docs = yield* Docs.Docs
      const handlerContext = yield* Layer.build(handlers(Option.some(url))).pipe(
        Effect.provideService(Docs.Docs, docs)
      )
      const rpcApp = yield* RpcServer.toHttpApp(ServedRpcs).pipe(
        Effect.provide(Layer.mergeAll(Layer.succeedContext(handlerContext), RpcSerialization.layerMsgPack))
      )
      const startedAt = yield* Clock.currentTimeMillis
      const metrics = Effect.gen(function*() {
        const counters = yield* docs.stats
        const uptime = Math.round(((yield* Clock.currentTimeMillis) - startedAt) / 1000)
        return HttpServerResponse.text(Metrics.prometheusText(counters, uptime), {
          contentType: "text/plain; version=0.0.4; charset=utf-8"
        })
      }).pipe(Effect.catchAll(() => Effect.succeed(HttpServerResponse.text("metrics unavailable", { status: 500 }))))
      const guarded = Effect.gen(function*() {
        const request = yield* HttpServerRequest.HttpServerRequest
        const route = request.url === RPC_PATH || request.url.startsWith(`${RPC_PATH}?`)
          ? "rpc"
          : request.url === METRICS_PATH && request.method === "GET"
          ? "metrics"
          : undefined
        if (route === undefined) return HttpServerResponse.text("not found", { status: 404 })
        if (!sameToken(request.headers["authorization"], token)) {
          return HttpServerResponse.text("missing or wrong access token", { status: 401 })
        }
        return route === "metrics" ? yield* metrics : yield* rpcApp
      })
      yield* httpServer.serve(guarded as HttpApp.Default<never, Scope.Scope>)
      if (options.dataDir !== undefined) {
        const file = path.join(options.dataDir, RPC_FILE)
        yield* Effect.acquireRelease(
          Effect.promise(() => fs.writeFile(file, JSON.stringify({ url, pid: process.pid }), { mode: 0o600 })),
          () => Effect.promise(() => fs.rm(file, { force: true }))
        )
      }
      yield* Effect.logDebug(`RPC server on ${url}`)
      return { url, token }
    })
  )

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

const SUBSCRIBE_BUFFER = 64
const notSubscribed = Exit.fail(new DocsError({ message: "RPC: the subscription ended before it started" }))

/** `DocsService` over an RPC client. */
export const makeClient = Effect.gen(function*() {
  const client = yield* RpcClient.make(ServedRpcs)
  const call = <A>(effect: Effect.Effect<A, ApiError | RpcClientError>): Effect.Effect<A, ApiError> =>
    Effect.mapError(effect, clientError)
  const stream = <A>(s: Stream.Stream<A, ApiError | RpcClientError>): Stream.Stream<A, ApiError> =>
    Stream.mapError(s, clientError)
  const service: Docs.DocsService = {
    create: call(client.Create()),
    open: (docId) => call(client.Open({ docId })),
    close: (docId) => call(client.Close({ docId })),
    status: (docId) => call(client.Status({ docId })),
    list: stream(client.List()),
    drop: (docId) => call(client.Drop({ docId })),
    import: (capability) => call(client.Import({ capability })),
    set: (docId, authorId, key, value) => call(client.Set({ docId, authorId, key, value })),
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
        Stream.runFoldEffect(Option.none<Docs.ImportFileOutcome>(), (acc, item) =>
          item._tag === "Progress"
            ? Effect.as(onProgress === undefined ? Effect.void : onProgress(item.bytes), acc)
            : Effect.succeed(Option.some({ hash: item.hash, size: item.size, key: item.key }))),
        Effect.flatMap(Option.match({
          onNone: () => Effect.fail(new DocsError({ message: "import ended without a result" })),
          onSome: Effect.succeed
        }))
      ),
    exportFile: (hash, path) => call(client.ExportFile({ hash, path })),
    readContent: (hash) => call(client.ReadContent({ hash })),
    nodeStatus: call(client.NodeStatus()),
    stats: call(client.Stats())
  }
  return Docs.Docs.of(service)
})

export interface Connection {
  readonly url: string
  readonly token: Redacted.Redacted<string>
}

/**
 * The RPC transport to a node (HTTP, msgpack, the token as bearer), for `RpcClient.make(DocsRpcs)` when a program
 * wants the raw RPC client rather than `DocsService`.
 */
export const layerProtocol = (options: Connection): Layer.Layer<RpcClient.Protocol> =>
  Layer.scoped(
    RpcClient.Protocol,
    Effect.flatMap(HttpClient.HttpClient, (client) =>
      RpcClient.makeProtocolHttp(client.pipe(
        HttpClient.mapRequest(HttpClientRequest.prependUrl(options.url)),
        HttpClient.mapRequest(HttpClientRequest.bearerToken(Redacted.value(options.token))),
        // Without it, a refusal's body would be read as msgpack and the call would wait forever.
        HttpClient.filterStatusOk
      )))
  ).pipe(Layer.provide([RpcSerialization.layerMsgPack, FetchHttpClient.layer]))

/** `Docs` served by a remote node at `url`, authenticating with `token`. */
export const layerClient = (options: Connection): Layer.Layer<Docs.Docs> =>
  Layer.scoped(Docs.Docs, makeClient).pipe(Layer.provide(layerProtocol(options)))

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
export const layerClientFromDataDir = (dataDir: string): Layer.Layer<Docs.Docs, NodeUnreachable> =>
  Layer.unwrapEffect(Effect.map(readConnection(dataDir), layerClient))
