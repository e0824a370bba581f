/**
 * Range-based set reconciliation (Meyer, arXiv 2212.13567) as spec 02 §5 describes it, over a read-only view of one
 * replica. The view answers ranks, ids and range fingerprints synchronously from an in-memory index (O(log n) each);
 * only entries are read through an effect. Parameterised by split factor, max set size and a byte budget per message:
 *
 * - reference mode (split 2, set size 1, no budget) reproduces the reference's messages exactly;
 * - the budget caps each outgoing message: values that do not fit are not dropped but deferred as a fingerprint over the
 *   rest of their range, so the peer asks again, and memory per step stays bounded whatever the document size.
 *
 * Every range is evaluated over the view's own namespace only: bounds in other namespaces just clamp to its ends.
 */
import { Effect } from "effect"
import type { ContentStatus, SignedEntry } from "../schema/Entry.js"
import { compareRecords } from "../schema/Entry.js"
import { makeMessage, makeRange, makeRangeFingerprint, makeRangeItem, type Message, type MessagePart, type Range, type RangeFingerprint, type RangeItem } from "../schema/Message.js"
import { EMPTY_HASH } from "./blake3.js"
import { compare, equals, latin1 } from "./bytes.js"

export interface RangeView<E> {
  /** Number of stored entries (tombstones included). */
  readonly size: () => number
  /** Number of stored ids strictly below `id` (bytewise). */
  readonly rank: (id: Uint8Array) => number
  /** The id at rank `i` (0 ≤ i < size). */
  readonly idAt: (i: number) => Uint8Array
  /** XOR of the entry fingerprints at ranks [a, b), written into `out` (32 bytes). */
  readonly xorInto: (a: number, b: number, out: Uint8Array) => void
  /** The entries at ranks [a, b), ascending. */
  readonly entries: (a: number, b: number) => Effect.Effect<ReadonlyArray<SignedEntry>, E>
  /**
   * The entries at many scattered ranks (ascending, distinct) at once, by rank, in a few reads; a rank whose entry is
   * gone may be missing.
   */
  readonly entriesAtRanks: (ranks: ReadonlyArray<number>) => Effect.Effect<ReadonlyMap<number, SignedEntry>, E>
  /** The default identifier (our namespace, zero author, empty key), the first id of an empty replica. */
  readonly defaultId: Uint8Array
  /** Whether this exact entry (same id, timestamp and hash) is stored: such a value is not inserted again. */
  readonly holds: (entry: SignedEntry) => boolean
}

/** What the first message of a session needs: enough to find out, without any index, that two sides agree. */
export interface RangeSummary {
  readonly size: number
  /** The set fingerprint (spec 01 §7). */
  readonly fingerprint: Uint8Array
  /** The smallest stored id, or the default id when empty. */
  readonly firstId: Uint8Array
}

export interface Hooks<E> {
  /**
   * The values received in RangeItems (validating each), once per message, in two steps: starts the checks that need
   * no store (signatures) and returns the effect that stores the values. Called before the message's answer is
   * computed, so the checks run meanwhile; the store step runs after the answer's reads, before the fingerprints.
   */
  readonly insert: (
    values: ReadonlyArray<readonly [SignedEntry, ContentStatus]>
  ) => Effect.Effect<Effect.Effect<void, E>, E>
  /** Our content status of each entry we send. */
  readonly statusOf: (entries: ReadonlyArray<SignedEntry>) => Effect.Effect<ReadonlyArray<ContentStatus>, E>
}

export interface Config {
  /** The fewest sub-ranges a mismatching range is split into. */
  readonly splitFactor: number
  /**
   * Target number of entries per sub-range: a range of n entries splits into max(splitFactor, ⌈n / leafSize⌉) parts
   * (as many as the budget allows), so one round reaches ranges small enough to exchange.
   */
  readonly leafSize: number
  /** A mismatching range with at most this many local entries is answered with its entries instead of a split. */
  readonly maxSetSize: number
  /** A sub-range of a split with at most this many entries goes out as its entries, else as a fingerprint. */
  readonly subrangeItems: number
  /** Soft cap on the encoded size of one outgoing message, in bytes. */
  readonly maxMessageBytes: number
  /**
   * Density switch: when at least this fraction of a message's incoming fingerprints mismatch (the two sides differ
   * in most ranges), a mismatching range of at most `denseSetSize` entries is answered with its entries at once,
   * since splitting it further would only find differences almost everywhere. Unset: never.
   */
  readonly denseFraction?: number
  readonly denseSetSize?: number
  /**
   * Soft cap on the encoded size of the values (entries) of one outgoing message, below `maxMessageBytes`: values
   * are decoded into many objects and verified before the next message, so they come in smaller portions than
   * fingerprints. Unset: `maxMessageBytes` alone.
   */
  readonly maxValueBytes?: number
  /**
   * Initial sync: a range of more than `BULK_RANGE` entries that the peer holds nothing of (its fingerprint is empty,
   * or it asked with an empty item) goes out in portions of at most this many value bytes, so that a bulk transfer
   * keeps few decoded entries in flight on either side. Unset: no separate cap.
   */
  readonly bulkValueBytes?: number
  /**
   * Split bounds as short as they can be: a pivot goes out as the shortest prefix of its id (at least namespace and
   * author, 64 bytes) that is still above the id before it, which selects the same entries on our side and costs a
   * few bytes once the compact codec (SyncMessage.ts) shares prefixes between bounds. Unset: whole ids (spec 02).
   */
  readonly shortBounds?: boolean
  /**
   * How many leading bytes of a fingerprint are compared (the compact codec carries 16 of the 32). Unset: all 32.
   */
  readonly fingerprintBytes?: number
}

/**
 * What one side has sent in this session, so that no value goes out twice. A value is sent again only when a range
 * comes back as a fingerprint after the peer already received our values in it: when the budget cut the peer's answer
 * to our RangeItem, the rest comes back as a fingerprint that our values alone cannot match, and a spec 02 peer then
 * answers with its values again. The peer already stored or refused what we sent, so skipping it is safe. Values of
 * bulk portions (the peer held nothing of the range) are not remembered: that range only comes back past them.
 * Bounded: past `capacity` remembered values the oldest are forgotten (then a value may go out twice, never be lost).
 */
export class SentValues {
  private readonly keys = new Set<string>()
  constructor(readonly capacity = 1 << 17) {}
  has(e: SignedEntry): boolean {
    return this.keys.size > 0 && this.keys.has(sentKey(e))
  }
  add(e: SignedEntry): void {
    if (this.capacity <= 0) return
    if (this.keys.size >= this.capacity) this.keys.delete(this.keys.values().next().value!)
    this.keys.add(sentKey(e))
  }
  get size(): number {
    return this.keys.size
  }
}

/** Author, key and timestamp (the namespace is the session's): a newer write of ours is a new value. */
const sentKey = (e: SignedEntry): string =>
  latin1(e.entry.id.author) + latin1(e.entry.id.key) + "\u0000" + e.entry.record.timestamp.toString(36)

/** Ranges above this many entries that the peer lacks entirely are sent in `bulkValueBytes` portions. */
const BULK_RANGE = 1024

/** The reference's parameters (spec 02 §4): its message counts and contents. */
export const REFERENCE: Config = {
  splitFactor: 2,
  leafSize: Number.POSITIVE_INFINITY,
  maxSetSize: 1,
  subrangeItems: 1,
  maxMessageBytes: Number.POSITIVE_INFINITY,
  // Set explicitly, so that spreading REFERENCE over another config turns the density switch and value caps off.
  denseFraction: Number.POSITIVE_INFINITY,
  denseSetSize: 0,
  maxValueBytes: Number.POSITIVE_INFINITY,
  bulkValueBytes: Number.POSITIVE_INFINITY,
  shortBounds: false,
  fingerprintBytes: 32
}

/** The default, tuned by `npm run bench -- reconcile` (see the reconciliation issue's note and the README). */
export const DEFAULT: Config = {
  splitFactor: 16,
  // One round of fingerprints over ranges of about 8 entries, then single-entry fingerprints inside the ranges that
  // differ: a fingerprint part costs about what a value costs on the wire but far less to produce and check (no
  // read, no decode, no verification), so mostly the differing entries travel as values. A mismatching range of 2
  // entries goes out as values at once (saves the round of finding which one). Chosen with `npm run bench --
  // reconcile` (see the reconciliation issue). The density switch stays off: at 100k entries it cost more messages,
  // entries and CPU than plain splitting at every difference measured (10%: 19 vs 14 messages, 61k vs 28k entries,
  // 15.5 vs 10.6 s CPU; 30% and 50% of 50k: more messages and no less CPU), since a range that mostly differs still
  // holds mostly entries the peer has, and values cost far more to read, decode and check than fingerprints.
  leafSize: 8,
  maxSetSize: 2,
  subrangeItems: 0,
  maxMessageBytes: 4 << 20,
  denseFraction: Number.POSITIVE_INFINITY,
  denseSetSize: 0,
  maxValueBytes: 1 << 20,
  bulkValueBytes: 256 << 10,
  shortBounds: true,
  fingerprintBytes: 16
}

/**
 * A range as rank intervals: `parts` in iteration order (ascending over the replica, spec 02 §2) with its start index
 * (spec 02 §5), which place the pivots; `fromX` in the order that starts at x and wraps, where any prefix of the
 * members is itself the range `[x, next member)` — which is how values are cut at the budget.
 */
interface Segments {
  readonly parts: ReadonlyArray<readonly [number, number]>
  readonly fromX: ReadonlyArray<readonly [number, number]>
  readonly count: number
  readonly startIndex: number
  /** The ranks of the bounds. */
  readonly rx: number
  readonly ry: number
}

const segments = <E>(view: RangeView<E>, x: Uint8Array, y: Uint8Array): Segments => {
  const c = compare(x, y)
  const rx = view.rank(x)
  return segmentsOf(view.size(), c, rx, c === 0 ? rx : view.rank(y))
}

/**
 * `segments` over a message's ranges in order: the ranks of the last range's bounds are kept, since a split's
 * sub-ranges come one after another (one ends where the next starts) and a rank lookup costs far more than a compare.
 */
const adjacentSegments = <E>(view: RangeView<E>) => {
  let lastId: Uint8Array | undefined
  let lastRank = 0
  const rank = (id: Uint8Array) => {
    if (lastId !== undefined && equals(id, lastId)) return lastRank
    const r = view.rank(id)
    lastId = id
    lastRank = r
    return r
  }
  return (x: Uint8Array, y: Uint8Array): Segments => {
    const c = compare(x, y)
    const rx = rank(x)
    return segmentsOf(view.size(), c, rx, c === 0 ? rx : rank(y))
  }
}

/** The segments of a range of n entries from the order of its bounds (c = compare(x, y)) and their ranks. */
const segmentsOf = (n: number, c: number, rx: number, ry: number): Segments => {
  if (c === 0) return { parts: [[0, n]], fromX: [[rx, n], [0, rx]], count: n, startIndex: rx, rx, ry: rx }
  if (c < 0) {
    const count = Math.max(0, ry - rx)
    // Not wrapping: iteration order and from-x order are the same single interval.
    const parts = [[rx, rx + count] as const]
    return { parts, fromX: parts, count, startIndex: 0, rx, ry }
  }
  return { parts: [[0, ry], [rx, n]], fromX: [[rx, n], [0, ry]], count: ry + n - rx, startIndex: ry, rx, ry }
}

/** Rank of the member at position `p` of the given interval order. */
const rankAt = (parts: Segments["parts"], p: number): number => {
  for (const [a, b] of parts) {
    if (p < b - a) return a + p
    p -= b - a
  }
  throw new RangeError("position out of range")
}

/** Scratch of `fingerprintOf` for one part's XOR (the function is synchronous). */
const partXor = new Uint8Array(32)

/** The range's fingerprint, written into `out` (a new array unless given: compare against a scratch one). */
const fingerprintOf = <E>(view: RangeView<E>, s: Segments, out: Uint8Array = new Uint8Array(32)): Uint8Array => {
  out.set(EMPTY_HASH)
  for (const [a, b] of s.parts) {
    if (b <= a) continue
    view.xorInto(a, b, partXor)
    for (let i = 0; i < 32; i++) out[i]! ^= partXor[i]!
  }
  return out
}

/** Entries at positions [from, to) of the from-x order. */
const entriesAt = <E>(view: RangeView<E>, s: Segments, from: number, to: number) =>
  Effect.gen(function*() {
    const out: Array<SignedEntry> = []
    let offset = 0
    for (const [a, b] of s.fromX) {
      const len = b - a
      const lo = Math.max(from - offset, 0)
      const hi = Math.min(to - offset, len)
      if (lo < hi) out.push(...(yield* view.entries(a + lo, a + hi)))
      offset += len
    }
    return out
  })

/** Ranges of at most this many entries are read ahead. */
const READ_AHEAD_RANGE = 64

/**
 * A view that has read the entries of many small rank intervals ahead, by their ranks (a few statements for a whole
 * message, where reading each range costs one): memory is bounded by the message being answered.
 */
const readAhead = <E>(view: RangeView<E>, intervals: ReadonlyArray<readonly [number, number]>) =>
  Effect.gen(function*() {
    const small = intervals.filter(([a, b]) => b > a && b - a <= READ_AHEAD_RANGE).sort((x, y) => x[0] - y[0])
    if (small.length < 2) return view
    const ranks: Array<number> = []
    let next = 0
    for (const [a, b] of small) {
      for (let r = Math.max(a, next); r < b; r++) ranks.push(r)
      next = Math.max(next, b)
    }
    const cache = yield* view.entriesAtRanks(ranks)
    const cached: RangeView<E> = {
      ...view,
      entries: (a, b) => {
        const out: Array<SignedEntry> = []
        for (let r = a; r < b; r++) {
          const e = cache.get(r)
          if (e === undefined) return view.entries(a, b)
          out.push(e)
        }
        return Effect.succeed(out)
      }
    }
    return cached
  })

/**
 * A bound that selects the same entries as the id at `rank` on our side: that id, or with `short` the shortest prefix
 * of it (at least 64 bytes: namespace and author) above the id before it. Every stored id below the rank is below the
 * prefix and every one from it on is at or above it.
 */
const boundAt = <E>(view: RangeView<E>, rank: number, short: boolean | undefined): Uint8Array => {
  const id = view.idAt(rank)
  if (short !== true || id.length <= 64) return id
  if (rank === 0) return id.subarray(0, 64)
  const before = view.idAt(rank - 1)
  const n = Math.min(before.length, id.length)
  let l = 0
  while (l < n && before[l] === id[l]) l++
  // `before` < `id`: they differ at l, or `before` is a prefix of `id` (l = its length < id's); either way the
  // prefix of l + 1 bytes is above `before` and at most `id`.
  return l + 1 >= id.length ? id : id.subarray(0, Math.max(64, l + 1))
}

/** Whether two fingerprints agree in their first `n` bytes. */
const sameFingerprint = (a: Uint8Array, b: Uint8Array, n: number): boolean => {
  if (n >= 32) return equals(a, b)
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return false
  return true
}

/** The initial message: one fingerprint over the whole set, anchored at the first id (spec 02 §5). */
export const initialMessage = <E>(view: RangeView<E>, config?: Pick<Config, "shortBounds">): Message => {
  const first = view.size() === 0 ? view.defaultId : boundAt(view, 0, config?.shortBounds)
  const range = makeRange(first, first)
  return makeMessage([makeRangeFingerprint(range, fingerprintOf(view, segments(view, first, first)))])
}

/** The initial message from a summary: the same as `initialMessage` over the view it summarises. */
export const initialFromSummary = (summary: RangeSummary, config?: Pick<Config, "shortBounds">): Message => {
  const first = config?.shortBounds === true && summary.size > 0 && summary.firstId.length > 64
    ? summary.firstId.subarray(0, 64)
    : summary.firstId
  return makeMessage([makeRangeFingerprint(makeRange(first, first), summary.fingerprint)])
}

/**
 * Whether `message` is a single fingerprint over the whole set that our summary matches: then `processMessage` would
 * answer nothing, and the session ends without our range index.
 */
export const matchesSummary = (
  summary: RangeSummary,
  message: Message,
  config: Pick<Config, "fingerprintBytes">
): boolean => {
  if (message.parts.length !== 1) return false
  const part = message.parts[0]!
  return part._tag === "RangeFingerprint" && equals(part.range.x, part.range.y) &&
    sameFingerprint(summary.fingerprint, part.fingerprint, Math.min(32, config.fingerprintBytes ?? 32))
}

/** Upper bounds of encoded sizes, for the budget. */
const rangeSize = (r: Range) => r.x.length + r.y.length + 8
const fingerprintSize = (r: Range) => rangeSize(r) + 33
const valueSize = (e: SignedEntry) => 128 + 64 + e.key.length + 3 + 10 + 32 + 10 + 1

/** Room kept for keys up to this long when reserving a cut (longer ids in a page raise the reserve). */
const CUT_KEY_SLACK = 256

/** Reads entries in bounded pages: never more than this many in memory for one range. */
const PAGE = 1024

/**
 * Processes one incoming message (spec 02 §5): all RangeItems first (diff against our range computed before storing
 * their values), then the fingerprints. Returns the reply, or undefined when there is nothing to send. `sent` is this
 * side's memory of the session (one per session and side; none by default).
 */
export const processMessage = <E>(
  base: RangeView<E>,
  hooks: Hooks<E>,
  config: Config,
  message: Message,
  sent: SentValues = new SentValues(0)
) =>
  Effect.gen(function*() {
    let view = base
    const fpBytes = Math.min(32, config.fingerprintBytes ?? 32)
    const out: Array<MessagePart> = []
    const items = message.parts.filter((p): p is RangeItem => p._tag === "RangeItem")
    const fingerprints = message.parts.filter((p): p is RangeFingerprint => p._tag === "RangeFingerprint")
    // Each incoming fingerprint reserves the room to echo it back unsplit, so the reply stays within the budget
    // however many mismatches arrive; the rest of the budget pays for splits and values.
    let budget = config.maxMessageBytes - 16
    for (const f of fingerprints) budget -= fingerprintSize(f.range)
    let valueBudget = config.maxValueBytes ?? Number.POSITIVE_INFINITY

    /**
     * Adds our entries of a range (positions [from, to) of `s`) as a RangeItem, keeping within the budget: past it, the
     * rest of the range goes out as a fingerprint (computed after this message's values are stored).
     */
    const deferred: Array<Range> = []
    const sendEntries = (
      range: Range,
      s: Segments,
      haveLocal: boolean,
      keep: (e: SignedEntry) => boolean = () => true,
      peerHasNone = false
    ) =>
      Effect.gen(function*() {
        const values: Array<SignedEntry> = []
        const bulk = peerHasNone && s.count > BULK_RANGE
        let bulkLeft = bulk ? config.bulkValueBytes ?? Number.POSITIVE_INFINITY : Number.POSITIVE_INFINITY
        // The item's own header is paid up front; admitting an entry also keeps room for a cut after it: the head
        // range and a fingerprint over the rest, both bounded by the longest id of the current page.
        const header = rangeSize(range) + 4
        budget -= header
        let p = 0
        let cut: number | undefined
        while (p < s.count && cut === undefined) {
          const page = yield* entriesAt(view, s, p, Math.min(s.count, p + PAGE))
          let longest = 64 + CUT_KEY_SLACK
          for (const e of page) longest = Math.max(longest, 64 + e.key.length)
          const reserve = range.x.length + range.y.length + 2 * longest + 60
          for (let i = 0; i < page.length; i++) {
            const e = page[i]!
            if (!keep(e) || sent.has(e)) continue
            const size = valueSize(e)
            // Past the budget, cut — unless the message is still empty: one entry always goes, so a session
            // progresses even when a single entry is larger than the budget.
            if (
              (size + reserve > budget || size > valueBudget || size > bulkLeft) && (values.length > 0 || out.length > 0)
            ) {
              cut = p + i
              break
            }
            budget -= size
            valueBudget -= size
            bulkLeft -= size
            values.push(e)
            if (!bulk) sent.add(e)
          }
          p += page.length
          if (page.length === 0) break
        }
        if (cut === undefined) {
          if (values.length > 0 || !haveLocal) {
            out.push(makeRangeItem(range, yield* withStatus(values), haveLocal))
          } else budget += header
          return
        }
        budget += header
        if (values.length === 0) {
          budget -= fingerprintSize(range)
          deferred.push(range)
          return
        }
        // Split at the first entry that did not fit: [x, pivot) goes now, [pivot, y) as a fingerprint later.
        const pivot = boundAt(view, rankAt(s.fromX, cut), config.shortBounds)
        const head = makeRange(range.x, pivot)
        const rest = makeRange(pivot, range.y)
        budget -= rangeSize(head) + 4 + fingerprintSize(rest)
        out.push(makeRangeItem(head, yield* withStatus(values), haveLocal))
        deferred.push(rest)
      })

    const withStatus = (entries: ReadonlyArray<SignedEntry>) =>
      Effect.map(hooks.statusOf(entries), (statuses) => entries.map((e, i) => [e, statuses[i]!] as const))

    // Values we already hold (same id, timestamp and hash) would be refused by the insert rules: skip them before
    // any signature is verified. Their checks start now and run while the answer to the items is computed.
    const values = items.flatMap((item) => item.values.filter(([v]) => !base.holds(v)))
    const store = values.length === 0 ? Effect.void : yield* hooks.insert(values)

    // 1. RangeItems: our diff for each, computed before storing anything of this message.
    view = yield* readAhead(
      base,
      items.filter((i) => !i.haveLocal).flatMap((i) => segments(base, i.range.x, i.range.y).parts)
    )
    for (const item of items) {
      if (item.haveLocal) continue
      const incoming = new Map<string, SignedEntry>()
      for (const [v] of item.values) incoming.set(idKey(v), v)
      const s = segments(view, item.range.x, item.range.y)
      yield* sendEntries(item.range, s, true, (e) => {
        const theirs = incoming.get(idKey(e))
        return theirs === undefined || compareRecords(theirs.record, e.record) < 0
      }, item.values.length === 0)
    }
    yield* store

    // 2. Fingerprints, against our state after storing the values. Which ones mismatch decides the density mode;
    // small mismatching ranges answered with entries are read ahead.
    // Each range's segments once (the store does not change from here on: ranks stay valid).
    const segmentsIn = adjacentSegments(base)
    const segs = fingerprints.map((f) => segmentsIn(f.range.x, f.range.y))
    const ours = new Uint8Array(32)
    const mismatch = fingerprints.map((f, i) => !sameFingerprint(fingerprintOf(base, segs[i]!, ours), f.fingerprint, fpBytes))
    let mismatches = 0
    for (const m of mismatch) if (m) mismatches++
    const setSize = config.denseFraction !== undefined && fingerprints.length >= 8 &&
        mismatches >= config.denseFraction * fingerprints.length
      ? Math.max(config.maxSetSize, config.denseSetSize ?? 0)
      : config.maxSetSize
    view = yield* readAhead(
      base,
      fingerprints.flatMap((_, i) => {
        if (!mismatch[i]) return []
        const s = segs[i]!
        return s.count <= setSize ? s.parts : []
      })
    )
    for (let fi = 0; fi < fingerprints.length; fi++) {
      const f = fingerprints[fi]!
      const { x, y } = f.range
      budget += fingerprintSize(f.range)
      if (!mismatch[fi]) continue
      const s = segs[fi]!
      const n = s.count
      if (out.length > 0 && budget < Math.min(config.splitFactor, n) * fingerprintSize(f.range)) {
        // No room left to split: hand the range back as our fingerprint of it (merged with adjacent ones below); the
        // peer splits it. The first split of a message always happens, so every message makes progress.
        budget -= fingerprintSize(f.range)
        deferred.push(f.range)
        continue
      }
      const peerEmpty = sameFingerprint(f.fingerprint, EMPTY_HASH, fpBytes)
      if (n <= setSize || peerEmpty) {
        yield* sendEntries(f.range, s, false, undefined, peerEmpty)
        continue
      }
      // Split into k sub-ranges at pivots (spec 02 §5); k ≤ n keeps every pivot distinct and every range non-empty.
      const wanted = Math.max(config.splitFactor, Math.ceil(n / config.leafSize))
      const affordable = Math.max(config.splitFactor, Math.floor(budget / fingerprintSize(f.range)))
      const k = Math.min(wanted, affordable, n)
      // Each pivot is a stored id: its rank is known, so the sub-ranges need no rank lookups.
      const total = view.size()
      const pivotRanks: Array<number> = []
      const pivotIds: Array<Uint8Array> = []
      const pivot = (i: number): number => {
        const j = i % k
        if (pivotIds[j] === undefined) {
          pivotRanks[j] = rankAt(s.parts, (s.startIndex + Math.floor((n * (j + 1)) / k)) % n)
          pivotIds[j] = boundAt(view, pivotRanks[j]!, config.shortBounds)
        }
        return j
      }
      const rx = s.rx
      const ry = s.ry
      const ranges: Array<readonly [Uint8Array, number, Uint8Array, number]> = []
      const between = (i: number, j: number) => {
        if (!equals(pivotIds[i]!, pivotIds[j]!)) ranges.push([pivotIds[i]!, pivotRanks[i]!, pivotIds[j]!, pivotRanks[j]!])
      }
      if (equals(x, y)) {
        for (let i = 0; i < k; i++) between(pivot(i), pivot(i + 1))
      } else {
        const first = pivot(0)
        ranges.push([x, rx, pivotIds[first]!, pivotRanks[first]!])
        for (let i = 0; i < k - 2; i++) between(pivot(i), pivot(i + 1))
        const last = pivot(k - 2)
        ranges.push([pivotIds[last]!, pivotRanks[last]!, y, ry])
      }
      for (const [a, ra, b, rb] of ranges) {
        const r = makeRange(a, b)
        const sub = segmentsOf(total, compare(a, b), ra, rb)
        if (sub.count > config.subrangeItems || budget <= 0) {
          budget -= fingerprintSize(r)
          out.push(makeRangeFingerprint(r, fingerprintOf(view, sub)))
        } else {
          yield* sendEntries(r, sub, false)
        }
      }
    }

    // 3. What did not fit: fingerprints over the rest of each range, so the peer asks for it again. Adjacent ranges
    // (one ends where the next starts) merge into one: a run of thousands of small ranges costs a single part.
    const merged: Array<Range> = []
    for (const r of deferred) {
      const last = merged[merged.length - 1]
      if (last !== undefined && equals(last.y, r.x) && !equals(last.x, r.y)) {
        merged[merged.length - 1] = makeRange(last.x, r.y)
      } else merged.push(r)
    }
    for (const r of merged) {
      out.push(makeRangeFingerprint(r, fingerprintOf(view, segments(view, r.x, r.y))))
    }
    return out.length === 0 ? undefined : makeMessage(out)
  })

const idKey = (e: SignedEntry): string =>
  Buffer.concat([e.entry.id.namespace, e.entry.id.author, e.entry.id.key]).toString("latin1")
