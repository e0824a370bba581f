/**
 * The Docs API over @effect/rpc (spec 06 §3): the server's handlers forward every request to `Docs`, so the embedded
 * API and RPC share one code path. The client half (`makeClient`, `layerClient`, …) lives in `DocsRpcClient.ts`,
 * which loads no node, and is re-exported here.
 *
 * Transport: streaming HTTP with msgpack, on loopback by default. Every request must carry the node's access token
 * (`authorization: Bearer <token>`); the token is a random secret kept in `<dataDir>/rpc-token` (mode 0600), and
 * the server's URL is written to `<dataDir>/rpc.json` while it runs, so a client on the same machine needs only the
 * data directory.
 */
import * as HttpApp from "@effect/platform/HttpApp"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerError from "@effect/platform/HttpServerError"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as NodeHttpServerRequest from "@effect/platform-node/NodeHttpServerRequest"
import { RpcServer } from "@effect/rpc"
import {
  Clock,
  Context,
  Deferred,
  Duration,
  Effect,
  Exit,
  FiberMap,
  Layer,
  Mailbox,
  Option,
  Redacted,
  Scope,
  Stream
} from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs/promises"
import * as http from "node:http"
import * as path from "node:path"
import { secretFile } from "../internal/files.js"
import * as Metrics from "../internal/metrics.js"
import { ApiError, DocsError } from "../schema/DocsErrors.js"
import { LiveEvent } from "../schema/LiveEvent.js"
import type { AuthorId, Hash, NamespaceId } from "../schema/Keys.js"
import {
  type ExportFileProgress,
  type ImportFileProgress,
  CONTENT_REPLY_MAX,
  layerMsgPack,
  REQUEST_BODY_MAX,
  type SetOutcome
} from "../schema/Rpc.js"
import * as Docs from "./Docs.js"
import * as Inspector from "./Inspector.js"
import { InspectorRpcs } from "../schema/InspectorRpc.js"
import { isErrno, RPC_FILE, RPC_PATH, SERVER_KEEP_ALIVE_MS, ServedRpcs, Subscribed, TOKEN_FILE } from "./DocsRpcClient.js"

export * from "./DocsRpcClient.js"

/**
 * The node's counters in Prometheus' text format, behind the same token (Prometheus sends it with
 * `authorization: { credentials_file: <dataDir>/rpc-token }`).
 */
export const METRICS_PATH = "/metrics"
export const DEFAULT_RPC_HOST = "127.0.0.1"

// ---------------------------------------------------------------------------------------------------------------
// Token and address files

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
// Server

/**
 * Runs `run` in the background and streams its progress (a sliding window of 16: a slow reader sees the latest
 * figures, never a growing backlog), then what `last` makes of its result.
 */
const progressStream = <A, I, P, E>(
  run: (onProgress: (progress: P) => Effect.Effect<void>) => Effect.Effect<A, E>,
  last: (a: A) => ReadonlyArray<I>
) =>
  Stream.unwrapScoped(Effect.gen(function*() {
    const mailbox = yield* Mailbox.make<I | P, E>({ capacity: 16, strategy: "sliding" })
    yield* Effect.forkScoped(
      run((progress) => Effect.asVoid(mailbox.offer(progress))).pipe(
        Effect.flatMap((a) => mailbox.offerAll(last(a))),
        Effect.exit,
        Effect.flatMap((exit) => mailbox.done(Exit.asVoid(exit)))
      )
    )
    return Mailbox.toStream(mailbox)
  }))

/** An upload session expires after this long without a chunk (its partial blob is discarded). */
export const UPLOAD_IDLE = Duration.seconds(60)
/** At most this many uploads at once; more fail (each holds up to UPLOAD_BUFFER chunks in memory). */
export const MAX_UPLOADS = 8
/**
 * Chunks waiting to be hashed per upload; when full, `UploadChunk` waits (backpressure on the client). One chunk of
 * UPLOAD_CHUNK_MAX (4 MiB): at most MAX_UPLOADS × 4 MiB buffered, as with four 1 MiB chunks before.
 */
export const UPLOAD_BUFFER = 1

interface Upload {
  readonly chunks: Mailbox.Mailbox<Uint8Array, DocsError>
  readonly result: Deferred.Deferred<SetOutcome, ApiError>
}

/**
 * The node's upload sessions (BeginUpload → UploadChunk* → CommitUpload): each feeds a bounded mailbox that
 * `Docs.setStream` hashes incrementally into the blob store, so a value of any size costs bounded memory. A session
 * idle for UPLOAD_IDLE, or aborted, fails its stream (the partial blob is discarded) and is forgotten.
 */
export const makeUploads = (docs: Pick<Docs.DocsService, "setStream">) =>
  Effect.gen(function*() {
    const sessions = new Map<string, Upload>()
    const running = yield* FiberMap.make<string>()
    const timers = yield* FiberMap.make<string>()
    const unknown = (id: string) => new DocsError({ message: `no upload ${id} in progress (finished, aborted or expired)` })
    const lookup = (id: string) =>
      Effect.suspend(() => {
        const upload = sessions.get(id)
        return upload === undefined ? Effect.fail(unknown(id)) : Effect.succeed(upload)
      })
    const drop = (id: string, reason: string) =>
      Effect.suspend(() => {
        const upload = sessions.get(id)
        if (upload === undefined) return Effect.void
        sessions.delete(id)
        return Effect.asVoid(upload.chunks.fail(new DocsError({ message: reason })))
      })
    const touch = (id: string) =>
      FiberMap.run(
        timers,
        id,
        Effect.sleep(UPLOAD_IDLE).pipe(
          Effect.zipRight(drop(id, `upload ${id} expired: no chunk for ${Duration.format(UPLOAD_IDLE)}`)),
          Effect.zipRight(Effect.logWarning(`an upload expired after ${Duration.format(UPLOAD_IDLE)} without a chunk`))
        )
      )
    const begin = (docId: NamespaceId, authorId: AuthorId, key: Uint8Array) =>
      Effect.gen(function*() {
        if (sessions.size >= MAX_UPLOADS) {
          return yield* new DocsError({ message: `too many uploads in progress (at most ${MAX_UPLOADS})` })
        }
        const id = crypto.randomBytes(16).toString("hex")
        const chunks = yield* Mailbox.make<Uint8Array, DocsError>({ capacity: UPLOAD_BUFFER })
        const result = yield* Deferred.make<SetOutcome, ApiError>()
        sessions.set(id, { chunks, result })
        yield* FiberMap.run(
          running,
          id,
          docs.setStream(docId, authorId, key, Mailbox.toStream(chunks)).pipe(
            Effect.exit,
            Effect.flatMap((exit) => Deferred.done(result, exit)),
            // A failed session refuses further chunks at once instead of leaving a sender waiting on a full mailbox.
            Effect.ensuring(chunks.shutdown)
          )
        )
        yield* touch(id)
        return id
      })
    const chunk = (id: string, bytes: Uint8Array) =>
      Effect.gen(function*() {
        const upload = yield* lookup(id)
        yield* touch(id)
        if (yield* upload.chunks.offer(bytes)) return
        // The session ended early: report why (its failure), else that it is gone.
        yield* Effect.zipRight(Deferred.await(upload.result), Effect.fail(unknown(id)))
      })
    const commit = (id: string) =>
      Effect.gen(function*() {
        const upload = yield* lookup(id)
        sessions.delete(id)
        yield* FiberMap.remove(timers, id)
        yield* upload.chunks.end
        return yield* Deferred.await(upload.result)
      })
    const abort = (id: string) => Effect.zipRight(drop(id, `upload ${id} aborted`), FiberMap.remove(timers, id))
    return { begin, chunk, commit, abort, size: Effect.sync(() => sessions.size) } as const
  })

/** At most `length` bytes of a blob from `offset` (fewer at its end, none at it). */
const readPiece = (docs: Docs.DocsService, hash: Hash, offset: number, length: number) =>
  length === 0
    ? Effect.succeed(new Uint8Array(0))
    : Effect.map(
      Stream.runHead(docs.blobRead(hash, { offset, length, chunkSize: length })),
      Option.getOrElse(() => new Uint8Array(0))
    )

/**
 * `ReadContent`, refused before anything is read when the content is larger than one reply carries (the node would
 * hold it whole, and the client's decoder refuses the reply): whether a byte exists at CONTENT_REPLY_MAX says so.
 */
const readContentBounded = (docs: Docs.DocsService, hash: Hash) =>
  readPiece(docs, hash, CONTENT_REPLY_MAX, 1).pipe(
    // Shorter than CONTENT_REPLY_MAX: the offset is past its end.
    Effect.catchTag("BlobRangeError", () => Effect.succeed(new Uint8Array(0))),
    Effect.flatMap((beyond) =>
      beyond.length === 0
        ? docs.readContent(hash)
        : Effect.fail(
          new DocsError({
            message: `content larger than ${CONTENT_REPLY_MAX} bytes, more than one reply carries: read it in pieces (BlobRead)`
          })
        )
    )
  )

/** The handlers of every request, each forwarding to `Docs`. */
export const handlers = (rpcAddress: Option.Option<string>) =>
  ServedRpcs.toLayer(Effect.gen(function*() {
    const docs = yield* Docs.Docs
    const uploads = yield* makeUploads(docs)
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
        progressStream(
          (onProgress: (p: ImportFileProgress) => Effect.Effect<void>) =>
            docs.importFile(docId, authorId, key, path, (bytes) => onProgress({ _tag: "Progress", bytes })),
          (done): ReadonlyArray<ImportFileProgress> => [{ _tag: "Done", hash: done.hash, size: done.size, key: done.key }]
        ),
      ExportFile: ({ hash, path }) =>
        progressStream(
          (onProgress: (p: ExportFileProgress) => Effect.Effect<void>) =>
            docs.exportFile(hash, path, (bytes, size) => onProgress({ _tag: "Progress", bytes, size })),
          () => []
        ),
      ReadContent: ({ hash }) => readContentBounded(docs, hash),
      BlobList: () => docs.blobList,
      BlobRead: ({ hash, length, offset }) => readPiece(docs, hash, offset, length),
      BlobGc: () => docs.blobGc,
      BeginUpload: ({ authorId, docId, key }) => uploads.begin(docId, authorId, key),
      UploadChunk: ({ bytes, uploadId }) => uploads.chunk(uploadId, bytes),
      CommitUpload: ({ uploadId }) => uploads.commit(uploadId),
      AbortUpload: ({ uploadId }) => uploads.abort(uploadId),
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
  /** The built inspector's files (issue 18); default: the package's `dist/ui/` when it exists. */
  readonly uiDir?: string
}

export interface ServerInfo {
  readonly url: string
  readonly token: Redacted.Redacted<string>
}

export class RpcServerInfo extends Context.Tag("docs/RpcServerInfo")<RpcServerInfo, ServerInfo>() {}

/**
 * The request, its body read in one pass. @effect/platform-node reads a body by concatenating each arriving piece
 * onto all before it (`NodeStream.toUint8Array`: `Buffer.concat([buffer, chunk])` per `data` event), so a 1 MiB
 * upload chunk, which arrives in pieces of up to 64 KiB, was copied about eight times over: per 100 MiB piped to
 * `doc set`, 850 MiB copied and as much garbage, most of the node's CPU for it (profile: GC 0.89 s and copies 0.25 s
 * of 1.9 s). Here the pieces are kept and joined once, at most REQUEST_BODY_MAX bytes. Everything else of the request
 * is the original's.
 */
const withBodyInOnePass = (request: HttpServerRequest.HttpServerRequest): HttpServerRequest.HttpServerRequest => {
  const incoming = NodeHttpServerRequest.toIncomingMessage(request)
  const fail = (cause: unknown) => new HttpServerError.RequestError({ request, reason: "Decode", cause })
  const body = Effect.async<ArrayBuffer, HttpServerError.RequestError>((resume) => {
    let pieces: Array<Buffer> = []
    let size = 0
    const detach = () => void incoming.off("data", onData).off("end", onEnd).off("error", onError)
    const onData = (piece: Buffer) => {
      size += piece.length
      pieces.push(piece)
      // A body without a length (chunked) is bounded as it arrives: the connection ends at the first byte too many.
      if (size > REQUEST_BODY_MAX) {
        detach()
        pieces = []
        incoming.destroy()
        resume(Effect.fail(fail(new Error(`request body larger than ${REQUEST_BODY_MAX} bytes`))))
      }
    }
    const onEnd = () => {
      detach()
      const whole = pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces)
      pieces = []
      resume(Effect.succeed(
        whole.byteOffset === 0 && whole.byteLength === whole.buffer.byteLength
          ? whole.buffer as ArrayBuffer
          : whole.buffer.slice(whole.byteOffset, whole.byteOffset + whole.byteLength) as ArrayBuffer
      ))
    }
    const onError = (cause: unknown) => {
      detach()
      resume(Effect.fail(fail(cause)))
    }
    incoming.on("data", onData).once("end", onEnd).once("error", onError)
    return Effect.sync(() => {
      detach()
      if (!incoming.complete) incoming.destroy()
    })
  })
  return Object.create(request, { arrayBuffer: { value: body } }) as HttpServerRequest.HttpServerRequest
}

/** 413 for a request whose declared body is above REQUEST_BODY_MAX (or not a number). */
const tooLarge = () =>
  HttpServerResponse.text(`request body larger than ${REQUEST_BODY_MAX} bytes`, { status: 413 })

/**
 * Serves the Docs RPC group over HTTP (msgpack) on `host:port`, refusing requests without the token (401) and bodies
 * above REQUEST_BODY_MAX (413). Provides the URL and token it serves with.
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
        NodeHttpServer.layer(() => {
          const server = http.createServer()
          server.keepAliveTimeout = SERVER_KEEP_ALIVE_MS
          return server
        }, { host, port: options.port ?? 0 })
      ).pipe(Effect.mapError((e) => new DocsError({ message: `RPC server: ${e.message}` })))
      const httpServer = Context.get(server, HttpServer.HttpServer)
      const address = httpServer.address
      const url = address._tag === "TcpAddress"
        ? `http://${address.hostname.includes(":") ? `[${address.hostname}]` : address.hostname}:${address.port}${RPC_PATH}`
        : `unix:${address.path}`
      const docs = yield* Docs.Docs
      const handlerContext = yield* Layer.build(
        Layer.merge(handlers(Option.some(url)), Inspector.inspectorHandlers)
      ).pipe(Effect.provideService(Docs.Docs, docs))
      const rpcApp = yield* RpcServer.toHttpApp(ServedRpcs.merge(InspectorRpcs)).pipe(
        Effect.provide(Layer.mergeAll(Layer.succeedContext(handlerContext), layerMsgPack))
      )
      const startedAt = yield* Clock.currentTimeMillis
      const metrics = Effect.gen(function*() {
        const counters = yield* docs.stats
        const uptime = Math.round(((yield* Clock.currentTimeMillis) - startedAt) / 1000)
        return HttpServerResponse.text(Metrics.prometheusText(counters, uptime), {
          contentType: "text/plain; version=0.0.4; charset=utf-8"
        })
      }).pipe(Effect.catchAll(() => Effect.succeed(HttpServerResponse.text("metrics unavailable", { status: 500 }))))
      const uiDir = options.uiDir === undefined ? Inspector.findUiDir() : Option.some(options.uiDir)
      const hosts = address._tag === "TcpAddress" ? Inspector.allowedHosts(host, address.port) : undefined
      const guarded = Effect.gen(function*() {
        const request = yield* HttpServerRequest.HttpServerRequest
        // DNS rebinding: a page of another site that resolves its name to 127.0.0.1 reaches no route.
        if (!Inspector.hostAllowed(request.headers["host"], hosts)) return Inspector.misdirected()
        const uiFile = request.method === "GET" ? Inspector.uiFileOf(request.url) : undefined
        if (uiFile !== undefined) return yield* Inspector.serveUiFile(uiDir, uiFile)
        const route = request.url === RPC_PATH || request.url.startsWith(`${RPC_PATH}?`)
          ? "rpc"
          : request.url === METRICS_PATH && request.method === "GET"
          ? "metrics"
          : undefined
        if (route === undefined) return HttpServerResponse.text("not found", { status: 404 })
        if (!sameToken(request.headers["authorization"], token)) {
          return HttpServerResponse.text("missing or wrong access token", { status: 401 })
        }
        if (route === "metrics") return yield* metrics
        const declared = Number(request.headers["content-length"] ?? 0)
        if (!(declared <= REQUEST_BODY_MAX)) return tooLarge()
        return yield* Effect.provideService(rpcApp, HttpServerRequest.HttpServerRequest, withBodyInOnePass(request))
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
