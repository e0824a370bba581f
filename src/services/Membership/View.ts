/**
 * The membership view of one document (issue 15 "Membership", spec 05 §15): pure data and a `step` function, no
 * Effect, no I/O, no clock reads. The shell (src/services/Membership.ts) feeds it events with the time and a source
 * of randomness and carries out the decisions it returns.
 *
 * HyParView-like (iroh-gossip `proto/hyparview.rs`), adapted to gossipsub, where a connection to a node subscribed to
 * the topic makes both sides neighbours and nothing can drop one topic's link without dropping the connection that
 * other documents share:
 * - `active`: the members we are gossip neighbours with (NeighborUp/NeighborDown), at most `maxActive` tracked.
 * - `known`: signed records of members (the passive view, plus the records of active members so they can be passed
 *   on), at most `maxPassive`, the newest record per node. When full, a record of a new node replaces a random record
 *   of a node that is neither active nor being connected; random rather than oldest so that a flood of fresh records
 *   from one remote cannot push out every record we had.
 * - Ours: the members we chose to connect to (connecting or active). The degree counts only these, so that nodes
 *   which connect to us on their own (any peer can connect and subscribe to the topic) cannot fill the view and stop
 *   us from connecting and replacing (an eclipse): when the active view is full, a member we chose displaces one that
 *   came on its own (it stays a gossip neighbour, just not one we track).
 * - Fill: while we have fewer than `targetDegree` of ours, connect to random known members.
 * - Replace: when a neighbour goes down, connect to a random known member even at the target (HyParView's promotion
 *   from the passive view); this is what reconnects two halves that only a departed node joined, because the
 *   candidates exclude the members we already have.
 * - Shuffle: on each tick, exchange records with one random active member (a bounded random sample plus, added by the
 *   shell, our own record). A connect also exchanges, so a joiner learns the members its bootstrap knows at once.
 * - Failures: a failed connect retries the record after `retryBackoff · 2^(n−1)`; after `maxFailures` the record is
 *   forgotten until a newer one arrives. A node that answers it is no member, or answers nonsense, is forgotten at
 *   once (gossip alone decides whether it stays a neighbour).
 * - Bootstrap addresses (unsigned: the ticket's, the address book's) are dialed on join, and again on a tick while we
 *   have neither neighbours, records, nor connects under way.
 */
import { toHex } from "../../internal/bytes.js"
import { NodeAddr, type NodeId } from "../../schema/NodeAddr.js"
import type { PeerRecord } from "../../schema/PeerRecord.js"

export interface ViewConfig {
  /** Neighbours we connect to on our own (the target degree). */
  readonly targetDegree: number
  /** Neighbours tracked at most; replacements stop here. */
  readonly maxActive: number
  /** Records kept at most (passive view plus the active members' records). */
  readonly maxPassive: number
  /** Records in an exchange sample, our own not counted. */
  readonly sampleSize: number
  /** Failed connects after which a record is forgotten. */
  readonly maxFailures: number
  /** Wait before retrying a record whose connect failed once (ms), doubled per further failure. */
  readonly retryBackoff: number
  /** How long a connect may go without its NeighborUp before it counts as failed (ms). */
  readonly connectTimeout: number
  /** Bootstrap addresses kept. */
  readonly maxBootstrap: number
}

export const DEFAULT_VIEW_CONFIG: ViewConfig = {
  targetDegree: 4,
  maxActive: 8,
  maxPassive: 64,
  sampleSize: 8,
  maxFailures: 3,
  retryBackoff: 1_000,
  connectTimeout: 15_000,
  maxBootstrap: 16
}

/** Why a config is unusable, or undefined. */
export const configProblem = (c: ViewConfig): string | undefined => {
  const int = (n: number, min: number) => Number.isSafeInteger(n) && n >= min
  if (!int(c.targetDegree, 1)) return "targetDegree must be an integer ≥ 1"
  if (!int(c.maxActive, c.targetDegree)) return "maxActive must be an integer ≥ targetDegree"
  if (!int(c.maxPassive, c.maxActive + 1)) return "maxPassive must be an integer > maxActive"
  if (!int(c.sampleSize, 1) || c.sampleSize > 15) return "sampleSize must be an integer from 1 to 15"
  if (!int(c.maxFailures, 1)) return "maxFailures must be an integer ≥ 1"
  if (!int(c.retryBackoff, 0) || !int(c.connectTimeout, 1)) return "retryBackoff and connectTimeout must be integers"
  if (!int(c.maxBootstrap, 0)) return "maxBootstrap must be an integer ≥ 0"
  return undefined
}

/** A source of randomness: a uniform integer in [0, n). Passed in so that runs are reproducible. */
export type Random = (n: number) => number

/** A seeded {@link Random} (mulberry32): the shell seeds one per step from Effect's Random, tests from their seed. */
export const seededRandom = (seed: number): Random => {
  let a = seed >>> 0
  return (n) => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n)
  }
}

interface Failure {
  readonly count: number
  readonly retryAt: number
}

export interface View {
  readonly config: ViewConfig
  /** Our node id, as hex. */
  readonly self: string
  /** Neighbours: hex → node id. */
  readonly active: ReadonlyMap<string, NodeId>
  /** Newest record per member: hex → record. */
  readonly known: ReadonlyMap<string, PeerRecord>
  /** Connects under way: hex → deadline (ms). */
  readonly connecting: ReadonlyMap<string, number>
  /** The members we chose to connect to: keys of `connecting` or `active` (see the module doc). */
  readonly ours: ReadonlySet<string>
  readonly failures: ReadonlyMap<string, Failure>
  readonly bootstrap: ReadonlyArray<NodeAddr>
}

export type Event =
  | { readonly _tag: "Join"; readonly bootstrap: ReadonlyArray<NodeAddr> }
  | { readonly _tag: "NeighborUp"; readonly peer: NodeId }
  | { readonly _tag: "NeighborDown"; readonly peer: NodeId }
  /** Verified records from an exchange (either side); `from` is the remote. */
  | { readonly _tag: "Records"; readonly from: NodeId; readonly records: ReadonlyArray<PeerRecord> }
  /**
   * A connect or exchange failed. `forget`: the node said it is no member, or answered nonsense; its record is
   * dropped at once (a newer one may bring it back). Otherwise it was unreachable: retried after a backoff.
   */
  | { readonly _tag: "ConnectFailed"; readonly peer: NodeId; readonly forget: boolean }
  | { readonly _tag: "Tick" }

export type Decision =
  /** Dial `addr`, then exchange records with it, sending `sample` (and our own record). */
  | { readonly _tag: "Connect"; readonly addr: NodeAddr; readonly sample: ReadonlyArray<PeerRecord> }
  /** Exchange records with the neighbour `peer`, sending `sample` (and our own record). */
  | { readonly _tag: "Exchange"; readonly peer: NodeId; readonly sample: ReadonlyArray<PeerRecord> }

export interface Step {
  readonly view: View
  readonly decisions: ReadonlyArray<Decision>
}

export const keyOf = (nodeId: Uint8Array): string => toHex(nodeId)

export const empty = (self: NodeId, config: ViewConfig = DEFAULT_VIEW_CONFIG): View => ({
  config,
  self: keyOf(self),
  active: new Map(),
  known: new Map(),
  connecting: new Map(),
  ours: new Set(),
  failures: new Map(),
  bootstrap: []
})

const pickRandom = <A>(items: ReadonlyArray<A>, n: number, random: Random): Array<A> => {
  const pool = [...items]
  const out: Array<A> = []
  while (out.length < n && pool.length > 0) {
    const i = random(pool.length)
    out.push(pool[i]!)
    pool[i] = pool[pool.length - 1]!
    pool.pop()
  }
  return out
}

/** A random sample of at most `sampleSize` known records, none of `exclude`'s. */
export const sample = (view: View, random: Random, exclude?: NodeId): ReadonlyArray<PeerRecord> => {
  const skip = exclude === undefined ? undefined : keyOf(exclude)
  const records = [...view.known].filter(([k]) => k !== skip).map(([, r]) => r)
  return pickRandom(records, view.config.sampleSize, random)
}

/** Known members we could connect to now. */
const candidates = (view: View, now: number): Array<PeerRecord> => {
  const out: Array<PeerRecord> = []
  for (const [key, record] of view.known) {
    if (view.active.has(key) || view.connecting.has(key)) continue
    const failure = view.failures.get(key)
    if (failure !== undefined && failure.retryAt > now) continue
    out.push(record)
  }
  return out
}

/** Mutable working copy of a view for one step. */
interface Draft {
  readonly config: ViewConfig
  readonly self: string
  readonly active: Map<string, NodeId>
  readonly known: Map<string, PeerRecord>
  readonly connecting: Map<string, number>
  readonly ours: Set<string>
  readonly failures: Map<string, Failure>
  bootstrap: ReadonlyArray<NodeAddr>
  readonly decisions: Array<Decision>
}

const draft = (view: View): Draft => ({
  config: view.config,
  self: view.self,
  active: new Map(view.active),
  known: new Map(view.known),
  connecting: new Map(view.connecting),
  ours: new Set(view.ours),
  failures: new Map(view.failures),
  bootstrap: view.bootstrap,
  decisions: []
})

const freeze = (d: Draft): Step => ({
  view: {
    config: d.config,
    self: d.self,
    active: d.active,
    known: d.known,
    connecting: d.connecting,
    ours: d.ours,
    failures: d.failures,
    bootstrap: d.bootstrap
  },
  decisions: d.decisions
})

const connect = (d: Draft, addr: NodeAddr, now: number, random: Random) => {
  d.connecting.set(keyOf(addr.nodeId), now + d.config.connectTimeout)
  d.ours.add(keyOf(addr.nodeId))
  d.decisions.push({ _tag: "Connect", addr, sample: sample(d, random, addr.nodeId) })
}

/** Connects to `n` random candidates, keeping ours within `maxActive`. */
const connectSome = (d: Draft, n: number, now: number, random: Random) => {
  const room = d.config.maxActive - d.ours.size
  for (const record of pickRandom(candidates(d, now), Math.min(n, room), random)) {
    connect(d, record.nodeAddr, now, random)
  }
}

const fill = (d: Draft, now: number, random: Random) =>
  connectSome(d, d.config.targetDegree - d.ours.size, now, random)

const fail = (d: Draft, key: string, now: number) => {
  d.connecting.delete(key)
  if (!d.active.has(key)) d.ours.delete(key)
  const count = (d.failures.get(key)?.count ?? 0) + 1
  if (count >= d.config.maxFailures || !d.known.has(key)) {
    d.failures.delete(key)
    if (!d.active.has(key)) d.known.delete(key)
    return
  }
  d.failures.set(key, { count, retryAt: now + d.config.retryBackoff * 2 ** (count - 1) })
}

/** Adds `record` unless we hold a record as new; evicts a random idle record when full. */
const learn = (d: Draft, record: PeerRecord, random: Random) => {
  const key = keyOf(record.nodeId)
  if (key === d.self) return
  const old = d.known.get(key)
  if (old !== undefined) {
    if (old.timestamp >= record.timestamp) return
    d.known.set(key, record)
    // A newer record may carry new addresses: failures of the old ones do not count against it.
    d.failures.delete(key)
    return
  }
  if (d.known.size >= d.config.maxPassive) {
    const idle = [...d.known.keys()].filter((k) => !d.active.has(k) && !d.connecting.has(k))
    if (idle.length === 0) return
    const evicted = idle[random(idle.length)]!
    d.known.delete(evicted)
    d.failures.delete(evicted)
  }
  d.known.set(key, record)
}

/** Applies one event. `now` is in ms; `random` decides every choice. */
export const step = (view: View, event: Event, now: number, random: Random): Step => {
  const d = draft(view)
  switch (event._tag) {
    case "Join": {
      // The newest addresses per node first; a join again adds to the list (bounded, the oldest dropped).
      const given = event.bootstrap.filter((a) => keyOf(a.nodeId) !== d.self).slice(0, d.config.maxBootstrap)
      const keys = new Set(given.map((a) => keyOf(a.nodeId)))
      d.bootstrap = [...given, ...d.bootstrap.filter((a) => !keys.has(keyOf(a.nodeId)))].slice(0, d.config.maxBootstrap)
      for (const addr of given) {
        const key = keyOf(addr.nodeId)
        if (!d.active.has(key) && !d.connecting.has(key)) connect(d, addr, now, random)
      }
      fill(d, now, random)
      break
    }
    case "NeighborUp": {
      const key = keyOf(event.peer)
      if (key === d.self || d.active.has(key)) break
      d.connecting.delete(key)
      d.failures.delete(key)
      if (d.active.size >= d.config.maxActive && d.ours.has(key)) {
        // One we chose displaces, from our tracking, one that came on its own.
        const theirs = [...d.active.keys()].filter((k) => !d.ours.has(k))
        if (theirs.length > 0) d.active.delete(theirs[random(theirs.length)]!)
      }
      if (d.active.size < d.config.maxActive) d.active.set(key, event.peer)
      else d.ours.delete(key)
      break
    }
    case "NeighborDown": {
      const key = keyOf(event.peer)
      if (!d.active.delete(key)) break
      d.ours.delete(key)
      // Not at once again: it left the document or the connection broke; a retry after the backoff finds out which.
      if (d.known.has(key)) fail(d, key, now)
      connectSome(d, Math.max(1, d.config.targetDegree - d.ours.size), now, random)
      break
    }
    case "Records": {
      for (const record of event.records) learn(d, record, random)
      // The sender is connected to us and joined: its NeighborUp is on the way, no need to connect back.
      const from = keyOf(event.from)
      if (
        from !== d.self && !d.active.has(from) && !d.connecting.has(from) &&
        d.active.size + d.connecting.size < d.config.maxActive
      ) d.connecting.set(from, now + d.config.connectTimeout)
      fill(d, now, random)
      break
    }
    case "ConnectFailed": {
      const key = keyOf(event.peer)
      if (event.forget) {
        // Gossip still decides whether it is a neighbour; we only stop vouching for its record.
        d.connecting.delete(key)
        if (!d.active.has(key)) d.ours.delete(key)
        d.failures.delete(key)
        d.known.delete(key)
      } else if (!d.active.has(key)) fail(d, key, now)
      fill(d, now, random)
      break
    }
    case "Tick": {
      for (const [key, deadline] of [...d.connecting]) {
        if (deadline <= now) fail(d, key, now)
      }
      const neighbours = [...d.active.values()]
      if (neighbours.length > 0) {
        const peer = neighbours[random(neighbours.length)]!
        d.decisions.push({ _tag: "Exchange", peer, sample: sample(d, random, peer) })
      }
      fill(d, now, random)
      if (d.active.size === 0 && d.connecting.size === 0 && d.known.size === 0) {
        for (const addr of d.bootstrap) connect(d, addr, now, random)
      }
      break
    }
  }
  return freeze(d)
}

/** The view for display: neighbours (with their record's addresses when we hold one), and the other members. */
export const summary = (view: View): { readonly active: ReadonlyArray<NodeAddr>; readonly passive: ReadonlyArray<NodeAddr> } => ({
  active: [...view.active].map(([key, nodeId]) => view.known.get(key)?.nodeAddr ?? new NodeAddr({ nodeId, addrs: [] })),
  passive: [...view.known].filter(([k]) => !view.active.has(k)).map(([, r]) => r.nodeAddr)
})
