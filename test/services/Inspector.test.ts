import { assert, describe, it } from "@effect/vitest"
import * as Command from "@effect/cli/Command"
import * as NodeContext from "@effect/platform-node/NodeContext"
import { RpcClient } from "@effect/rpc"
import { Context, Deferred, Effect, Fiber, Layer, Option, Redacted, Schedule, Schema, Stream } from "effect"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as http from "node:http"
import * as os from "node:os"
import * as path from "node:path"
import { blake3 } from "../../src/internal/blake3.js"
import { toHex } from "../../src/internal/bytes.js"
import { encodeFrame } from "../../src/internal/framing.js"
import { BLOB_PROTOCOL, BlobResponseFromBytes, Complete, MAX_BLOB_HEADER } from "../../src/schema/BlobTransfer.js"
import { InspectorRpcs } from "../../src/schema/InspectorRpc.js"
import { Hash } from "../../src/schema/Keys.js"
import { LiveEvent, SyncDetails } from "../../src/schema/LiveEvent.js"
import * as BlobTransfer from "../../src/services/BlobTransfer.js"
import * as Network from "../../src/services/Network.js"
import { DocsRpcs } from "../../src/schema/Rpc.js"
import * as DocsRpc from "../../src/services/DocsRpc.js"
import * as Inspector from "../../src/services/Inspector.js"
import { opener, uiCommand } from "../../src/cli/Ui.js"
import { eventually, startMemoryNode, type TestNode } from "../utils/nodes.js"

/** A directory with a stand-in of the built inspector, removed with the scope. */
const fakeUi = Effect.acquireRelease(
  Effect.sync(() => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rangedocs-ui-"))
    fs.writeFileSync(path.join(dir, "index.html"), "<!doctype html><script type=module src=/ui/app.js></script>")
    fs.writeFileSync(path.join(dir, "app.js"), "console.log('inspector')")
    fs.writeFileSync(path.join(dir, "app.css"), "body{}")
    fs.writeFileSync(path.join(dir, "secret.txt"), "not served")
    return dir
  }),
  (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
)

const serve = (node: TestNode, options: DocsRpc.ServerOptions) =>
  Layer.build(DocsRpc.layerServer(options).pipe(Layer.provide(Layer.succeedContext(node.context)))).pipe(
    Effect.orDie,
    Effect.map((ctx) => Context.get(ctx, DocsRpc.RpcServerInfo))
  )

interface Reply {
  readonly status: number
  readonly headers: http.IncomingHttpHeaders
  readonly body: string
}

/** A raw HTTP request, so the test sets the Host header itself (fetch does not let it). */
const request = (url: string, options: { method?: string; path?: string; headers?: Record<string, string> } = {}) =>
  Effect.async<Reply>((resume) => {
    const u = new URL(url)
    const req = http.request(
      { host: u.hostname, port: u.port, method: options.method ?? "GET", path: options.path ?? "/", headers: options.headers ?? {} },
      (res) => {
        const chunks: Array<Buffer> = []
        res.on("data", (c: Buffer) => chunks.push(c))
        res.on("end", () =>
          resume(Effect.succeed({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") })))
      }
    )
    req.on("error", (e) => resume(Effect.die(e)))
    req.end()
  })

const portOf = (url: string) => new URL(url).port

describe("Inspector", () => {
  it.scopedLive("serves the page and its assets with a strict CSP, nosniff and no-referrer; nothing else of the folder", () =>
    Effect.gen(function*() {
      const node = yield* startMemoryNode()
      const uiDir = yield* fakeUi
      const server = yield* serve(node, { uiDir })
      const host = { host: `127.0.0.1:${portOf(server.url)}` }
      const page = yield* request(server.url, { headers: host })
      assert.strictEqual(page.status, 200)
      assert.match(String(page.headers["content-type"]), /^text\/html/)
      assert.strictEqual(
        page.headers["content-security-policy"],
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
      )
      assert.strictEqual(page.headers["x-content-type-options"], "nosniff")
      assert.strictEqual(page.headers["referrer-policy"], "no-referrer")
      assert.include(page.body, "/ui/app.js")
      const script = yield* request(server.url, { path: "/ui/app.js", headers: host })
      assert.strictEqual(script.status, 200)
      assert.match(String(script.headers["content-type"]), /^text\/javascript/)
      assert.strictEqual(script.headers["content-security-policy"], Inspector.CONTENT_SECURITY_POLICY)
      assert.strictEqual((yield* request(server.url, { path: "/ui/app.css", headers: host })).status, 200)
      for (const p of ["/ui/secret.txt", "/ui/../rpc-token", "/ui/%2e%2e/secret.txt", "/secret.txt", "/ui/"]) {
        const r = yield* request(server.url, { path: p, headers: host })
        assert.strictEqual(r.status, 404, p)
        assert.notInclude(r.body, "not served", p)
      }
      // The page needs no token; the RPC does.
      const rpc = yield* request(server.url, { method: "POST", path: "/rpc", headers: host })
      assert.strictEqual(rpc.status, 401)
    }))

  it.scopedLive("DNS rebinding: a Host other than 127.0.0.1, localhost or [::1] with the port gets 421 on every route", () =>
    Effect.gen(function*() {
      const node = yield* startMemoryNode()
      const uiDir = yield* fakeUi
      const server = yield* serve(node, { uiDir })
      const port = portOf(server.url)
      const bearer = { authorization: `Bearer ${Redacted.value(server.token)}` }
      for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `LOCALHOST:${port}`, `[::1]:${port}`]) {
        assert.strictEqual((yield* request(server.url, { headers: { host } })).status, 200, host)
        assert.strictEqual((yield* request(server.url, { path: "/metrics", headers: { host, ...bearer } })).status, 200, host)
      }
      for (const host of [`evil.example:${port}`, `evil.example`, `127.0.0.1:1`, `127.0.0.1`, `localhost.evil.example:${port}`]) {
        const page = yield* request(server.url, { headers: { host } })
        assert.strictEqual(page.status, 421, host)
        assert.strictEqual((yield* request(server.url, { path: "/metrics", headers: { host, ...bearer } })).status, 421, host)
        assert.strictEqual(
          (yield* request(server.url, { method: "POST", path: "/rpc", headers: { host, ...bearer } })).status,
          421,
          host
        )
      }
      assert.isUndefined(Inspector.allowedHosts("0.0.0.0", 1), "a server opened to the network accepts any name")
      assert.isTrue(Inspector.hostAllowed("10.0.0.5:7", Inspector.allowedHosts("10.0.0.5", 7)))
    }))

  it.scopedLive("without a built inspector, / says how to build it", () =>
    Effect.gen(function*() {
      const node = yield* startMemoryNode()
      const server = yield* serve(node, { uiDir: path.join(os.tmpdir(), "rangedocs-no-such-ui") })
      const page = yield* request(server.url, { headers: { host: `127.0.0.1:${portOf(server.url)}` } })
      assert.strictEqual(page.status, 404)
      assert.include(page.body, "inspector file index.html is missing")
    }))

  it("inspectorUrl: the origin with the token in the fragment only", () => {
    assert.strictEqual(Inspector.inspectorUrl("http://127.0.0.1:4001/rpc", "ab12"), "http://127.0.0.1:4001/#token=ab12")
    assert.strictEqual(Inspector.uiFileOf("/"), "index.html")
    assert.strictEqual(Inspector.uiFileOf("/?x=1"), "index.html")
    assert.strictEqual(Inspector.uiFileOf("/ui/app.js"), "app.js")
    assert.isUndefined(Inspector.uiFileOf("/ui/constructor"))
    assert.isUndefined(Inspector.uiFileOf("/rpc"))
  })

  it.scopedLive("Watch holds the document open while the page watches it, and closes it when the stream ends", () =>
    Effect.gen(function*() {
      const node = yield* startMemoryNode()
      const server = yield* serve(node, {})
      const docId = yield* node.docs.create
      yield* node.docs.close(docId)
      const context = yield* Layer.build(DocsRpc.layerProtocol(server))
      const client = yield* RpcClient.make(DocsRpcs.merge(InspectorRpcs)).pipe(Effect.provide(context))
      const first = yield* Deferred.make<void>()
      const watching = yield* Effect.fork(Stream.runForEach(client.Watch({ docId }), () => Deferred.succeed(first, undefined)))
      // Suspended: \`status(docId)\` reads the replica's state when it is called, not when it runs.
      const handles = Effect.suspend(() => node.docs.status(docId)).pipe(Effect.map((s) => s.handles), Effect.option)
      // The first event proves the node subscribed (writes until one arrives: the request may take a moment).
      const author = yield* node.docs.authorGetDefault
      yield* node.docs.set(docId, author, new TextEncoder().encode("k"), new TextEncoder().encode("v")).pipe(
        Effect.ignore,
        Effect.zipRight(Effect.sleep("100 millis")),
        Effect.forever,
        Effect.raceFirst(Deferred.await(first)),
        Effect.timeout("10 seconds")
      )
      assert.deepStrictEqual(yield* handles, Option.some(1), "open while watched")
      yield* Fiber.interrupt(watching)
      yield* eventually(Effect.map(handles, Option.isNone), 5000, "the document closed")
    }))

  it.scopedLive("rangedocs ui prints http://127.0.0.1:PORT/#token=… for the data directory's node; --open picks the platform's opener", () =>
    Effect.gen(function*() {
      const node = yield* startMemoryNode()
      const dataDir = yield* Effect.acquireRelease(
        Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "rangedocs-ui-cli-"))),
        (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
      )
      const server = yield* serve(node, { dataDir })
      const cli = Command.run(Command.make("rangedocs").pipe(Command.withSubcommands([uiCommand])), { name: "rangedocs", version: "0" })
      const printed: Array<string> = []
      const write = process.stdout.write.bind(process.stdout)
      yield* Effect.acquireRelease(
        Effect.sync(() => {
          process.stdout.write = (chunk: string | Uint8Array, ...rest: Array<unknown>) => {
            printed.push(String(chunk))
            const done = rest.find((r) => typeof r === "function")
            if (typeof done === "function") done()
            return true
          }
        }),
        () => Effect.sync(() => void (process.stdout.write = write))
      )
      yield* cli(["node", "rangedocs", "ui", "--data-dir", dataDir]).pipe(Effect.provide(NodeContext.layer))
      const port = portOf(server.url)
      assert.deepStrictEqual(printed, [`http://127.0.0.1:${port}/#token=${Redacted.value(server.token)}\n`])
      assert.deepStrictEqual(opener("linux", "u"), ["xdg-open", ["u"]])
      assert.deepStrictEqual(opener("darwin", "u"), ["open", ["u"]])
      assert.deepStrictEqual(opener("win32", "u"), ["cmd", ["/c", "start", "", "u"]])
    }))

  it.scopedLive("issue 18: Transfers lists the node's downloads in flight with bytes so far and the announced size", () =>
    Effect.gen(function*() {
      const node = yield* startMemoryNode()
      const server = yield* serve(node, {})
      const context = yield* Layer.build(DocsRpc.layerProtocol(server))
      const client = yield* RpcClient.make(DocsRpcs.merge(InspectorRpcs)).pipe(Effect.provide(context))
      assert.deepStrictEqual(yield* client.Transfers(), [])
      // A provider that announces 5000 bytes, sends 700 and then nothing: a download that stays in flight.
      const content = new Uint8Array(randomBytes(5000))
      const hash = Hash.make(blake3(content))
      const providerCtx = yield* Layer.build(Network.layer({}))
      const provider = Context.get(providerCtx, Network.Network)
      yield* provider.handle(BLOB_PROTOCOL, (stream) =>
        Effect.gen(function*() {
          yield* Network.send(stream, encodeFrame(Schema.encodeSync(BlobResponseFromBytes)(new Complete({ size: 5000 })), MAX_BLOB_HEADER))
          yield* Network.send(stream, content.subarray(0, 700))
          yield* Effect.never
        }).pipe(Effect.ignore))
      const addr = yield* provider.addr
      const download = yield* Context.get(node.context, BlobTransfer.BlobTransfer).download(hash, () => [addr]).pipe(
        Effect.fork
      )
      const listed = yield* client.Transfers().pipe(
        Effect.filterOrFail((all) => all.length === 1 && all[0]!.bytes === 700),
        Effect.retry({ schedule: Schedule.spaced("50 millis"), times: 200 })
      )
      const t = listed[0]!
      assert.strictEqual(toHex(t.hash), toHex(hash))
      assert.strictEqual(t.size, 5000)
      assert.strictEqual(toHex(t.provider ?? new Uint8Array()), toHex(addr.nodeId))
      yield* Fiber.interrupt(download)
      assert.deepStrictEqual(yield* client.Transfers(), [])
    }))

  it("issue 18: a SyncFinished carries the session's bytes each way; one without them (an older node's) still decodes", () => {
    const decode = Schema.decodeUnknownSync(LiveEvent)
    const encode = Schema.encodeSync(LiveEvent)
    const peer = new Uint8Array(32).fill(7)
    const base = { _tag: "SyncFinished", event: { peer, origin: { _tag: "Accept" }, started: 1, finished: 5 } }
    const old = decode({ ...base, event: { ...base.event, result: { _tag: "Ok", details: { entriesReceived: 3, entriesSent: 4 } } } })
    assert.isTrue(old._tag === "SyncFinished" && old.event.result._tag === "Ok" && old.event.result.details.bytesSent === undefined)
    const details = new SyncDetails({ entriesReceived: 3, entriesSent: 4, bytesReceived: 1234, bytesSent: 567 })
    const withBytes = decode({ ...base, event: { ...base.event, via: "direct", result: { _tag: "Ok", details } } })
    const back = decode(encode(withBytes))
    assert.isTrue(back._tag === "SyncFinished" && back.event.result._tag === "Ok")
    if (back._tag === "SyncFinished" && back.event.result._tag === "Ok") {
      assert.strictEqual(back.event.result.details.bytesReceived, 1234)
      assert.strictEqual(back.event.result.details.bytesSent, 567)
      assert.strictEqual(back.event.via, "direct")
    }
  })
})
