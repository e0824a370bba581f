/** Live events (spec 05 §10) as one line of text or one JSON object. */
import { toHex } from "../internal/bytes.js"
import type { LiveEvent } from "../schema/LiveEvent.js"
import { entryJson, short, showKey } from "./Common.js"

export const eventJson = (event: LiveEvent): Record<string, unknown> => {
  switch (event._tag) {
    case "InsertLocal":
      return { event: event._tag, ...entryJson(event.entry) }
    case "InsertRemote":
      return { event: event._tag, from: toHex(event.from), contentStatus: event.contentStatus, ...entryJson(event.entry) }
    case "ContentReady":
      return { event: event._tag, hash: toHex(event.hash) }
    case "PendingContentReady":
      return { event: event._tag }
    case "NeighborUp":
    case "NeighborDown":
      return { event: event._tag, peer: toHex(event.peer) }
    case "SyncFinished": {
      const s = event.event
      return {
        event: event._tag,
        peer: toHex(s.peer),
        origin: s.origin._tag === "Connect" ? s.origin.reason : "Accept",
        started: s.started,
        finished: s.finished,
        ...(s.via === undefined ? {} : { via: s.via }),
        ...(s.result._tag === "Ok"
          ? {
            ok: true,
            entriesReceived: s.result.details.entriesReceived,
            entriesSent: s.result.details.entriesSent,
            ...(s.result.details.bytesReceived === undefined ? {} : { bytesReceived: s.result.details.bytesReceived }),
            ...(s.result.details.bytesSent === undefined ? {} : { bytesSent: s.result.details.bytesSent })
          }
          : { ok: false, error: s.result.error })
      }
    }
  }
}

const entryText = (e: { readonly id: { readonly key: Uint8Array; readonly author: Uint8Array }; readonly record: { readonly len: bigint } }) =>
  `${showKey(e.id.key)} author=${short(e.id.author)} len=${e.record.len}${e.record.len === 0n ? " (deleted)" : ""}`

export const showEvent = (event: LiveEvent): string => {
  switch (event._tag) {
    case "InsertLocal":
      return `insert-local ${entryText(event.entry)}`
    case "InsertRemote":
      return `insert-remote ${entryText(event.entry)} from=${short(event.from)} content=${event.contentStatus}`
    case "ContentReady":
      return `content-ready ${toHex(event.hash)}`
    case "PendingContentReady":
      return "pending-content-ready"
    case "NeighborUp":
      return `neighbor-up ${toHex(event.peer)}`
    case "NeighborDown":
      return `neighbor-down ${toHex(event.peer)}`
    case "SyncFinished": {
      const s = event.event
      const origin = s.origin._tag === "Connect" ? s.origin.reason : "Accept"
      const result = s.result._tag === "Ok"
        ? `ok received=${s.result.details.entriesReceived} sent=${s.result.details.entriesSent}${
          s.result.details.bytesReceived === undefined ? "" : ` bytes=${s.result.details.bytesReceived}/${s.result.details.bytesSent ?? 0}`
        }`
        : `failed: ${s.result.error}`
      const via = s.via === undefined ? "" : ` via=${s.via}`
      return `sync-finished peer=${short(s.peer)} origin=${origin}${via} ${result} (${s.finished - s.started} ms)`
    }
  }
}
