/** Failures of the Network service (spec 04 §10, §11, §13). Kept apart from Errors.ts, which holds the replica's. */
import { Schema } from "effect"
import { toHex } from "../internal/bytes.js"
import { NodeId } from "./NodeAddr.js"

/**
 * Connecting to a node or opening a stream to it failed or timed out: the `Connect` error of spec 04 §10. `nodeId` is
 * the remote's node id (its hex in the message); `protocol` is set when a stream was being opened.
 */
export class DialError extends Schema.TaggedError<DialError>()("DialError", {
  nodeId: NodeId,
  reason: Schema.String,
  protocol: Schema.optional(Schema.String)
}) {
  override get message() {
    const what = this.protocol === undefined ? "dial" : `open ${this.protocol} stream to`
    return `Failed to ${what} ${toHex(this.nodeId)}: ${this.reason}`
  }
}

export { NotEd25519Peer } from "./NodeAddr.js"

/** The node could not be set up: its identity could not be loaded or created, or libp2p failed to start. */
export class NetworkError extends Schema.TaggedError<NetworkError>()("NetworkError", {
  method: Schema.String,
  cause: Schema.Defect
}) {}

/** A stream was reset or aborted, or written after it closed; `reason` is libp2p's message. */
export class StreamError extends Schema.TaggedError<StreamError>()("StreamError", {
  protocol: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `${this.protocol} stream failed: ${this.reason}`
  }
}
