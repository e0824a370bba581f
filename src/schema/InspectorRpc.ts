/**
 * The inspector's own requests (issue 18), a group the RPC server serves next to `DocsRpcs`, so the page speaks to the
 * node through one client and one endpoint.
 *
 * `Watch` is `Subscribe` for a client that cannot be trusted to close what it opens (a browser tab): the node opens the
 * document for as long as the response streams and closes it when the stream ends — the tab closed, the page moved to
 * another document, the connection dropped — so a page never leaves a handle open behind it.
 */
import { Rpc, RpcGroup } from "@effect/rpc"
import { Schema } from "effect"
import { ApiError } from "./DocsErrors.js"
import { Hash, NamespaceId } from "./Keys.js"
import { LiveEvent } from "./LiveEvent.js"
import { NodeId } from "./NodeAddr.js"

/** The most transfers one `Transfers` reply lists (the oldest first). */
export const MAX_TRANSFERS_LISTED = 256

/**
 * A content download running on the node: `bytes` of the blob arrived so far (resumed bytes included) of `size`, once
 * a provider announced it; `provider` the peer sending it now (absent between attempts or while it waits for a
 * download slot); `started` epoch milliseconds.
 */
export class TransferInFlight extends Schema.Class<TransferInFlight>("TransferInFlight")({
  hash: Hash,
  bytes: Schema.NonNegativeInt,
  size: Schema.optional(Schema.NonNegativeInt),
  provider: Schema.optional(NodeId),
  started: Schema.Number
}) {}

export class InspectorRpcs extends RpcGroup.make(
  /** The document's live events, the document held open (one handle) while the stream runs. */
  Rpc.make("Watch", { payload: { docId: NamespaceId }, success: LiveEvent, error: ApiError, stream: true }),
  /** The content downloads running now, with their progress (at most `MAX_TRANSFERS_LISTED`). */
  Rpc.make("Transfers", { success: Schema.Array(TransferInFlight), error: ApiError })
) {}
