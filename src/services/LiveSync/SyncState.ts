/**
 * Per-document, per-peer sync state of the live engine (spec 05 §6, 04 §7; iroh-docs `engine/state.rs`): plain data
 * and functions, no Effect, no I/O, no clock reads (the caller passes `now`). The engine's shell is its only writer.
 *
 * It owns the one tie-break of the protocol: when both nodes of a pair dialed each other for the same document, the
 * session started by the smaller node id survives. Ids are lowercase hex, so string order is byte order.
 *
 * Bounded: at most `maxPeers` peer states per document. A new peer takes the place of the idle peer that was least
 * recently active; when every state is running, the new peer is refused (counted in `refused`).
 */
import type { Origin, SyncReason } from "../../schema/LiveEvent.js"

export const DEFAULT_MAX_PEERS = 256

export type PeerSync =
  | { readonly _tag: "Idle" }
  | { readonly _tag: "Running"; readonly start: number; readonly origin: Origin; readonly session: number }

export interface PeerState {
  sync: PeerSync
  resyncRequested: boolean
  /** A session with this peer succeeded since the document went live. */
  synced: boolean
  /** Gossip (or a finished session) announced this peer to subscribers, and no NeighborDown since. */
  neighbor: boolean
  /** Failed sessions we started since the last success (the retry's backoff step). */
  failures: number
  /** When this state last changed (ms): the least recently active idle peer is evicted first. */
  touched: number
}

export interface DocState {
  readonly peers: Map<string, PeerState>
  /** spec 05 §10.3: armed by a SyncFinished while downloads are queued. */
  mayEmitReady: boolean
}

export interface SyncStates {
  readonly me: string
  readonly maxPeers: number
  readonly docs: Map<string, DocState>
  /** Peer states dropped to make room (idle ones), and peers refused because every state was running. */
  evicted: number
  refused: number
  /** Ids of the sessions this node started, so a completion is matched to the session that holds the state. */
  nextSession: number
}

export type AcceptOutcome = "Allow" | "AlreadySyncing" | "NotFound"

export interface Finished {
  readonly started: number
  readonly resync: boolean
  /** Set when a session we started failed: the number of failures in a row (retry with backoff). */
  readonly retry: number | undefined
}

export const make = (me: string, maxPeers: number = DEFAULT_MAX_PEERS): SyncStates => ({
  me,
  maxPeers: Math.max(1, maxPeers),
  docs: new Map(),
  evicted: 0,
  refused: 0,
  nextSession: 1
})

export const isLive = (s: SyncStates, ns: string): boolean => s.docs.has(ns)

/** Makes `ns` live; `false` when it already was. */
export const insert = (s: SyncStates, ns: string): boolean => {
  if (s.docs.has(ns)) return false
  s.docs.set(ns, { peers: new Map(), mayEmitReady: false })
  return true
}

/** Drops `ns` and every peer state of it; later completions of its sessions are ignored. */
export const remove = (s: SyncStates, ns: string): boolean => s.docs.delete(ns)

export const peer = (s: SyncStates, ns: string, peer: string): PeerState | undefined => s.docs.get(ns)?.peers.get(peer)

/** The peer's state, created if there is room (evicting the least recently active idle peer when full). */
const peerState = (s: SyncStates, doc: DocState, peer: string, now: number): PeerState | undefined => {
  const existing = doc.peers.get(peer)
  if (existing !== undefined) return existing
  if (doc.peers.size >= s.maxPeers) {
    let victim: string | undefined
    let oldest = Infinity
    for (const [key, state] of doc.peers) {
      if (state.sync._tag === "Idle" && state.touched < oldest) {
        oldest = state.touched
        victim = key
      }
    }
    if (victim === undefined) {
      s.refused++
      return undefined
    }
    doc.peers.delete(victim)
    s.evicted++
  }
  const state: PeerState = { sync: { _tag: "Idle" }, resyncRequested: false, synced: false, neighbor: false, failures: 0, touched: now }
  doc.peers.set(peer, state)
  return state
}

/**
 * spec 05 §6 `start_connect`: the id of the session the caller should start with `peer` now, or `undefined` (not
 * live, already running, no room).
 */
export const startConnect = (
  s: SyncStates,
  ns: string,
  peer: string,
  reason: SyncReason,
  now: number
): number | undefined => {
  const doc = s.docs.get(ns)
  if (doc === undefined || peer === s.me) return undefined
  const state = peerState(s, doc, peer, now)
  if (state === undefined) return undefined
  if (state.sync._tag === "Running") {
    if (reason === "SyncReport") state.resyncRequested = true
    return undefined
  }
  const session = s.nextSession++
  state.sync = { _tag: "Running", start: now, origin: { _tag: "Connect", reason }, session }
  state.resyncRequested = false
  state.touched = now
  return session
}

/**
 * spec 04 §7 `accept_request`. A running accepted session refuses a second one. When both dialed, the session
 * started by the smaller node id survives: if that is ours we refuse theirs, else theirs replaces ours in the state
 * (ours will end with the peer's `AlreadySyncing`, which {@link finish} is never told about).
 */
export const acceptRequest = (s: SyncStates, ns: string, peer: string, now: number): AcceptOutcome => {
  const doc = s.docs.get(ns)
  if (doc === undefined || peer === s.me) return "NotFound"
  const state = peerState(s, doc, peer, now)
  if (state === undefined) return "AlreadySyncing"
  if (state.sync._tag === "Running") {
    if (state.sync.origin._tag === "Accept") return "AlreadySyncing"
    if (s.me < peer) return "AlreadySyncing"
  }
  state.sync = { _tag: "Running", start: now, origin: { _tag: "Accept" }, session: 0 }
  state.resyncRequested = false
  state.touched = now
  return "Allow"
}

/** How a session ended: `Aborted` is the peer's `AlreadySyncing` (it runs a session with us already). */
export type Result = "Ok" | "Failed" | "Aborted"

/**
 * spec 05 §6 `finish`: a session with `peer` ended — ours (`session` = the id {@link startConnect} gave) or the
 * accepted one (`session` = `"accept"`). Nothing when the document is not live or the state is not that session's
 * (idle, or taken over by the other side's session in the tie-break); an `Aborted` session frees its state silently.
 */
export const finish = (
  s: SyncStates,
  ns: string,
  peer: string,
  session: number | "accept",
  result: Result,
  now: number
): Finished | undefined => {
  const state = s.docs.get(ns)?.peers.get(peer)
  if (state === undefined || state.sync._tag === "Idle") return undefined
  const holder = state.sync.origin._tag === "Accept" ? "accept" : state.sync.session
  if (holder !== session) return undefined
  const origin = state.sync.origin
  const ok = result === "Ok"
  const started = state.sync.start
  const resync = state.resyncRequested
  state.sync = { _tag: "Idle" }
  state.resyncRequested = false
  state.touched = now
  let retry: number | undefined
  if (ok) {
    state.synced = true
    state.failures = 0
  } else if (result === "Failed" && origin._tag === "Connect") {
    state.failures++
    retry = state.failures
  }
  if (result === "Aborted") return undefined
  return { started, resync, retry }
}

/** A NeighborUp for `peer`: `true` when it is news (subscribers have not been told since the last NeighborDown). */
export const neighborUp = (s: SyncStates, ns: string, peer: string, now: number): boolean => {
  const doc = s.docs.get(ns)
  if (doc === undefined || peer === s.me) return false
  const state = peerState(s, doc, peer, now)
  if (state === undefined || state.neighbor) return false
  state.neighbor = true
  state.touched = now
  return true
}

/** A NeighborDown for `peer`: `true` when subscribers had been told it was up. */
export const neighborDown = (s: SyncStates, ns: string, peer: string): boolean => {
  const state = s.docs.get(ns)?.peers.get(peer)
  if (state === undefined || !state.neighbor) return false
  state.neighbor = false
  return true
}

/** Peers of `ns` a session succeeded with (candidate content providers). */
export const syncedPeers = (s: SyncStates, ns: string): Array<string> => {
  const out: Array<string> = []
  for (const [key, state] of s.docs.get(ns)?.peers ?? []) if (state.synced) out.push(key)
  return out
}

export const setMayEmitReady = (s: SyncStates, ns: string, value: boolean): void => {
  const doc = s.docs.get(ns)
  if (doc !== undefined) doc.mayEmitReady = value
}

/** Returns the flag and disarms it. */
export const takeMayEmitReady = (s: SyncStates, ns: string): boolean => {
  const doc = s.docs.get(ns)
  if (doc === undefined || !doc.mayEmitReady) return false
  doc.mayEmitReady = false
  return true
}
