/**
 * Gossip per document (spec 05 §8, §15): one gossipsub topic per namespace, `rangedocs/<64-hex namespace id>`,
 * carrying postcard `Op`s in signed messages, so every receiver knows the publisher (`from`) besides the neighbor that
 * handed the message over (`deliveredFrom`). A Put reaches the whole swarm; ContentReady and SyncReport reach the
 * publisher's direct neighbours and go no further, as the reference's `broadcast_neighbors` (spec 05 §8 maps them to
 * a plain publish, which gossipsub relays to every node: a swarm-wide flood per download and per sync, each a reason
 * for nodes far away to dial the publisher). See `neighborsOnlyValidator` in ./Gossip/gossipsubAdapter.ts.
 *
 * Neighbors of a topic are the connected nodes subscribed to it, kept from gossipsub's `subscription-change` events
 * and libp2p's `peer:disconnect`; each change is reported once (NeighborUp / NeighborDown). A neighbor is not
 * necessarily in the gossipsub mesh yet: gossipsub grafts a newly subscribed peer at once only when its own stream
 * to that peer is already open, else at its next heartbeat. Until then our own messages still reach every neighbor
 * (flood publish) once both sides saw NeighborUp, but messages we relay may miss it: the live engine's sync on
 * NeighborUp covers that window.
 *
 * Every subscriber of `events` has its own bounded queue. gossipsub dispatches from its RPC handler and must never
 * wait for us, so when a subscriber falls behind, new events for it are dropped (counted in `stats.dropped`), not
 * queued without bound and not back-pressured into the network. A subscriber through `intake` learns what it lost
 * (`Lagged`: how many events, from which nodes); the live engine syncs with those nodes, so dropped gossip costs
 * latency, never entries (spec 05 §8.3).
 * Undecodable messages, oversize ones and ones whose publisher or relay is not an Ed25519 node are logged, counted
 * (`stats.invalid`) and skipped; the topic keeps working (unlike the reference, spec 05 §8.2).
 */
import type { GossipsubMessage, GossipSubEvents } from "@libp2p/gossipsub"
import type { PeerId } from "@libp2p/interface"
import {
  Context,
  Duration,
  Effect,
  Either,
  FiberSet,
  Layer,
  Mailbox,
  Metric,
  Queue,
  Schedule,
  Schema,
  type Scope,
  Stream
} from "effect"
import { toHex } from "../internal/bytes.js"
import { takeAvailable } from "../internal/mailbox.js"
import { trusted } from "../internal/trusted.js"
import { fmtShort, type NamespaceId } from "../schema/Keys.js"
import { NodeAddr, type NodeId, nodeIdEquals, nodeIdFromPeerId } from "../schema/NodeAddr.js"
import {
  decodeOp,
  type GossipEvent,
  isNeighborsOnly,
  NeighborDown,
  NeighborUp,
  type Op,
  OpFromBytes,
  Put,
  Received
} from "../schema/Op.js"
import {
  boundInbound,
  type InboundCounters,
  makePacer,
  makeStreamRepair,
  neighborsOnlyValidator
} from "./Gossip/gossipsubAdapter.js"
import * as Network from "./Network.js"
import { GossipRouter } from "./Network/router.js"
import { makeRemoteWarnings } from "./Network/warnings.js"

export type { GossipEvent } from "../schema/Op.js"

/** Topic of a document: the port of iroh-gossip's 32-byte topic id (spec 05 §15). */
export const TOPIC_PREFIX = "rangedocs/"
export const topicOf = (namespace: NamespaceId): string => `${TOPIC_PREFIX}${toHex(namespace)}`

/**
 * Largest encoded Op we publish or accept: 64 KiB. The reference's 4096 bytes (spec 05 §8.1) keeps a `Put` with a
 * key above ~3.8 KiB off gossip, leaving it to the next sync, which may be long in a quiet swarm; 64 KiB gossips
 * every entry with a key below ~63.7 KiB. The live engine truncates SyncReport heads to
 * `maxHeadsLength(maxMessageSize)` (src/schema/Op.ts) so that a report always fits. Every node of a swarm should
 * use the same value: a receiver skips larger messages as invalid.
 */
export const DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024

/** Events a subscriber may hold unread before further ones are dropped (spec 05 §15 suggests 256; gossip bursts). */
export const DEFAULT_SUBSCRIBER_CAPACITY = 4096

export interface GossipConfig {
  /** Default {@link DEFAULT_MAX_MESSAGE_SIZE}. */
  readonly maxMessageSize?: number
  /** Default {@link DEFAULT_SUBSCRIBER_CAPACITY}. */
  readonly subscriberCapacity?: number
}

/** Counters of one Gossip instance since it started (also reported as Effect metrics `rangedocs_gossip_*`). */
export interface GossipStats {
  /** Valid Ops received on joined topics. */
  readonly received: number
  /** Messages skipped as undecodable, oversize or from a non-Ed25519 node. */
  readonly invalid: number
  /** Events not delivered to a subscriber whose queue was full (one per event and subscriber). */
  readonly dropped: number
  /** Ops handed to gossipsub. */
  readonly published: number
  /** Ops not published because they encode to more than `maxMessageSize`. */
  readonly skippedOversize: number
  /** Ops gossipsub refused to publish (logged). */
  readonly publishFailed: number
  /** Outbound gossipsub streams reopened to a connected peer after gossipsub lost its own (see `make`). */
  readonly streamsRepaired: number
  /**
   * Times a peer's gossipsub stream was paused because gossipsub had not taken what was read from it: the peer's
   * further messages wait at the sender (Gossip/gossipsubAdapter.ts `boundInbound`).
   */
  readonly inboundPaused: number
  /**
   * Most bytes read from one peer's gossipsub stream and not yet taken by gossipsub, since start; bounded by
   * `INBOUND_HIGH_WATER` plus the stream's window (Gossip/gossipsubAdapter.ts).
   */
  readonly inboundPeakBytes: number
}

/**
 * What a subscriber lost since it last asked: the events dropped because its queue was full, and the nodes those
 * events came from (the relaying neighbor and the publisher of each dropped message, the peer of each dropped neighbor
 * change), at most {@link MAX_LAGGED_PEERS} of them. A consumer catches up by syncing with them.
 */
export interface Lagged {
  readonly count: number
  readonly peers: ReadonlyArray<NodeId>
}

/** Members announced by sessions that gossip watches per topic at most (see `adoptNeighbor`); further ones are not. */
export const MAX_ADOPTED = 256

/** Nodes a subscriber's {@link Lagged} names at most; drops from further nodes are still counted. */
export const MAX_LAGGED_PEERS = 64

/** A subscriber's pull of the topic's events, and what it lost (see {@link GossipService.intake}). */
export interface GossipIntake {
  /** Waits for the events that arrived since the last call (at least one); interrupted once the topic's stream ends. */
  readonly take: Effect.Effect<ReadonlyArray<GossipEvent>>
  /** What was dropped for this subscriber since the last call (and resets it); undefined when nothing was. */
  readonly lagged: Effect.Effect<Lagged | undefined>
}

/** What became of a broadcast; never an error (spec 05 §8.1: broadcast failures are ignored). */
export type BroadcastOutcome =
  | { readonly _tag: "Published"; readonly recipients: number }
  | { readonly _tag: "Skipped"; readonly reason: "NotJoined" | "Oversize" | "Failed" }

export interface GossipService {
  readonly maxMessageSize: number
  /**
   * Subscribes to the document's topic unless already joined, then dials the bootstrap nodes in the background
   * (a failed dial is logged). Calling it again only dials the extra bootstrap nodes.
   */
  readonly join: (namespace: NamespaceId, bootstrap?: ReadonlyArray<NodeAddr | NodeId>) => Effect.Effect<void>
  /**
   * The topic's events from now on: first a NeighborUp for each current neighbor, then messages and neighbor
   * changes. Subscribed at once (nothing after the call is missed), even before `join`. The stream ends on `leave`,
   * when the scope closes, or when the service stops. Events are dropped when the subscriber falls
   * {@link GossipConfig.subscriberCapacity} behind.
   */
  readonly events: (namespace: NamespaceId) => Effect.Effect<Stream.Stream<GossipEvent>, never, Scope.Scope>
  /**
   * `events` as a pull, for the live engine's receive path: each run waits for the events that arrived since the last
   * one (in order, at least one); once the stream would end, the fiber that waits is interrupted. A Stream stage
   * costs about 60 Effect operations per event, this about 20.
   */
  readonly eventsPull: (
    namespace: NamespaceId
  ) => Effect.Effect<Effect.Effect<ReadonlyArray<GossipEvent>>, never, Scope.Scope>
  /**
   * `eventsPull` that also reports what its queue dropped (the live engine resyncs with the nodes named), so a
   * subscriber that falls behind never loses gossip silently.
   */
  readonly intake: (namespace: NamespaceId) => Effect.Effect<GossipIntake, never, Scope.Scope>
  /**
   * `eventsPull` of the topic's NeighborUp/NeighborDown only (never `Received`), for membership: a subscriber that
   * does not want the messages is not handed each one, and a flood of messages cannot crowd neighbour changes out of
   * its queue.
   */
  readonly neighborEvents: (
    namespace: NamespaceId
  ) => Effect.Effect<Effect.Effect<ReadonlyArray<GossipEvent>>, never, Scope.Scope>
  /**
   * Publishes `op` to the topic's swarm. Skipped when not joined or above `maxMessageSize` (a Put with inline content
   * above it is published without its content); no peers is fine.
   */
  readonly broadcast: (namespace: NamespaceId, op: Op) => Effect.Effect<BroadcastOutcome>
  /** Unsubscribes and ends the topic's event streams. A no-op when not joined. */
  readonly leave: (namespace: NamespaceId) => Effect.Effect<void>
  /** The topic's current neighbors (none when not joined). */
  readonly neighbors: (namespace: NamespaceId) => Effect.Effect<ReadonlyArray<NodeId>>
  /**
   * A member the live engine synced with and announced before gossip saw it subscribe: until it does, gossip watches
   * its connection and reports its NeighborDown (to `events`/`intake` subscribers, not to `neighborEvents`) when the
   * last one closes — at once when there is none. Without this a member that never joins the topic would never be
   * reported gone. When it subscribes, its NeighborUp comes as usual. At most {@link MAX_ADOPTED} per topic.
   */
  readonly adoptNeighbor: (namespace: NamespaceId, peer: NodeId) => Effect.Effect<void>
  readonly stats: Effect.Effect<GossipStats>
}

export class Gossip extends Context.Tag("docs/Gossip")<Gossip, GossipService>() {}

// Metric keys (the registry itself is Effect's); per-instance figures are in `stats`.
const metrics = {
  received: Metric.counter("rangedocs_gossip_received", { incremental: true }),
  invalid: Metric.counter("rangedocs_gossip_invalid", { incremental: true }),
  dropped: Metric.counter("rangedocs_gossip_dropped", { incremental: true }),
  published: Metric.counter("rangedocs_gossip_published", { incremental: true }),
  skippedOversize: Metric.counter("rangedocs_gossip_skipped_oversize", { incremental: true }),
  publishFailed: Metric.counter("rangedocs_gossip_publish_failed", { incremental: true }),
  streamsRepaired: Metric.counter("rangedocs_gossip_streams_repaired", { incremental: true })
} as const

type Counter = keyof typeof metrics

interface TopicState {
  readonly namespace: NamespaceId
  readonly topic: string
  joined: boolean
  /** PeerId string → node id. */
  readonly neighbors: Map<string, NodeId>
  /** Members the engine announced that have not subscribed (yet): PeerId string → node id (`adoptNeighbor`). */
  readonly adopted: Map<string, NodeId>
  /** Mailboxes rather than Queues: a Queue made every event survive V8's scavenges (internal/mailbox.ts). */
  readonly subscribers: Set<Subscriber>
}

interface Subscriber {
  readonly mailbox: Mailbox.Mailbox<GossipEvent>
  /** Takes NeighborUp/NeighborDown only. */
  readonly neighborsOnly: boolean
  /** Events dropped since the subscriber last asked, and the nodes they came from (hex → id, bounded). */
  dropped: number
  readonly droppedFrom: Map<string, NodeId>
}

const noteDrop = (subscriber: Subscriber, event: GossipEvent) => {
  subscriber.dropped++
  const note = (id: NodeId) => {
    if (subscriber.droppedFrom.size < MAX_LAGGED_PEERS) subscriber.droppedFrom.set(toHex(id), id)
  }
  switch (event._tag) {
    case "Received":
      note(event.deliveredFrom)
      if (!event.direct) note(event.from)
      break
    case "NeighborUp":
    case "NeighborDown":
      note(event.peer)
      break
  }
}

/** Why a message was skipped; logged by the notice fiber, away from gossipsub's dispatch. */
interface Skipped {
  readonly topic: string
  readonly from: string
  readonly reason: string
}

const NOTICE_CAPACITY = 64

/** How often connected peers are checked for a lost outbound gossipsub stream. */
export const STREAM_CHECK_INTERVAL = Duration.seconds(1)

const encodeOp = Schema.encode(OpFromBytes)

/** The innermost message of a ParseError: one line for the log. */
const describe = (cause: unknown): string =>
  cause instanceof Error ? `${cause.name}: ${cause.message}` : String(cause)

export const make = (
  config: GossipConfig = {}
): Effect.Effect<GossipService, never, Network.Network | GossipRouter | Scope.Scope> =>
  Effect.gen(function*() {
    const network = yield* Network.Network
    const router = yield* GossipRouter
    const pubsub = router.pubsub
    const maxMessageSize = config.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE
    const subscriberCapacity = config.subscriberCapacity ?? DEFAULT_SUBSCRIBER_CAPACITY
    const annotate = Effect.annotateLogs({ service: "Gossip", node: fmtShort(network.nodeId) })

    /** Topic string → state; an entry exists while the topic is joined or has subscribers. */
    const topics = new Map<string, TopicState>()
    const counts: Record<Counter, number> = {
      received: 0,
      invalid: 0,
      dropped: 0,
      published: 0,
      skippedOversize: 0,
      publishFailed: 0,
      streamsRepaired: 0
    }
    const bump = (counter: Counter, n = 1) => {
      counts[counter] += n
      metrics[counter].unsafeUpdate(n, [])
    }

    const notices = yield* Queue.dropping<Skipped>(NOTICE_CAPACITY)
    // Any publisher can send invalid messages at its own pace: rate-limited (stats.invalid counts them all).
    const warn = makeRemoteWarnings()
    yield* Queue.take(notices).pipe(
      Effect.flatMap(({ from, reason, topic }) => warn("gossip message skipped", { topic, from, reason })),
      Effect.forever,
      annotate,
      Effect.forkScoped
    )
    const dials = yield* FiberSet.make<void, never>()
    // Lets the event loop turn while gossipsub works through a backlog (./Gossip/gossipsubAdapter.ts).
    const pacer = makePacer()
    // And that backlog waits at the sender, not here: a peer's inbound stream is paused while gossipsub lags (ibid.).
    const inbound: InboundCounters = { paused: 0, peakBytes: 0 }
    yield* Effect.acquireRelease(
      Effect.sync(() => boundInbound(pubsub, inbound)),
      (undo) => Effect.sync(() => undo?.())
    )

    const stateOf = (namespace: NamespaceId): TopicState => {
      const topic = topicOf(namespace)
      let state = topics.get(topic)
      if (state === undefined) {
        state = { namespace, topic, joined: false, neighbors: new Map(), adopted: new Map(), subscribers: new Set() }
        topics.set(topic, state)
      }
      return state
    }

    const emit = (state: TopicState, event: GossipEvent) => {
      for (const subscriber of state.subscribers) {
        if (subscriber.neighborsOnly && event._tag === "Received") continue
        if (!subscriber.mailbox.unsafeOffer(event)) {
          bump("dropped")
          noteDrop(subscriber, event)
        }
      }
    }

    const neighborUp = (state: TopicState, peerId: PeerId) => {
      const key = peerId.toString()
      state.adopted.delete(key)
      if (state.neighbors.has(key)) return
      // Only Ed25519 nodes can be neighbors (spec 05 §15); others are ignored.
      const id = nodeIdFromPeerId(peerId)
      if (Either.isLeft(id)) return
      state.neighbors.set(key, id.right)
      emit(state, new NeighborUp({ peer: id.right }, true))
    }

    /** An adopted member is gone: only the engine's subscribers hear of it (membership never heard it come). */
    const adoptedDown = (state: TopicState, id: NodeId) => {
      const event = new NeighborDown({ peer: id }, true)
      for (const subscriber of state.subscribers) {
        if (subscriber.neighborsOnly) continue
        if (!subscriber.mailbox.unsafeOffer(event)) {
          bump("dropped")
          noteDrop(subscriber, event)
        }
      }
    }

    const neighborDown = (state: TopicState, peerId: PeerId) => {
      const key = peerId.toString()
      const adopted = state.adopted.get(key)
      if (adopted !== undefined) {
        state.adopted.delete(key)
        return adoptedDown(state, adopted)
      }
      const id = state.neighbors.get(key)
      if (id === undefined) return
      state.neighbors.delete(key)
      emit(state, new NeighborDown({ peer: id }, true))
    }

    const skip = (topic: string, from: PeerId, reason: string) => {
      bump("invalid")
      Queue.unsafeOffer(notices, { topic, from: from.toString(), reason })
    }

    // gossipsub and libp2p call these synchronously from their dispatch: no waiting, no Effect runs here.
    const receive = (msg: GossipsubMessage["msg"], propagationSource: PeerId) => {
      const state = topics.get(msg.topic)
      if (state === undefined || !state.joined) return
      if (msg.type !== "signed") return skip(msg.topic, propagationSource, "unsigned message")
      if (msg.data.length > maxMessageSize) {
        return skip(msg.topic, msg.from, `${msg.data.length} bytes, above the ${maxMessageSize}-byte limit`)
      }
      const from = nodeIdFromPeerId(msg.from)
      if (Either.isLeft(from)) return skip(msg.topic, msg.from, "publisher is not an Ed25519 node")
      const deliveredFrom = nodeIdFromPeerId(propagationSource)
      if (Either.isLeft(deliveredFrom)) return skip(msg.topic, propagationSource, "relay is not an Ed25519 node")
      const op = decodeOp(msg.data)
      if (Either.isLeft(op)) return skip(msg.topic, msg.from, `undecodable Op: ${op.left.message}`)
      bump("received")
      const direct = msg.from.equals(propagationSource)
      emit(state, trusted(Received.prototype, { op: op.right, from: from.right, deliveredFrom: deliveredFrom.right, direct, _tag: "Received" }))
    }
    const onMessage = (event: GossipSubEvents["gossipsub:message"]) => receive(event.detail.msg, event.detail.propagationSource)
    // ContentReady and SyncReport are delivered by the topic validator and go no further (./Gossip/gossipsubAdapter.ts).
    const validate = neighborsOnlyValidator(
      pacer,
      isNeighborsOnly,
      receive,
      (msg, source, error) => skip(msg.topic, source, `delivery failed: ${error instanceof Error ? error.message : String(error)}`)
    )

    const onSubscriptionChange = (event: GossipSubEvents["subscription-change"]) => {
      const { peerId, subscriptions } = event.detail
      for (const { subscribe, topic } of subscriptions) {
        const state = topics.get(topic)
        if (state === undefined || !state.joined) continue
        if (subscribe) neighborUp(state, peerId)
        else neighborDown(state, peerId)
      }
    }

    const onPeerDisconnect = (peer: PeerId) => {
      for (const state of topics.values()) neighborDown(state, peer)
    }

    /** Ends the topic: unsubscribes (if joined) and ends every event stream of it. */
    const close = (state: TopicState) =>
      Effect.gen(function*() {
        topics.delete(state.topic)
        if (state.joined) {
          state.joined = false
          pubsub.topicValidators.delete(state.topic)
          yield* Effect.try(() => pubsub.unsubscribe(state.topic)).pipe(
            Effect.catchAll((cause) => Effect.logDebug("gossipsub unsubscribe failed", describe(cause)))
          )
        }
        const subscribers = [...state.subscribers]
        state.subscribers.clear()
        yield* Effect.forEach(subscribers, (subscriber) => subscriber.mailbox.shutdown, { discard: true })
      })

    // Finalizers run in reverse: listeners go first, then every topic is left.
    yield* Effect.addFinalizer(() => Effect.forEach([...topics.values()], close, { discard: true }).pipe(annotate))
    yield* Effect.acquireRelease(
      Effect.sync(() => {
        pubsub.addEventListener("gossipsub:message", onMessage)
        pubsub.addEventListener("subscription-change", onSubscriptionChange)
        return router.onPeerDisconnect(onPeerDisconnect)
      }),
      (removeDisconnectListener) =>
        Effect.sync(() => {
          pubsub.removeEventListener("gossipsub:message", onMessage)
          pubsub.removeEventListener("subscription-change", onSubscriptionChange)
          removeDisconnectListener()
        })
    )

    // gossipsub never reopens a lost outbound stream while the peer stays connected (./Gossip/gossipsubAdapter.ts).
    const repairStreams = makeStreamRepair(router)
    if (repairStreams !== undefined) {
      yield* Effect.sync(() => bump("streamsRepaired", repairStreams())).pipe(
        Effect.repeat(Schedule.spaced(STREAM_CHECK_INTERVAL)),
        Effect.delay(STREAM_CHECK_INTERVAL),
        Effect.forkScoped
      )
    }

    const dialBootstrap = (peer: NodeAddr | NodeId) => {
      const addr = peer instanceof NodeAddr ? peer : new NodeAddr({ nodeId: peer, addrs: [] })
      if (nodeIdEquals(addr.nodeId, network.nodeId)) return Effect.void
      return network.dial(addr).pipe(
        Effect.catchAll((error) =>
          // Remote-caused: one line, no stack.
          Effect.logWarning("bootstrap dial failed").pipe(
            Effect.annotateLogs({ peer: fmtShort(addr.nodeId), reason: error.reason })
          )
        )
      )
    }

    const join = Effect.fn("Gossip.join")(function*(
      namespace: NamespaceId,
      bootstrap: ReadonlyArray<NodeAddr | NodeId> = []
    ) {
      const state = stateOf(namespace)
      if (!state.joined) {
        yield* Effect.sync(() => {
          pubsub.topicValidators.set(state.topic, validate)
          pubsub.subscribe(state.topic)
          state.joined = true
          // Peers whose subscription arrived before ours are neighbors at once (spec 05 §15).
          for (const peerId of pubsub.getSubscribers(state.topic)) neighborUp(state, peerId)
        })
        yield* Effect.logDebug("joined").pipe(Effect.annotateLogs({ topic: state.topic }))
      }
      yield* Effect.forEach(bootstrap, (peer) => FiberSet.run(dials, dialBootstrap(peer)), { discard: true })
    }, annotate)

    const subscribeMailbox = Effect.fnUntraced(function*(namespace: NamespaceId, neighborsOnly = false) {
      const mailbox = yield* Mailbox.make<GossipEvent>({ capacity: subscriberCapacity, strategy: "dropping" })
      const subscriber: Subscriber = { mailbox, neighborsOnly, dropped: 0, droppedFrom: new Map() }
      yield* Effect.acquireRelease(
        Effect.sync(() => {
          const state = stateOf(namespace)
          state.subscribers.add(subscriber)
          for (const peer of state.neighbors.values()) {
            const event = new NeighborUp({ peer }, true)
            if (!mailbox.unsafeOffer(event)) noteDrop(subscriber, event)
          }
          return state
        }),
        (state) =>
          Effect.gen(function*() {
            state.subscribers.delete(subscriber)
            if (!state.joined && state.subscribers.size === 0 && topics.get(state.topic) === state) {
              topics.delete(state.topic)
            }
            yield* mailbox.shutdown
          })
      )
      return subscriber
    })

    const events = Effect.fn("Gossip.events")(function*(namespace: NamespaceId) {
      return Mailbox.toStream((yield* subscribeMailbox(namespace)).mailbox)
    })

    // Done once shut down (leave, scope, service): the waiting fiber is interrupted.
    const pullOf = (subscriber: Subscriber) =>
      Effect.catchTag(takeAvailable(subscriber.mailbox), "NoSuchElementException", () => Effect.interrupt)

    const eventsPull = Effect.fn("Gossip.eventsPull")(function*(namespace: NamespaceId) {
      return pullOf(yield* subscribeMailbox(namespace))
    })

    const neighborEvents = Effect.fn("Gossip.neighborEvents")(function*(namespace: NamespaceId) {
      return pullOf(yield* subscribeMailbox(namespace, true))
    })

    const intake = Effect.fn("Gossip.intake")(function*(namespace: NamespaceId) {
      const subscriber = yield* subscribeMailbox(namespace)
      const lagged = Effect.sync((): Lagged | undefined => {
        if (subscriber.dropped === 0) return undefined
        const report: Lagged = { count: subscriber.dropped, peers: [...subscriber.droppedFrom.values()] }
        subscriber.dropped = 0
        subscriber.droppedFrom.clear()
        return report
      })
      return { take: pullOf(subscriber), lagged }
    })

    // Once per gossiped write: untraced, a span per call costs more than the rest of this function (STYLE: hot paths).
    const broadcast = Effect.fnUntraced(function*(namespace: NamespaceId, op: Op) {
      const topic = topicOf(namespace)
      if (topics.get(topic)?.joined !== true) {
        return { _tag: "Skipped", reason: "NotJoined" } as const
      }
      // An Op that does not encode was built without validation: a bug, not a network condition.
      let bytes = yield* Effect.orDie(encodeOp(op))
      // Inline content is an optimisation: a Put too large with it still goes out without it.
      if (bytes.length > maxMessageSize && op._tag === "Put" && op.content !== undefined) {
        bytes = yield* Effect.orDie(encodeOp(new Put({ entry: op.entry }, true)))
      }
      if (bytes.length > maxMessageSize) {
        bump("skippedOversize")
        yield* Effect.logDebug("oversize gossip message not published").pipe(
          Effect.annotateLogs({ topic, op: op._tag, bytes: bytes.length, maxMessageSize })
        )
        return { _tag: "Skipped", reason: "Oversize" } as const
      }
      return yield* Effect.tryPromise(() => pubsub.publish(topic, bytes)).pipe(
        Effect.map((result): BroadcastOutcome => {
          bump("published")
          return { _tag: "Published", recipients: result.recipients.length }
        }),
        Effect.catchAll((error) => {
          bump("publishFailed")
          return Effect.as(
            Effect.logWarning("gossip publish failed").pipe(
              Effect.annotateLogs({ topic, op: op._tag, cause: describe(error.error) })
            ),
            { _tag: "Skipped", reason: "Failed" } as const
          )
        })
      )
    }, annotate)

    const leave = Effect.fn("Gossip.leave")(function*(namespace: NamespaceId) {
      const state = topics.get(topicOf(namespace))
      if (state !== undefined) yield* close(state)
    }, annotate)

    const neighbors = (namespace: NamespaceId) =>
      Effect.sync((): ReadonlyArray<NodeId> => [...(topics.get(topicOf(namespace))?.neighbors.values() ?? [])])

    const adoptNeighbor = (namespace: NamespaceId, peer: NodeId) =>
      Effect.sync(() => {
        const state = topics.get(topicOf(namespace))
        if (state === undefined || !state.joined) return
        for (const id of state.neighbors.values()) if (nodeIdEquals(id, peer)) return
        const connection = router.connections().find((c) => {
          const id = nodeIdFromPeerId(c.remotePeer)
          return Either.isRight(id) && nodeIdEquals(id.right, peer)
        })
        if (connection === undefined) return adoptedDown(state, peer)
        if (state.adopted.size < MAX_ADOPTED) state.adopted.set(connection.remotePeer.toString(), peer)
      })

    const stats = Effect.sync((): GossipStats => ({
      ...counts,
      inboundPaused: inbound.paused,
      inboundPeakBytes: inbound.peakBytes
    }))

    return Gossip.of({
      maxMessageSize,
      join,
      events,
      eventsPull,
      intake,
      neighborEvents,
      broadcast,
      leave,
      neighbors,
      adoptNeighbor,
      stats
    })
  })

/** Gossip on the node's gossipsub router; stops (listeners removed, topics left, streams ended) with its scope. */
export const layer = (config: GossipConfig = {}): Layer.Layer<Gossip, never, Network.Network | GossipRouter> =>
  Layer.scoped(Gossip, make(config))
