/**
 * OpenTelemetry export (issue 16): a node given an OTLP endpoint sends its spans and figures there. The collector is a
 * tiny HTTP server on 127.0.0.1:0 that records what is POSTed (OTLP/JSON).
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer, Option, Stream } from "effect"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import { memoryNode } from "../../src/layers/Node.js"
import * as Docs from "../../src/services/Docs.js"
import * as DocsRpc from "../../src/services/DocsRpc.js"
import * as Telemetry from "../../src/services/Telemetry.js"

interface Received {
  readonly path: string
  readonly body: string
}

const collector = Effect.acquireRelease(
  Effect.async<{ readonly url: string; readonly received: Array<Received>; readonly server: http.Server }>((resume) => {
    const received: Array<Received> = []
    const server = http.createServer((req, res) => {
      let body = ""
      req.setEncoding("utf8").on("data", (c: string) => (body += c)).on("end", () => {
        received.push({ path: req.url ?? "", body })
        res.writeHead(200, { "content-type": "application/json" }).end("{}")
      })
    })
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as AddressInfo).port
      resume(Effect.succeed({ url: `http://127.0.0.1:${port}`, received, server }))
    })
  }),
  ({ server }) => Effect.async<void>((resume) => void server.close(() => resume(Effect.void)))
)

const waitFor = (check: () => boolean, what: string) =>
  Effect.gen(function*() {
    for (let i = 0; i < 100; i++) {
      if (check()) return
      yield* Effect.sleep("100 millis")
    }
    assert.fail(`timed out waiting for ${what}`)
  })

describe("Telemetry", () => {
  it("optionsFromEnv: only an http(s) endpoint turns it on; service name and headers from the environment", () => {
    assert.isTrue(Option.isNone(Telemetry.optionsFromEnv({})))
    assert.isTrue(Option.isNone(Telemetry.optionsFromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: "localhost:4318" })))
    assert.deepStrictEqual(
      Telemetry.optionsFromEnv({
        OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318/",
        OTEL_SERVICE_NAME: "node-a",
        OTEL_EXPORTER_OTLP_HEADERS: "x-api-key=abc%20def,broken,k=v"
      }),
      Option.some({ endpoint: "http://collector:4318", serviceName: "node-a", headers: { "x-api-key": "abc def", k: "v" } })
    )
  })

  it.scopedLive("a node with an OTLP endpoint sends its spans and figures to the collector", () =>
    Effect.gen(function*() {
      const { received, url } = yield* collector
      const telemetry = Telemetry.layer({ endpoint: url, serviceName: "rangedocs-test", exportInterval: "200 millis" })
      // As `start` composes it: the exporter below the node.
      const node = memoryNode().pipe(Layer.provide(telemetry))
      yield* Effect.gen(function*() {
        const docs = yield* Docs.Docs
        const doc = yield* docs.create
        const author = yield* docs.authorGetDefault
        yield* docs.setStream(doc, author, new TextEncoder().encode("k"), Stream.make(new TextEncoder().encode("v")))
        yield* waitFor(
          () => received.some((r) => r.path === "/v1/traces" && r.body.includes("Blobs.addStream")),
          "a node span at /v1/traces"
        )
        yield* waitFor(
          () => received.some((r) => r.path === "/v1/metrics" && r.body.includes("rangedocs_")),
          "the node's figures at /v1/metrics"
        )
      }).pipe(Effect.provide(node))
      const traces = received.filter((r) => r.path === "/v1/traces").map((r) => r.body).join("\n")
      assert.include(traces, "rangedocs-test", "the resource names the service")
    }), 60_000)

  it.scopedLive("composed as `start` builds it (RPC server over the node, the exporter below): requests' spans arrive", () =>
    Effect.gen(function*() {
      const { received, url } = yield* collector
      const telemetry = Telemetry.layer({ endpoint: url, exportInterval: "200 millis" })
      const context = yield* Layer.build(
        DocsRpc.layerServer().pipe(Layer.provideMerge(memoryNode()), Layer.provide(telemetry))
      )
      // The client runs in this fiber, which has no exporter: what arrives comes from the node's own fibers.
      const client = Context.get(
        yield* Layer.build(DocsRpc.layerClient(Context.get(context, DocsRpc.RpcServerInfo))),
        Docs.Docs
      )
      const doc = yield* client.create
      const author = yield* client.authorGetDefault
      yield* client.setStream(doc, author, new TextEncoder().encode("k"), Stream.make(new TextEncoder().encode("v")))
      yield* waitFor(
        () => received.some((r) => r.path === "/v1/traces" && r.body.includes("Blobs.addStream")),
        "a span of the node's RPC handling at /v1/traces"
      )
    }), 60_000)
})
