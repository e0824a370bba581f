/**
 * The live engine's content queue (spec 05 §9: `missingHashes`, `queuedHashes`, `hashProviders`): which content the
 * live documents want, who may provide it, and which downloads run. Plain data and functions that return decisions
 * for the shell; no Effect, no I/O.
 *
 * Bounded under any input (finding 4): at most `maxInFlight` downloads, `maxWanted` wanted hashes held in memory,
 * `maxProviders` providers per hash, and providers only for hashes held here. Every wanted hash is also remembered in
 * the store (`Remember`) until its content is complete (`Forget`) or its document leaves, so a hash that finds no room
 * in memory is not lost: the shell offers it again, page by page from the store, when a provider appears.
 */
import type { Hash } from "../../schema/Keys.js"
import { toHex } from "../../internal/bytes.js"

export interface Config {
  readonly maxInFlight: number
  readonly maxWanted: number
  readonly maxProviders: number
  /**
   * Downloads in a row that failed with a peer among the providers, from which the peer's own claim to have the
   * content of the entries it sends (a Put straight from its writer) no longer starts a download: the hash waits, as
   * for a sender without the content, until a provider announces it or a sync offers it. Any download that succeeds
   * with the peer among its providers clears its count.
   */
  readonly distrustAfter?: number
}

/** Default {@link Config.distrustAfter}. */
export const DEFAULT_DISTRUST_AFTER = 16

/**
 * Peers whose failures are counted at most; the oldest count makes room (so a flood of peers cannot grow it, and an
 * evicted liar only starts over).
 */
export const MAX_FAILING_PROVIDERS = 1024

export const defaultConfig: Config = { maxInFlight: 32, maxWanted: 4096, maxProviders: 8, distrustAfter: DEFAULT_DISTRUST_AFTER }

export interface Wanted {
  readonly hash: Hash
  /** Documents (hex) that want it. */
  readonly docs: Set<string>
  /** Its download failed with the providers known then: only a new provider or a timed retry tries it again. */
  parked: boolean
}

export interface ContentQueue<P> {
  readonly config: Config
  /** Wanted content without a running download, held in memory (spec 05 `missingHashes`). */
  readonly wanted: Map<string, Wanted>
  /** Known providers per hash (spec 05 `hashProviders`), read by the downloader on each attempt. */
  readonly providers: Map<string, Map<string, P>>
  /** Running downloads: hash → documents waiting on it (spec 05 `queuedHashes`). */
  readonly inFlight: Map<string, Wanted>
  readonly byDoc: Map<string, Set<string>>
  /** Wanted hashes left to the store for lack of room in memory; providers not kept for lack of room. */
  overflow: number
  providersDropped: number
  /** Failed downloads in a row per provider (peer key), at most {@link MAX_FAILING_PROVIDERS} peers. */
  readonly failures: Map<string, number>
  /** Claims to have content not acted on because their sender was distrusted. */
  claimsIgnored: number
}

export type Decision =
  | { readonly _tag: "Remember"; readonly ns: string; readonly hash: Hash }
  | { readonly _tag: "Forget"; readonly hash: Hash }
  | { readonly _tag: "Download"; readonly hash: Hash }
  | { readonly _tag: "Cancel"; readonly hash: Hash }
  | { readonly _tag: "ContentReady"; readonly ns: string; readonly hash: Hash }
  /** The last download `ns` waited on ended (spec 05 §10.3: emit PendingContentReady if armed). */
  | { readonly _tag: "Drained"; readonly ns: string }

export const make = <P>(config: Config = defaultConfig): ContentQueue<P> => ({
  config,
  wanted: new Map(),
  providers: new Map(),
  inFlight: new Map(),
  byDoc: new Map(),
  overflow: 0,
  providersDropped: 0,
  failures: new Map(),
  claimsIgnored: 0
})

/** The peer's claims to have content are not acted on: too many downloads with it as a provider failed in a row. */
export const distrusted = <P>(q: ContentQueue<P>, peer: string): boolean =>
  (q.failures.get(peer) ?? 0) >= (q.config.distrustAfter ?? DEFAULT_DISTRUST_AFTER)

/** A provider other than a distrusted peer is known for `key`. */
const hasTrustedProvider = <P>(q: ContentQueue<P>, key: string): boolean => {
  const providers = q.providers.get(key)
  if (providers === undefined) return false
  for (const peer of providers.keys()) if (!distrusted(q, peer)) return true
  return false
}

/** A download of `key` ended: its providers' counts of failures in a row grow, or are cleared. */
const noteOutcome = <P>(q: ContentQueue<P>, key: string, ok: boolean) => {
  const providers = q.providers.get(key)
  if (providers === undefined) return
  for (const peer of providers.keys()) {
    if (ok) {
      q.failures.delete(peer)
      continue
    }
    const n = (q.failures.get(peer) ?? 0) + 1
    q.failures.delete(peer)
    if (q.failures.size >= MAX_FAILING_PROVIDERS) {
      const oldest = q.failures.keys().next().value
      if (oldest !== undefined) q.failures.delete(oldest)
    }
    q.failures.set(peer, n)
  }
}

/** Map key of a hash: one call per queue operation, so the table-driven `toHex` (2.5× faster than padStart per byte). */
const hex = toHex

export const isQueued = <P>(q: ContentQueue<P>, ns: string): boolean => q.byDoc.has(ns)

export const providersOf = <P>(q: ContentQueue<P>, hash: Hash): Iterable<P> => q.providers.get(hex(hash))?.values() ?? []

const addProvider = <P>(q: ContentQueue<P>, key: string, peer: string, provider: P) => {
  let set = q.providers.get(key)
  if (set === undefined) {
    set = new Map()
    q.providers.set(key, set)
  }
  if (set.has(peer)) return
  if (set.size >= q.config.maxProviders) {
    // The oldest provider makes room: a new one is likelier to be around.
    const oldest = set.keys().next().value
    if (oldest !== undefined) set.delete(oldest)
    q.providersDropped++
  }
  set.set(peer, provider)
}

const track = <P>(q: ContentQueue<P>, key: string, ns: string) => {
  let set = q.byDoc.get(ns)
  if (set === undefined) {
    set = new Set()
    q.byDoc.set(ns, set)
  }
  set.add(key)
}

/** Moves `key` from wanted to a running download if there is a slot. */
const start = <P>(q: ContentQueue<P>, key: string, hash: Hash, docs: Iterable<string>, out: Array<Decision>): boolean => {
  if (q.inFlight.size >= q.config.maxInFlight) return false
  const w = q.wanted.get(key) ?? { hash, docs: new Set<string>(), parked: false }
  w.parked = false
  q.wanted.delete(key)
  for (const ns of docs) w.docs.add(ns)
  q.inFlight.set(key, w)
  for (const ns of w.docs) track(q, key, ns)
  out.push({ _tag: "Download", hash })
  return true
}

/** Holds `key` as wanted by `ns` in memory if there is room; `false` when it is left to the store. */
const hold = <P>(q: ContentQueue<P>, key: string, hash: Hash, ns: string): boolean => {
  const w = q.wanted.get(key)
  if (w !== undefined) {
    w.docs.add(ns)
    return true
  }
  if (q.wanted.size >= q.config.maxWanted) {
    q.overflow++
    return false
  }
  q.wanted.set(key, { hash, docs: new Set([ns]), parked: false })
  return true
}

/**
 * `ns` wants content it lacks (spec 05 §9.1 RemoteInsert). With a provider that has it (`providerHasIt`) the
 * download starts when a slot is free; else the hash waits for a provider.
 */
export const want = <P>(
  q: ContentQueue<P>,
  ns: string,
  hash: Hash,
  provider: readonly [string, P] | undefined,
  providerHasIt: boolean
): Array<Decision> => {
  const key = hex(hash)
  const out: Array<Decision> = [{ _tag: "Remember", ns, hash }]
  const running = q.inFlight.get(key)
  if (running !== undefined) {
    running.docs.add(ns)
    track(q, key, ns)
    if (provider !== undefined) addProvider(q, key, provider[0], provider[1])
    return out
  }
  // A neighbor may have announced it (ContentReady) before the entry itself arrived.
  const announced = (q.providers.get(key)?.size ?? 0) > 0
  const held = hold(q, key, hash, ns)
  // A sender that lacks the content is no provider (spec 05 §9.1): the hash waits for one. So does a sender whose
  // claims failed `distrustAfter` downloads in a row (finding 4: a writer flooding entries whose content it never has).
  let claims = providerHasIt
  if (claims && provider !== undefined && distrusted(q, provider[0])) {
    claims = false
    q.claimsIgnored++
  }
  if (provider !== undefined && claims) addProvider(q, key, provider[0], provider[1])
  if ((claims || announced) && !start(q, key, hash, [ns], out) && !held) q.providers.delete(key)
  return out
}

/**
 * `peer` can provide `hash` for `ns` (a ContentReady from a neighbor, or a peer that synced with us offered for the
 * document's wanted content). Only content `ns` wants is asked for (`onlyIfWanted`, spec 05 §9.2).
 */
export const provide = <P>(
  q: ContentQueue<P>,
  ns: string,
  hash: Hash,
  provider: readonly [string, P],
  onlyIfWanted: boolean
): Array<Decision> => {
  const key = hex(hash)
  const out: Array<Decision> = []
  if (!onlyIfWanted) out.push({ _tag: "Remember", ns, hash })
  // An offer (our guess that a peer that synced with us has it) goes to no distrusted peer; its own announcement
  // (ContentReady, `onlyIfWanted`) still does, and one that succeeds clears it.
  if (!onlyIfWanted && distrusted(q, provider[0])) {
    q.claimsIgnored++
    return out
  }
  const running = q.inFlight.get(key)
  if (running !== undefined) {
    addProvider(q, key, provider[0], provider[1])
    if (!running.docs.has(ns) && !onlyIfWanted) {
      running.docs.add(ns)
      track(q, key, ns)
    }
    return out
  }
  const w = q.wanted.get(key)
  if (w === undefined && onlyIfWanted) return out
  const held = hold(q, key, hash, ns)
  addProvider(q, key, provider[0], provider[1])
  if (!start(q, key, hash, [ns], out) && !held) q.providers.delete(key)
  return out
}

/** The content of `hash` is complete (found in the blob store): nobody waits for it any more. */
export const complete = <P>(q: ContentQueue<P>, hash: Hash): Array<Decision> => {
  const key = hex(hash)
  if (q.inFlight.has(key)) return []
  q.wanted.delete(key)
  q.providers.delete(key)
  return [{ _tag: "Forget", hash }]
}

/** A download ended (spec 05 §9.3); a free slot goes to the next wanted hash that has a provider. */
export const downloaded = <P>(q: ContentQueue<P>, hash: Hash, ok: boolean): Array<Decision> => {
  const key = hex(hash)
  const w = q.inFlight.get(key)
  const out: Array<Decision> = []
  if (w === undefined) return out
  q.inFlight.delete(key)
  noteOutcome(q, key, ok)
  const drained: Array<string> = []
  for (const ns of w.docs) {
    const set = q.byDoc.get(ns)
    set?.delete(key)
    if (set !== undefined && set.size === 0) {
      q.byDoc.delete(ns)
      drained.push(ns)
    }
  }
  if (ok) {
    q.providers.delete(key)
    out.push({ _tag: "Forget", hash })
    for (const ns of w.docs) out.push({ _tag: "ContentReady", ns, hash })
  } else {
    // Back to wanted (it stays remembered in the store either way), parked: its providers may be back later.
    let held = false
    for (const ns of w.docs) held = hold(q, key, hash, ns) || held
    const back = q.wanted.get(key)
    if (back !== undefined) back.parked = true
    if (!held) q.providers.delete(key)
  }
  fill(q, out)
  for (const ns of drained) if (!q.byDoc.has(ns)) out.push({ _tag: "Drained", ns })
  return out
}

/** Starts downloads of wanted hashes that have providers while slots are free. */
export const fill = <P>(q: ContentQueue<P>, out: Array<Decision> = []): Array<Decision> => {
  if (q.inFlight.size >= q.config.maxInFlight) return out
  for (const [key, w] of q.wanted) {
    if (q.inFlight.size >= q.config.maxInFlight) break
    if (w.parked || !hasTrustedProvider(q, key)) continue
    start(q, key, w.hash, w.docs, out)
  }
  return out
}

/** A timed retry of a parked hash with the providers known by now; `false` when it is not held or has none. */
export const retry = <P>(q: ContentQueue<P>, hash: Hash): { readonly decisions: Array<Decision>; readonly held: boolean } => {
  const key = hex(hash)
  const w = q.wanted.get(key)
  // Providers that all turned out liars since (distrusted) are no reason to try again.
  if (w === undefined || !hasTrustedProvider(q, key)) return { decisions: [], held: false }
  w.parked = false
  const out: Array<Decision> = []
  start(q, key, hash, w.docs, out)
  return { decisions: out, held: true }
}

/** `ns` left: it waits for nothing; downloads only it waited on are cancelled. */
export const leave = <P>(q: ContentQueue<P>, ns: string): Array<Decision> => {
  const out: Array<Decision> = []
  for (const [key, w] of q.wanted) {
    if (w.docs.delete(ns) && w.docs.size === 0) {
      q.wanted.delete(key)
      q.providers.delete(key)
    }
  }
  for (const key of q.byDoc.get(ns) ?? []) {
    const w = q.inFlight.get(key)
    if (w === undefined) continue
    w.docs.delete(ns)
    if (w.docs.size === 0) {
      q.inFlight.delete(key)
      q.providers.delete(key)
      out.push({ _tag: "Cancel", hash: w.hash })
    }
  }
  q.byDoc.delete(ns)
  fill(q, out)
  return out
}

/** Wanted hashes of `ns` held in memory (the shell offers them to a new provider), at most `limit`. */
export const wantedOf = <P>(q: ContentQueue<P>, ns: string, limit: number): Array<Hash> => {
  const out: Array<Hash> = []
  for (const w of q.wanted.values()) {
    if (out.length >= limit) break
    if (w.docs.has(ns)) out.push(w.hash)
  }
  return out
}
