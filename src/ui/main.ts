/**
 * The node's inspector (issue 18): a page served by the node's RPC server that shows its documents, entries, authors,
 * peers and sync sessions, content transfers, live events and metrics, through the same RPC client and group as the
 * CLI (`./rpc.ts`).
 *
 * Shape: one Effect program (run once, at the bottom — the page's `main`). DOM callbacks only put a `Command` on a
 * queue; the program takes commands, calls the node, updates `state` and redraws the view. Background fibers watch
 * every document (`Watch`: events), poll the counters (metrics) and the documents' status.
 *
 * The token comes from the URL fragment (`#token=…`) only, is kept in sessionStorage and removed from the address bar;
 * without it, or when the node refuses it, the page says "not authorised" and shows nothing of the node.
 */
import * as RpcClient from "@effect/rpc/RpcClient"
import { Chunk, Clock, Effect, Either, FiberMap, Option, Queue, Schedule, Stream } from "effect"
import { fromHex, toHex } from "../internal/bytes.js"
import type { SignedEntry } from "../schema/Entry.js"
import type { AuthorId, NamespaceId } from "../schema/Keys.js"
import type { LiveEvent } from "../schema/LiveEvent.js"
import type { TransferInFlight } from "../schema/InspectorRpc.js"
import { CONTENT_REPLY_MAX, type DocListItem, type NodeInfo, type Stats } from "../schema/Rpc.js"
import { Query } from "../schema/Query.js"
import { parseTicket, type ShareMode, ticketToString } from "../schema/Ticket.js"
import { lineChart } from "./chart.js"
import { currentLocation, doc, type Elem, field, h, option, replaceUrl, storage } from "./dom.js"
import { qrSvg } from "./qr.js"
import { describeError, isUnauthorised, layerProtocol, PageRpcs } from "./rpc.js"

// ---------------------------------------------------------------------------------------------------------------
// Limits

/** Entries per page. */
export const PAGE_SIZE = 50
/** Documents watched for events at once. */
const MAX_WATCHED = 32
/** Rows kept in the events, sessions and transfers logs. */
const MAX_LOG = 200
/** Counter samples kept for the charts (one a second). */
const MAX_SAMPLES = 60
/** The largest content previewed or downloaded through the page. */
const MAX_PREVIEW = 8 * 1024 * 1024
const MAX_DOWNLOAD = CONTENT_REPLY_MAX
const MAX_VALUE = 1024 * 1024
const TOKEN_KEY = "rangedocs-token"

// ---------------------------------------------------------------------------------------------------------------
// State

type View = "documents" | "entries" | "authors" | "peers" | "transfers" | "events" | "metrics"
const VIEWS: ReadonlyArray<readonly [View, string]> = [
  ["documents", "Documents"],
  ["entries", "Entries"],
  ["authors", "Authors"],
  ["peers", "Peers & sync"],
  ["transfers", "Transfers"],
  ["events", "Events"],
  ["metrics", "Metrics"]
]

interface EntriesQuery {
  readonly prefix: string
  readonly author: string
  readonly latest: boolean
  readonly sortBy: "KeyAuthor" | "AuthorKey"
  readonly direction: "Asc" | "Desc"
  readonly offset: number
}

interface LoggedEvent {
  readonly at: number
  readonly docId: string
  readonly event: LiveEvent
}

interface Transfer {
  readonly hash: string
  readonly docId: string
  readonly size: bigint
  readonly since: number
  done?: number
}

type SessionResult = Extract<LiveEvent, { readonly _tag: "SyncFinished" }>["event"]["result"]

interface Sample {
  readonly at: number
  readonly stats: Stats
}

const state = {
  view: "documents" as View,
  node: Option.none<NodeInfo>(),
  docs: [] as Array<DocListItem>,
  live: new Map<string, boolean>(),
  share: Option.none<{ readonly docId: string; readonly mode: ShareMode; readonly ticket: string }>(),
  docId: Option.none<NamespaceId>(),
  query: { prefix: "", author: "", latest: false, sortBy: "KeyAuthor", direction: "Asc", offset: 0 } as EntriesQuery,
  rows: [] as ReadonlyArray<SignedEntry>,
  hasNext: false,
  authors: [] as ReadonlyArray<AuthorId>,
  defaultAuthor: Option.none<AuthorId>(),
  events: [] as Array<LoggedEvent>,
  neighbours: new Map<string, Set<string>>(),
  syncPeers: new Map<string, ReadonlyArray<string>>(),
  transfers: [] as Array<Transfer>,
  /** The node's downloads running now (polled), with their progress. */
  inFlight: [] as ReadonlyArray<TransferInFlight>,
  samples: [] as Array<Sample>,
  preview: Option.none<Elem>(),
  message: ""
}

/** What the page has fetched, for the tests (and anyone curious): entries received and `Get` calls made. */
const counters = { entries: 0, getCalls: 0 }

// ---------------------------------------------------------------------------------------------------------------
// Commands (what the DOM asks for)

type Command =
  | { readonly _tag: "Show"; readonly view: View }
  | { readonly _tag: "OpenDoc"; readonly docId: NamespaceId }
  | { readonly _tag: "CreateDoc" }
  | { readonly _tag: "JoinDoc"; readonly ticket: string }
  | { readonly _tag: "ShareDoc"; readonly docId: NamespaceId; readonly mode: ShareMode }
  | { readonly _tag: "Query"; readonly query: EntriesQuery }
  | { readonly _tag: "Set"; readonly author: string; readonly key: string; readonly value: string }
  | { readonly _tag: "Delete"; readonly entry: SignedEntry }
  | { readonly _tag: "Preview"; readonly entry: SignedEntry }
  | { readonly _tag: "Download"; readonly entry: SignedEntry }
  | { readonly _tag: "CreateAuthor" }
  | { readonly _tag: "SetDefaultAuthor"; readonly author: AuthorId }

/** Puts a command on the program's queue (set when the program starts). */
let offer: (command: Command) => void = () => {}
const send = (command: Command) => () => offer(command)

// ---------------------------------------------------------------------------------------------------------------
// Formatting

const textDecoder = new TextDecoder("utf-8", { fatal: true })
const short = (id: Uint8Array) => toHex(id.subarray(0, 5))
const printable = (s: string) => !/[\u0000-\u0008\u000e-\u001f\u007f]/.test(s)
/** A key as text when it is printable UTF-8, else as hex. */
export const showKey = (key: Uint8Array): string => {
  try {
    const s = textDecoder.decode(key)
    if (printable(s)) return s
  } catch {
    // not UTF-8
  }
  return `0x${toHex(key)}`
}
/** Text as a key: `0x…` is hex, anything else UTF-8. */
const keyOf = (text: string): Uint8Array =>
  text.startsWith("0x") ? fromHex(text.slice(2)) ?? new TextEncoder().encode(text) : new TextEncoder().encode(text)
const bytes = (n: number | bigint) => {
  const v = Number(n)
  return v >= 1048576 ? `${(v / 1048576).toFixed(1)} MiB` : v >= 1024 ? `${(v / 1024).toFixed(1)} KiB` : `${v} B`
}
const time = (ms: number) => new Date(ms).toISOString().slice(11, 23)
const timestamp = (micros: bigint) => new Date(Number(micros / 1000n)).toISOString().replace("T", " ").slice(0, 23)

const describeEvent = (event: LiveEvent): string => {
  switch (event._tag) {
    case "InsertLocal":
      return `${showKey(event.entry.id.key)} by ${short(event.entry.id.author)} (${bytes(event.entry.record.len)})`
    case "InsertRemote":
      return `${showKey(event.entry.id.key)} from ${short(event.from)}, content ${event.contentStatus}`
    case "ContentReady":
      return `content ${short(event.hash)}`
    case "PendingContentReady":
      return "every download of the last sync finished"
    case "NeighborUp":
    case "NeighborDown":
      return `peer ${short(event.peer)}`
    case "SyncFinished": {
      const e = event.event
      const result = e.result._tag === "Ok"
        ? `${e.result.details.entriesReceived} in, ${e.result.details.entriesSent} out` +
          (sessionBytes(e.result) === "—" ? "" : ` (bytes ${sessionBytes(e.result)})`)
        : `failed: ${e.result.error}`
      return `with ${short(e.peer)} (${e.origin._tag}${e.via === undefined ? "" : `, ${e.via}`}) in ${e.finished - e.started} ms: ${result}`
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Views

const root = () => doc().getElementById("app")
const table = (head: ReadonlyArray<string>, rows: ReadonlyArray<Elem>, empty: string) =>
  rows.length === 0
    ? h("p", { class: "muted" }, empty)
    : h("div", { class: "scroll" }, h("table", {}, h("thead", {}, h("tr", {}, ...head.map((c) => h("th", {}, c)))), h("tbody", {}, ...rows)))
const button = (label: string, onClick: () => void, attrs: Record<string, string> = {}) =>
  h("button", { type: "button", onClick, ...attrs }, label)

/** A form whose submit (Enter or its button) runs `onSubmit`. */
const form = (label: string, onSubmit: () => void, ...children: ReadonlyArray<Elem>) =>
  h("form", {
    "aria-label": label,
    onSubmit: (event) => {
      event.preventDefault()
      onSubmit()
    }
  }, ...children)

const documentsView = (): Elem => {
  const ticket = field("input", { name: "ticket", placeholder: "doc… ticket", size: 40, "aria-label": "ticket to join" })
  const rows = state.docs.map((d) => {
    const id = toHex(d.id)
    const live = state.live.get(id) === true
    return h(
      "tr",
      { "data-doc": id },
      h("td", {}, button(short(d.id), send({ _tag: "OpenDoc", docId: d.id }), { title: id, "aria-label": `open document ${id}` })),
      h("td", {}, d.capability),
      h("td", {}, h("span", { class: live ? "tag live" : "tag" }, live ? "live" : "idle")),
      h(
        "td",
        {},
        button("share read", send({ _tag: "ShareDoc", docId: d.id, mode: "Read" })),
        " ",
        d.capability === "write" ? button("share write", send({ _tag: "ShareDoc", docId: d.id, mode: "Write" })) : undefined
      )
    )
  })
  const share = Option.match(state.share, {
    onNone: () => undefined,
    onSome: (s) => {
      const text = field("textarea", { class: "ticket mono", readonly: true, id: "share-ticket", "aria-label": "ticket" })
      text.value = s.ticket
      return h(
        "section",
        { id: "share", "aria-label": "share" },
        h("h3", {}, `${s.mode} ticket for ${s.docId.slice(0, 10)}`),
        text,
        h("div", { class: "row" }, button("select", () => text.select())),
        qrSvg(s.ticket, `QR code of the ${s.mode.toLowerCase()} ticket`) ??
          h("p", { class: "muted", id: "no-qr" }, "This ticket is too long for a QR code: share the text above (or a ticket with fewer addresses).")
      )
    }
  })
  return h(
    "section",
    { "aria-label": "documents" },
    h("h2", {}, "Documents"),
    h("div", { class: "row" }, button("create document", send({ _tag: "CreateDoc" }), { id: "create-doc" })),
    form("join", () => offer({ _tag: "JoinDoc", ticket: ticket.value.trim() }), ticket, h("button", { type: "submit" }, "join")),
    table(["document", "capability", "sync", ""], rows, "no documents yet"),
    share
  )
}

const entriesView = (): Elem => {
  if (Option.isNone(state.docId)) return h("section", {}, h("h2", {}, "Entries"), h("p", { class: "muted" }, "open a document first"))
  const docId = state.docId.value
  const q = state.query
  const prefix = field("input", { name: "prefix", placeholder: "key prefix", "aria-label": "key prefix" })
  prefix.value = q.prefix
  const author = field("select", { name: "author", "aria-label": "author" }, option("", "any author", q.author === ""),
    ...state.authors.map((a) => option(toHex(a), short(a), q.author === toHex(a))))
  const latest = field("input", { type: "checkbox", name: "latest" })
  latest.checked = q.latest
  const sortBy = field("select", { name: "sort", "aria-label": "sort by" }, option("KeyAuthor", "key, author", q.sortBy === "KeyAuthor"),
    option("AuthorKey", "author, key", q.sortBy === "AuthorKey"))
  const direction = field("select", { name: "direction", "aria-label": "direction" }, option("Asc", "ascending", q.direction === "Asc"),
    option("Desc", "descending", q.direction === "Desc"))
  const goto = field("input", { type: "number", name: "offset", min: 0, "aria-label": "first row", size: 8 })
  goto.value = String(q.offset + 1)
  const read = (offset: number): EntriesQuery => ({
    prefix: prefix.value,
    author: author.value,
    latest: latest.checked,
    sortBy: sortBy.value === "AuthorKey" ? "AuthorKey" : "KeyAuthor",
    direction: direction.value === "Desc" ? "Desc" : "Asc",
    offset: Math.max(0, offset)
  })
  const query = (offset: number) => () => offer({ _tag: "Query", query: read(offset) })
  const rows = state.rows.map((e) =>
    h(
      "tr",
      { "data-key": showKey(e.entry.id.key) },
      h("td", { class: "mono" }, showKey(e.entry.id.key)),
      h("td", { class: "mono", title: toHex(e.entry.id.author) }, short(e.entry.id.author)),
      h("td", {}, bytes(e.entry.record.len)),
      h("td", { class: "wide" }, timestamp(e.entry.record.timestamp)),
      h("td", { class: "mono wide", title: toHex(e.entry.record.hash) }, short(e.entry.record.hash)),
      h(
        "td",
        {},
        button("preview", send({ _tag: "Preview", entry: e })),
        " ",
        button("download", send({ _tag: "Download", entry: e })),
        " ",
        button("delete", send({ _tag: "Delete", entry: e }), { title: "this author's entries at this key and below" })
      )
    )
  )
  const setAuthor = field("select", { name: "set-author", "aria-label": "write as" }, ...state.authors.map((a) =>
    option(toHex(a), short(a), Option.isSome(state.defaultAuthor) && toHex(a) === toHex(state.defaultAuthor.value))))
  const setKey = field("input", { name: "set-key", placeholder: "key", "aria-label": "key to set" })
  const setValue = field("textarea", { name: "set-value", placeholder: "value", rows: 1, "aria-label": "value to set" })
  const first = q.offset + 1
  return h(
    "section",
    { "aria-label": "entries" },
    h("h2", {}, "Entries of ", h("code", {}, toHex(docId))),
    form("query", query(0), prefix, author, h("label", {}, latest, "latest per key"), sortBy, direction, h("button", { type: "submit" }, "query")),
    h(
      "div",
      { class: "row" },
      button("previous", query(q.offset - PAGE_SIZE), q.offset === 0 ? { disabled: "" } : {}),
      h("span", { id: "page-range" }, state.rows.length === 0 ? "no entries" : `rows ${first}–${q.offset + state.rows.length}`),
      button("next", query(q.offset + PAGE_SIZE), state.hasNext ? {} : { disabled: "" }),
      form("go to row", () => offer({ _tag: "Query", query: read(Number(goto.value) - 1) }), goto, h("button", { type: "submit" }, "go"))
    ),
    table(["key", "author", "size", "time", "hash", ""], rows, "no entries match"),
    Option.getOrUndefined(state.preview),
    h("h3", {}, "Set"),
    form(
      "set",
      () => offer({ _tag: "Set", author: setAuthor.value, key: setKey.value, value: setValue.value }),
      setAuthor,
      setKey,
      setValue,
      h("button", { type: "submit" }, "set")
    )
  )
}

const authorsView = (): Elem =>
  h(
    "section",
    { "aria-label": "authors" },
    h("h2", {}, "Authors"),
    h("div", { class: "row" }, button("create author", send({ _tag: "CreateAuthor" }))),
    table(["author", ""], state.authors.map((a) => {
      const isDefault = Option.isSome(state.defaultAuthor) && toHex(state.defaultAuthor.value) === toHex(a)
      return h("tr", {}, h("td", { class: "mono" }, toHex(a)),
        h("td", {}, isDefault ? h("span", { class: "tag" }, "default") : button("make default", send({ _tag: "SetDefaultAuthor", author: a }))))
    }), "no authors")
  )

/** A session's bytes in / out, when the node reported them (older nodes do not). */
const sessionBytes = (result: SessionResult): string =>
  result._tag === "Ok" && result.details.bytesReceived !== undefined && result.details.bytesSent !== undefined
    ? `${bytes(result.details.bytesReceived)} / ${bytes(result.details.bytesSent)}`
    : "—"

const peersView = (): Elem => {
  const sessions = state.events.filter((e) => e.event._tag === "SyncFinished")
  const node = Option.match(state.node, {
    onNone: () => h("p", {}, "…"),
    onSome: (n) =>
      h("dl", {}, h("dt", {}, "node id"), h("dd", { class: "mono" }, toHex(n.nodeId)), h("dt", {}, "addresses"),
        h("dd", { class: "mono" }, n.addrs.join("\n") || "none"), h("dt", {}, "uptime"),
        h("dd", {}, n.uptimeMs === undefined ? "?" : `${Math.round(n.uptimeMs / 1000)} s`))
  })
  const peers = state.docs.map((d) => {
    const id = toHex(d.id)
    const neighbours = [...(state.neighbours.get(id) ?? [])]
    return h("tr", {}, h("td", { class: "mono" }, short(d.id)), h("td", { class: "mono" }, neighbours.map((p) => p.slice(0, 10)).join(" ") || "—"),
      h("td", { class: "mono" }, (state.syncPeers.get(id) ?? []).map((p) => p.slice(0, 10)).join(" ") || "—"))
  })
  return h(
    "section",
    { "aria-label": "peers" },
    h("h2", {}, "This node"),
    node,
    h("h2", {}, "Peers"),
    table(["document", "neighbours now", "useful peers"], peers, "no documents"),
    h("h2", {}, "Sync sessions"),
    table(["finished", "document", "peer", "origin", "duration", "entries in / out", "bytes in / out", "path", "result"], sessions.map((s) => {
      if (s.event._tag !== "SyncFinished") return h("tr", {})
      const e = s.event.event
      return h("tr", {}, h("td", {}, time(e.finished)), h("td", { class: "mono" }, s.docId.slice(0, 10)),
        h("td", { class: "mono", title: toHex(e.peer) }, short(e.peer)),
        h("td", {}, e.origin._tag === "Connect" ? `we (${e.origin.reason})` : "they"),
        h("td", {}, `${e.finished - e.started} ms`),
        h("td", {}, e.result._tag === "Ok" ? `${e.result.details.entriesReceived} / ${e.result.details.entriesSent}` : "—"),
        h("td", { "data-bytes": "" }, sessionBytes(e.result)),
        h("td", { "data-via": e.via ?? "" }, e.via ?? "—"),
        h("td", { class: e.result._tag === "Ok" ? "" : "bad" }, e.result._tag === "Ok" ? "ok" : e.result.error))
    }), "no sync session since the page opened")
  )
}

const transfersView = (): Elem => {
  const latest = state.samples.at(-1)?.stats ?? {}
  return h(
    "section",
    { "aria-label": "transfers" },
    h("h2", {}, "Content transfers"),
    h("p", {}, `downloads running: ${latest["downloads_in_flight"] ?? 0}; completed ${latest["downloads_success"] ?? 0}, failed ${latest["downloads_failure"] ?? 0}; ${bytes(latest["download_bytes"] ?? 0)} downloaded`),
    h("h3", {}, "In flight"),
    table(["hash", "document", "from", "progress", "running for"], state.inFlight.map((t) => {
      const hash = toHex(t.hash)
      const docId = state.transfers.find((x) => x.hash === hash)?.docId
      const now = state.samples.at(-1)?.at ?? t.started
      return h(
        "tr",
        { "data-transfer": hash },
        h("td", { class: "mono", title: hash }, hash.slice(0, 10)),
        h("td", { class: "mono" }, docId?.slice(0, 10) ?? "—"),
        h("td", { class: "mono" }, t.provider === undefined ? "waiting" : short(t.provider)),
        h(
          "td",
          {},
          t.size === undefined
            ? h("progress", { "aria-label": `${hash.slice(0, 10)}: size not known yet` })
            : h("progress", { value: t.bytes, max: Math.max(1, t.size), "aria-label": `${hash.slice(0, 10)}: ${bytes(t.bytes)} of ${bytes(t.size)}` }),
          ` ${bytes(t.bytes)}${t.size === undefined ? "" : ` of ${bytes(t.size)} (${Math.floor((100 * t.bytes) / Math.max(1, t.size))} %)`}`
        ),
        h("td", {}, `${Math.max(0, Math.round((now - t.started) / 1000))} s`)
      )
    }), "no download running"),
    h("h3", {}, "Since the page opened"),
    table(["hash", "document", "size", "status"], state.transfers.map((t) =>
      h("tr", {}, h("td", { class: "mono" }, t.hash.slice(0, 10)), h("td", { class: "mono" }, t.docId.slice(0, 10)), h("td", {}, bytes(t.size)),
        h("td", {}, t.done === undefined
          ? h("span", {}, h("progress", { "aria-label": "downloading" }), ` waiting since ${time(t.since)}`)
          : `done in ${t.done - t.since} ms`))
    ), "no content transfer since the page opened")
  )
}

const eventsView = (): Elem =>
  h(
    "section",
    { "aria-label": "events" },
    h("h2", {}, "Live events"),
    table(["time", "document", "event", ""], state.events.map((e) =>
      h("tr", { "data-event": e.event._tag }, h("td", {}, time(e.at)), h("td", { class: "mono" }, e.docId.slice(0, 10)),
        h("td", {}, e.event._tag), h("td", {}, describeEvent(e.event)))
    ), "no event since the page opened")
  )

const rate = (name: ReadonlyArray<string>) => {
  const out: Array<number> = []
  for (let i = 1; i < state.samples.length; i++) {
    const a = state.samples[i - 1]!
    const b = state.samples[i]!
    const sum = (s: Stats) => name.reduce((acc, n) => acc + (s[n] ?? 0), 0)
    out.push(Math.max(0, (sum(b.stats) - sum(a.stats)) / Math.max(0.001, (b.at - a.at) / 1000)))
  }
  return out
}

const metricsView = (): Elem =>
  h(
    "section",
    { "aria-label": "metrics" },
    h("h2", {}, "Metrics (last minute)"),
    h(
      "div",
      { class: "charts" },
      lineChart("entries/s", rate(["new_entries_local", "new_entries_remote"]), (n) => n.toFixed(1)),
      lineChart("bytes in/s", rate(["sync_bytes_received", "download_bytes"]), (n) => `${bytes(Math.round(n))}`),
      lineChart("bytes out/s", rate(["sync_bytes_sent"]), (n) => `${bytes(Math.round(n))}`),
      lineChart("sync sessions/s", rate(["sync_via_connect_success", "sync_via_connect_failure", "sync_via_accept_success", "sync_via_accept_failure"]), (n) => n.toFixed(2)),
      lineChart("downloads running", state.samples.map((s) => s.stats["downloads_in_flight"] ?? 0), (n) => n.toFixed(0))
    )
  )

const render = () => {
  const app = root()
  if (app === null) return
  const nav = doc().getElementById("nav")
  // Built once and then only marked: a rebuilt nav would take the keyboard focus away from the button just used.
  if (nav !== null && nav.querySelector("button") === null) {
    nav.replaceChildren(...VIEWS.map(([view, label]) => button(label, send({ _tag: "Show", view }), { "data-view": view })))
  }
  for (const [view] of VIEWS) {
    const b = nav?.querySelector(`button[data-view="${view}"]`)
    if (view === state.view) b?.setAttribute("aria-current", "page")
    else b?.removeAttribute("aria-current")
  }
  const node = doc().getElementById("node")
  if (node !== null) node.textContent = Option.match(state.node, { onNone: () => "", onSome: (n) => `node ${short(n.nodeId)}` })
  const view = state.view === "documents"
    ? documentsView()
    : state.view === "entries"
    ? entriesView()
    : state.view === "authors"
    ? authorsView()
    : state.view === "peers"
    ? peersView()
    : state.view === "transfers"
    ? transfersView()
    : state.view === "events"
    ? eventsView()
    : metricsView()
  const message = h("p", { role: "status", id: "message" }, state.message)
  app.replaceChildren(message, view)
  doc().body.dataset["view"] = state.view
  doc().body.dataset["entriesFetched"] = String(counters.entries)
  doc().body.dataset["getCalls"] = String(counters.getCalls)
}

/** Redraws unless the user is typing in a field of the view (a redraw would take the text away). */
const refresh = (view: View) =>
  Effect.sync(() => {
    if (state.view !== view) return
    const app = root()
    const focused = app?.querySelector("input:focus, textarea:focus, select:focus")
    if (focused === null || focused === undefined) render()
  })

const notAuthorised = () => {
  storage().removeItem(TOKEN_KEY)
  doc().getElementById("nav")?.replaceChildren()
  root()?.replaceChildren(
    h("p", { role: "alert", id: "not-authorised" }, "not authorised"),
    h("p", { class: "muted" }, "Open the URL that `rangedocs ui` prints; it carries the node's access token.")
  )
}

// ---------------------------------------------------------------------------------------------------------------
// The program

const takeToken = (): string | undefined => {
  const loc = currentLocation()
  const match = /(?:^#|&)token=([^&]*)/.exec(loc.hash)
  if (match !== null) {
    storage().setItem(TOKEN_KEY, decodeURIComponent(match[1] ?? ""))
    // Out of the address bar, the history and any bookmark.
    replaceUrl(loc.pathname)
  }
  return storage().getItem(TOKEN_KEY) ?? undefined
}

const program = (token: string) =>
  Effect.gen(function*() {
    const commands = yield* Queue.unbounded<Command>()
    const entriesDirty = yield* Queue.sliding<void>(1)
    offer = (command) => void Queue.unsafeOffer(commands, command)
    const client = yield* RpcClient.make(PageRpcs)
    const info = yield* client.NodeStatus()
    state.node = Option.some(info)
    const watches = yield* FiberMap.make<string>()

    const say = (message: string) => Effect.sync(() => {
      state.message = message
      render()
    })
    const attempt = <A, E>(what: string, effect: Effect.Effect<A, E>) =>
      effect.pipe(
        Effect.tapError((error) =>
          isUnauthorised(error) ? Effect.sync(notAuthorised) : say(`${what}: ${describeError(error)}`)
        ),
        Effect.option
      )

    const loadEntries = Effect.gen(function*() {
      if (Option.isNone(state.docId)) return
      const q = state.query
      let query = q.latest ? Query.singleLatestPerKey().sortDirection(q.direction) : Query.all().sortBy(q.sortBy, q.direction)
      if (q.prefix !== "") query = query.withKeyPrefix(keyOf(q.prefix))
      const author = state.authors.find((a) => toHex(a) === q.author)
      if (author !== undefined) query = query.withAuthor(author)
      // One more than a page tells whether there is a next one; the node skips `offset` rows itself.
      query = query.withLimit(PAGE_SIZE + 1).withOffset(q.offset)
      counters.getCalls++
      const rows = Chunk.toReadonlyArray(yield* Stream.runCollect(client.Get({ docId: state.docId.value, query })))
      counters.entries += rows.length
      state.rows = rows.slice(0, PAGE_SIZE)
      state.hasNext = rows.length > PAGE_SIZE
    })

    const loadAuthors = Effect.gen(function*() {
      state.authors = Chunk.toReadonlyArray(yield* Stream.runCollect(client.AuthorList()))
      state.defaultAuthor = Option.some(yield* client.AuthorGetDefault())
    })

    const onEvent = (docId: string) => (event: LiveEvent) =>
      Effect.gen(function*() {
        const at = yield* Clock.currentTimeMillis
        state.events.unshift({ at, docId, event })
        if (state.events.length > MAX_LOG) state.events.length = MAX_LOG
        switch (event._tag) {
          case "InsertLocal":
          case "InsertRemote":
            if (Option.isSome(state.docId) && toHex(state.docId.value) === docId) yield* Queue.offer(entriesDirty, undefined)
            if (event._tag === "InsertRemote" && event.contentStatus !== "Complete") {
              state.transfers.unshift({ hash: toHex(event.entry.record.hash), docId, size: event.entry.record.len, since: at })
              if (state.transfers.length > MAX_LOG) state.transfers.length = MAX_LOG
            }
            break
          case "ContentReady": {
            const hash = toHex(event.hash)
            for (const t of state.transfers) if (t.hash === hash && t.done === undefined) t.done = at
            break
          }
          case "NeighborUp":
          case "NeighborDown": {
            const set = state.neighbours.get(docId) ?? new Set<string>()
            if (event._tag === "NeighborUp") set.add(toHex(event.peer))
            else set.delete(toHex(event.peer))
            state.neighbours.set(docId, set)
            break
          }
          default:
            break
        }
        yield* refresh(state.view === "entries" ? "events" : state.view)
      })

    const watch = (docId: NamespaceId) => {
      const id = toHex(docId)
      return FiberMap.run(
        watches,
        id,
        client.Watch({ docId }).pipe(
          Stream.runForEach(onEvent(id)),
          // A dropped stream (node restarting, a network hiccup) is watched again.
          Effect.retry(Schedule.exponential("500 millis").pipe(Schedule.union(Schedule.spaced("10 seconds")))),
          Effect.ignore
        ),
        { onlyIfMissing: true }
      )
    }

    const loadDocs = Effect.gen(function*() {
      state.docs = Chunk.toArray(yield* Stream.runCollect(client.List()))
      for (const d of state.docs.slice(0, MAX_WATCHED)) yield* watch(d.id)
    })

    const pollStatus = Effect.gen(function*() {
      for (const d of state.docs.slice(0, MAX_WATCHED)) {
        const id = toHex(d.id)
        const status = yield* Effect.option(client.Status({ docId: d.id }))
        if (Option.isSome(status)) state.live.set(id, status.value.sync)
        if (state.view === "peers") {
          const peers = yield* Effect.option(client.GetSyncPeers({ docId: d.id }))
          state.syncPeers.set(id, Option.match(Option.flatten(peers), { onNone: () => [], onSome: (p) => p.map(toHex) }))
        }
      }
      yield* refresh("documents")
      yield* refresh("peers")
    })

    const pollStats = Effect.gen(function*() {
      // Downloads in flight: an older node without the request lists none.
      state.inFlight = Option.getOrElse(yield* Effect.option(client.Transfers()), () => [])
      const stats = yield* client.Stats()
      state.samples.push({ at: yield* Clock.currentTimeMillis, stats })
      if (state.samples.length > MAX_SAMPLES) state.samples.shift()
      yield* refresh("metrics")
      yield* refresh("transfers")
    })

    // A write to the open document reloads its page at once; writes during a reload make one more (sliding, 1).
    const refreshEntries = Effect.gen(function*() {
      yield* Queue.take(entriesDirty)
      yield* Effect.ignore(loadEntries)
      yield* refresh("entries")
    })

    const handle = (command: Command): Effect.Effect<void> => {
      switch (command._tag) {
        case "Show":
          return Effect.gen(function*() {
            state.view = command.view
            state.message = ""
            if (command.view === "authors" || command.view === "entries") yield* attempt("authors", loadAuthors)
            if (command.view === "documents") yield* attempt("documents", loadDocs)
            if (command.view === "peers") yield* attempt("peers", Effect.tap(client.NodeStatus(), (n) => Effect.sync(() => void (state.node = Option.some(n)))))
            render()
          })
        case "OpenDoc":
          return Effect.gen(function*() {
            state.docId = Option.some(command.docId)
            state.query = { ...state.query, offset: 0 }
            state.view = "entries"
            state.preview = Option.none()
            state.message = ""
            yield* watch(command.docId)
            yield* attempt("authors", loadAuthors)
            yield* attempt("entries", loadEntries)
            render()
          })
        case "CreateDoc":
          return attempt("create", Effect.gen(function*() {
            const docId = yield* client.Create()
            // Create opens the document (one handle); `Watch` holds it open while the page looks at it.
            yield* client.Close({ docId })
            yield* loadDocs
            yield* say(`created ${toHex(docId)}`)
          }))
        case "JoinDoc":
          return attempt("join", Effect.gen(function*() {
            const ticket = yield* Either.match(parseTicket(command.ticket), {
              onLeft: (e) => Effect.fail(e),
              onRight: Effect.succeed
            })
            const docId = yield* client.Import({ capability: ticket.capability })
            yield* client.StartSync({ docId, peers: ticket.nodes })
            yield* client.Close({ docId })
            yield* loadDocs
            yield* say(`joined ${toHex(docId)}`)
          }))
        case "ShareDoc":
          return attempt("share", Effect.gen(function*() {
            const ticket = yield* client.Share({ docId: command.docId, mode: command.mode, addrOptions: "Addresses" })
            state.share = Option.some({ docId: toHex(command.docId), mode: command.mode, ticket: ticketToString(ticket) })
            state.live.set(toHex(command.docId), true)
            render()
          }))
        case "Query":
          return Effect.gen(function*() {
            state.query = command.query
            state.preview = Option.none()
            yield* attempt("query", loadEntries)
            render()
          })
        case "Set":
          return attempt("set", Effect.gen(function*() {
            if (Option.isNone(state.docId)) return
            const value = new TextEncoder().encode(command.value)
            if (value.length > MAX_VALUE) return yield* say(`a value set here holds at most ${bytes(MAX_VALUE)}; use \`rangedocs doc set\``)
            const author = state.authors.find((a) => toHex(a) === command.author) ?? Option.getOrUndefined(state.defaultAuthor)
            if (author === undefined) return yield* say("no author")
            yield* client.Set({ docId: state.docId.value, authorId: author, key: keyOf(command.key), value })
            yield* loadEntries
            yield* say(`set ${command.key}`)
          }))
        case "Delete":
          return attempt("delete", Effect.gen(function*() {
            if (Option.isNone(state.docId)) return
            const own = state.authors.find((a) => toHex(a) === toHex(command.entry.entry.id.author))
            const author = own ?? Option.getOrUndefined(state.defaultAuthor)
            if (author === undefined) return yield* say("no author")
            const removed = yield* client.Del({ docId: state.docId.value, authorId: author, prefix: command.entry.entry.id.key })
            yield* loadEntries
            yield* say(`deleted ${showKey(command.entry.entry.id.key)} (${removed} entries removed)`)
          }))
        case "Preview":
          return attempt("preview", Effect.gen(function*() {
            const e = command.entry.entry
            if (e.record.len > BigInt(MAX_PREVIEW)) {
              return yield* say(`content of ${bytes(e.record.len)}: too large to preview here; download it`)
            }
            const content = yield* client.ReadContent({ hash: e.record.hash })
            state.preview = Option.some(previewOf(showKey(e.id.key), content))
            render()
          }))
        case "Download":
          return attempt("download", Effect.gen(function*() {
            const e = command.entry.entry
            if (e.record.len > BigInt(MAX_DOWNLOAD)) {
              return yield* say(`content of ${bytes(e.record.len)}: use \`rangedocs doc export\` for values this large`)
            }
            const content = yield* client.ReadContent({ hash: e.record.hash })
            yield* Effect.sync(() => download(showKey(e.id.key), content))
          }))
        case "CreateAuthor":
          return attempt("author", Effect.gen(function*() {
            yield* client.AuthorCreate()
            yield* loadAuthors
            render()
          }))
        case "SetDefaultAuthor":
          return attempt("author", Effect.gen(function*() {
            yield* client.AuthorSetDefault({ authorId: command.author })
            yield* loadAuthors
            render()
          }))
      }
    }

    yield* loadDocs
    render()
    yield* Effect.forkScoped(Effect.repeat(Effect.ignore(pollStats), Schedule.spaced("1 second")))
    yield* Effect.forkScoped(Effect.repeat(Effect.ignore(pollStatus), Schedule.spaced("2 seconds")))
    yield* Effect.forkScoped(Effect.forever(refreshEntries))
    return yield* Effect.forever(Effect.flatMap(Queue.take(commands), handle))
  }).pipe(
    Effect.scoped,
    Effect.provide(layerProtocol(currentLocation().origin, token))
  )

// ---------------------------------------------------------------------------------------------------------------
// Content

const IMAGE_TYPES: ReadonlyArray<readonly [string, ReadonlyArray<number>]> = [
  ["image/png", [0x89, 0x50, 0x4e, 0x47]],
  ["image/jpeg", [0xff, 0xd8, 0xff]],
  ["image/gif", [0x47, 0x49, 0x46, 0x38]],
  ["image/webp", [0x52, 0x49, 0x46, 0x46]]
]

const imageType = (content: Uint8Array) =>
  IMAGE_TYPES.find(([, magic]) => magic.every((b, i) => content[i] === b))?.[0]

const hexDump = (content: Uint8Array, max = 4096) => {
  const lines: Array<string> = []
  for (let i = 0; i < Math.min(content.length, max); i += 16) {
    const row = content.subarray(i, i + 16)
    lines.push(`${i.toString(16).padStart(8, "0")}  ${toHex(row).replace(/(..)/g, "$1 ").padEnd(48)} ${[...row].map((b) => b >= 32 && b < 127 ? String.fromCharCode(b) : ".").join("")}`)
  }
  if (content.length > max) lines.push(`… ${content.length - max} more bytes`)
  return lines.join("\n")
}

/** Text when it is UTF-8, an image when its first bytes say so, else a hex dump. */
const previewOf = (key: string, content: Uint8Array): Elem => {
  const heading = h("h3", {}, `Content of ${key} (${bytes(content.length)})`)
  const type = imageType(content)
  if (type !== undefined) {
    const url = URL.createObjectURL(new Blob([content], { type }))
    return h("section", { id: "preview", "data-kind": "image" }, heading, h("img", { class: "preview", src: url, alt: key }))
  }
  try {
    const text = textDecoder.decode(content)
    return h("section", { id: "preview", "data-kind": "text" }, heading, h("pre", { class: "preview" }, text.slice(0, 65536)))
  } catch {
    return h("section", { id: "preview", "data-kind": "hex" }, heading, h("pre", { class: "preview mono" }, hexDump(content)))
  }
}

const download = (key: string, content: Uint8Array) => {
  const url = URL.createObjectURL(new Blob([content], { type: "application/octet-stream" }))
  const a = h("a", { href: url, download: key.replace(/[^A-Za-z0-9._-]/g, "_") || "content" })
  doc().body.append(a)
  a.click()
  a.remove()
  URL.revokeObjectURL(url)
}

// ---------------------------------------------------------------------------------------------------------------
// main

const token = takeToken()
if (token === undefined || token === "") {
  notAuthorised()
} else {
  Effect.runFork(program(token).pipe(
    Effect.catchAll((error) =>
      Effect.sync(() => {
        if (isUnauthorised(error)) return notAuthorised()
        root()?.replaceChildren(h("p", { role: "alert" }, `cannot reach the node: ${describeError(error)}`))
      })
    )
  ))
}
