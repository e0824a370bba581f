/**
 * The page's RPC client: the same @effect/rpc client and group as the CLI's (`DocsRpcs`, plus the inspector's
 * `InspectorRpcs`), over HTTP with msgpack to the origin that served the page, the token as bearer on every call.
 */
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientError from "@effect/platform/HttpClientError"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as RpcClient from "@effect/rpc/RpcClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { InspectorRpcs } from "../schema/InspectorRpc.js"
import { DocsRpcs, layerMsgPack } from "../schema/Rpc.js"

export const RPC_PATH = "/rpc"

export class PageRpcs extends DocsRpcs.merge(InspectorRpcs) {}

export const layerProtocol = (origin: string, token: string): Layer.Layer<RpcClient.Protocol> =>
  Layer.scoped(
    RpcClient.Protocol,
    Effect.flatMap(HttpClient.HttpClient, (client) =>
      RpcClient.makeProtocolHttp(client.pipe(
        HttpClient.mapRequest(HttpClientRequest.prependUrl(`${origin}${RPC_PATH}`)),
        HttpClient.mapRequest(HttpClientRequest.bearerToken(token)),
        // A refusal's body is not msgpack: fail the call instead of reading it as a reply.
        HttpClient.filterStatusOk
      )))
  ).pipe(Layer.provide([layerMsgPack, FetchHttpClient.layer]))

/** Whether an error is the node refusing the token (401). */
export const isUnauthorised = (error: unknown): boolean => {
  if (typeof error !== "object" || error === null || !("_tag" in error)) return false
  if (error._tag !== "RpcClientError" || !("cause" in error)) return false
  const cause = error.cause
  return HttpClientError.isHttpClientError(cause) && cause._tag === "ResponseError" && cause.response.status === 401
}

/** One line for an error of a call. */
export const describeError = (error: unknown): string => {
  if (isUnauthorised(error)) return "not authorised"
  if (typeof error === "object" && error !== null && "message" in error && typeof error.message === "string") {
    return error.message
  }
  return String(error)
}
