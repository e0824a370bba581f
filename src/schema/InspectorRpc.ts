/**
 * The inspector's own requests (issue 18), a group the RPC server serves next to `DocsRpcs`, so the page speaks to the
 * node through one client and one endpoint.
 *
 * `Watch` is `Subscribe` for a client that cannot be trusted to close what it opens (a browser tab): the node opens the
 * document for as long as the response streams and closes it when the stream ends — the tab closed, the page moved to
 * another document, the connection dropped — so a page never leaves a handle open behind it.
 */
import { Rpc, RpcGroup } from "@effect/rpc"
import { ApiError } from "./DocsErrors.js"
import { NamespaceId } from "./Keys.js"
import { LiveEvent } from "./LiveEvent.js"

export class InspectorRpcs extends RpcGroup.make(
  /** The document's live events, the document held open (one handle) while the stream runs. */
  Rpc.make("Watch", { payload: { docId: NamespaceId }, success: LiveEvent, error: ApiError, stream: true })
) {}
