/**
 * Workarounds of @libp2p/gossipsub internals (the pinned 17.1.1), kept in this one module. Each names its upstream
 * cause and has a canary test (test/services/GossipsubAdapter.test.ts) that fails once the quirk is gone, so that the
 * workaround can be deleted then.
 *
 * Lost outbound stream. gossipsub opens its one outbound stream to a peer when a connection opens
 * (`onPeerConnected`, registered as a libp2p topology) and never again while the peer stays connected: if that stream
 * ends (reset by the peer, or a reconnection that raced the old connection's close, which leaves the closed stream
 * in `streamsOutbound`), every message to the peer is dropped without a trace until it disconnects. Seen in tests: a
 * restarted node never got its neighbor's gossip. Upstream: `GossipSub.onPeerConnected` / `createOutboundStream`
 * (src/gossipsub.ts) only run on connect; an outbound stream's close just deletes it from `streamsOutbound`.
 */
import { type GossipSub, type TopicValidatorFn, TopicValidatorResult } from "@libp2p/gossipsub"
import type { Connection, PeerId } from "@libp2p/interface"
import type { GossipRouterService } from "../Network/router.js"

/** The parts of gossipsub's router the repair reads; checked at run time, so a version without them turns it off. */
interface GossipsubInternals {
  readonly peers?: unknown
  readonly streamsOutbound?: unknown
  readonly onPeerConnected?: unknown
}
interface OutboundStreams {
  readonly get: (id: string) => { readonly rawStream?: { readonly status?: string } } | undefined
  readonly delete: (id: string) => boolean
}

/** What the repair needs of the router, or undefined when this gossipsub does not have it (a newer version). */
const internalsOf = (pubsub: GossipSub) => {
  const internals = pubsub as unknown as GossipsubInternals
  if (
    !(internals.peers instanceof Map) || !(internals.streamsOutbound instanceof Map) ||
    typeof internals.onPeerConnected !== "function"
  ) return undefined
  return {
    peers: internals.peers as ReadonlyMap<string, unknown>,
    outbound: internals.streamsOutbound as unknown as OutboundStreams,
    open: (internals.onPeerConnected as (peerId: PeerId, connection: Connection) => void).bind(pubsub)
  }
}

/** True when the router has the internals the repair works on (the canary checks this first). */
export const repairSupported = (pubsub: GossipSub): boolean => internalsOf(pubsub) !== undefined

/**
 * A check to run every few seconds: connected gossipsub peers whose outbound stream is closed, or missing at two
 * checks in a row (it is missing for a moment while gossipsub opens it), get a new one the way gossipsub opens it on
 * a connection. Returns how many streams a run reopened. Undefined when this gossipsub lacks the internals.
 */
export const makeStreamRepair = (router: GossipRouterService): (() => number) | undefined => {
  const internals = internalsOf(router.pubsub)
  if (internals === undefined) return undefined
  const { open, outbound, peers } = internals
  let missing = new Set<string>()
  return () => {
    let repaired = 0
    const missingNow = new Set<string>()
    const checked = new Set<string>()
    for (const connection of router.connections()) {
      const id = connection.remotePeer.toString()
      if (connection.status !== "open" || checked.has(id) || !peers.has(id)) continue
      checked.add(id)
      const stream = outbound.get(id)
      if (stream !== undefined && stream.rawStream?.status === "open") continue
      if (stream === undefined && !missing.has(id)) {
        missingNow.add(id)
        continue
      }
      if (stream !== undefined) outbound.delete(id)
      repaired++
      open(connection.remotePeer, connection)
    }
    missing = missingNow
    return repaired
  }
}

/** Test support: gossipsub's outbound stream to `peer`, as the canary and the repair test break it. */
export const outboundStream = (
  pubsub: GossipSub,
  peer: PeerId
): { readonly rawStream: { readonly status?: string; readonly abort: (error: Error) => void } } | undefined => {
  const internals = pubsub as unknown as GossipsubInternals
  if (!(internals.streamsOutbound instanceof Map)) return undefined
  const value: unknown = internals.streamsOutbound.get(peer.toString())
  return value as { readonly rawStream: { readonly status?: string; readonly abort: (error: Error) => void } } | undefined
}

/**
 * Unpaced intake. gossipsub reads each peer's stream in a `for await` loop and, by default, starts handling an RPC
 * without waiting for it (`awaitRpcHandler: false`), so a backlog of buffered RPCs — a peer flooding a topic — is
 * decoded and every message's signature verified in one run of the microtask queue: the event loop, and with it the
 * RPC server and every timer, stalls for as long as the backlog lasts (seen: one 2.8 s block under the flood bench,
 * `npm run bench -- flood`). Upstream: `GossipSub.pipePeerReadStream` / `handleReceivedRpc` (src/gossipsub.ts) never
 * yield to the event loop. The pacing: Network makes gossipsub await each RPC and each message
 * (`awaitRpcHandler`, `awaitRpcMessageHandler`), and this topic validator, set on every joined topic, accepts every
 * message and lets one turn of the event loop pass after each {@link MESSAGES_PER_TURN} of them (about 2 ms of
 * signature checks). Backpressure then reaches the sender through the stream's flow control instead of a backlog.
 */
export const MESSAGES_PER_TURN = 16

/** The validator (one per node: the count spans its topics and peers). */
export const makePacer = (): TopicValidatorFn => {
  let handled = 0
  const accept = (resolve: (result: TopicValidatorResult) => void) => resolve(TopicValidatorResult.Accept)
  return () => {
    if (++handled < MESSAGES_PER_TURN) return TopicValidatorResult.Accept
    handled = 0
    return new Promise<TopicValidatorResult>((resolve) => setImmediate(accept, resolve))
  }
}
