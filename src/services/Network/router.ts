/**
 * Internal: what the Gossip service needs of the libp2p node, and nothing more. The Network layer provides it next
 * to `Network`; it is not exported from `src/index.ts`, so applications reach gossip through the Gossip service
 * only. Benches and tests that measure or poke raw gossipsub use it too.
 */
import type { GossipSub } from "@libp2p/gossipsub"
import type { Connection, PeerId } from "@libp2p/interface"
import { Context } from "effect"

export interface GossipRouterService {
  /** The node's gossipsub router. Do not stop it: the Network layer owns it. */
  readonly pubsub: GossipSub
  /** The node's open connections (the gossipsub stream repair walks them). */
  readonly connections: () => ReadonlyArray<Connection>
  /** Calls `listener` when the last connection to a peer closes; returns the function that removes it. */
  readonly onPeerDisconnect: (listener: (peer: PeerId) => void) => () => void
}

export class GossipRouter extends Context.Tag("docs/internal/GossipRouter")<GossipRouter, GossipRouterService>() {}
