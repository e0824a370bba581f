/**
 * Node identity and addresses on the libp2p network. A node id is the node's 32-byte Ed25519 public key, the
 * `PeerIdBytes` handed to replicas (spec 04 §12); ids are compared as raw bytes, never as PeerId strings
 * (spec 04 §13).
 */
import { publicKeyFromRaw } from "@libp2p/crypto/keys"
import type { PeerId } from "@libp2p/interface"
import { peerIdFromPublicKey } from "@libp2p/peer-id"
import { multiaddr } from "@multiformats/multiaddr"
import { Either, Schema } from "effect"
import { equals } from "../internal/bytes.js"
import { Bytes32 } from "./Keys.js"

/** A libp2p peer whose identity is not an Ed25519 key: it has no 32-byte node id (spec 04 §13). */
export class NotEd25519Peer extends Schema.TaggedError<NotEd25519Peer>()("NotEd25519Peer", {
  peerId: Schema.String,
  keyType: Schema.String
}) {
  override get message() {
    return `Peer ${this.peerId} has a ${this.keyType} identity; only Ed25519 node ids are supported`
  }
}

export const NodeId = Bytes32.pipe(Schema.brand("NodeId"))
export type NodeId = typeof NodeId.Type

/** Lowercase hex of the 32 key bytes (display, CLI, logs). */
export const NodeIdFromHex = Schema.compose(Schema.Uint8ArrayFromHex, NodeId)

const isMultiaddr = (s: string): boolean => {
  try {
    multiaddr(s)
    return true
  } catch {
    return false
  }
}

/** A multiaddr in its string form, e.g. `/ip4/127.0.0.1/tcp/4001`. */
export const MultiaddrString = Schema.String.pipe(Schema.filter((s) => isMultiaddr(s) || `not a multiaddr: ${s}`))

/**
 * How to reach a node: its id and the transport addresses it listens on (without a `/p2p/<id>` suffix). The port's
 * counterpart of iroh's `NodeAddr`; empty `addrs` means "use what the peer store already knows".
 */
export class NodeAddr extends Schema.Class<NodeAddr>("NodeAddr")({
  nodeId: NodeId,
  addrs: Schema.Array(MultiaddrString)
}) {}

export const nodeIdEquals = (a: NodeId, b: NodeId): boolean => equals(a, b)

/**
 * The 32-byte node id of a libp2p peer; fails for RSA, secp256k1 and other non-Ed25519 identities. An Ed25519 peer
 * id always carries 32 key bytes (libp2p checked them), so the brand is applied without re-validation: this runs
 * twice per gossip message.
 */
export const nodeIdFromPeerId = (peerId: PeerId): Either.Either<NodeId, NotEd25519Peer> =>
  peerId.type === "Ed25519" && peerId.publicKey.raw.length === 32
    ? Either.right(NodeId.make(Uint8Array.from(peerId.publicKey.raw), true))
    : Either.left(new NotEd25519Peer({ peerId: peerId.toString(), keyType: peerId.type }))

/** The libp2p PeerId of a node id (an identity multihash of the Ed25519 key). */
export const peerIdFromNodeId = (nodeId: NodeId): PeerId => peerIdFromPublicKey(publicKeyFromRaw(nodeId))
