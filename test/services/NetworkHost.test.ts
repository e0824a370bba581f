/**
 * The host's limits and memory (issue 15): connection limits that let a swarm join one node at once (finding 2), the
 * listen port kept across restarts (finding 3), and the connection operations that replace the libp2p object. Real
 * libp2p nodes on 127.0.0.1; every node, server and directory belongs to the test's scope.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Exit, HashMap, Layer, Logger, LogLevel, Schedule, Scope, TestClock } from "effect"
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises"
import * as net from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { NamespaceSecret } from "../../src/schema/Keys.js"
import { NodeAddr, nodeIdEquals } from "../../src/schema/NodeAddr.js"
import * as Gossip from "../../src/services/Gossip.js"
import * as Network from "../../src/services/Network.js"
import { LISTEN_PORTS_FILE } from "../../src/services/Network/ports.js"
import { makeRemoteWarnings } from "../../src/services/Network/warnings.js"

const startNode = <E>(layer: Layer.Layer<Network.Network, E>) =>
  Effect.map(Layer.build(layer), (ctx) => Context.get(ctx, Network.Network))

const node = (config: Network.NetworkConfig = {}) => startNode(Network.layer({ dialTimeout: "10 seconds", ...config }))

const tempDir = Effect.acquireRelease(
  Effect.promise(() => mkdtemp(join(tmpdir(), "rangedocs-host-"))),
  (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
)

const eventually = (check: Effect.Effect<boolean>, what: string) =>
  check.pipe(
    Effect.filterOrFail((ok) => ok),
    Effect.retry(Schedule.spaced("20 millis").pipe(Schedule.upTo("5 seconds"))),
    Effect.orElse(() => Effect.sync(() => assert.fail(`not reached within 5 s: ${what}`)))
  )

const portOf = (addr: string) => Number(/\/tcp\/(\d+)$/.exec(addr)?.[1])

/** Holds a TCP port on 127.0.0.1 for the scope. */
const holdPort = (port: number) =>
  Effect.acquireRelease(
    Effect.async<net.Server, Error>((resume) => {
      const server = net.createServer()
      server.once("error", (error) => resume(Effect.fail(error)))
      server.listen(port, "127.0.0.1", () => resume(Effect.succeed(server)))
    }),
    (server) => Effect.async<void>((resume) => void server.close(() => resume(Effect.void)))
  )

/** Twenty nodes dial `hub` at once; how many of the dials succeeded. */
const joinStorm = (hub: Network.NetworkService, count: number) =>
  Effect.gen(function*() {
    const nodes = yield* Effect.all(Array.from({ length: count }, () => node()), { concurrency: "unbounded" })
    const addr = yield* hub.addr
    const results = yield* Effect.all(nodes.map((n) => Effect.either(n.dial(addr))), { concurrency: "unbounded" })
    return { nodes, connected: results.filter((r) => r._tag === "Right").length }
  })

interface LogLine {
  readonly level: string
  readonly text: string
}

/** A logger recording every line (level, message and annotations as text) into `lines`, for the whole test. */
/** Records every log line, at every level (the suite logs nothing by default). */
const recordingLogger = (lines: Array<LogLine>) =>
  Layer.merge(
    Logger.replace(
      Logger.defaultLogger,
      Logger.make(({ annotations, logLevel, message }) => {
        const parts = (Array.isArray(message) ? message : [message]).map(String)
        for (const [key, value] of HashMap.toEntries(annotations)) parts.push(`${key}=${String(value)}`)
        lines.push({ level: logLevel.label, text: parts.join(" ") })
      })
    ),
    Logger.minimumLogLevel(LogLevel.Debug)
  )

const STACK = /\n\s+at .*:\d+/

describe("Network host", () => {
  it.scopedLive("the peer store keeps at most MAX_PEER_STORE_ADDRS addresses per peer, the newest given first", () =>
    Effect.gen(function*() {
      const a = yield* node()
      const b = yield* node()
      const real = yield* b.addr
      yield* a.dial(real)
      // A peer that keeps publishing new addresses (membership records, tickets): 10 × 8 of them.
      let last: ReadonlyArray<string> = []
      for (let round = 0; round < 10; round++) {
        last = Array.from({ length: 8 }, (_, i) => `/ip4/127.0.0.1/tcp/${20_000 + round * 8 + i}`)
        yield* a.dial(new NodeAddr({ nodeId: b.nodeId, addrs: last }))
      }
      const kept = yield* a.peerAddresses(b.nodeId)
      assert.isAtMost(kept.length, Network.MAX_PEER_STORE_ADDRS)
      for (const addr of last) assert.include(kept, addr)
    }))

  it.scopedLive("finding 2: twenty nodes dialing one node in the same instant all connect", () =>
    Effect.gen(function*() {
      const hub = yield* node()
      const { connected, nodes } = yield* joinStorm(hub, 20)
      assert.strictEqual(connected, 20)
      yield* eventually(
        Effect.map(hub.connections, (cs) => nodes.every((n) => cs.some((c) => nodeIdEquals(c.peer, n.nodeId)))),
        "the hub lists all twenty"
      )
    }), 60_000)

  it.scopedLive("finding 2: with libp2p's own rate limit (5 per host per second) a join storm is refused in part", () =>
    Effect.gen(function*() {
      const hub = yield* node({ connections: { inboundPerHostPerSecond: 5 } })
      const { connected } = yield* joinStorm(hub, 12)
      assert.isBelow(connected, 12)
    }), 60_000)

  it.scopedLive("connection limits are validated at start", () =>
    Effect.gen(function*() {
      for (
        const connections of [
          { maxConnections: 0 },
          { maxConnections: 1.5 },
          { inboundPerHostPerSecond: -1 },
          { maxConnections: 10, maxPendingInbound: 11 },
          { maxConnections: 1e9 }
        ]
      ) {
        const error = yield* Effect.flip(Effect.scoped(node({ connections })))
        assert.strictEqual(error._tag, "NetworkError")
        assert.match(String(error.cause), /connections\.\w+ must be an integer/)
      }
    }))

  it.scopedLive("hangUp closes every connection to a peer; connections and isRunning report the host", () =>
    Effect.gen(function*() {
      const a = yield* node()
      const b = yield* node()
      yield* a.dial(yield* b.addr)
      const [out] = yield* a.connections
      assert.isTrue(nodeIdEquals(out!.peer, b.nodeId))
      assert.strictEqual(out!.direction, "outbound")
      assert.strictEqual(portOf(out!.remoteAddr), portOf((yield* b.addr).addrs[0]!))
      yield* eventually(Effect.map(b.connections, (cs) => cs.some((c) => c.direction === "inbound")), "B sees A")
      yield* a.hangUp(b.nodeId)
      assert.strictEqual((yield* a.connections).length, 0)
      yield* eventually(Effect.map(b.connections, (cs) => cs.length === 0), "B sees the hang-up")
      yield* a.hangUp(b.nodeId) // no connection: a no-op
      assert.isTrue(yield* a.isRunning)
    }))

  it.scopedLive("finding 3: a persistent node listens on its last port when it is free, on a new one when taken", () =>
    Effect.gen(function*() {
      const dataDir = join(yield* tempDir, "data")
      const config = { listen: ["/ip4/127.0.0.1/tcp/0"], dialTimeout: "2 seconds" } as const
      const portOnce = Effect.scoped(
        Effect.flatMap(startNode(Network.layerPersistent(dataDir, config)), (n) => n.addr).pipe(
          Effect.map((addr) => portOf(addr.addrs[0]!))
        )
      )
      const first = yield* portOnce
      assert.isAbove(first, 0)
      const recorded = JSON.parse(yield* Effect.promise(() => readFile(join(dataDir, LISTEN_PORTS_FILE), "utf8")))
      assert.deepStrictEqual(recorded, { "/ip4/127.0.0.1/tcp/0": first })
      assert.strictEqual(yield* portOnce, first)
      // Someone else took the port meanwhile: the node still starts, elsewhere, and records that port.
      const held = yield* Scope.make()
      yield* holdPort(first).pipe(Scope.extend(held))
      const third = yield* portOnce
      assert.notStrictEqual(third, first)
      yield* Scope.close(held, Exit.void)
      assert.strictEqual(yield* portOnce, third)
    }))

  it.scopedLive("a malformed listen-ports file is ignored: the node starts on a new port", () =>
    Effect.gen(function*() {
      const dataDir = yield* tempDir
      yield* Effect.promise(() => writeFile(join(dataDir, LISTEN_PORTS_FILE), "{\"/ip4/127.0.0.1/tcp/0\": 70000}"))
      const n = yield* startNode(Network.layerPersistent(dataDir, { listen: ["/ip4/127.0.0.1/tcp/0"] }))
      assert.isAbove(portOf((yield* n.addr).addrs[0]!), 0)
    }))

  it.effect("remote warnings: one line per kind per interval; the next line counts the ones in between", () => {
    const lines: Array<LogLine> = []
    return Effect.gen(function*() {
      const warn = makeRemoteWarnings("10 seconds")
      for (let i = 0; i < 5; i++) yield* warn("stream handler failed", { reason: `r${i}` })
      yield* warn("gossip message skipped")
      yield* TestClock.adjust("9999 millis")
      yield* warn("stream handler failed", { reason: "r5" })
      assert.deepStrictEqual(lines.map((l) => l.text), ["stream handler failed reason=r0", "gossip message skipped"])
      yield* TestClock.adjust("1 millis")
      yield* warn("stream handler failed", { reason: "r6" })
      assert.deepStrictEqual(lines.map((l) => `${l.level} ${l.text}`).slice(2), ["WARN stream handler failed reason=r6 suppressed=5"])
    }).pipe(Effect.provide(recordingLogger(lines)))
  })

  it.scopedLive("finding 3: a remote-caused failure logs one WARN line without a stack; the cause is at DEBUG", () => {
    const lines: Array<LogLine> = []
    return Effect.gen(function*() {
      const a = yield* node()
      const b = yield* node()
      yield* b.handle("/rangedocs-test/fails/1", () => Effect.fail("the remote sent garbage" as const))
      yield* Effect.scoped(a.openStream(yield* b.addr, "/rangedocs-test/fails/1"))
      const warned = () => lines.filter((l) => l.level === "WARN" && l.text.startsWith("stream handler failed"))
      yield* eventually(Effect.sync(() => warned().length === 1), "the handler's failure is logged")
      assert.include(warned()[0]!.text, "the remote sent garbage")
      assert.notMatch(warned()[0]!.text, STACK)
      assert.isTrue(lines.some((l) => l.level === "DEBUG" && l.text.startsWith("stream handler failed")))
      // A remote failing stream after stream does not fill the log: still one WARN line, every cause at DEBUG.
      yield* Effect.scoped(a.openStream(yield* b.addr, "/rangedocs-test/fails/1")).pipe(Effect.repeatN(2))
      const debugged = () => lines.filter((l) => l.level === "DEBUG" && l.text.startsWith("stream handler failed"))
      yield* eventually(Effect.sync(() => debugged().length === 4), "every failure is at DEBUG")
      assert.strictEqual(warned().length, 1)

      // A bootstrap peer that is not there: one WARN line per failed dial, no stack.
      const gossip = Context.get(
        yield* Layer.build(Gossip.layer().pipe(Layer.provide(Network.layer({ dialTimeout: "1 second" })))),
        Gossip.Gossip
      )
      const gone = yield* node()
      const goneAddr = new NodeAddr({ nodeId: gone.nodeId, addrs: ["/ip4/127.0.0.1/tcp/1"] })
      yield* gossip.join(NamespaceSecret.generate().id, [goneAddr])
      const dialWarnings = () => lines.filter((l) => l.level === "WARN" && l.text.startsWith("bootstrap dial failed"))
      yield* eventually(Effect.sync(() => dialWarnings().length === 1), "the failed dial is logged")
      assert.notMatch(dialWarnings()[0]!.text, STACK)
    }).pipe(Effect.provide(recordingLogger(lines)), Effect.provide(Logger.minimumLogLevel(LogLevel.Debug)))
  })
})
