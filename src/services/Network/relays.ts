/**
 * Internal: the relay supervisor. For each configured relay it keeps a connection (redialling one that went away) and
 * a reservation, which it asks for itself with the circuit relay v2 RESERVE message: so a refusal comes back with
 * the relay's own status ("RESERVATION_REFUSED: the relay is at its reservation limit") as one WARN line and in
 * {@link RelayState}, instead of inside libp2p's debug log. A reservation is renewed when half its time has passed
 * and after every reconnection. The node announces `<relay>/p2p-circuit` for every relay it holds a reservation on;
 * all of them at once, so a peer whose relay went away dials us through the others.
 *
 * The circuits are also given to libp2p's address manager (as confirmed addresses, from the reservation until its
 * loss is seen at a check), so identify tells every peer we connect to how to reach us through our relays: a peer
 * whose way to us went away dials the circuits it learnt that way. (No identify push: it makes gossipsub reopen
 * streams at moments our stream repair does not expect, `GossipsubAdapter.test`; a peer learns a change at its next
 * connection.)
 *
 * Inbound relayed connections need nothing more: the relay opens a STOP stream to us, which libp2p's relay
 * transport accepts (and it then keeps a reservation of its own on that relay, which the relay treats as a renewal).
 */
import type { Connection, Libp2p, PeerId, StreamMessageEvent } from "@libp2p/interface"
import { peerIdFromString } from "@libp2p/peer-id"
import { type Multiaddr, multiaddr } from "@multiformats/multiaddr"
import { Clock, Duration, Effect, Ref, Schedule } from "effect"
import {
  describeRelayStatus,
  HOP_PROTOCOL,
  isRelayed,
  MAX_HOP_ANSWER,
  parseHopAnswer,
  relayPeerOf,
  RESERVE_REQUEST
} from "./reach.js"

/** What the node holds on one configured relay. */
export interface RelayState {
  /** The relay's multiaddr, as configured (ending in `/p2p/<peer id>`). */
  readonly relay: string
  /**
   * `reserved`: we hold a slot, and announce `<relay>/p2p-circuit`; `connecting`: not tried yet or being redialled;
   * `unreachable`: the last dial failed (`reason`); `refused`: the relay answered RESERVE with an error (`reason`).
   */
  readonly status: "reserved" | "connecting" | "unreachable" | "refused"
  readonly reason?: string
}

/**
 * What the supervisor uses of libp2p's address manager: a confirmed address is in what identify announces until it is
 * removed (its `ttl`, ms, only says when AutoNAT may check it again).
 */
export interface AddressAnnouncer {
  readonly confirmObservedAddr: (addr: Multiaddr, options?: { readonly type?: "observed"; readonly ttl?: number }) => void
  readonly removeObservedAddr: (addr: Multiaddr) => void
  readonly getAddressesWithMetadata: () => ReadonlyArray<{
    readonly multiaddr: Multiaddr
    readonly verified: boolean
    readonly type: string
  }>
}

/**
 * libp2p's bound on observed addresses (its default `maxObservedAddresses`). It adds an address peers report only
 * while it holds exactly fewer than this (`size === max` stops it) and a confirmation ignores the bound: a confirmed
 * circuit past it would let every later report in. After each confirmation, unverified observed addresses are dropped
 * until the bound holds again.
 */
const MAX_OBSERVED_ADDRESSES = 10

/** Keeps libp2p's observed addresses within {@link MAX_OBSERVED_ADDRESSES}, dropping unverified ones first. */
export const trimObserved = (announcer: AddressAnnouncer): void => {
  const observed = announcer.getAddressesWithMetadata().filter((a) => a.type === "observed")
  let excess = observed.length - MAX_OBSERVED_ADDRESSES
  for (const a of observed) {
    if (excess <= 0) return
    if (!a.verified) {
      announcer.removeObservedAddr(a.multiaddr)
      excess--
    }
  }
}

/** libp2p keeps connections to peers with a `keep-alive` tag open, and reopens them. */
const KEEP_ALIVE_TAG = "keep-alive-rangedocs-relay"
/** A reservation is renewed after this share of its lifetime. */
const RENEW_AT = 0.5
/** Renewal of a reservation whose answer named no expiry. */
const DEFAULT_RENEW: Duration.Duration = Duration.minutes(10)

interface Held {
  readonly state: RelayState
  readonly connection?: string
  readonly renewAt?: number
}

const describe = (cause: unknown): string =>
  cause instanceof Error ? `${cause.name}: ${cause.message}` : String(cause)

export interface RelaySupervisor {
  readonly states: Effect.Effect<ReadonlyArray<RelayState>>
  /** `<relay>/p2p-circuit` for every relay we hold a reservation on (over a connection still open). */
  readonly circuitAddrs: Effect.Effect<ReadonlyArray<string>>
  /** Checks every relay once (the supervisor does it every interval; tests call it). */
  readonly checkAll: Effect.Effect<void>
  /** Runs the checks every `interval` until the scope closes. */
  readonly run: Effect.Effect<void>
}

/** Reads the answer to RESERVE on `stream` (at most MAX_HOP_ANSWER bytes). */
const readAnswer = (stream: Awaited<ReturnType<Connection["newStream"]>>, signal: AbortSignal) =>
  new Promise<ReturnType<typeof parseHopAnswer>>((resolve, reject) => {
    let buffered = new Uint8Array(0)
    const done = (result: ReturnType<typeof parseHopAnswer>) => {
      cleanup()
      resolve(result)
    }
    const onMessage = (event: StreamMessageEvent) => {
      const chunk = event.data instanceof Uint8Array ? event.data : event.data.subarray()
      const next = new Uint8Array(buffered.length + chunk.length)
      next.set(buffered)
      next.set(chunk, buffered.length)
      buffered = next
      const parsed = parseHopAnswer(buffered)
      if (parsed !== "incomplete") done(parsed)
      else if (buffered.length > MAX_HOP_ANSWER + 10) done("malformed")
    }
    const onEnd = () => done("malformed")
    const onAbort = () => {
      cleanup()
      reject(new Error("timed out"))
    }
    const cleanup = () => {
      stream.removeEventListener("message", onMessage)
      stream.removeEventListener("close", onEnd)
      signal.removeEventListener("abort", onAbort)
    }
    stream.addEventListener("message", onMessage)
    stream.addEventListener("close", onEnd)
    signal.addEventListener("abort", onAbort)
  })

/** Asks `connection`'s peer for a reservation; its decoded answer. */
const reserve = (connection: Connection, timeout: Duration.Duration) =>
  Effect.tryPromise({
    try: async (outer) => {
      const signal = AbortSignal.any([outer, AbortSignal.timeout(Duration.toMillis(timeout))])
      const stream = await connection.newStream(HOP_PROTOCOL, { signal, runOnLimitedConnection: true })
      try {
        const answer = readAnswer(stream, signal)
        stream.send(RESERVE_REQUEST)
        return await answer
      } finally {
        stream.abort(new Error("done"))
      }
    },
    catch: describe
  })

export const makeRelaySupervisor = (
  node: Libp2p,
  relays: ReadonlyArray<string>,
  options: {
    readonly interval: Duration.Duration
    readonly timeout: Duration.Duration
    readonly announcer?: AddressAnnouncer
  }
): Effect.Effect<RelaySupervisor> =>
  Effect.gen(function*() {
    const entries = relays.flatMap((relay) => {
      const parsed = relayPeerOf(relay)
      return "peer" in parsed ? [{ relay, peer: peerIdFromString(parsed.peer) }] : []
    })
    const held = yield* Ref.make<ReadonlyMap<string, Held>>(
      new Map(entries.map(({ relay }) => [relay, { state: { relay, status: "connecting" } }]))
    )

    /** Announces the circuit through `relay` for `ttl` ms, or withdraws it (`undefined`). */
    const announce = (relay: string, ttl: number | undefined) =>
      Effect.sync(() => {
        const circuit = multiaddr(`${relay}/p2p-circuit`)
        const announcer = options.announcer
        if (announcer === undefined) return
        if (ttl === undefined) return announcer.removeObservedAddr(circuit)
        announcer.confirmObservedAddr(circuit, { type: "observed", ttl })
        trimObserved(announcer)
      })

    const logChange = (relay: string, before: RelayState | undefined, next: RelayState) => {
      const changed = before?.status !== next.status || before.reason !== next.reason
      if (!changed) return Effect.void
      const annotations = { relay, ...(next.reason === undefined ? {} : { reason: next.reason }) }
      switch (next.status) {
        case "reserved":
          return Effect.logInfo("relay reservation held").pipe(Effect.annotateLogs(annotations))
        case "refused":
          return Effect.logWarning("relay refused a reservation").pipe(Effect.annotateLogs(annotations))
        case "unreachable":
          return Effect.logWarning("relay unreachable").pipe(Effect.annotateLogs(annotations))
        case "connecting":
          return Effect.logInfo("relay connection lost; redialling").pipe(Effect.annotateLogs(annotations))
      }
    }

    /** Records `next`: a reservation granted (lasting `ttl` ms) is announced, one lost is withdrawn. */
    const set = (relay: string, next: Held, ttl?: number) =>
      Effect.flatMap(Ref.modify(held, (map) => {
        const before = map.get(relay)?.state
        const copy = new Map(map)
        copy.set(relay, next)
        return [before, copy] as const
      }), (before) => {
        const lost = before?.status === "reserved" && next.state.status !== "reserved"
        const announced = ttl !== undefined || lost ? announce(relay, ttl) : Effect.void
        return Effect.zipRight(announced, logChange(relay, before, next.state))
      })

    const directConnection = (peer: PeerId) =>
      node.getConnections(peer).find((c) => c.status === "open" && !isRelayed(c.remoteAddr))

    const check = (relay: string, peer: PeerId): Effect.Effect<void> =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const before = (yield* Ref.get(held)).get(relay)
        let connection = directConnection(peer)
        if (connection === undefined) {
          if (before?.state.status === "reserved") yield* set(relay, { state: { relay, status: "connecting" } })
          const dialed = yield* Effect.tryPromise({
            try: (signal) => node.dial(multiaddr(relay), { signal }),
            catch: describe
          }).pipe(Effect.timeoutFail({ duration: options.timeout, onTimeout: () => "dial timed out" }), Effect.either)
          if (dialed._tag === "Left") {
            return yield* set(relay, { state: { relay, status: "unreachable", reason: dialed.left } })
          }
          connection = dialed.right
        }
        if (
          before?.state.status === "reserved" && before.connection === connection.id &&
          before.renewAt !== undefined && now < before.renewAt
        ) return
        const answer = yield* reserve(connection, options.timeout).pipe(Effect.either)
        if (answer._tag === "Left") {
          return yield* set(relay, { state: { relay, status: "refused", reason: `RESERVE failed: ${answer.left}` } })
        }
        const a = answer.right
        if (a === "incomplete" || a === "malformed") {
          return yield* set(relay, { state: { relay, status: "refused", reason: "malformed answer to RESERVE" } })
        }
        if (a.status !== 100) {
          return yield* set(relay, { state: { relay, status: "refused", reason: describeRelayStatus(a.status) } })
        }
        const lifetime = a.expire === undefined ? Duration.toMillis(DEFAULT_RENEW) : a.expire * 1000 - now
        const renewAt = now + Math.max(Duration.toMillis(options.interval), lifetime * RENEW_AT)
        yield* set(
          relay,
          { state: { relay, status: "reserved" }, connection: connection.id, renewAt },
          // Past the renewal (at half the lifetime, checked every interval), so AutoNAT never finds it expired first.
          lifetime + Duration.toMillis(options.interval)
        )
      }).pipe(Effect.catchAllCause((cause) => Effect.logDebug("relay check failed", cause)))

    const tag = Effect.forEach(entries, ({ peer }) =>
      Effect.tryPromise(() => node.peerStore.merge(peer, { tags: { [KEEP_ALIVE_TAG]: { value: 1 } } })).pipe(
        Effect.ignore
      ), { discard: true })

    const checkAll = Effect.forEach(entries, ({ peer, relay }) => check(relay, peer), {
      concurrency: "unbounded",
      discard: true
    })

    const peerOf = new Map(entries.map(({ peer, relay }) => [relay, peer]))
    /** A reservation lives as long as its connection: one on a closed connection is not announced. */
    const live = (h: Held) => {
      const peer = peerOf.get(h.state.relay)
      return h.state.status === "reserved" && peer !== undefined &&
        node.getConnections(peer).some((c) => c.id === h.connection && c.status === "open")
    }
    // A reservation whose connection closed is being redialled: the next check reconnects and reserves again.
    const states = Effect.map(Ref.get(held), (map) =>
      [...map.values()].map((h): RelayState =>
        h.state.status === "reserved" && !live(h) ? { relay: h.state.relay, status: "connecting" } : h.state
      ))
    const circuitAddrs = Effect.map(
      Ref.get(held),
      (map) => [...map.values()].filter(live).map((h) => `${h.state.relay}/p2p-circuit`)
    )
    const run = entries.length === 0 ? Effect.void : Effect.zipRight(
      tag,
      Effect.repeat(checkAll, Schedule.spaced(options.interval))
    ).pipe(Effect.asVoid)
    return { states, circuitAddrs, checkAll, run }
  })
