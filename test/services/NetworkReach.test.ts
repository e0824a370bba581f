/**
 * Reach on loopback (issue 17): WebSockets, circuit relay v2 (reservations kept by the supervisor, our protocols over
 * limited relayed connections, limits that carry more than libp2p's 128 KiB, a relay at its limit refusing clearly,
 * moving to another relay when one goes away), dial by node id through a relay, connectionKind and shareAddr.
 * Real libp2p nodes on 127.0.0.1; every node belongs to the test's scope. The NAT lab (test/lab) runs the same
 * through real NATs.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Duration, Effect, Exit, Layer, Option, Redacted, Schedule, Scope, Stream, TestClock } from "effect"
import { NodeAddr, peerIdFromNodeId } from "../../src/schema/NodeAddr.js"
import * as Network from "../../src/services/Network.js"
import { parseHopAnswer, RESERVE_REQUEST } from "../../src/services/Network/reach.js"

const node = (config: Network.NetworkConfig = {}) =>
  Effect.map(
    Layer.build(Network.layer({ dialTimeout: "5 seconds", relayCheckInterval: "200 millis" as const, ...config })),
    (ctx) => Context.get(ctx, Network.Network)
  )

/** A node in a scope of its own, so that a test can stop it midway. */
const stoppable = (config: Network.NetworkConfig = {}) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const network = yield* node(config).pipe(Scope.extend(scope))
    yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void))
    return { network, stop: Scope.close(scope, Exit.void) }
  })

const eventually = (check: Effect.Effect<boolean>, what: string, within: Duration.DurationInput = "10 seconds") =>
  check.pipe(
    Effect.filterOrFail((ok) => ok),
    Effect.retry(Schedule.spaced("50 millis").pipe(Schedule.upTo(within))),
    Effect.orElse(() => Effect.sync(() => assert.fail(`not reached within ${within}: ${what}`)))
  )

/** The relay's dialable address with its peer id, as `--relay` takes it. */
const relayAddr = (relay: Network.NetworkService) =>
  Effect.map(relay.addr, (a) => `${a.addrs[0]}/p2p/${peerIdFromNodeId(relay.nodeId).toString()}`)

const ECHO = "/rangedocs-test/echo/1"

/** Serves ECHO: sends back what it reads. */
const serveEcho = (network: Network.NetworkService) =>
  network.handle(ECHO, (stream) =>
    Network.receive(stream).pipe(
      Stream.runForEach((chunk) => Network.send(stream, chunk)),
      Effect.orDie
    ))

/** Sends `size` bytes over ECHO and reads them back. */
const echo = (from: Network.NetworkService, to: NodeAddr | NodeAddr["nodeId"], size: number) =>
  Effect.scoped(Effect.gen(function*() {
    const stream = yield* from.openStream(to, ECHO)
    const chunk = new Uint8Array(64 * 1024).fill(7)
    yield* Effect.fork(Effect.gen(function*() {
      for (let sent = 0; sent < size; sent += chunk.length) yield* Network.send(stream, chunk)
      yield* Network.closeWrite(stream)
    }))
    return yield* Network.receive(stream).pipe(Stream.runFold(0, (n, c) => n + c.length))
  }))

const circuitsOf = (network: Network.NetworkService) =>
  Effect.map(network.shareAddr("relay"), (a) => a.addrs)

/** `network` as a ticket with only its circuits gives it. */
const viaRelay = (network: Network.NetworkService) => network.shareAddr("relay")

describe("Network reach", () => {
  it("RESERVE answers decode: status, expiry, incomplete and malformed input", () => {
    assert.deepStrictEqual([...RESERVE_REQUEST], [2, 8, 0])
    // type STATUS, reservation { expire: 1000 }, status OK
    const ok = Uint8Array.of(9, 0x08, 0x02, 0x1a, 0x03, 0x08, 0xe8, 0x07, 0x28, 0x64)
    assert.deepStrictEqual(parseHopAnswer(ok), { status: 100, expire: 1000 })
    assert.strictEqual(parseHopAnswer(ok.subarray(0, 5)), "incomplete")
    assert.deepStrictEqual(parseHopAnswer(Uint8Array.of(5, 0x08, 0x02, 0x28, 0xc8)), "incomplete")
    assert.strictEqual(parseHopAnswer(Uint8Array.of(4, 0x08, 0x02, 0x28, 0xc8, 0x01)), "malformed")
    assert.deepStrictEqual(parseHopAnswer(Uint8Array.of(5, 0x08, 0x02, 0x28, 0xc8, 0x01)), { status: 200 })
    assert.strictEqual(parseHopAnswer(Uint8Array.of(2, 0x08, 0x02)), "malformed")
    assert.strictEqual(parseHopAnswer(Uint8Array.of(2, 0x0b, 0x02)), "malformed")
    assert.strictEqual(parseHopAnswer(Uint8Array.of(0xff, 0xff, 0xff, 0x7f)), "malformed")
  })

  it.scopedLive("WebSockets: a node listening on /ws is dialled over it", () =>
    Effect.gen(function*() {
      const a = yield* node({ listen: ["/ip4/127.0.0.1/tcp/0/ws"] })
      const b = yield* node()
      const addr = yield* a.addr
      assert.isTrue(addr.addrs.every((x) => x.endsWith("/ws")), addr.addrs.join(" "))
      yield* serveEcho(a)
      assert.strictEqual(yield* echo(b, addr, 256 * 1024), 256 * 1024)
      const [conn] = yield* b.connections
      assert.isTrue(conn!.remoteAddr.endsWith("/ws"))
      assert.deepStrictEqual(yield* b.connectionKind(a.nodeId), Option.some("direct"))
    }), 30_000)

  it.scopedLive("relay: a node announces circuit addresses, is reached through them by node id, 4 MiB each way over the limited connection", () =>
    Effect.gen(function*() {
      const relay = yield* node({ relayService: true })
      const r = yield* relayAddr(relay)
      // a listens nowhere: the relay is its one way in.
      const a = yield* node({ relays: [r], listen: [] })
      const b = yield* node({ relays: [r] })
      yield* eventually(Effect.map(circuitsOf(a), (c) => c.length === 1), "a holds a reservation")
      assert.deepStrictEqual(yield* a.relays, [{ relay: r, status: "reserved" }])
      const [circuit] = yield* circuitsOf(a)
      assert.strictEqual(circuit, `${r}/p2p-circuit`)
      assert.deepStrictEqual((yield* a.shareAddr("none")).addrs, [])
      assert.isFalse((yield* a.shareAddr("direct")).addrs.some((x) => x.includes("p2p-circuit")))
      assert.strictEqual((yield* a.shareAddr("both")).addrs.length, (yield* a.addr).addrs.length)
      yield* serveEcho(a)
      // b knows nothing of a but its node id: the relays are the lookup of last resort.
      assert.strictEqual(yield* echo(b, a.nodeId, 4 * 1024 * 1024), 4 * 1024 * 1024)
      assert.deepStrictEqual(yield* b.connectionKind(a.nodeId), Option.some("relayed"))
      const kinds = (yield* b.connections).filter((c) => c.peer.every((x, i) => x === a.nodeId[i])).map((c) => c.kind)
      assert.deepStrictEqual(kinds, ["relayed"])
    }), 30_000)

  it.scopedLive("finding 4: a node that reached us through a relay is answered over that limited connection (no address of it known)", () =>
    Effect.gen(function*() {
      const relay = yield* node({ relayService: true })
      const r = yield* relayAddr(relay)
      const a = yield* node({ relays: [r], listen: [] })
      yield* eventually(Effect.map(circuitsOf(a), (c) => c.length === 1), "a holds a reservation")
      // b listens nowhere and holds no reservation: a cannot dial it, only answer on the connection b opened. (libp2p's
      // own dial never reuses a limited connection: it dials the addresses it knows, none here.)
      const b = yield* node({ listen: [] })
      yield* serveEcho(a)
      yield* serveEcho(b)
      assert.strictEqual(yield* echo(b, yield* viaRelay(a), 64 * 1024), 64 * 1024)
      assert.deepStrictEqual(yield* a.connectionKind(b.nodeId), Option.some("relayed"))
      assert.strictEqual(yield* echo(a, b.nodeId, 64 * 1024), 64 * 1024)
      yield* a.dial(new NodeAddr({ nodeId: b.nodeId, addrs: [] }))
      // What b knows of a is a's circuit, whole (not the relay's own address, as a cut at the last /p2p/ left it).
      assert.deepStrictEqual(yield* b.peerAddresses(a.nodeId), yield* circuitsOf(a))
    }), 30_000)

  it.scopedLive("finding 4: a tightly limited relayed connection is used only when no other way to the peer is found", () =>
    Effect.gen(function*() {
      // A relay with tight limits (as libp2p's default 128 KiB): 1 MiB per relayed connection.
      const relay = yield* node({ relayService: { dataLimit: 1024n * 1024n } })
      const r = yield* relayAddr(relay)
      const a = yield* node({ relays: [r] })
      yield* eventually(Effect.map(circuitsOf(a), (c) => c.length === 1), "a holds a reservation")
      yield* serveEcho(a)
      // b reaches a through the relay; b listens on loopback, which a learns (identify), so a can dial b directly.
      const b = yield* node()
      yield* serveEcho(b)
      assert.strictEqual(yield* echo(b, yield* viaRelay(a), 64 * 1024), 64 * 1024)
      assert.deepStrictEqual(yield* a.connectionKind(b.nodeId), Option.some("relayed"))
      yield* eventually(Effect.map(a.peerAddresses(b.nodeId), (x) => x.some((addr) => !addr.includes("p2p-circuit"))), "a learns b's address")
      assert.strictEqual(yield* echo(a, b.nodeId, 64 * 1024), 64 * 1024)
      assert.deepStrictEqual(yield* a.connectionKind(b.nodeId), Option.some("direct"), "a dialled b rather than use the tight connection")
      // c listens nowhere: the tight connection c opened is a's only way to it, and is used.
      const c = yield* node({ listen: [] })
      yield* serveEcho(c)
      assert.strictEqual(yield* echo(c, yield* viaRelay(a), 64 * 1024), 64 * 1024)
      assert.strictEqual(yield* echo(a, c.nodeId, 64 * 1024), 64 * 1024)
      assert.deepStrictEqual(yield* a.connectionKind(c.nodeId), Option.some("relayed"))
    }), 30_000)

  it.scopedLive("finding 4: identify tells a peer our relay circuits (a peer that knows only our direct address learns them), while we hold them", () =>
    Effect.gen(function*() {
      const relay = yield* stoppable({ relayService: true })
      const r = yield* relayAddr(relay.network)
      // a listens on TCP and WebSockets; peers dial its TCP address, and learn the other (and circuits) by identify.
      const a = yield* node({ relays: [r], listen: ["/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/tcp/0/ws"] })
      yield* eventually(Effect.map(circuitsOf(a), (c) => c.length === 1), "a holds a reservation")
      const [circuit] = yield* circuitsOf(a)
      const tcpOnly = new NodeAddr({ nodeId: a.nodeId, addrs: (yield* a.shareAddr("direct")).addrs.filter((x) => !x.endsWith("/ws")) })
      const identified = (peer: Network.NetworkService) =>
        eventually(Effect.map(peer.peerAddresses(a.nodeId), (x) => x.some((addr) => addr.endsWith("/ws"))), "identify ran")
      const b = yield* node()
      yield* b.dial(tcpOnly)
      yield* identified(b)
      yield* eventually(Effect.map(b.peerAddresses(a.nodeId), (addrs) => addrs.includes(circuit!)), "b learns a's circuit")
      // The relay goes: a withdraws the circuit at its next check, and a peer connecting then is not told it.
      yield* relay.stop
      yield* eventually(Effect.map(a.relays, (s) => s[0]?.status === "unreachable"), "a sees the relay gone")
      const c = yield* node()
      yield* c.dial(tcpOnly)
      yield* identified(c)
      assert.notInclude(yield* c.peerAddresses(a.nodeId), circuit!)
    }), 30_000)

  it.scopedLive("finding 4: a relay at its reservation limit refuses with a clear reason, in relays and one WARN", () =>
    Effect.gen(function*() {
      const relay = yield* node({ relayService: { maxReservations: 1 } })
      const r = yield* relayAddr(relay)
      const a = yield* node({ relays: [r] })
      yield* eventually(Effect.map(a.relays, (s) => s[0]?.status === "reserved"), "a holds the one slot")
      const b = yield* node({ relays: [r] })
      yield* eventually(Effect.map(b.relays, (s) => s[0]?.status === "refused"), "b is refused")
      const [state] = yield* b.relays
      assert.include(state!.reason, "RESERVATION_REFUSED (the relay is at its reservation limit)")
      assert.deepStrictEqual(yield* circuitsOf(b), [])
    }), 30_000)

  it.scopedLive("finding 4: relay gone: a node announced through two relays stays reachable through the other; the supervisor redials", () =>
    Effect.gen(function*() {
      const seed = Redacted.make(crypto.getRandomValues(new Uint8Array(32)))
      const r1 = yield* stoppable({ relayService: true, identity: seed })
      const r2 = yield* node({ relayService: true })
      const r1Addr = yield* relayAddr(r1.network)
      const r2Addr = yield* relayAddr(r2)
      const a = yield* node({ relays: [r1Addr, r2Addr], listen: [] })
      yield* eventually(Effect.map(circuitsOf(a), (c) => c.length === 2), "a holds two reservations")
      yield* serveEcho(a)
      const b = yield* node()
      const ticket = yield* a.shareAddr("relay")
      assert.strictEqual(yield* echo(b, ticket, 64 * 1024), 64 * 1024)
      yield* r1.stop
      yield* eventually(Effect.map(circuitsOf(a), (c) => c.length === 1 && c[0] === `${r2Addr}/p2p-circuit`), "a drops r1")
      const states = yield* a.relays
      assert.notStrictEqual(states.find((s) => s.relay === r1Addr)?.status, "reserved")
      yield* eventually(
        Effect.map(Effect.either(echo(b, ticket, 64 * 1024)), (r) => r._tag === "Right" && r.right === 64 * 1024),
        "b reaches a through r2"
      )
      assert.deepStrictEqual(yield* b.connectionKind(a.nodeId), Option.some("relayed"))
      // r1 comes back (same identity and port): the supervisor redials it and holds a reservation there again.
      yield* node({ relayService: true, identity: seed, listen: [r1Addr.replace(/\/p2p\/.*$/, "")] })
      yield* eventually(Effect.map(circuitsOf(a), (c) => c.length === 2), "a holds a reservation on r1 again")
    }), 40_000)

  it.scoped("the relay supervisor's timer (TestClock): a relay that came back is redialled at the next check, not before", () =>
    Effect.gen(function*() {
      /** Real time passes (libp2p runs on it) while the test clock stands still. */
      const realSleep = (ms: number) => Effect.promise(() => new Promise((r) => setTimeout(r, ms)))
      const realEventually = (check: Effect.Effect<boolean>, what: string) =>
        Effect.gen(function*() {
          for (let i = 0; i < 200; i++) {
            if (yield* check) return
            yield* realSleep(50)
          }
          assert.fail(`not reached within 10 s of real time: ${what}`)
        })
      const seed = Redacted.make(crypto.getRandomValues(new Uint8Array(32)))
      const r1 = yield* stoppable({ relayService: true, identity: seed })
      const r1Addr = yield* relayAddr(r1.network)
      const a = yield* node({ relays: [r1Addr], listen: [], relayCheckInterval: "10 minutes" })
      const reserved = Effect.map(a.relays, (s) => s[0]?.status === "reserved")
      // The first check runs at start.
      yield* realEventually(reserved, "a holds a reservation after the first check")
      yield* r1.stop
      yield* node({ relayService: true, identity: seed, listen: [r1Addr.replace(/\/p2p\/.*$/, "")] })
      yield* serveEcho(a)
      const b = yield* node()
      const viaRelay = new NodeAddr({ nodeId: a.nodeId, addrs: [`${r1Addr}/p2p-circuit`] })
      const reach = Effect.map(Effect.either(echo(b, viaRelay, 1024)), (r) => r._tag === "Right")
      // 9 minutes: no check yet, so the relay that came back holds no reservation for a: b cannot reach a.
      yield* TestClock.adjust("9 minutes")
      yield* realSleep(1500)
      assert.isFalse(yield* reach, "a reachable before the check")
      // The 10-minute check finds the connection gone, redials the relay and reserves again: b reaches a.
      yield* TestClock.adjust("1 minute")
      yield* realEventually(reach, "b reaches a through the relay after the check")
    }), 40_000)

  it.scopedLive("relays: a malformed relay address fails the start with its reason", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(node({ relays: ["/ip4/127.0.0.1/tcp/1"] }))
      assert.isTrue(Exit.isFailure(exit))
      assert.include(String(Exit.isFailure(exit) ? exit.cause : ""), "must end in /p2p/<peer id>")
      const bad = yield* Effect.exit(node({ relayService: { maxReservations: 0 } }))
      assert.include(String(Exit.isFailure(bad) ? bad.cause : ""), "maxReservations")
    }), 20_000)
})
