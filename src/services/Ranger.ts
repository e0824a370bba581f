/**
 * Ranger: adapts the Store and the replica actor to the reconciliation algorithm of `internal/reconcile.ts`. The
 * Store gives the read-only range view (an in-memory fingerprint index plus entries read by rank); incoming values go
 * through the actor (`prepareRemoteMany`: strict validation, RemoteInsert events); a session counts its SyncOutcome
 * (spec 02 §6) and is capped in messages.
 *
 * Invalid values (spec 02 §5) are dropped and counted, per reason, and the session goes on: one bad entry on one side
 * must not keep two honest peers from converging on everything else. Past a bound of forged values (bad signature,
 * other namespace: `maxInvalid` in all, or more than `maxInvalidFraction` of the values received once
 * `minValuesForFraction` arrived) the session ends with InvalidEntriesFromPeer; Sync then cools the peer down. Values
 * a third party can plant on an honest peer (isForged) never count against the bound.
 */
import { Context, Effect, type Either, Layer, Metric, Option } from "effect"
import { equals } from "../internal/bytes.js"
import * as Reconcile from "../internal/reconcile.js"
import * as AuthorHeads from "../schema/AuthorHeads.js"
import {
  MAX_INVALID_FRACTION,
  MAX_INVALID_PER_SESSION,
  MIN_VALUES_FOR_INVALID_FRACTION
} from "../schema/constants.js"
import type { ContentStatus, SignedEntry } from "../schema/Entry.js"
import {
  InvalidEntriesFromPeer,
  type ReplicaNotOpen,
  RunawaySession,
  type StoreError,
  SyncNotEnabled
} from "../schema/Errors.js"
import type { NamespaceId } from "../schema/Keys.js"
import type { Message } from "../schema/Message.js"
import * as Replica from "./Replica.js"
import * as Store from "./Store.js"

/** Per session and side (spec 02 §6). */
export interface SyncOutcome {
  /** Values received in RangeItems, accepted or not. */
  readonly numRecv: number
  /** Values sent in RangeItems. */
  readonly numSent: number
  /** Newest timestamp per author among the received values, accepted or not. */
  readonly headsReceived: AuthorHeads.AuthorHeads
  /** Received values that failed validation and were dropped (the sum of `invalid`). */
  readonly numInvalid: number
  /** The dropped values by reason. */
  readonly invalid: InvalidCounts
}

/** Why a received value was dropped (the tags of the validation failures, spec 01 §8 and the key length bound). */
export const INVALID_REASONS = [
  "InvalidNamespace",
  "BadSignature",
  "TooFarInTheFuture",
  "InvalidEmptyEntry",
  "KeyTooLong"
] as const
export type InvalidReason = typeof INVALID_REASONS[number]
export type InvalidCounts = { readonly [R in InvalidReason]: number }

/**
 * The reasons that prove the sender itself misbehaved, the only ones counted against the invalid bound: an honest
 * peer verifies signatures and namespaces before it stores a value, so it never holds such a value. The others can
 * reach an honest peer from a third party (a timestamp just under its own 10-minute horizon, ahead of ours when our
 * clock lags; an empty/length mismatch or a long key a reference peer accepts): counting them would let that third
 * party make us cut and cool down the honest peer, so they are only dropped and counted.
 */
const FORGED: ReadonlyArray<InvalidReason> = ["BadSignature", "InvalidNamespace"]
const isForged = (reason: InvalidReason): boolean => FORGED.includes(reason)

const noInvalid = (): { -readonly [R in InvalidReason]: number } => ({
  InvalidNamespace: 0,
  BadSignature: 0,
  TooFarInTheFuture: 0,
  InvalidEmptyEntry: 0,
  KeyTooLong: 0
})

export interface RangerConfig extends Reconcile.Config {
  /** A session exchanging more messages than this (both directions) ends with RunawaySession. */
  readonly maxMessages: number
  /** Values remembered per session so none is sent twice (`Reconcile.SentValues`); 0 turns the memory off. */
  readonly sentMemory: number
  /** A session ends with InvalidEntriesFromPeer past this many forged values (bad signature, other namespace). */
  readonly maxInvalid: number
  /** … or when more than this fraction of the values received is invalid, once `minValuesForFraction` arrived. */
  readonly maxInvalidFraction: number
  readonly minValuesForFraction: number
  /** Our content status of an entry's blob (spec 02 hooks, statusOf): Missing until a blob store says more. */
  readonly contentStatus: (entries: ReadonlyArray<SignedEntry>) => Effect.Effect<ReadonlyArray<ContentStatus>>
}

export const defaultConfig: RangerConfig = {
  ...Reconcile.DEFAULT,
  maxMessages: 10_000,
  sentMemory: 1 << 17,
  maxInvalid: MAX_INVALID_PER_SESSION,
  maxInvalidFraction: MAX_INVALID_FRACTION,
  minValuesForFraction: MIN_VALUES_FOR_INVALID_FRACTION,
  contentStatus: (entries) => Effect.succeed(entries.map(() => "Missing" as const))
}

export type SessionError = StoreError | ReplicaNotOpen | SyncNotEnabled | RunawaySession | InvalidEntriesFromPeer

/** Authors tracked per message before the heads (beyond them, a value goes to the heads directly). */
const NEWEST_AUTHORS = 16

/** Invalid values dropped by sync sessions, by reason (Effect's metric registry; per session: SyncOutcome.invalid). */
const invalidValues = Metric.counter("rangedocs_sync_invalid_entries", { incremental: true })
const byReason = (reason: InvalidReason) => Metric.tagged(invalidValues, "reason", reason)
const invalidByReason = {
  InvalidNamespace: byReason("InvalidNamespace"),
  BadSignature: byReason("BadSignature"),
  TooFarInTheFuture: byReason("TooFarInTheFuture"),
  InvalidEmptyEntry: byReason("InvalidEmptyEntry"),
  KeyTooLong: byReason("KeyTooLong")
} satisfies { readonly [R in InvalidReason]: Metric.Metric.Counter<number> }

/** Insert failures that mean the peer sent something invalid (NewerEntryExists is an ordinary outcome). */
const REASONS: ReadonlySet<string> = new Set(INVALID_REASONS)
const isInvalid = (tag: string): tag is InvalidReason => REASONS.has(tag)

/** Insert failures of our side (the store, the replica closing): they end the session (spec 02 §5). */
type LocalFailure = StoreError | ReplicaNotOpen | SyncNotEnabled
const isLocalFailure = (e: { readonly _tag: string }): e is LocalFailure =>
  e._tag === "StoreError" || e._tag === "ReplicaNotOpen" || e._tag === "SyncNotEnabled"

/** One reconciliation session of one replica with one peer, as one side of it. */
export interface Session {
  /** The initiator's first message: one fingerprint over the whole set (spec 02 §5). */
  readonly initialMessage: Effect.Effect<Message, SessionError>
  /** Processes an incoming message; the reply, or undefined when this side has nothing more to send. */
  readonly process: (message: Message) => Effect.Effect<Message | undefined, SessionError>
  readonly outcome: Effect.Effect<SyncOutcome>
}

/** How a session's messages travel: what the reconciliation may rely on. */
export interface SessionOptions {
  /**
   * Bytes of each fingerprint the wire carries (16 on the compact codec): fingerprints are compared on at most this
   * prefix. Default 32.
   */
  readonly fingerprintBytes?: number
}

export interface RangerService {
  /** A session on an open, sync-enabled replica with the peer `from` (its 32-byte node id). */
  readonly session: (
    ns: NamespaceId,
    from: Uint8Array,
    options?: SessionOptions
  ) => Effect.Effect<Session, ReplicaNotOpen | SyncNotEnabled>
  /**
   * Whether this side's messages are meant for the compact codec (its short bounds pay off there): Sync then offers
   * `COMPACT_SYNC_PROTOCOL` first. Reference mode speaks spec 02's codec only.
   */
  readonly compact: boolean
}

export class Ranger extends Context.Tag("docs/Ranger")<Ranger, RangerService>() {}

export const make = (config: RangerConfig) =>
  Effect.gen(function*() {
    const store = yield* Store.Store
    const replica = yield* Replica.Replica

    const session = (ns: NamespaceId, from: Uint8Array, options: SessionOptions = {}) =>
      Effect.gen(function*() {
        const wire = options.fingerprintBytes ?? 32
        const reconcile: Reconcile.Config = wire >= (config.fingerprintBytes ?? 32)
          ? config
          : { ...config, fingerprintBytes: wire }
        const state = yield* replica.state(ns)
        if (!state.sync) return yield* new SyncNotEnabled({ namespace: ns })
        let numRecv = 0
        let numSent = 0
        const invalid = noInvalid()
        // Values whose invalidity proves the peer misbehaved (isForged): only they count against the bound.
        let firstForged = ""
        let messages = 0
        const heads = new AuthorHeads.Builder()
        const sentValues = new Reconcile.SentValues(config.sentMemory)

        // Valid values are kept; invalid ones are dropped and counted, and the session goes on unless the peer's
        // invalid values pass the bound (then it is not asked for more). A failure of our own store ends it.
        const judge = (results: ReadonlyArray<Either.Either<unknown, { readonly _tag: string }>>) =>
          Effect.suspend((): Effect.Effect<void, SessionError> => {
            for (const r of results) {
              if (r._tag !== "Left") continue
              const tag = r.left._tag
              if (isInvalid(tag)) {
                if (isForged(tag) && firstForged === "") firstForged = tag
                invalid[tag]++
                invalidByReason[tag].unsafeUpdate(1, [])
              } else if (isLocalFailure(r.left)) return Effect.fail(r.left)
            }
            const numForged = FORGED.reduce((n, r) => n + invalid[r], 0)
            const tooMany = numForged > config.maxInvalid ||
              (numRecv >= config.minValuesForFraction && numForged > config.maxInvalidFraction * numRecv)
            return tooMany
              ? Effect.fail(new InvalidEntriesFromPeer({ namespace: ns, count: numForged, first: firstForged }))
              : Effect.void
          })

        const hooks: Reconcile.Hooks<SessionError> = {
          insert: (values) => Effect.map(replica.prepareRemoteMany(ns, values, from), Effect.flatMap(judge)),
          statusOf: config.contentStatus
        }

        /** Counts one message of the session (either direction); past the cap the session fails. */
        const count = Effect.suspend(() =>
          messages++ >= config.maxMessages
            ? Effect.fail(new RunawaySession({ namespace: ns, messages }))
            : Effect.void
        )

        const sent = <M extends Message | undefined>(m: M): M => {
          if (m !== undefined) numSent += m.valueCount
          return m
        }

        const view = store.rangeView(ns)
        // Until a message needs more, the session works from the store's summary (count, set fingerprint, first
        // id): two sides that agree end without building the range index (a cold start of a large document).
        let indexed = false
        const summary = store.rangeSummary(ns)

        return {
          initialMessage: Effect.zipRight(
            count,
            Effect.flatMap(summary, Option.match({
              onSome: (s) => Effect.succeed(sent(Reconcile.initialFromSummary(s, config))),
              onNone: () => Effect.map(view, (v) => sent(Reconcile.initialMessage(v, config)))
            }))
          ),
          process: (message: Message) =>
            Effect.gen(function*() {
              yield* count
              numRecv += message.valueCount
              // The newest timestamp per author of this message first (a message holds few authors), then one
              // insert per author: no key string per value.
              const newest: Array<SignedEntry> = []
              for (const part of message.parts) {
                if (part._tag !== "RangeItem") continue
                for (const [e] of part.values) {
                  let i = 0
                  while (i < newest.length && !equals(newest[i]!.author, e.author)) i++
                  if (i === newest.length) {
                    if (newest.length < NEWEST_AUTHORS) newest.push(e)
                    else heads.insert(e.author, e.timestamp)
                  } else if (newest[i]!.timestamp < e.timestamp) newest[i] = e
                }
              }
              for (const e of newest) heads.insert(e.author, e.timestamp)
              if (!indexed && message.parts.length === 1) {
                const known = yield* summary
                if (Option.isSome(known) && Reconcile.matchesSummary(known.value, message, reconcile)) return undefined
              }
              indexed = true
              const reply = yield* Reconcile.processMessage(yield* view, hooks, reconcile, message, sentValues)
              if (reply !== undefined) yield* count
              return sent(reply)
            }),
          outcome: Effect.sync((): SyncOutcome => ({
            numRecv,
            numSent,
            numInvalid: INVALID_REASONS.reduce((sum, r) => sum + invalid[r], 0),
            invalid: { ...invalid },
            headsReceived: heads.build()
          }))
        } satisfies Session
      })

    return Ranger.of({ session, compact: config.shortBounds === true })
  })

export const layer = (config: RangerConfig = defaultConfig): Layer.Layer<Ranger, never, Store.Store | Replica.Replica> =>
  Layer.effect(Ranger, make(config))
