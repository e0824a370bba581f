/**
 * The CLI's client of a running node: `DocsService` over @effect/rpc, loaded only by client commands (`withClient`
 * imports it on demand). It reaches no node layer: `services/DocsRpc.ts` imports `services/Docs.ts`, whose embedded
 * implementation pulls libp2p, SQLite and the live engine into every process that imports it, which cost a client
 * command about half a second before it sent its first byte. Until the client half of `DocsRpc.ts` moves into a
 * module of its own under `services/` (then this file goes), this is the same client: the same group, transport,
 * token and error mapping; `test/cli/Cli.test.ts` checks that the groups agree.
 */
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientError from "@effect/platform/HttpClientError"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Rpc from "@effect/rpc/Rpc"
import * as RpcClient from "@effect/rpc/RpcClient"
import type { RpcClientError } from "@effect/rpc/RpcClientError"
import * as RpcSerialization from "@effect/rpc/RpcSerialization"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Mailbox from "effect/Mailbox"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { type ApiError, ApiError as ApiErrorSchema, DocsError } from "../schema/DocsErrors.js"
import { U64 } from "../schema/Entry.js"
import { NamespaceId } from "../schema/Keys.js"
import { LiveEvent } from "../schema/LiveEvent.js"
import { DocsRpcs } from "../schema/Rpc.js"
import type { DocsService, ImportFileOutcome } from "../services/Docs.js"
import { CliError } from "./Common.js"

const RPC_FILE = "rpc.json"
const TOKEN_FILE = "rpc-token"

/** As `DocsRpc.Subscribed`: the first item of `SubscribeAcked`. */
export class Subscribed extends Schema.TaggedClass<Subscribed>()("Subscribed", {}) {}

/** As `DocsRpc.ServedRpcs`: what the node serves. */
export class ServedRpcs extends DocsRpcs.add(
  Rpc.make("SubscribeAcked", {
    payload: { docId: NamespaceId },
    success: Schema.Union(Subscribed, LiveEvent),
    error: ApiErrorSchema,
    stream: true
  })
) {}

const RpcFile = Schema.parseJson(Schema.Struct({ url: Schema.String, pid: Schema.Number }))

const isErrno = (cause: unknown, code: string) => cause instanceof Error && "code" in cause && cause.code === code

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

const makeService = Effect.gen(function*() {
  const client = yield* RpcClient.make(ServedRpcs)
  const call = <A>(effect: Effect.Effect<A, ApiError | RpcClientError>): Effect.Effect<A, ApiError> =>
    Effect.mapError(effect, clientError)
  const stream = <A>(s: Stream.Stream<A, ApiError | RpcClientError>): Stream.Stream<A, ApiError> =>
    Stream.mapError(s, clientError)
  const service: DocsService = {
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
    exportFile: (hash, path) => call(client.ExportFile({ hash, path })),
    readContent: (hash) => call(client.ReadContent({ hash })),
    nodeStatus: call(client.NodeStatus()),
    stats: call(client.Stats())
  }
  return service
})

interface Connection {
  readonly url: string
  readonly token: Redacted.Redacted<string>
}

/** URL and token of the node running for `dataDir`; a CliError when none runs there. */
const readConnection = (dataDir: string): Effect.Effect<Connection, CliError> =>
  Effect.gen(function*() {
    const notRunning = new CliError({
      message: `no rangedocs node is running for ${dataDir}; start one with: rangedocs start --data-dir ${dataDir}`
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
      Effect.mapError(() => new CliError({ message: `cannot read the RPC token in ${dataDir}` }))
    )
    return { url: info.url, token: Redacted.make(token.trim()) }
  })

/** The `DocsService` of the node running for `dataDir`, for the scope (HTTP, msgpack, the token as bearer). */
export const connect = (dataDir: string): Effect.Effect<DocsService, CliError, Scope.Scope> =>
  Effect.gen(function*() {
    const { token, url } = yield* readConnection(dataDir)
    const http = (yield* HttpClient.HttpClient).pipe(
      HttpClient.mapRequest(HttpClientRequest.prependUrl(url)),
      HttpClient.mapRequest(HttpClientRequest.bearerToken(Redacted.value(token))),
      // Without it, a refusal's body would be read as msgpack and the call would wait forever.
      HttpClient.filterStatusOk
    )
    const protocol = yield* RpcClient.makeProtocolHttp(http)
    return yield* Effect.provideService(makeService, RpcClient.Protocol, protocol)
  }).pipe(Effect.provide([RpcSerialization.layerMsgPack, FetchHttpClient.layer]))
