/**
 * The Network service over real TCP sockets on 127.0.0.1 (port 0): identities, dialing, protocol handlers, timeouts,
 * the persistent identity and shutdown. Every node, server and directory a test opens is closed by its scope.
 */
import { noise } from "@chainsafe/libp2p-noise"
import { yamux } from "@chainsafe/libp2p-yamux"
import { generateKeyPair } from "@libp2p/crypto/keys"
import { peerIdFromPrivateKey } from "@libp2p/peer-id"
import { tcp } from "@libp2p/tcp"
import { multiaddr } from "@multiformats/multiaddr"
import { createLibp2p } from "libp2p"
import { assert, describe, it } from "@effect/vitest"
import { Clock, Context, Deferred, Effect, Either, Exit, Fiber, Layer, Redacted, Ref, Schedule, Scope, Stream } from "effect"
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises"
import * as net from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { concat, equals, toHex } from "../../src/internal/bytes.js"
import * as Ed from "../../src/internal/ed25519.js"
import { DialError, type StreamError } from "../../src/schema/NetworkErrors.js"
import { NodeAddr, NodeId, nodeIdEquals, nodeIdFromPeerId, peerIdFromNodeId } from "../../src/schema/NodeAddr.js"
import * as Network from "../../src/services/Network.js"

const ECHO = "/rangedocs-test/echo/1"

const startNode = <E>(layer: Layer.Layer<Network.Network, E>) =>
  Effect.map(Layer.build(layer), (ctx) => Context.get(ctx, Network.Network))

const node = (config: Network.NetworkConfig = {}) => startNode(Network.layer({ dialTimeout: "2 seconds", ...config }))

/** Everything the remote sends until its FIN, as one array. */
const readAll = (stream: Network.Stream) =>
  Stream.runCollect(Network.receive(stream)).pipe(Effect.map((chunks) => concat(...chunks)))

const echo: Network.Handler<StreamError, never> = (stream) =>
  Stream.runForEach(Network.receive(stream), (bytes) => Network.send(stream, bytes))

/** Writes `bytes`, half-closes, and returns everything the remote sent back. */
const roundTrip = (stream: Network.Stream, bytes: Uint8Array) =>
  Network.send(stream, bytes).pipe(Effect.zipRight(Network.closeWrite(stream)), Effect.zipRight(readAll(stream)))

const eventually = (check: Effect.Effect<boolean>) =>
  check.pipe(
    Effect.filterOrFail((ok) => ok),
    Effect.retry(Schedule.spaced("20 millis").pipe(Schedule.upTo("3 seconds"))),
    Effect.orElse(() => Effect.sync(() => assert.fail("condition not reached within 3 s")))
  )

const includes = (ids: ReadonlyArray<NodeId>, id: NodeId) => ids.some((x) => nodeIdEquals(x, id))

const randomNodeId = () => NodeId.make(Ed.publicKeyOf(Ed.randomSeed()))

/** A 127.0.0.1 port with nothing listening on it. */
const closedPort = Effect.async<number>((resume) => {
  const server = net.createServer()
  server.listen(0, "127.0.0.1", () => {
    const address = server.address()
    const port = typeof address === "object" && address !== null ? address.port : 0
    server.close(() => resume(Effect.succeed(port)))
  })
})

/** A TCP server that accepts connections and never answers, closed with the scope. */
const silentServer = Effect.acquireRelease(
  Effect.async<{ readonly server: net.Server; readonly sockets: Set<net.Socket> }>((resume) => {
    const sockets = new Set<net.Socket>()
    const server = net.createServer((socket) => {
      sockets.add(socket)
      socket.on("error", () => {})
    })
    server.listen(0, "127.0.0.1", () => resume(Effect.succeed({ server, sockets })))
  }),
  ({ server, sockets }) =>
    Effect.async<void>((resume) => {
      for (const socket of sockets) socket.destroy()
      server.close(() => resume(Effect.void))
    })
).pipe(Effect.map(({ server }) => {
  const address = server.address()
  return typeof address === "object" && address !== null ? address.port : 0
}))

/** The DialError `effect` fails with (the test fails if it succeeds), and how long that took. */
const dialFailure = <A, R>(effect: Effect.Effect<A, DialError, R>, nodeId: NodeId) =>
  Effect.gen(function*() {
    const start = yield* Clock.currentTimeMillis
    const error = yield* Effect.flip(effect)
    assert.strictEqual(error._tag, "DialError")
    assert.isTrue(nodeIdEquals(error.nodeId, nodeId))
    assert.include(error.message, toHex(nodeId))
    return { error, millis: (yield* Clock.currentTimeMillis) - start }
  })

const tempDir = Effect.acquireRelease(
  Effect.promise(() => mkdtemp(join(tmpdir(), "rangedocs-net-"))),
  (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
)

describe("NodeAddr", () => {
  it.effect("node id ⇄ PeerId round trip on raw key bytes", () =>
    Effect.gen(function*() {
      const id = randomNodeId()
      const back = yield* nodeIdFromPeerId(peerIdFromNodeId(id))
      assert.isTrue(equals(back, id))
    }))

  it.effect("a non-Ed25519 peer id is rejected with NotEd25519Peer", () =>
    Effect.gen(function*() {
      const key = yield* Effect.promise(() => generateKeyPair("secp256k1"))
      const result = nodeIdFromPeerId(peerIdFromPrivateKey(key))
      assert.isTrue(Either.isLeft(result))
      if (Either.isLeft(result)) {
        assert.strictEqual(result.left._tag, "NotEd25519Peer")
        assert.strictEqual(result.left.keyType, "secp256k1")
      }
    }))
})

describe("Network", () => {
  it.scopedLive("two nodes start on loopback with distinct 32-byte node ids", () =>
    Effect.gen(function*() {
      const a = yield* node()
      const b = yield* node()
      assert.strictEqual(a.nodeId.length, 32)
      assert.strictEqual(b.nodeId.length, 32)
      assert.isFalse(nodeIdEquals(a.nodeId, b.nodeId))
      const addr = yield* a.addr
      assert.isTrue(nodeIdEquals(addr.nodeId, a.nodeId))
      assert.isAbove(addr.addrs.length, 0)
      for (const ma of addr.addrs) assert.match(ma, /^\/ip4\/127\.0\.0\.1\/tcp\/[1-9]\d*$/)
      // The id libp2p authenticated (noise) is the node id.
      yield* b.dial(addr)
      const seen = (yield* b.connections).map((c) => c.peer)
      assert.isTrue(seen.some((id) => equals(id, a.nodeId)))
    }))

  it.scopedLive("a configured identity gives the same node id", () =>
    Effect.gen(function*() {
      const seed = Ed.randomSeed()
      const a = yield* node({ identity: Redacted.make(seed) })
      assert.isTrue(equals(a.nodeId, Ed.publicKeyOf(seed)))
    }))

  it.scopedLive("after A dials B's NodeAddr, each lists the other as a peer", () =>
    Effect.gen(function*() {
      const a = yield* node()
      const b = yield* node()
      assert.deepStrictEqual(yield* a.peers, [])
      yield* a.dial(yield* b.addr)
      assert.isTrue(includes(yield* a.peers, b.nodeId))
      yield* eventually(Effect.map(b.peers, (ids) => includes(ids, a.nodeId)))
    }))

  it.scopedLive("the remote must prove the dialed node id; dialing ourselves fails", () =>
    Effect.gen(function*() {
      const a = yield* node()
      const b = yield* node()
      const impostor = randomNodeId()
      // B's address under another id: the noise handshake authenticates B's key, which does not match.
      const elsewhere = new NodeAddr({ nodeId: impostor, addrs: (yield* b.addr).addrs })
      const { error } = yield* dialFailure(a.dial(elsewhere), impostor)
      assert.isString(error.reason)
      assert.isFalse(includes(yield* a.peers, impostor))
      yield* dialFailure(a.dial(yield* a.addr), a.nodeId)
    }))

  it.scopedLive("a handler on B echoes a stream opened by A and sees A's node id", () =>
    Effect.gen(function*() {
      const a = yield* node()
      const b = yield* node()
      const remote = yield* Deferred.make<NodeId>()
      yield* b.handle(ECHO, (stream, from) => Effect.zipRight(Deferred.succeed(remote, from), echo(stream, from)))
      const payload = Uint8Array.from({ length: 300_000 }, (_, i) => (i * 7) % 251)
      const stream = yield* a.openStream(yield* b.addr, ECHO)
      assert.strictEqual(stream.protocol, ECHO)
      const back = yield* roundTrip(stream, payload)
      assert.isTrue(equals(back, payload))
      assert.isTrue(nodeIdEquals(yield* Deferred.await(remote), a.nodeId))
      // Once connected, the node id alone is enough.
      const again = yield* a.openStream(b.nodeId, ECHO)
      assert.isTrue(equals(yield* roundTrip(again, Uint8Array.of(1, 2, 3)), Uint8Array.of(1, 2, 3)))
    }))

  it.scopedLive("closing the opener's scope half-closes its stream; the handler sees the end", () =>
    Effect.gen(function*() {
      const a = yield* node()
      const b = yield* node()
      const received = yield* Deferred.make<Uint8Array>()
      yield* b.handle(ECHO, (stream) =>
        readAll(stream).pipe(Effect.flatMap((bytes) => Deferred.succeed(received, bytes)), Effect.orDie))
      const addr = yield* b.addr
      yield* Effect.scoped(
        Effect.flatMap(a.openStream(addr, ECHO), (stream) => Network.send(stream, Uint8Array.of(9, 8, 7)))
      )
      assert.deepStrictEqual([...(yield* Deferred.await(received))], [9, 8, 7])
    }))

  it.scopedLive("a closed port fails with DialError well within the dial timeout", () =>
    Effect.gen(function*() {
      const a = yield* node({ dialTimeout: "500 millis" })
      const target = randomNodeId()
      const port = yield* closedPort
      const addr = new NodeAddr({ nodeId: target, addrs: [`/ip4/127.0.0.1/tcp/${port}`] })
      const dialed = yield* dialFailure(a.dial(addr), target)
      assert.isUndefined(dialed.error.protocol)
      assert.isBelow(dialed.millis, 1500)
      const opened = yield* dialFailure(Effect.scoped(a.openStream(addr, ECHO)), target)
      assert.strictEqual(opened.error.protocol, ECHO)
      assert.isBelow(opened.millis, 1500)
      yield* dialFailure(a.dial(new NodeAddr({ nodeId: target, addrs: [] })), target)
    }))

  it.scopedLive("a peer that never answers the handshake fails with DialError at the timeout", () =>
    Effect.gen(function*() {
      const a = yield* node({ dialTimeout: "500 millis" })
      const target = randomNodeId()
      const port = yield* silentServer
      const { error, millis } = yield* dialFailure(
        a.dial(new NodeAddr({ nodeId: target, addrs: [`/ip4/127.0.0.1/tcp/${port}`] })),
        target
      )
      assert.match(error.reason, /timed out/)
      assert.isAtLeast(millis, 450)
      assert.isBelow(millis, 2000)
    }))

  it.scopedLive("send and receive keep both buffers bounded and lose nothing when the FIN meets a paused reader", () =>
    Effect.gen(function*() {
      const a = yield* node()
      const b = yield* node()
      const total = 24 * 1024 * 1024
      const received = yield* Deferred.make<{ readonly bytes: number; readonly maxUnread: number }, StreamError>()
      yield* b.handle(ECHO, (stream) => {
        let maxUnread = 0
        // A slow consumer: libp2p queues what it does not take, paused once over the high-water mark.
        return Network.receive(stream, { highWaterMark: 256 * 1024 }).pipe(
          Stream.tap(() => Effect.sync(() => { maxUnread = Math.max(maxUnread, stream.readBufferLength) })),
          Stream.tap(() => Effect.sleep("2 millis")),
          Stream.runFold(0, (n, chunk) => n + chunk.length),
          Effect.flatMap((bytes) => Deferred.succeed(received, { bytes, maxUnread })),
          Effect.catchAll((e) => Deferred.fail(received, e))
        )
      })
      const stream = yield* a.openStream(yield* b.addr, ECHO)
      const chunk = new Uint8Array(64 * 1024)
      let maxQueued = 0
      for (let sent = 0; sent < total; sent += chunk.length) {
        yield* Network.send(stream, chunk)
        maxQueued = Math.max(maxQueued, stream.writeBufferLength)
      }
      yield* Network.closeWrite(stream)
      const result = yield* Deferred.await(received)
      assert.strictEqual(result.bytes, total)
      assert.isAtMost(maxQueued, 1024 * 1024)
      assert.isAtMost(result.maxUnread, Network.streamReadBuffer(Network.DEFAULT_STREAM_WINDOW))
    }))

  it.scopedLive("the receive window bounds how far a sender gets ahead of a reader that stops; configurable", () =>
    Effect.gen(function*() {
      /** How far a's sends got ahead of b's reads once b read 16 MiB at full speed (the window grows) and stopped. */
      const aheadAfterStall = (config: Network.NetworkConfig) =>
        Effect.gen(function*() {
          const a = yield* node()
          const b = yield* node(config)
          let sent = 0
          let read = 0
          const stalled = yield* Deferred.make<void>()
          yield* b.handle(ECHO, (stream) =>
            Effect.scoped(Effect.gen(function*() {
              const pull = yield* Network.reader(stream, { highWaterMark: 64 * 1024 })
              while (read < 16 * 1024 * 1024) {
                for (const bytes of yield* pull) read += bytes.length
              }
              yield* Deferred.succeed(stalled, undefined)
              // Reads nothing more until the sender resets the stream.
              yield* Effect.never
            })))
          const stream = yield* a.openStream(yield* b.addr, ECHO)
          const chunk = new Uint8Array(64 * 1024)
          const sender = yield* Effect.fork(
            Effect.forever(Effect.zipRight(Network.send(stream, chunk), Effect.sync(() => void (sent += chunk.length))))
          )
          yield* Deferred.await(stalled)
          yield* Effect.sleep("700 millis")
          const ahead = sent - read
          yield* Fiber.interrupt(sender)
          stream.abort(new Error("measured"))
          return ahead
        }).pipe(Effect.scoped)
      // a's own write buffer and the chunk in flight come on top of b's window.
      const slack = 1024 * 1024 + 64 * 1024
      const small = yield* aheadAfterStall({ streamWindow: 512 * 1024 })
      assert.isAtMost(small, 512 * 1024 + slack)
      const byDefault = yield* aheadAfterStall({})
      assert.isAbove(byDefault, 512 * 1024 + slack, "the default window grew past the small one")
      assert.isAtMost(byDefault, Network.DEFAULT_STREAM_WINDOW + slack)
      for (const streamWindow of [128 * 1024, 1.5, 2 ** 32]) {
        const error = yield* Effect.flip(node({ streamWindow }))
        assert.strictEqual(error._tag, "NetworkError")
      }
    }), { timeout: 30_000 })

  it.scopedLive("a reader that stalls repeatedly while the window fills receives everything (no read-buffer abort)", () =>
    Effect.gen(function*() {
      const a = yield* node()
      const b = yield* node()
      const total = 48 * 1024 * 1024
      const received = yield* Deferred.make<number, StreamError>()
      yield* b.handle(ECHO, (stream) => {
        let stalls = 3
        // Long stalls: the remote fills the yamux window, resume() delivers it in one burst, and the reader stalls
        // again right after (the pause must hold, or the remote overruns the read buffer and libp2p aborts).
        return Network.receive(stream).pipe(
          Stream.tap(() => (stalls-- > 0 ? Effect.sleep("500 millis") : Effect.void)),
          Stream.runFold(0, (n, chunk) => n + chunk.length),
          Effect.flatMap((bytes) => Deferred.succeed(received, bytes)),
          Effect.catchAll((e) => Deferred.fail(received, e))
        )
      })
      const stream = yield* a.openStream(yield* b.addr, ECHO)
      const chunk = new Uint8Array(256 * 1024)
      for (let sent = 0; sent < total; sent += chunk.length) yield* Network.send(stream, chunk)
      yield* Network.closeWrite(stream)
      assert.strictEqual(yield* Deferred.await(received), total)
    }))

  it.scopedLive("reader: the bytes in order, None after the FIN, Some(StreamError) after an abort", () =>
    Effect.gen(function*() {
      const a = yield* node()
      const b = yield* node()
      const outcome = yield* Deferred.make<{ readonly bytes: Uint8Array; readonly end: string }>()
      const READ = "/rangedocs-test/reader/1"
      yield* b.handle(READ, (stream) =>
        Effect.scoped(Effect.gen(function*() {
          const pull = yield* Network.reader(stream)
          const parts: Array<Uint8Array> = []
          for (;;) {
            const next = yield* Effect.either(pull)
            if (Either.isRight(next)) {
              parts.push(...next.right)
              continue
            }
            const end = next.left._tag === "None" ? "fin" : `error ${next.left.value._tag}`
            return yield* Deferred.succeed(outcome, { bytes: concat(...parts), end })
          }
        })))
      const payload = new Uint8Array(3 * 1024 * 1024 + 17).map((_, i) => (i * 7) % 251)
      yield* Effect.scoped(Effect.gen(function*() {
        const stream = yield* a.openStream(yield* b.addr, READ)
        for (let at = 0; at < payload.length; at += 100_000) {
          yield* Network.send(stream, payload.subarray(at, Math.min(at + 100_000, payload.length)))
        }
      }))
      const clean = yield* Deferred.await(outcome)
      assert.strictEqual(clean.end, "fin")
      assert.isTrue(equals(clean.bytes, payload))

      const aborted = yield* Deferred.make<{ readonly bytes: Uint8Array; readonly end: string }>()
      const ABORT = "/rangedocs-test/reader-abort/1"
      yield* b.handle(ABORT, (stream) =>
        Effect.scoped(Effect.gen(function*() {
          const pull = yield* Network.reader(stream)
          for (;;) {
            const next = yield* Effect.either(pull)
            if (Either.isLeft(next)) {
              const end = next.left._tag === "None" ? "fin" : `error ${next.left.value._tag}`
              return yield* Deferred.succeed(aborted, { bytes: new Uint8Array(0), end })
            }
          }
        })))
      const stream = yield* a.openStream(yield* b.addr, ABORT)
      yield* Network.send(stream, Uint8Array.of(1, 2, 3))
      stream.abort(new Error("gone"))
      assert.strictEqual((yield* Deferred.await(aborted)).end, "error StreamError")
    }))

  it.scopedLive("sendReleasing: a buffer refilled after `true` never alters bytes sent, also when the reader stalls", () =>
    Effect.gen(function*() {
      const a = yield* node()
      const b = yield* node()
      const chunkSize = 256 * 1024
      const chunks = 96
      const received = yield* Deferred.make<Uint8Array, StreamError>()
      yield* b.handle(ECHO, (stream) => {
        let stalls = 2
        // Stalls fill the yamux window: sends then queue in libp2p and must report false.
        return Network.receive(stream).pipe(
          Stream.tap(() => (stalls-- > 0 ? Effect.sleep("300 millis") : Effect.void)),
          Stream.runCollect,
          Effect.flatMap((parts) => Deferred.succeed(received, concat(...parts))),
          Effect.catchAll((e) => Deferred.fail(received, e))
        )
      })
      const stream = yield* a.openStream(yield* b.addr, ECHO)
      const spare: Array<Uint8Array> = []
      let released = 0
      let held = 0
      for (let i = 0; i < chunks; i++) {
        const buffer = spare.pop() ?? new Uint8Array(chunkSize)
        buffer.fill(i)
        if (yield* Network.sendReleasing(stream, buffer)) {
          released++
          spare.push(buffer)
        } else {
          held++
        }
      }
      yield* Network.closeWrite(stream)
      const bytes = yield* Deferred.await(received)
      assert.strictEqual(bytes.length, chunks * chunkSize)
      for (let i = 0; i < chunks; i++) {
        const part = bytes.subarray(i * chunkSize, (i + 1) * chunkSize)
        assert.isTrue(part.every((x) => x === i), `chunk ${i} was altered after it was sent`)
      }
      assert.isAbove(released, 0)
      assert.isAbove(held, 0)
    }))

  it.scopedLive("a handler that fails or dies does not crash B; B serves the next stream", () =>
    Effect.gen(function*() {
      const a = yield* node()
      const b = yield* node()
      const calls = yield* Ref.make(0)
      const flaky: Network.Handler<StreamError | "expected failure", never> = (stream, from) =>
        Effect.flatMap(
          Ref.getAndUpdate(calls, (n) => n + 1),
          (n): Effect.Effect<void, StreamError | "expected failure"> =>
            n === 0 ? Effect.die("handler bug") : n === 1 ? Effect.fail("expected failure" as const) : echo(stream, from)
        )
      yield* b.handle(ECHO, flaky)
      const addr = yield* b.addr
      for (let i = 0; i < 2; i++) {
        // The handler's stream is aborted: the opener's read fails with a reset.
        const error = yield* Effect.flip(Effect.scoped(Effect.flatMap(a.openStream(addr, ECHO), readAll)))
        assert.strictEqual(error._tag, "StreamError")
      }
      const ok = yield* Effect.scoped(Effect.flatMap(a.openStream(addr, ECHO), (s) => roundTrip(s, Uint8Array.of(42))))
      assert.deepStrictEqual([...ok], [42])
      assert.strictEqual(yield* Ref.get(calls), 3)
      assert.isTrue(yield* b.isRunning)
    }))

  it.scopedLive("streams from a non-Ed25519 (secp256k1) peer are aborted before the handler runs", () =>
    Effect.gen(function*() {
      const b = yield* node()
      const calls = yield* Ref.make(0)
      yield* b.handle(ECHO, (stream, from) => Effect.zipRight(Ref.update(calls, (n) => n + 1), echo(stream, from)))
      const privateKey = yield* Effect.promise(() => generateKeyPair("secp256k1"))
      const other = yield* Effect.acquireRelease(
        Effect.promise(() =>
          createLibp2p({ privateKey, transports: [tcp()], connectionEncrypters: [noise()], streamMuxers: [yamux()] })
        ),
        (n) => Effect.promise(async () => n.stop())
      )
      const target = multiaddr(`${(yield* b.addr).addrs[0]}/p2p/${peerIdFromNodeId(b.nodeId).toString()}`)
      const stream = yield* Effect.promise(() => other.dialProtocol(target, ECHO))
      yield* Network.send(stream, Uint8Array.of(1)).pipe(Effect.ignore)
      const error = yield* Effect.flip(readAll(stream))
      assert.strictEqual(error._tag, "StreamError")
      assert.strictEqual(yield* Ref.get(calls), 0)
    }))

  it.scopedLive("closing the registration scope unregisters the protocol", () =>
    Effect.gen(function*() {
      const a = yield* node()
      const b = yield* node()
      const registration = yield* Scope.make()
      yield* b.handle(ECHO, echo).pipe(Scope.extend(registration))
      const addr = yield* b.addr
      const ok = yield* Effect.scoped(Effect.flatMap(a.openStream(addr, ECHO), (s) => roundTrip(s, Uint8Array.of(1))))
      assert.deepStrictEqual([...ok], [1])
      yield* Scope.close(registration, Exit.void)
      yield* dialFailure(Effect.scoped(a.openStream(addr, ECHO)), b.nodeId)
    }))

  it.scopedLive("the persistent identity keeps the node id across restarts; the key file is 0600", () =>
    Effect.gen(function*() {
      const dataDir = join(yield* tempDir, "data")
      const idOnce = Effect.scoped(
        Effect.map(startNode(Network.layerPersistentIdentity(dataDir, { dialTimeout: "2 seconds" })), (n) => n.nodeId)
      )
      const first = yield* idOnce
      const second = yield* idOnce
      assert.isTrue(equals(first, second))
      const info = yield* Effect.promise(() => stat(join(dataDir, Network.NODE_KEY_FILE)))
      assert.strictEqual(info.mode & 0o777, 0o600)
      const fresh = yield* Effect.scoped(Effect.map(node(), (n) => n.nodeId))
      assert.isFalse(equals(fresh, first))
    }))

  it.scopedLive("a corrupt key file fails the layer instead of being replaced", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const file = join(dir, Network.NODE_KEY_FILE)
      yield* Effect.promise(() => writeFile(file, "not hex\n"))
      const error = yield* Effect.flip(Effect.scoped(startNode(Network.layerPersistentIdentity(dir))))
      assert.strictEqual(error._tag, "NetworkError")
      assert.strictEqual(yield* Effect.promise(() => readFile(file, "utf8")), "not hex\n")
    }))

  it.scopedLive("closing a node's scope interrupts its handlers and closes its listeners: a later dial fails", () =>
    Effect.gen(function*() {
      const a = yield* node({ dialTimeout: "1 second" })
      const scopeB = yield* Scope.make()
      const b = yield* node().pipe(Scope.extend(scopeB))
      const started = yield* Deferred.make<void>()
      const interrupted = yield* Deferred.make<void>()
      // Registered in the test's scope, which outlives B: the service's closing must end it anyway.
      yield* b.handle(ECHO, () =>
        Deferred.succeed(started, undefined).pipe(
          Effect.zipRight(Effect.never),
          Effect.onInterrupt(() => Deferred.succeed(interrupted, undefined))
        ))
      const addr = yield* b.addr
      const stream = yield* a.openStream(addr, ECHO)
      yield* Network.send(stream, Uint8Array.of(1))
      yield* Deferred.await(started)
      yield* Scope.close(scopeB, Exit.void)
      assert.isTrue(yield* Deferred.isDone(interrupted))
      assert.isFalse(yield* b.isRunning)
      yield* eventually(Effect.map(a.peers, (ids) => !includes(ids, b.nodeId)))
      yield* dialFailure(a.dial(addr), b.nodeId)
      const c = yield* node({ dialTimeout: "1 second" })
      yield* dialFailure(c.dial(addr), b.nodeId)
    }))
})
