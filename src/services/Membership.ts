/**
 * Membership of live documents (issue 15 "Membership", spec 05 §15): keeps each joined document's gossip swarm
 * connected when any node leaves, the ticket's included. gossipsub has no peer exchange, so two nodes that joined
 * through the same ticket node never learn of each other; here members exchange signed address records
 * (src/schema/PeerRecord.ts) and each node keeps a few members as gossip neighbours, replacing those that go.
 *
 * The decisions are the pure core's (src/services/Membership/View.ts, HyParView-like); this shell feeds it:
 * - NeighborUp/NeighborDown of the document's gossip topic (the active view is the gossip neighbours, so the live
 *   engine's neighbour events follow membership: membership makes and replaces the connections they report);
 * - a shuffle tick per document every `shuffleInterval` (±25 % jitter, Effect.sleep: TestClock drives it);
 * - the records of each exchange, after their signature (codec) and timestamp (≤ 10 min ahead) were checked.
 * It carries out `Connect` (open a `/rangedocs/members/1` stream to the address, which dials it: once connected,
 * gossipsub exchanges subscriptions and both sides see NeighborUp) and `Exchange` (the same over the existing
 * connection). An exchange is one request and one response, each one length-prefixed frame of at most
 * MAX_EXCHANGE_MESSAGE_SIZE bytes, within `exchangeTimeout`. A node answers only for documents it has joined itself,
 * so a remote learns the members of a namespace only if it names it; otherwise it answers NotMember.
 *
 * A remote that sends malformed frames or records is counted, logged as a WARN line without a stack (at most one
 * line per kind per 10 s, src/services/Network/warnings.ts), and its stream aborted; an unreachable member is
 * routine (logged at DEBUG, retried with backoff by the core). A remote's records are learnt from one request per
 * half shuffle interval and document, and only for documents we joined, before any signature is checked.
 */
import {
  Clock,
  Context,
  Data,
  Duration,
  Effect,
  Either,
  ExecutionStrategy,
  Exit,
  FiberMap,
  FiberSet,
  Layer,
  Metric,
  Option,
  Random,
  Schema,
  Scope
} from "effect"
import { toHex } from "../internal/bytes.js"
import { encodeFrame, FrameDecoder } from "../internal/framing.js"
import { MEMBERS_PROTOCOL } from "../schema/constants.js"
import { fmtShort, type NamespaceId } from "../schema/Keys.js"
import { NodeAddr, type NodeId, nodeIdEquals } from "../schema/NodeAddr.js"
import {
  checkRecordTime,
  MAX_EXCHANGE_MESSAGE_SIZE,
  MAX_EXCHANGE_RECORDS,
  Members,
  MembersRequest,
  MembersRequestFromBytes,
  membersRequestNamespace,
  type MembersResponse,
  MembersResponseFromBytes,
  NotMember,
  type PeerRecord,
  signPeerRecord
} from "../schema/PeerRecord.js"
import * as AddressBook from "./AddressBook.js"
import * as Gossip from "./Gossip.js"
import * as View from "./Membership/View.js"
import * as Network from "./Network.js"
import { makeRemoteWarnings } from "./Network/warnings.js"

/** How often a document exchanges records with one random neighbour (HyParView's shuffle). */
export const DEFAULT_SHUFFLE_INTERVAL: Duration.Duration = Duration.seconds(30)
/** Bounds one exchange: connecting, the request and the response. */
export const DEFAULT_EXCHANGE_TIMEOUT: Duration.Duration = Duration.seconds(10)
/** Inbound exchange streams per connection at once. */
const MAX_INBOUND_EXCHANGES = 4
/** Remotes whose last learnt request a document remembers (for the rate limit); when full, new remotes wait. */
const MAX_RATE_TRACKED = 1024

export interface MembershipConfig {
  /** Neighbours a node connects to on its own; default 4. */
  readonly targetDegree?: number
  /** Neighbours tracked at most; default 8. */
  readonly maxActive?: number
  /** Member records kept per document; default 64. */
  readonly maxPassive?: number
  /** Default {@link DEFAULT_SHUFFLE_INTERVAL}. */
  readonly shuffleInterval?: Duration.DurationInput
  /** Default {@link DEFAULT_EXCHANGE_TIMEOUT}. */
  readonly exchangeTimeout?: Duration.DurationInput
}

/** Counters of one Membership instance since it started (also Effect metrics `rangedocs_membership_*`). */
export interface MembershipStats {
  /** Exchanges we started that got an answer. */
  readonly exchanges: number
  /** Exchanges we answered (NotMember included). */
  readonly served: number
  /** Connects and exchanges that failed (unreachable, timed out, stream broken). */
  readonly connectFailures: number
  /** Exchange messages refused as malformed, oversized or carrying a badly signed record. */
  readonly malformed: number
  /** Well-signed records refused (timestamp too far in the future). */
  readonly rejectedRecords: number
  /**
   * Requests answered without learning their records (nor checking their signatures): the remote asked again within
   * half a shuffle interval. An honest member asks one neighbour per interval.
   */
  readonly rateLimited: number
}

export interface MembersView {
  /** Gossip neighbours of the document, with the addresses of their record (none when we hold no record). */
  readonly active: ReadonlyArray<NodeAddr>
  /** Other members we hold a signed record of. */
  readonly passive: ReadonlyArray<NodeAddr>
}

export interface MembershipService {
  /**
   * Joins the document's gossip topic (if not joined) and keeps its membership from now on, starting from
   * `bootstrap` (a ticket's nodes, the address book's). Calling it again only dials the extra bootstrap nodes.
   */
  readonly join: (namespace: NamespaceId, bootstrap: ReadonlyArray<NodeAddr>) => Effect.Effect<void>
  /** Stops keeping the document's membership (the gossip topic is the caller's to leave). A no-op when not joined. */
  readonly leave: (namespace: NamespaceId) => Effect.Effect<void>
  /** The document's view; empty when not joined. */
  readonly members: (namespace: NamespaceId) => Effect.Effect<MembersView>
  readonly stats: Effect.Effect<MembershipStats>
}

export class Membership extends Context.Tag("docs/Membership")<Membership, MembershipService>() {}

const metrics = {
  exchanges: Metric.counter("rangedocs_membership_exchanges", { incremental: true }),
  served: Metric.counter("rangedocs_membership_served", { incremental: true }),
  connectFailures: Metric.counter("rangedocs_membership_connect_failures", { incremental: true }),
  malformed: Metric.counter("rangedocs_membership_malformed", { incremental: true }),
  rejectedRecords: Metric.counter("rangedocs_membership_rejected_records", { incremental: true }),
  rateLimited: Metric.counter("rangedocs_membership_rate_limited", { incremental: true })
} as const
type Counter = keyof typeof metrics

/** The remote could not be reached or the stream broke: routine. */
class Unreachable extends Data.TaggedError("Unreachable")<{ readonly reason: string }> {}
/** The remote sent something that is not a valid exchange message: its fault. */
class Malformed extends Data.TaggedError("Malformed")<{ readonly reason: string }> {}

const describe = (cause: unknown): string =>
  cause instanceof Error ? `${cause.name}: ${cause.message}` : String(cause)

const encodeRequest = Schema.encodeSync(MembersRequestFromBytes)
const decodeRequest = Schema.decodeEither(MembersRequestFromBytes)
const encodeResponse = Schema.encodeSync(MembersResponseFromBytes)
const decodeResponse = Schema.decodeEither(MembersResponseFromBytes)

/** The one frame of an exchange stream. */
const readFrame = (pull: Network.Pull): Effect.Effect<Uint8Array, Unreachable | Malformed> =>
  Effect.gen(function*() {
    const decoder = new FrameDecoder(MAX_EXCHANGE_MESSAGE_SIZE)
    for (;;) {
      const chunks = yield* pull.pipe(
        Effect.mapError(Option.match({
          onNone: () => new Malformed({ reason: "stream ended before a complete frame" }),
          onSome: (e) => new Unreachable({ reason: e.reason })
        }))
      )
      const frame = yield* Effect.try({
        try: () => {
          for (const chunk of chunks) decoder.push(chunk)
          return decoder.next()
        },
        catch: (cause) => new Malformed({ reason: describe(cause) })
      })
      if (frame !== undefined) return frame
    }
  })

const sendFrame = (stream: Network.Stream, payload: Uint8Array) =>
  Network.send(stream, encodeFrame(payload, MAX_EXCHANGE_MESSAGE_SIZE)).pipe(
    Effect.zipRight(Network.closeWrite(stream)),
    Effect.mapError((e) => new Unreachable({ reason: e.reason }))
  )

/** The innermost line of a ParseError, without its tree drawing: one line for the log. */
const parseReason = (e: { readonly message: string }) =>
  (e.message.split("\n").at(-1) ?? e.message).replace(/^[\s└├│─]+/, "")

interface Doc {
  readonly namespace: NamespaceId
  view: View.View
  readonly tasks: FiberSet.FiberSet<void, never>
  readonly scope: Scope.CloseableScope
  /** Remote (hex) → when its last request's records were learnt (ms): at most one per `minRequestGap`. */
  readonly learnt: Map<string, number>
}

const positive = (name: string, n: number) =>
  Number.isSafeInteger(n) && n >= 1 ? undefined : `${name} must be a positive integer`

export const make = (
  config: MembershipConfig = {}
): Effect.Effect<MembershipService, never, Network.Network | Gossip.Gossip | AddressBook.AddressBook | Scope.Scope> =>
  Effect.gen(function*() {
    const network = yield* Network.Network
    const gossip = yield* Gossip.Gossip
    const book = yield* AddressBook.AddressBook
    const targetDegree = config.targetDegree ?? View.DEFAULT_VIEW_CONFIG.targetDegree
    const viewConfig: View.ViewConfig = {
      ...View.DEFAULT_VIEW_CONFIG,
      targetDegree,
      maxActive: config.maxActive ?? Math.max(View.DEFAULT_VIEW_CONFIG.maxActive, targetDegree),
      maxPassive: config.maxPassive ?? View.DEFAULT_VIEW_CONFIG.maxPassive,
      sampleSize: Math.min(View.DEFAULT_VIEW_CONFIG.sampleSize, MAX_EXCHANGE_RECORDS - 1)
    }
    const shuffleInterval = Duration.decode(config.shuffleInterval ?? DEFAULT_SHUFFLE_INTERVAL)
    const exchangeTimeout = Duration.decode(config.exchangeTimeout ?? DEFAULT_EXCHANGE_TIMEOUT)
    const problem = View.configProblem(viewConfig) ??
      positive("shuffleInterval (ms)", Duration.toMillis(shuffleInterval)) ??
      positive("exchangeTimeout (ms)", Duration.toMillis(exchangeTimeout))
    if (problem !== undefined) return yield* Effect.dieMessage(`Membership: ${problem}`)
    /** A remote's records are learnt from one request per this gap (per document); later ones are only answered. */
    const minRequestGap = Duration.toMillis(shuffleInterval) / 2
    const annotate = Effect.annotateLogs({ service: "Membership", node: fmtShort(network.nodeId) })
    /** Remote-caused WARN lines, at most one per kind per 10 s (the counters count every one). */
    const warn = makeRemoteWarnings()
    const serviceScope = yield* Effect.scope

    const counts: Record<Counter, number> = {
      exchanges: 0,
      served: 0,
      connectFailures: 0,
      malformed: 0,
      rejectedRecords: 0,
      rateLimited: 0
    }
    const bump = (counter: Counter, n = 1) => {
      counts[counter] += n
      metrics[counter].unsafeUpdate(n, [])
    }

    /** Namespace hex → document; an entry exists while the document's membership runs. */
    const docs = new Map<string, Doc>()
    const running = yield* FiberMap.make<string, void, never>()
    /**
     * Joins and leaves one at a time: a join yields between finding no document and registering one, so two
     * concurrent joins could each start one, the second's interrupting the first's with its bootstrap.
     */
    const lock = yield* Effect.makeSemaphore(1)

    // -- our own record: re-signed when the listen addresses change, always with a newer timestamp

    let own: { readonly key: string; readonly record: Option.Option<PeerRecord> } | undefined
    let lastTimestamp = -1n
    const ownRecord = Effect.gen(function*() {
      const addr = yield* network.addr
      const key = addr.addrs.join(" ")
      if (own !== undefined && own.key === key) return own.record
      const nowMicros = (yield* Clock.currentTimeNanos) / 1000n
      lastTimestamp = nowMicros > lastTimestamp ? nowMicros : lastTimestamp + 1n
      const record = yield* signPeerRecord(network.nodeId, lastTimestamp, addr.addrs, network.sign)
      own = { key, record }
      return record
    })
    const withOwn = (sample: ReadonlyArray<PeerRecord>) =>
      Effect.map(ownRecord, (record) => [...Option.toArray(record), ...sample].slice(0, MAX_EXCHANGE_RECORDS))

    /** A random source for one step of the core, seeded from Effect's Random (TestRandom in tests). */
    const nextRandom = Effect.map(Random.nextInt, (seed) => View.seededRandom(seed))

    /** Records whose timestamp the clock accepts; the others are counted and logged (once per message). */
    const timely = (records: ReadonlyArray<PeerRecord>, from: NodeId) =>
      Effect.gen(function*() {
        const nowMicros = (yield* Clock.currentTimeNanos) / 1000n
        const ok = records.filter((r) => Either.isRight(checkRecordTime(r, nowMicros)))
        const rejected = records.length - ok.length
        if (rejected > 0) {
          bump("rejectedRecords", rejected)
          yield* warn("member records from the future refused", { peer: fmtShort(from), rejected })
        }
        return ok
      })

    const withinExchangeTimeout = Effect.timeoutFail({
      duration: exchangeTimeout,
      onTimeout: () => new Unreachable({ reason: `timed out after ${Duration.format(exchangeTimeout)}` })
    })

    // -- the core's decisions

    const apply = (doc: Doc, event: View.Event): Effect.Effect<void> =>
      Effect.gen(function*() {
        if (docs.get(toHex(doc.namespace)) !== doc) return
        const random = yield* nextRandom
        const now = yield* Clock.currentTimeMillis
        const { decisions, view } = View.step(doc.view, event, now, random)
        doc.view = view
        for (const decision of decisions) yield* FiberSet.run(doc.tasks, execute(doc, decision))
      })

    const execute = (doc: Doc, decision: View.Decision): Effect.Effect<void> => {
      const peer = decision._tag === "Connect" ? decision.addr : decision.peer
      const peerId = peer instanceof NodeAddr ? peer.nodeId : peer
      return exchange(doc.namespace, peer, decision.sample).pipe(
        Effect.flatMap((response) =>
          response._tag === "NotMember"
            ? apply(doc, { _tag: "ConnectFailed", peer: peerId, forget: true })
            : Effect.gen(function*() {
              const records = yield* timely(response.records, peerId)
              const theirs = records.find((r) => nodeIdEquals(r.nodeId, peerId))
              if (theirs !== undefined) yield* book.remember(theirs.nodeAddr)
              yield* apply(doc, { _tag: "Records", from: peerId, records })
            })
        ),
        Effect.catchAll((error) =>
          Effect.zipRight(
            error._tag === "Malformed"
              ? warn("membership exchange refused", { peer: fmtShort(peerId), reason: error.reason })
              : Effect.zipRight(
                Effect.sync(() => bump("connectFailures")),
                Effect.logDebug("membership exchange failed").pipe(
                  Effect.annotateLogs({ peer: fmtShort(peerId), reason: error.reason })
                )
              ),
            apply(doc, { _tag: "ConnectFailed", peer: peerId, forget: error._tag === "Malformed" })
          )
        ),
        annotate
      )
    }

    /** One exchange as the requester; opening the stream dials `peer` when not connected. */
    const exchange = (
      namespace: NamespaceId,
      peer: NodeAddr | NodeId,
      sample: ReadonlyArray<PeerRecord>
    ): Effect.Effect<MembersResponse, Unreachable | Malformed> =>
      Effect.scoped(Effect.gen(function*() {
        const stream = yield* network.openStream(peer, MEMBERS_PROTOCOL).pipe(
          Effect.mapError((e) => new Unreachable({ reason: e.reason }))
        )
        const pull = yield* Network.reader(stream)
        const records = yield* withOwn(sample)
        yield* sendFrame(stream, encodeRequest(new MembersRequest({ namespace, records })))
        const frame = yield* readFrame(pull)
        const response = yield* Either.mapLeft(
          decodeResponse(frame),
          (e) => {
            bump("malformed")
            return new Malformed({ reason: parseReason(e) })
          }
        )
        bump("exchanges")
        return response
      })).pipe(
        withinExchangeTimeout,
        Effect.withSpan("Membership.exchange")
      )

    // -- serving exchanges

    /**
     * Whether `remote`'s request may feed the document's view now: one per `minRequestGap`, so that a remote (or a
     * swarm of fresh identities, each a connection) cannot replace the records we hold faster than members shuffle,
     * nor make us verify 16 signatures per request at its pace.
     */
    const mayLearn = (doc: Doc, remote: NodeId, now: number): boolean => {
      const key = View.keyOf(remote)
      const last = doc.learnt.get(key)
      if (last !== undefined && now - last < minRequestGap) return false
      if (last === undefined && doc.learnt.size >= MAX_RATE_TRACKED) {
        for (const [k, t] of doc.learnt) if (now - t >= minRequestGap) doc.learnt.delete(k)
        if (doc.learnt.size >= MAX_RATE_TRACKED) return false
      }
      doc.learnt.delete(key)
      doc.learnt.set(key, now)
      return true
    }

    const serve: Network.Handler<Unreachable | Malformed, never> = (stream, remote) =>
      Effect.scoped(Effect.gen(function*() {
        const pull = yield* Network.reader(stream)
        const frame = yield* readFrame(pull)
        // The namespace first: records are decoded (signatures checked) only for a document we joined.
        const namespace = yield* Option.match(membersRequestNamespace(frame), {
          onNone: () => Effect.fail(new Malformed({ reason: `request of ${frame.length} bytes` })),
          onSome: Effect.succeed
        })
        const doc = docs.get(toHex(namespace))
        if (doc === undefined) {
          bump("served")
          return yield* sendFrame(stream, encodeResponse(new NotMember()))
        }
        if (mayLearn(doc, remote, yield* Clock.currentTimeMillis)) {
          const request = yield* Either.mapLeft(decodeRequest(frame), (e) => new Malformed({ reason: parseReason(e) }))
          yield* apply(doc, { _tag: "Records", from: remote, records: yield* timely(request.records, remote) })
        } else bump("rateLimited")
        bump("served")
        const reply = View.sample(doc.view, yield* nextRandom, remote)
        yield* sendFrame(stream, encodeResponse(new Members({ records: yield* withOwn(reply) })))
      })).pipe(
        withinExchangeTimeout,
        Effect.tapError((error) =>
          error._tag === "Malformed"
            ? Effect.zipRight(
              Effect.sync(() => bump("malformed")),
              warn("membership request refused", { peer: fmtShort(remote), reason: error.reason })
            )
            : Effect.logDebug("membership request failed", error.reason)
        ),
        // Logged above, once and without a stack; the stream is aborted by Network.handle.
        Effect.catchAll(() => Effect.sync(() => stream.abort(new Error("membership exchange failed")))),
        annotate
      )

    yield* network.handle(MEMBERS_PROTOCOL, serve, { maxInboundStreams: MAX_INBOUND_EXCHANGES })

    // -- documents

    /**
     * The view's neighbours brought in line with gossip's: the event subscription drops events when it falls behind
     * (a full queue drops events), so a missed NeighborUp/Down is made up here.
     */
    const reconcile = (doc: Doc) =>
      Effect.gen(function*() {
        const neighbours = yield* gossip.neighbors(doc.namespace)
        const current = new Set(neighbours.map(View.keyOf))
        for (const [key, peer] of doc.view.active) {
          if (!current.has(key)) yield* apply(doc, { _tag: "NeighborDown", peer })
        }
        for (const peer of neighbours) {
          if (!doc.view.active.has(View.keyOf(peer))) yield* apply(doc, { _tag: "NeighborUp", peer })
        }
      })

    /** The shuffle timer: a tick every shuffleInterval ± 25 %. */
    const shuffles = (doc: Doc) =>
      Effect.gen(function*() {
        const factor = yield* Random.nextRange(0.75, 1.25)
        yield* Effect.sleep(Duration.times(shuffleInterval, factor))
        yield* reconcile(doc)
        yield* apply(doc, { _tag: "Tick" })
      }).pipe(Effect.forever)

    const runDoc = (doc: Doc) =>
      Effect.gen(function*() {
        const key = toHex(doc.namespace)
        // Also when gossip ends the topic's events (the topic was left): the document's membership ends with it.
        yield* Effect.addFinalizer(() =>
          Effect.zipRight(
            Effect.sync(() => docs.get(key) === doc && docs.delete(key)),
            Scope.close(doc.scope, Exit.void)
          )
        )
        const pull = yield* gossip.neighborEvents(doc.namespace)
        yield* Effect.forkScoped(shuffles(doc))
        yield* pull.pipe(
          Effect.flatMap((events) =>
            Effect.forEach(events, (event) =>
              event._tag === "Received" ? Effect.void : apply(doc, { _tag: event._tag, peer: event.peer }), {
              discard: true
            })
          ),
          Effect.forever
        )
      }).pipe(Effect.scoped, annotate)

    const join = Effect.fn("Membership.join")(function*(
      namespace: NamespaceId,
      bootstrap: ReadonlyArray<NodeAddr>
    ) {
      yield* gossip.join(namespace)
      const key = toHex(namespace)
      let doc = docs.get(key)
      if (doc === undefined) {
        // The document's scope holds its connects and exchanges; leave (or the service's end) closes it.
        const scope = yield* Scope.fork(serviceScope, ExecutionStrategy.sequential)
        const tasks = yield* Scope.extend(FiberSet.make<void, never>(), scope)
        doc = { namespace, view: View.empty(network.nodeId, viewConfig), tasks, scope, learnt: new Map() }
        docs.set(key, doc)
        yield* FiberMap.run(running, key, runDoc(doc))
      }
      yield* apply(doc, { _tag: "Join", bootstrap })
    }, lock.withPermits(1), annotate)

    const leave = Effect.fn("Membership.leave")(function*(namespace: NamespaceId) {
      const key = toHex(namespace)
      const doc = docs.get(key)
      if (doc === undefined) return
      docs.delete(key)
      yield* FiberMap.remove(running, key)
      yield* Scope.close(doc.scope, Exit.void)
    }, lock.withPermits(1), annotate)

    const members = (namespace: NamespaceId) =>
      Effect.sync((): MembersView => {
        const doc = docs.get(toHex(namespace))
        return doc === undefined ? { active: [], passive: [] } : View.summary(doc.view)
      })

    const stats = Effect.sync((): MembershipStats => ({ ...counts }))

    return Membership.of({ join, leave, members, stats })
  })

/** Membership over the node's Network and Gossip; remembers members' addresses in the AddressBook. */
export const layer = (
  config: MembershipConfig = {}
): Layer.Layer<Membership, never, Network.Network | Gossip.Gossip | AddressBook.AddressBook> =>
  Layer.scoped(Membership, make(config))
