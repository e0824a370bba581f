/**
 * The node's libp2p host: one libp2p node (TCP, noise, yamux, identify, ping, gossipsub) per layer, started when the
 * layer is built and stopped when its scope closes. Node ids are raw 32-byte Ed25519 keys (spec 04 §12, §13).
 *
 * Reach (issue 17): WebSockets next to TCP (listen on a `/ws` address); the circuit relay v2 transport (dials
 * `/p2p-circuit` addresses, accepts relayed connections); DCUtR (hole punching over a relayed connection); with
 * `relayService` a relay for others; with `relays` reservations kept on those relays by a supervisor
 * (Network/relays.ts) and announced in {@link NetworkService.addr}; mDNS and AutoNAT v2 when listening beyond
 * loopback. Relayed connections are limited (the relay's data and duration limits): our protocols, gossipsub
 * included, run on them. Dial by node id: the peer store is the one lookup (tickets, the address book and membership
 * records add to it, so do mDNS and identify); a node it knows no address of is tried through our relays, and on a
 * LAN the dial waits for mDNS (within the dial timeout).
 *
 * Streams are libp2p v3 `Stream`s, handed over as they are; the sync protocol frames its own bytes (spec 04 §3).
 * Read them with {@link receive} and write with {@link send}, which work around two flaws of libp2p 3.3
 * (@libp2p/utils 7.4.1) in the raw API:
 * - `for await (const chunk of stream)` has no backpressure (an unbounded queue) and, if the stream was `pause()`d,
 *   ends at the remote's FIN while paused bytes are still buffered: they are silently lost. It also ends quietly on
 *   a remote reset (then `stream.status` is `"reset"`), not with an error.
 * - `stream.send(bytes)` returns false when the stream must drain, but `await stream.onDrain()` only works once per
 *   stream: it keeps returning its first, settled promise, so later writes queue without bound.
 * Other facts: `stream.close()` half-closes (yamux FIN, the QUIC `finish` of spec 04 §13) and resolves once queued
 * bytes reach the muxer; the stream stays readable until the remote closes its side. `stream.abort(error)` resets
 * both directions and discards unsent bytes. `pause()`/`resume()` throw once the readable end is closed. Bytes that
 * arrive while nothing reads are buffered, and over `streamReadBuffer(window)` the stream is reset: start reading (or
 * pause) promptly. A stream with no traffic for `stream.inactivityTimeout` ms (default 120 s) is aborted by libp2p.
 */
import "../internal/polyfill.js"
import { noise } from "@chainsafe/libp2p-noise"
import { yamux } from "@chainsafe/libp2p-yamux"
import { autoNATv2 } from "@libp2p/autonat-v2"
import { circuitRelayServer, circuitRelayTransport } from "@libp2p/circuit-relay-v2"
import { generateKeyPairFromSeed } from "@libp2p/crypto/keys"
import { type GossipSub, gossipsub, StrictSign } from "@libp2p/gossipsub"
import { dcutr } from "@libp2p/dcutr"
import { type Identify, identify } from "@libp2p/identify"
import type {
  Address,
  Connection,
  Libp2p,
  PeerId,
  Stream as P2PStream,
  StreamCloseEvent,
  StreamHandlerOptions,
  StreamMessageEvent
} from "@libp2p/interface"
import { mdns } from "@libp2p/mdns"
import { type Ping, ping } from "@libp2p/ping"
import { tcp } from "@libp2p/tcp"
import { webSockets } from "@libp2p/websockets"
import { CODE_P2P, type Multiaddr, multiaddr } from "@multiformats/multiaddr"
import { createLibp2p } from "libp2p"
import {
  Cause,
  Chunk,
  Context,
  Duration,
  Effect,
  Either,
  ExecutionStrategy,
  Exit,
  FiberSet,
  Layer,
  Option,
  Redacted,
  Scope,
  Stream
} from "effect"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { fromHex, latin1, toHex } from "../internal/bytes.js"
import * as Ed from "../internal/ed25519.js"
import { secretFile } from "../internal/files.js"
import { fmtShort } from "../schema/Keys.js"
import { DialError, NetworkError, StreamError } from "../schema/NetworkErrors.js"
import { NodeAddr, NodeId, nodeIdFromPeerId, peerIdFromNodeId } from "../schema/NodeAddr.js"
import { boundPorts, preferredListen, readPorts, writePorts } from "./Network/ports.js"
import { GossipRouter, type GossipRouterService } from "./Network/router.js"
import {
  type AddrMode,
  addrsForMode,
  type ConnectionKind,
  DEFAULT_RELAY_CHECK_INTERVAL,
  isRelayed,
  listensBeyondLoopback,
  relayPeerOf,
  type RelayServiceConfig,
  relayServerInit
} from "./Network/reach.js"
import { type AddressAnnouncer, makeRelaySupervisor, type RelayState } from "./Network/relays.js"
import { makeRemoteWarnings, type RemoteWarning } from "./Network/warnings.js"
import { ensureWebSocket } from "./Network/websocket.js"

export type { Stream } from "@libp2p/interface"
export type { AddrMode, ConnectionKind, RelayServiceConfig, RelayState }
export {
  DEFAULT_RELAY_DATA_LIMIT,
  DEFAULT_RELAY_DURATION_LIMIT,
  DEFAULT_RELAY_MAX_RESERVATIONS
} from "./Network/reach.js"

export const DEFAULT_LISTEN: ReadonlyArray<string> = ["/ip4/127.0.0.1/tcp/0"]
/** Bounds connecting to a node (spec 04 §11 suggestion). */
export const DEFAULT_DIAL_TIMEOUT: Duration.Duration = Duration.seconds(10)
/** Bounds opening a stream on a connection, and the graceful close of a stream when its scope ends. */
export const DEFAULT_STREAM_TIMEOUT: Duration.Duration = Duration.seconds(10)
/**
 * The largest per-stream receive window (yamux credit): what a peer may send on a stream ahead of its reader (yamux's
 * default: 16 MiB). 4 MiB: with 16, a blob download's bytes waited in the requester up to the whole window, outlived
 * the scavenges and left the requester's GC with twice the raw copy's CPU (`npm run bench -- blobs --processes 2`,
 * quiet machine, alternating: ratio 0.73–0.76 with 4 MiB against 0.50 with 16, requester peak RSS 153–156 against 197
 * MB; 2 MiB 0.73, 1 MiB 0.56). An earlier measurement had a 4 MiB window raise the live bench's p99; gossipsub's
 * inbound streams now keep yamux's initial 256 KiB window whatever this is (`boundInbound`), and the live bench did not
 * move (BENCHMARKS.md).
 */
export const DEFAULT_STREAM_WINDOW = 4 * 1024 * 1024
/** yamux's smallest window, and the smallest `streamWindow` accepted. */
const MIN_STREAM_WINDOW = 256 * 1024
/**
 * Bytes a stream may hold unread before libp2p resets it: the window plus 1 MiB. libp2p's default (4 MiB) would reset
 * a reader that paused mid-transfer with `StreamBufferError` once the remote used its credit.
 */
export const streamReadBuffer = (window: number) => window + 1024 * 1024
/** The file in a data directory that holds the node's secret seed, as hex. */
export const NODE_KEY_FILE = "node-key"
/** gossipsub's heartbeat (mesh upkeep, lazy gossip); the library default. */
export const DEFAULT_GOSSIP_HEARTBEAT: Duration.Duration = Duration.seconds(1)
/**
 * Largest gossipsub RPC frame accepted from a peer (the length-prefixed protobuf holding subscriptions, control
 * messages and any number of messages). Not the per-message limit (the Gossip service's `maxMessageSize`): an IWANT
 * answer bundles many messages in one frame, and a frame over the limit ends the inbound gossip stream from that
 * peer, so it stays well above the message limit. Pinned at it-length-prefixed's default, 4 MiB.
 */
export const DEFAULT_GOSSIP_MAX_RPC_SIZE = 4 * 1024 * 1024

/**
 * Inbound connections accepted per second from one host (IP address): libp2p's default of 5 refuses the sixth node
 * that joins in the same second (issue 15, finding 2) and every node of one machine or behind one NAT shares the
 * host. 100 lets a swarm of local nodes join one node at once; the pending and total caps still bound the load.
 */
export const DEFAULT_INBOUND_PER_HOST_PER_SECOND = 100
/** Inbound connections in their handshake at once (libp2p's default is 10): a join storm queues no further. */
export const DEFAULT_MAX_PENDING_INBOUND = 64
/** Open connections at most, in and out (libp2p's default on Node.js); further inbound connections are refused. */
export const DEFAULT_MAX_CONNECTIONS = 300
/** Addresses the peer store keeps per peer (see `remember` in makeNode). */
export const MAX_PEER_STORE_ADDRS = 32
/** Largest value accepted for any of the connection limits. */
const MAX_LIMIT = 65536

/** Caps on connections (libp2p's connection manager), checked when the node starts. */
export interface ConnectionLimits {
  /** Default {@link DEFAULT_MAX_CONNECTIONS}. */
  readonly maxConnections?: number
  /** Default {@link DEFAULT_MAX_PENDING_INBOUND}; at most `maxConnections`. */
  readonly maxPendingInbound?: number
  /** Default {@link DEFAULT_INBOUND_PER_HOST_PER_SECOND}. */
  readonly inboundPerHostPerSecond?: number
}

/** Tuning of the gossipsub router; the Gossip service (src/services/Gossip.ts) is built on it. */
export interface GossipsubConfig {
  /** Default {@link DEFAULT_GOSSIP_HEARTBEAT}; tests may shorten it (meshes also form on subscribe, without it). */
  readonly heartbeatInterval?: Duration.DurationInput
  /** Default {@link DEFAULT_GOSSIP_MAX_RPC_SIZE}. */
  readonly maxRpcSize?: number
}

export interface NetworkConfig {
  /** Multiaddrs to listen on; default {@link DEFAULT_LISTEN}. */
  readonly listen?: ReadonlyArray<string>
  /** The 32-byte Ed25519 seed of the node's identity; without it every start has a fresh node id. */
  readonly identity?: Redacted.Redacted<Uint8Array> | undefined
  readonly dialTimeout?: Duration.DurationInput
  readonly streamTimeout?: Duration.DurationInput
  /** Per-stream receive window in bytes (≥ 256 KiB); default {@link DEFAULT_STREAM_WINDOW}. */
  readonly streamWindow?: number
  readonly gossipsub?: GossipsubConfig
  readonly connections?: ConnectionLimits
  /**
   * Relays to keep reservations on, each a multiaddr ending in `/p2p/<relay's peer id>`: the node holds a slot on
   * every one it reaches, announces `<relay>/p2p-circuit` addresses for them (in {@link NetworkService.addr}), and
   * redials a relay that went away. Default none.
   */
  readonly relays?: ReadonlyArray<string>
  /** Serve as a circuit relay v2 for other nodes (true: the default limits of {@link RelayServiceConfig}). */
  readonly relayService?: boolean | RelayServiceConfig
  /** How often each configured relay is checked (reconnected, its reservation renewed); default 5 s. */
  readonly relayCheckInterval?: Duration.DurationInput
  /**
   * mDNS on the LAN: nodes of one network find each other without addresses. Default on when a listen address
   * reaches beyond loopback, off otherwise.
   */
  readonly mdns?: boolean | { readonly interval?: Duration.DurationInput }
  /** AutoNAT v2 (other nodes dial our addresses back to tell whether they are reachable); default as `mdns`. */
  readonly autonat?: boolean
}

export type Libp2pServices = {
  /** libp2p's address manager, for the relay supervisor's circuits (Network/relays.ts). */
  addresses: AddressAnnouncer
  identify: Identify
  ping: Ping
  pubsub: GossipSub
  dcutr: unknown
  relay?: unknown
  autonat?: unknown
}

/** How often mDNS asks the LAN who is there (libp2p's default is 10 s). */
const DEFAULT_MDNS_INTERVAL_MS = 5_000

/** Runs one inbound stream, which is closed when the effect succeeds and aborted when it fails or is interrupted. */
export type Handler<E, R> = (stream: P2PStream, remote: NodeId) => Effect.Effect<void, E, R>

export type HandleOptions = Pick<
  StreamHandlerOptions,
  "maxInboundStreams" | "maxOutboundStreams" | "runOnLimitedConnection"
>

export interface NetworkService {
  readonly nodeId: NodeId
  /** Our id and current listen addresses: what a peer needs to dial us. */
  readonly addr: Effect.Effect<NodeAddr>
  /** Adds `addr.addrs` to the peer store and connects (or reuses a connection), within the dial timeout. */
  readonly dial: (addr: NodeAddr) => Effect.Effect<void, DialError>
  /**
   * Connects if needed (dial timeout), then opens a stream for `protocol` (stream timeout). The stream belongs to the
   * scope: when the scope closes it is half-closed gracefully on success and aborted on failure or interruption.
   * Never closes the connection, which gossip and other sessions share (spec 04 §13).
   */
  readonly openStream: (peer: NodeAddr | NodeId, protocol: string) => Effect.Effect<P2PStream, DialError, Scope.Scope>
  /**
   * Serves `protocol` until the caller's scope or the service closes, whichever is first; then the protocol is
   * unregistered and running handlers are interrupted. Each inbound stream runs `handler` in its own fiber with the
   * remote's node id; a failure or defect is logged and aborts that stream only. Streams from non-Ed25519 peers are
   * aborted. Registering a protocol twice is a defect.
   */
  readonly handle: <E, R>(
    protocol: string,
    handler: Handler<E, R>,
    options?: HandleOptions
  ) => Effect.Effect<void, never, Scope.Scope | R>
  /** Nodes we have an open connection to. */
  readonly peers: Effect.Effect<ReadonlyArray<NodeId>>
  /** The addresses the peer store knows for `peer` (learnt from dials, identify and membership), without `/p2p/`. */
  readonly peerAddresses: (peer: NodeId) => Effect.Effect<ReadonlyArray<string>>
  /** Signs `message` with the node's Ed25519 key (its node id is the public key): for records the node vouches for. */
  readonly sign: (message: Uint8Array) => Effect.Effect<Uint8Array>
  /** Closes every connection to `peer` (its streams are reset); a no-op when there is none. */
  readonly hangUp: (peer: NodeId) => Effect.Effect<void>
  /** The open connections, one entry per connection (a peer may have two for a moment). */
  readonly connections: Effect.Effect<ReadonlyArray<ConnectionInfo>>
  /** True from start until the layer's scope closes. */
  readonly isRunning: Effect.Effect<boolean>
  /**
   * Our id and the addresses a ticket carries in `mode`: `direct` (our listen and confirmed addresses), `relay`
   * (circuit addresses through the relays we hold a reservation on), `both`, or `none` (the node id alone, found
   * through mDNS, the address book, membership or the relays).
   */
  readonly shareAddr: (mode: AddrMode) => Effect.Effect<NodeAddr>
  /** How we reach `peer` now: directly or through a relay; none when not connected. */
  readonly connectionKind: (peer: NodeId) => Effect.Effect<Option.Option<ConnectionKind>>
  /** The configured relays and what the node holds on each. */
  readonly relays: Effect.Effect<ReadonlyArray<RelayState>>
}

export interface ConnectionInfo {
  readonly peer: NodeId
  /** The remote's transport address, without `/p2p/`. */
  readonly remoteAddr: string
  readonly direction: "inbound" | "outbound"
  /** Through a relay (a `/p2p-circuit` address) or not. */
  readonly kind: ConnectionKind
}

export class Network extends Context.Tag("docs/Network")<Network, NetworkService>() {}

const describe = (cause: unknown): string =>
  cause instanceof Error ? `${cause.name}: ${cause.message}` : String(cause)

const toDialError = (nodeId: NodeId, protocol: string | undefined) => (cause: unknown) =>
  new DialError({ nodeId, reason: describe(cause), ...(protocol === undefined ? {} : { protocol }) })

const withTimeout = (duration: Duration.Duration, nodeId: NodeId, protocol: string | undefined) =>
  Effect.timeoutFail({
    duration,
    onTimeout: () => toDialError(nodeId, protocol)(`timed out after ${Duration.format(duration)}`)
  })

const abort = (stream: P2PStream, reason: string) => Effect.sync(() => stream.abort(new Error(reason)))

/** gossipsub's fast message id: publisher ‖ seqno, the StrictSign message id (see `fastMsgIdFn` below). */
const fastMessageId = (msg: { readonly from?: Uint8Array; readonly seqno?: Uint8Array }): string =>
  msg.from === undefined || msg.seqno === undefined ? "" : latin1(msg.from) + "/" + latin1(msg.seqno)

/** What a limited connection must have left to be used without trying to dial the peer another way first. */
const AMPLE_LIMITS = { bytes: 64n * 1024n * 1024n, seconds: 10 * 60 } as const

const isAmple = (connection: Connection): boolean => {
  const limits = connection.limits
  return limits === undefined ||
    ((limits.bytes === undefined || limits.bytes >= AMPLE_LIMITS.bytes) &&
      (limits.seconds === undefined || limits.seconds >= AMPLE_LIMITS.seconds))
}

/**
 * The address without its trailing `/p2p/<peer id>`, if it has one. Not `decapsulateCode`: that cuts at the last
 * `/p2p/` wherever it is, which in a relay circuit stored without the peer's id (`…/p2p/<relay>/p2p-circuit`) is the
 * relay's, leaving the relay's own address in place of the peer's.
 */
const withoutPeerId = (ma: Multiaddr): Multiaddr => {
  const components = ma.getComponents()
  return components.at(-1)?.code === CODE_P2P ? multiaddr(components.slice(0, -1)) : ma
}

/**
 * Signed messages only (StrictSign: the publisher's key signs `from`/seqno/data and receivers verify it), so a
 * receiver knows the publisher of every message (spec 05 §15). Our own messages are not delivered back (`emitSelf`),
 * publishing with no subscribed peer is not an error (spec 05 §8.1: broadcast failures are ignored), and there is no
 * floodsub fallback: only gossipsub peers take part.
 */
const makeGossipsub = (config: GossipsubConfig) =>
  gossipsub({
    // Relayed connections are limited (the relay's data and duration limits): gossip runs over them too.
    runOnLimitedConnection: true,
    globalSignaturePolicy: StrictSign,
    emitSelf: false,
    allowPublishToZeroTopicPeers: true,
    ignoreDuplicatePublishError: true,
    // Our messages go to every subscribed peer we are connected to, not only to our mesh: ContentReady and
    // SyncReport reach the direct neighbours this way alone (nobody relays them, Gossip/gossipsubAdapter.ts).
    floodPublish: true,
    fallbackToFloodsub: false,
    // One RPC, and one message of it, at a time: with the topic validator that paces them (Gossip/gossipsubAdapter.ts)
    // a peer's backlog cannot hold the event loop.
    awaitRpcHandler: true,
    awaitRpcMessageHandler: true,
    heartbeatInterval: Duration.toMillis(Duration.decode(config.heartbeatInterval ?? DEFAULT_GOSSIP_HEARTBEAT)),
    // A copy relayed by another mesh peer is dropped before its signature is checked again: without a fast id every
    // copy is verified (an ed25519 verification and a re-encoding) before the seen-cache lookup. Under StrictSign the
    // message id is publisher ‖ seqno anyway, and only messages whose signature verified enter the fast-id cache.
    fastMsgIdFn: fastMessageId,
    maxInboundDataLength: config.maxRpcSize ?? DEFAULT_GOSSIP_MAX_RPC_SIZE
  })

const checkLimits = (limits: ConnectionLimits) => {
  const maxConnections = limits.maxConnections ?? DEFAULT_MAX_CONNECTIONS
  const maxPendingInbound = limits.maxPendingInbound ?? Math.min(DEFAULT_MAX_PENDING_INBOUND, maxConnections)
  const inboundPerHostPerSecond = limits.inboundPerHostPerSecond ?? DEFAULT_INBOUND_PER_HOST_PER_SECOND
  const bad = (name: string, value: number, max: number) =>
    Number.isSafeInteger(value) && value >= 1 && value <= max ? undefined : `${name} must be an integer from 1 to ${max}, got ${value}`
  const problem = bad("connections.maxConnections", maxConnections, MAX_LIMIT) ??
    bad("connections.maxPendingInbound", maxPendingInbound, maxConnections) ??
    bad("connections.inboundPerHostPerSecond", inboundPerHostPerSecond, MAX_LIMIT)
  return problem === undefined
    ? Either.right({ maxConnections, maxPendingInbound, inboundPerHostPerSecond })
    : Either.left(new NetworkError({ method: "start", cause: problem }))
}

/** Where a persistent node keeps what it had last time (its listen ports). */
interface Persistence {
  readonly dataDir: string
}

const makeNode = (
  config: NetworkConfig,
  persistence?: Persistence
): Effect.Effect<
  { readonly network: NetworkService; readonly router: GossipRouterService },
  NetworkError,
  Scope.Scope
> =>
  Effect.gen(function*() {
    const limits = yield* checkLimits(config.connections ?? {})
    const dialTimeout = Duration.decode(config.dialTimeout ?? DEFAULT_DIAL_TIMEOUT)
    const streamTimeout = Duration.decode(config.streamTimeout ?? DEFAULT_STREAM_TIMEOUT)
    const streamWindow = config.streamWindow ?? DEFAULT_STREAM_WINDOW
    if (!Number.isSafeInteger(streamWindow) || streamWindow < MIN_STREAM_WINDOW || streamWindow > 2 ** 32 - 1) {
      return yield* new NetworkError({
        method: "start",
        cause: `streamWindow must be an integer from ${MIN_STREAM_WINDOW} to ${2 ** 32 - 1}, got ${streamWindow}`
      })
    }
    const seed = config.identity === undefined ? Ed.randomSeed() : Redacted.value(config.identity)
    if (seed.length !== 32) {
      return yield* new NetworkError({ method: "identity", cause: `expected a 32-byte seed, got ${seed.length} bytes` })
    }
    const privateKey = yield* Effect.tryPromise({
      try: () => generateKeyPairFromSeed("Ed25519", seed),
      catch: (cause) => new NetworkError({ method: "identity", cause })
    })
    const nodeId = NodeId.make(Uint8Array.from(privateKey.publicKey.raw))

    const listen = config.listen ?? DEFAULT_LISTEN
    const relays = config.relays ?? []
    ensureWebSocket()
    for (const relay of relays) {
      const parsed = relayPeerOf(relay)
      if ("problem" in parsed) return yield* new NetworkError({ method: "start", cause: `relays: ${parsed.problem}` })
    }
    const relayServer = config.relayService === undefined || config.relayService === false
      ? undefined
      : relayServerInit(config.relayService === true ? {} : config.relayService)
    if (relayServer !== undefined && "problem" in relayServer) {
      return yield* new NetworkError({ method: "start", cause: relayServer.problem })
    }
    const beyondLoopback = listensBeyondLoopback(listen)
    const mdnsConfig = config.mdns ?? beyondLoopback
    const mdnsInterval = typeof mdnsConfig === "object" && mdnsConfig.interval !== undefined
      ? Duration.toMillis(Duration.decode(mdnsConfig.interval))
      : DEFAULT_MDNS_INTERVAL_MS
    const autonat = config.autonat ?? beyondLoopback
    const start = (addrs: ReadonlyArray<string>) =>
      Effect.acquireRelease(
        Effect.tryPromise({
          try: () =>
            createLibp2p<Libp2pServices>({
              privateKey,
              addresses: { listen: [...addrs] },
              // WebSockets for browsers; the relay transport dials `/p2p-circuit` addresses and accepts relayed
              // connections (the STOP protocol).
              transports: [tcp(), webSockets(), circuitRelayTransport()],
              connectionEncrypters: [noise()],
              streamMuxers: [
                yamux({
                  streamOptions: {
                    maxStreamWindowSize: streamWindow,
                    maxReadBufferLength: streamReadBuffer(streamWindow)
                  }
                })
              ],
              services: {
                // Not a service of its own: a handle on libp2p's address manager for the relay supervisor.
                addresses: (components: { readonly addressManager: AddressAnnouncer }) => components.addressManager,
                identify: identify(),
                ping: ping(),
                pubsub: makeGossipsub(config.gossipsub ?? {}),
                // Hole punching: upgrades a relayed connection to a direct one where the NATs allow.
                dcutr: dcutr(),
                ...(relayServer === undefined ? {} : { relay: circuitRelayServer(relayServer.init) }),
                ...(autonat ? { autonat: autoNATv2() } : {})
              },
              ...(mdnsConfig === false ? {} : { peerDiscovery: [mdns({ interval: mdnsInterval })] }),
              // libp2p aborts a connection whose keep-alive ping takes over ~5 s: a node busy for a few seconds would
              // lose its gossip mesh. Dead connections are still found, just later.
              connectionMonitor: { pingTimeout: { minTimeout: 20_000, maxTimeout: 60_000 } },
              connectionManager: {
                maxConnections: limits.maxConnections,
                maxIncomingPendingConnections: limits.maxPendingInbound,
                inboundConnectionThreshold: limits.inboundPerHostPerSecond
              }
            }),
          catch: (cause) => new NetworkError({ method: "start", cause })
        }),
        (node) =>
          Effect.tryPromise(async () => {
            await node.stop()
          }).pipe(
            Effect.catchAll((error) => Effect.logWarning(`libp2p stop failed: ${describe(error.error)}`))
          )
      )
    let node: Libp2p<Libp2pServices>
    if (persistence === undefined) {
      node = yield* start(listen)
    } else {
      // The port of last time when it is free, so that peers dialing the old address reach us (issue 15, finding 3).
      const preferred = preferredListen(listen, yield* readPorts(persistence.dataDir))
      const same = preferred.every((a, i) => a === listen[i])
      node = yield* start(preferred).pipe(
        Effect.catchAll((error) =>
          same ? Effect.fail(error) : Effect.zipRight(
            Effect.logInfo("a recorded listen port is taken; listening on a new one").pipe(
              Effect.annotateLogs({ preferred: preferred.join(" ") })
            ),
            start(listen)
          )
        )
      )
      yield* writePorts(persistence.dataDir, boundPorts(listen, node.getMultiaddrs()))
    }
    const serviceScope = yield* Effect.scope
    const warn = makeRemoteWarnings()
    const supervisor = yield* makeRelaySupervisor(node, relays, {
      interval: Duration.decode(config.relayCheckInterval ?? DEFAULT_RELAY_CHECK_INTERVAL),
      timeout: dialTimeout,
      announcer: node.services.addresses
    })
    yield* Effect.forkScoped(supervisor.run)

    /** Closes our side gracefully after a successful use, resets it otherwise. */
    const release = (stream: P2PStream, exit: Exit.Exit<unknown, unknown>): Effect.Effect<void> =>
      Exit.isSuccess(exit)
        ? Effect.tryPromise((signal) => stream.close({ signal })).pipe(
          Effect.timeout(streamTimeout),
          Effect.catchAll(() => abort(stream, "close failed"))
        )
        : abort(stream, Exit.isInterrupted(exit) ? "interrupted" : "failed")

    /**
     * Adds the addresses to the peer's entry in the peer store, which keeps at most MAX_PEER_STORE_ADDRS: the given
     * ones first, then the ones it had. Addresses come from tickets and other peers' membership records, so a peer
     * whose node id publishes new addresses again and again must not grow its entry without bound.
     */
    const remember = (peerId: PeerId, addr: NodeAddr, protocol: string | undefined) =>
      addr.addrs.length === 0
        ? Effect.void
        : Effect.tryPromise({
          try: async (signal) => {
            const given = addr.addrs.slice(0, MAX_PEER_STORE_ADDRS).map((a) => multiaddr(a))
            const peer = await node.peerStore.merge(peerId, { multiaddrs: given }, { signal })
            if (peer.addresses.length <= MAX_PEER_STORE_ADDRS) return
            const isGiven = (a: Address) => given.some((g) => a.multiaddr.equals(g))
            const kept = [...peer.addresses.filter(isGiven), ...peer.addresses.filter((a) => !isGiven(a))]
            await node.peerStore.patch(peerId, { addresses: kept.slice(0, MAX_PEER_STORE_ADDRS) }, { signal })
          },
          catch: toDialError(addr.nodeId, protocol)
        })

    const knownAddresses = (peerId: PeerId) =>
      Effect.promise(() => node.peerStore.get(peerId).then((p) => p.addresses.length, () => 0))

    /**
     * Dial by node id: what the peer store knows (tickets, the address book and membership records put addresses
     * there, mDNS and identify too). A node it knows no address of is tried through our relays (a relay with the
     * node's reservation connects us), and on a LAN the dial waits for mDNS to find the node.
     */
    const lookup = (peerId: PeerId) =>
      Effect.gen(function*() {
        if (node.getConnections(peerId).length > 0 || (yield* knownAddresses(peerId)) > 0) return
        const viaRelays = relays.map((r) => multiaddr(`${r}/p2p-circuit`))
        if (viaRelays.length > 0) {
          yield* Effect.promise(() => node.peerStore.merge(peerId, { multiaddrs: viaRelays }).then(() => undefined, () => undefined))
        }
      })

    /** Waits until mDNS (or another discovery) reports `peerId`. */
    const discovered = (peerId: PeerId) =>
      Effect.async<void>((resume) => {
        const onPeer = (event: CustomEvent<{ readonly id: PeerId }>) => {
          if (event.detail.id.equals(peerId)) resume(Effect.void)
        }
        node.addEventListener("peer:discovery", onPeer)
        return Effect.sync(() => node.removeEventListener("peer:discovery", onPeer))
      })

    const kindOf = (connection: Connection): ConnectionKind =>
      connection.limits !== undefined || isRelayed(connection.remoteAddr) ? "relayed" : "direct"

    /** The peer's open connection that serves best: direct before relayed, unlimited before limited, ample before tight. */
    const openConnection = (peerId: PeerId): Connection | undefined => {
      const open = node.getConnections(peerId).filter((c) => c.status === "open")
      return open.find((c) => kindOf(c) === "direct") ?? open.find((c) => c.limits === undefined) ??
        open.find(isAmple) ?? open[0]
    }

    const connect = (peer: NodeAddr | NodeId, protocol: string | undefined): Effect.Effect<Connection, DialError> => {
      const nodeId = peer instanceof NodeAddr ? peer.nodeId : peer
      const peerId = peerIdFromNodeId(nodeId)
      // An open connection is used as it is, a limited (relayed) one too when its limits are ample: libp2p's dial
      // never reuses a limited connection and dials the peer's known addresses instead, which fails for a node behind
      // a NAT whose current relay circuit we never learnt — while that node is connected to us through it. A tightly
      // limited one (libp2p's default relay: 128 KiB, 2 min) is the way of last resort, when a dial finds no other.
      const attempt = Effect.suspend(() => {
        const open = openConnection(peerId)
        if (open !== undefined && isAmple(open)) return Effect.succeed(open)
        const dial = Effect.tryPromise({
          try: (signal) => node.dial(peerId, { signal }),
          catch: toDialError(nodeId, protocol)
        })
        // With a way of last resort, the dial gets half the dial timeout, so that the fallback comes within it.
        return open === undefined ? dial : dial.pipe(
          withTimeout(Duration.unsafeDivide(dialTimeout, 2), nodeId, protocol),
          Effect.orElse(() => Effect.succeed(open))
        )
      })
      return Effect.zipRight(
        peer instanceof NodeAddr ? remember(peerId, peer, protocol) : Effect.void,
        Effect.zipRight(
          lookup(peerId),
          mdnsConfig === false ? attempt : attempt.pipe(
            Effect.catchAll((error) =>
              Effect.flatMap(knownAddresses(peerId), (n) => n > 0 ? Effect.fail(error) : Effect.zipRight(discovered(peerId), attempt))
            )
          )
        )
      ).pipe(withTimeout(dialTimeout, nodeId, protocol))
    }

    const dial = (addr: NodeAddr) => connect(addr, undefined).pipe(Effect.asVoid, Effect.withSpan("Network.dial"))

    const openStream = (peer: NodeAddr | NodeId, protocol: string) => {
      const nodeId = peer instanceof NodeAddr ? peer.nodeId : peer
      const open = connect(peer, protocol).pipe(
        Effect.flatMap((connection) =>
          Effect.tryPromise({
            try: (signal) => connection.newStream(protocol, { signal, runOnLimitedConnection: true }),
            catch: toDialError(nodeId, protocol)
          }).pipe(withTimeout(streamTimeout, nodeId, protocol))
        )
      )
      // Interruptible while opening (the AbortSignal cancels libp2p's work); the finalizer is in place before the
      // stream is returned.
      return Effect.uninterruptibleMask((restore) =>
        restore(open).pipe(Effect.tap((stream) => Effect.addFinalizer((exit) => release(stream, exit))))
      ).pipe(Effect.withSpan("Network.openStream", { attributes: { protocol } }))
    }

    const serve = <E, R>(
      handler: Handler<E, R>,
      stream: P2PStream,
      connection: Connection
    ): Effect.Effect<void, never, R> =>
      Either.match(nodeIdFromPeerId(connection.remotePeer), {
        onLeft: (error) =>
          Effect.zipRight(
            warn("stream from a non-Ed25519 peer rejected", { peer: error.peerId, keyType: error.keyType }),
            abort(stream, error.message)
          ),
        onRight: (remote) =>
          Effect.suspend(() => handler(stream, remote)).pipe(
            Effect.onExit((exit) => release(stream, exit)),
            Effect.catchAllCause((cause) =>
              Cause.isInterruptedOnly(cause) ? Effect.void : handlerFailed(warn, cause)
            ),
            Effect.annotateLogs({ remote: fmtShort(remote) })
          )
      }).pipe(Effect.annotateLogs({ service: "Network", protocol: stream.protocol }))

    const handle = <E, R>(protocol: string, handler: Handler<E, R>, options: HandleOptions = {}) =>
      Effect.gen(function*() {
        // A child of the service scope closed by the caller's scope: whichever closes first ends the registration.
        const registration = yield* Scope.fork(serviceScope, ExecutionStrategy.sequential)
        yield* Effect.addFinalizer(() => Scope.close(registration, Exit.void))
        const run = yield* FiberSet.makeRuntime<R, void, never>().pipe(Scope.extend(registration))
        // Finalizers run in reverse: unregister first, then interrupt the running handlers.
        yield* Effect.acquireRelease(
          Effect.tryPromise(async () => {
            await node.handle(protocol, (stream, connection) => {
              run(serve(handler, stream, connection))
            }, { runOnLimitedConnection: true, ...options })
          }).pipe(Effect.orDie),
          () => Effect.tryPromise(() => node.unhandle(protocol)).pipe(Effect.ignore)
        ).pipe(Scope.extend(registration))
      }).pipe(Effect.withSpan("Network.handle", { attributes: { protocol } }))

    const addr = Effect.map(supervisor.circuitAddrs, (circuits) => {
      // Circuits as the supervisor sees them now (libp2p announces one until the supervisor's next check withdraws it).
      const addrs = node.getMultiaddrs().filter((ma) => !isRelayed(ma)).map((ma) => withoutPeerId(ma).toString())
      return new NodeAddr({ nodeId, addrs: [...new Set([...addrs, ...circuits])] })
    })

    const shareAddr = (mode: AddrMode) =>
      Effect.map(addr, (a) => new NodeAddr({ nodeId, addrs: [...addrsForMode(a.addrs, mode)] }))

    /** Direct when any open connection to the peer is (the one `openConnection` picks first). */
    const connectionKind = (peer: NodeId) =>
      Effect.sync(() => Option.map(Option.fromNullable(openConnection(peerIdFromNodeId(peer))), kindOf))

    const peers = Effect.sync(() =>
      node.getPeers().flatMap((peerId) =>
        Either.match(nodeIdFromPeerId(peerId), { onLeft: () => [], onRight: (id) => [id] })
      )
    )

    const peerAddresses = (peer: NodeId) =>
      Effect.tryPromise(() => node.peerStore.get(peerIdFromNodeId(peer))).pipe(
        Effect.map((p) => [...new Set(p.addresses.map((a) => withoutPeerId(a.multiaddr).toString()))]),
        Effect.orElseSucceed((): ReadonlyArray<string> => [])
      )

    const signingKey = Ed.secretKeyObject(seed)
    const sign = (message: Uint8Array) => Effect.sync(() => Ed.sign(signingKey, message))

    const hangUp = (peer: NodeId) =>
      Effect.tryPromise((signal) => node.hangUp(peerIdFromNodeId(peer), { signal })).pipe(
        Effect.catchAll((error) => Effect.logDebug(`hang up failed: ${describe(error.error)}`)),
        Effect.withSpan("Network.hangUp")
      )

    const connections = Effect.sync(() =>
      node.getConnections().flatMap((connection): Array<ConnectionInfo> =>
        Either.match(nodeIdFromPeerId(connection.remotePeer), {
          onLeft: () => [],
          onRight: (peer) => [{
            peer,
            remoteAddr: withoutPeerId(connection.remoteAddr).toString(),
            direction: connection.direction,
            kind: kindOf(connection)
          }]
        })
      )
    )

    const isRunning = Effect.sync(() => node.status === "started")

    const network = Network.of({
      nodeId,
      addr,
      dial,
      openStream,
      handle,
      peers,
      peerAddresses,
      sign,
      hangUp,
      connections,
      isRunning,
      shareAddr,
      connectionKind,
      relays: supervisor.states
    })
    const router = GossipRouter.of({
      pubsub: node.services.pubsub,
      connections: () => node.getConnections(),
      onPeerDisconnect: (listener) => {
        const onEvent = (event: CustomEvent<PeerId>) => listener(event.detail)
        node.addEventListener("peer:disconnect", onEvent)
        return () => node.removeEventListener("peer:disconnect", onEvent)
      }
    })
    return { network, router }
  }).pipe(Effect.annotateLogs({ service: "Network" }))

/**
 * A handler failed: one WARN line naming the failure (a remote's bad stream is not our bug; rate-limited, since a
 * remote can fail a stream at its own pace), the cause with its stack at DEBUG. A defect is a bug of ours: logged
 * at ERROR with the cause.
 */
const handlerFailed = (warn: RemoteWarning, cause: Cause.Cause<unknown>) =>
  Cause.isDie(cause)
    ? Effect.logError("stream handler died", cause)
    : Effect.zipRight(
      warn("stream handler failed", { reason: describe(Cause.squash(cause)) }),
      Effect.logDebug("stream handler failed", cause)
    )

/** The node's Network service (its gossipsub router stays inside; see {@link layer}). */
export const make = (config: NetworkConfig = {}): Effect.Effect<NetworkService, NetworkError, Scope.Scope> =>
  Effect.map(makeNode(config), ({ network }) => network)

const contextOf = ({ network, router }: { readonly network: NetworkService; readonly router: GossipRouterService }) =>
  Context.make(Network, network).pipe(Context.add(GossipRouter, router))

/**
 * A libp2p node on TCP (noise, yamux, identify, ping, gossipsub), started with the layer, stopped with its scope.
 * Besides `Network` it provides the internal gossipsub router the Gossip service runs on.
 */
export const layer = (config: NetworkConfig = {}): Layer.Layer<Network | GossipRouter, NetworkError> =>
  Layer.scopedContext(Effect.map(makeNode(config), contextOf))

// ---------------------------------------------------------------------------------------------------------------
// Stream I/O

/** Unread bytes above which {@link receive} pauses the stream (the remote then stops once its credit is used). */
export const DEFAULT_HIGH_WATER_MARK = 1024 * 1024

const streamError = (stream: P2PStream, cause: unknown) =>
  new StreamError({ protocol: stream.protocol, reason: describe(cause) })

const isBroken = (stream: P2PStream) => stream.status === "reset" || stream.status === "aborted"

/** Waits for `drain`; fails if the stream is closed meanwhile, or is not writable any more. */
const drained = (stream: P2PStream): Effect.Effect<void, StreamError> => {
  if (stream.writeStatus !== "writable" || isBroken(stream)) {
    return Effect.fail(streamError(stream, `stream is ${stream.status}`))
  }
  return Effect.async<void, StreamError>((resume) => {
    const onDrain = () => {
      stream.removeEventListener("close", onClose)
      resume(Effect.void)
    }
    const onClose = (event: StreamCloseEvent) => {
      stream.removeEventListener("drain", onDrain)
      resume(Effect.fail(streamError(stream, event.error ?? "closed while sending")))
    }
    stream.addEventListener("drain", onDrain, { once: true })
    stream.addEventListener("close", onClose, { once: true })
    return Effect.sync(() => {
      stream.removeEventListener("drain", onDrain)
      stream.removeEventListener("close", onClose)
    })
  })
}

/**
 * Sends `bytes`, then waits while the stream asks to drain. Fails if the stream is closed for writing, reset or
 * aborted. Waits for the `drain` event itself because `stream.onDrain()` only works once per stream (see above).
 */
export const send = (stream: P2PStream, bytes: Uint8Array): Effect.Effect<void, StreamError> =>
  Effect.suspend(() => {
    try {
      if (stream.send(bytes) && !stream.writableNeedsDrain) return Effect.void
    } catch (cause) {
      return Effect.fail(streamError(stream, cause))
    }
    return drained(stream)
  })

/**
 * {@link send}, telling whether libp2p was done with `bytes` when `stream.send` returned, so that the caller may
 * refill the buffer: true when the stream took them without queueing anything (its write buffer is empty and it
 * does not ask to drain). Then every byte went through yamux into noise, which encrypts into buffers of its own at
 * once unless its transport asked to drain, and that is reported back as a drain request (yamux 8, noise 17: a
 * muxer whose transport is saturated marks all its streams). False means libp2p may still hold `bytes`.
 */
export const sendReleasing = (stream: P2PStream, bytes: Uint8Array): Effect.Effect<boolean, StreamError> =>
  Effect.suspend(() => {
    try {
      if (stream.send(bytes) && !stream.writableNeedsDrain) {
        return Effect.succeed(stream.writeBufferLength === 0)
      }
    } catch (cause) {
      return Effect.fail(streamError(stream, cause))
    }
    return Effect.as(drained(stream), false)
  })

/** Half-closes the stream (yamux FIN) once queued bytes reach the muxer; the remote's side stays readable. */
export const closeWrite = (stream: P2PStream): Effect.Effect<void, StreamError> =>
  Effect.tryPromise({ try: (signal) => stream.close({ signal }), catch: (cause) => streamError(stream, cause) })

/**
 * The next bytes that arrived, in order, as libp2p delivered them (waits for some). Fails with `None` once the remote
 * closed its side (FIN) and every byte was delivered, with `Some(StreamError)` if the stream was reset or aborted:
 * the `Stream.repeatEffectChunkOption` convention.
 */
export type Pull = Effect.Effect<ReadonlyArray<Uint8Array>, Option.Option<StreamError>>

/**
 * A reader of `stream` for the scope: {@link receive} without the Stream layer, for bulk readers (blob transfers)
 * that loop over the buffers themselves. Two costs are avoided that show at bulk rates (bench/blobs.ts):
 * - no copy: a message is a Uint8ArrayList of several buffers, whose `subarray()` concatenates them; here the
 *   buffers are handed over as they are (libp2p does not reuse them);
 * - a working pause: while more than `highWaterMark` bytes wait unread the libp2p stream is paused, so a slow
 *   consumer holds at most that plus the remote's yamux credit. `resume()` dispatches the bytes held while paused
 *   and only then tells yamux to grant credit again, so a pause from inside that dispatch would be undone at the
 *   yamux level while the stream stays paused: the remote would keep sending until the read buffer passes
 *   `streamReadBuffer(window)` and libp2p aborts the stream. Here the pause waits until `resume()` has returned.
 * When the scope closes the listeners are removed and a readable stream is left paused; a later reader resumes it.
 */
export const reader = (
  stream: P2PStream,
  options: { readonly highWaterMark?: number } = {}
): Effect.Effect<Pull, never, Scope.Scope> =>
  Effect.gen(function*() {
    const highWaterMark = options.highWaterMark ?? DEFAULT_HIGH_WATER_MARK
    let queued: Array<Uint8Array> = []
    let buffered = 0
    let resuming = false
    /** Read through a function: TypeScript would keep the status narrowed across `resume()`. */
    const readable = () => stream.readStatus === "readable"
    let done: Option.Option<StreamError> | undefined
    let wake: (() => void) | undefined
    const notify = () => {
      const w = wake
      wake = undefined
      w?.()
    }
    const broken = () => Option.some(streamError(stream, `stream is ${stream.status}`))
    const onMessage = (event: StreamMessageEvent) => {
      const data = event.data
      if (data instanceof Uint8Array) {
        queued.push(data)
        buffered += data.length
      } else {
        for (const buf of data) queued.push(buf)
        buffered += data.byteLength
      }
      if (!resuming && buffered > highWaterMark && readable()) stream.pause()
      notify()
    }
    // `end` comes after the last byte was dispatched, also when the FIN arrived while paused. A reset or abort emits
    // it too, before the `close` event that carries the error; the status tells them apart.
    const onEnd = () => {
      done ??= isBroken(stream) ? broken() : Option.none()
      notify()
    }
    const onClose = (event: StreamCloseEvent) => {
      if (event.error !== undefined) done ??= Option.some(streamError(stream, event.error))
      notify()
    }
    yield* Effect.acquireRelease(
      Effect.sync(() => {
        stream.addEventListener("message", onMessage)
        stream.addEventListener("end", onEnd)
        stream.addEventListener("close", onClose)
        if (isBroken(stream)) done = broken()
        else if (stream.readableEnded) done = Option.none()
        else if (stream.readStatus === "paused") stream.resume()
      }),
      () =>
        Effect.sync(() => {
          stream.removeEventListener("message", onMessage)
          stream.removeEventListener("end", onEnd)
          stream.removeEventListener("close", onClose)
          if (readable()) stream.pause()
        })
    )
    const waitForData = Effect.async<void>((resume) => {
      wake = () => resume(Effect.void)
      return Effect.sync(() => {
        wake = undefined
      })
    })
    const pull: Pull = Effect.suspend(() => {
      if (queued.length > 0) {
        const out = queued
        queued = []
        buffered = 0
        if (stream.readStatus === "paused") {
          resuming = true
          try {
            stream.resume()
          } finally {
            resuming = false
          }
          if (buffered > highWaterMark && readable()) stream.pause()
        }
        return Effect.succeed(out)
      }
      if (done !== undefined) return Effect.fail(done)
      return Effect.zipRight(waitForData, pull)
    })
    return pull
  })

/**
 * The bytes the remote sends, in order, ending when it closes its side (FIN) and every byte has been delivered;
 * fails with StreamError if the stream is reset or aborted. Backpressure and release as {@link reader}.
 */
export const receive = (
  stream: P2PStream,
  options: { readonly highWaterMark?: number } = {}
): Stream.Stream<Uint8Array, StreamError> =>
  Stream.unwrapScoped(
    Effect.map(reader(stream, options), (pull) => Stream.repeatEffectChunkOption(Effect.map(pull, Chunk.unsafeFromArray)))
  )

// ---------------------------------------------------------------------------------------------------------------
// Persistent identity

const identityError = (cause: unknown) => new NetworkError({ method: "identity", cause })

const isErrno = (cause: unknown, code: string): boolean =>
  cause instanceof Error && "code" in cause && cause.code === code

const parseSeed = (file: string, text: string) => {
  const seed = fromHex(text.trim())
  return seed?.length === 32 ? Effect.succeed(seed) : Effect.fail(identityError(`${file}: expected 64 hex characters`))
}

/** The seed in `file`; none when the file does not exist. */
const readSeed = (file: string): Effect.Effect<Option.Option<Uint8Array>, NetworkError> =>
  Effect.tryPromise({ try: () => fs.readFile(file, "utf8"), catch: (cause) => cause }).pipe(
    Effect.map(Option.some),
    Effect.catchIf((cause) => isErrno(cause, "ENOENT"), () => Effect.succeed(Option.none<string>())),
    Effect.mapError(identityError),
    Effect.flatMap(Option.match({
      onNone: () => Effect.succeed(Option.none<Uint8Array>()),
      onSome: (text) => Effect.map(parseSeed(file, text), Option.some)
    }))
  )

/** Creates the key file (mode 0600) unless it exists; false when another process created it first. */
const createKeyFile = (dataDir: string, file: string, seed: Uint8Array) =>
  Effect.tryPromise({
    try: async () => {
      await fs.mkdir(dataDir, { recursive: true, mode: 0o700 })
      const handle = await fs.open(file, "wx", 0o600)
      try {
        await handle.writeFile(`${toHex(seed)}\n`)
        await handle.sync()
      } finally {
        await handle.close()
      }
    },
    catch: (cause) => cause
  }).pipe(
    Effect.as(true),
    Effect.catchIf((cause) => isErrno(cause, "EEXIST"), () => Effect.succeed(false)),
    Effect.mapError(identityError)
  )

/**
 * The node's seed from `<dataDir>/node-key` (hex), created with a fresh seed and mode 0600 when missing (tightened to
 * 0600 when found looser). A file that
 * does not hold 32 bytes of hex is an error: it is never replaced, since that would change the node id.
 */
export const loadOrCreateIdentity = (dataDir: string): Effect.Effect<Redacted.Redacted<Uint8Array>, NetworkError> =>
  Effect.gen(function*() {
    const file = path.join(dataDir, NODE_KEY_FILE)
    const existing = yield* readSeed(file)
    if (Option.isSome(existing)) {
      yield* secretFile(file).pipe(Effect.mapError((error) => identityError(error.message)))
      return Redacted.make(existing.value)
    }
    const seed = Ed.randomSeed()
    if (yield* createKeyFile(dataDir, file, seed)) return Redacted.make(seed)
    const winner = yield* readSeed(file)
    return Option.isSome(winner) ? Redacted.make(winner.value) : yield* identityError(`${file} vanished`)
  }).pipe(Effect.withSpan("Network.loadOrCreateIdentity"))

/** {@link layer} with the identity kept in `<dataDir>/node-key`, so a restarted node keeps its node id. */
export const layerPersistentIdentity = (
  dataDir: string,
  config: Omit<NetworkConfig, "identity"> = {}
): Layer.Layer<Network | GossipRouter, NetworkError> =>
  Layer.unwrapEffect(Effect.map(loadOrCreateIdentity(dataDir), (identity) => layer({ ...config, identity })))

/**
 * {@link layerPersistentIdentity}, also keeping the listen ports: each listen address with TCP port 0 is bound to the
 * port it had last time (`<dataDir>/listen-ports.json`) when that port is free, else to a new one, which is recorded.
 */
export const layerPersistent = (
  dataDir: string,
  config: Omit<NetworkConfig, "identity"> = {}
): Layer.Layer<Network | GossipRouter, NetworkError> =>
  Layer.scopedContext(
    Effect.flatMap(loadOrCreateIdentity(dataDir), (identity) => makeNode({ ...config, identity }, { dataDir })).pipe(
      Effect.map(contextOf)
    )
  )
