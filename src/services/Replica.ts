/**
 * The replica actor (spec 03 §5–6): every store mutation of the node passes through one fiber reading a bounded
 * queue. The fiber takes every job waiting in the queue and applies them in one SQLite transaction (group commit);
 * callers get their reply only after that commit, and events go out only after it too.
 *
 * Reads (getExact, getMany, lists) go straight to the Store: replies come after commit, so reads see every
 * acknowledged write. Remote entries are verified (two strict signatures) in the caller's fiber, before they queue.
 */
import { Cause, Chunk, Clock, Context, Deferred, Effect, Either, Exit, Fiber, FiberId, Layer, Mailbox, Option, type Scope, Stream } from "effect"
import { equals, toHex } from "../internal/bytes.js"
import { takeAvailable, takeOrInterrupt } from "../internal/mailbox.js"
import { trusted } from "../internal/trusted.js"
import { PublicKeyCache, validateEntry } from "../internal/signing.js"
import * as AuthorHeads from "../schema/AuthorHeads.js"
import * as Capability from "../schema/Capability.js"
import * as DownloadPolicy from "../schema/DownloadPolicy.js"
import {
  Entry,
  EntryRecord,
  type ContentStatus,
  EMPTY,
  RecordIdentifier,
  type SignedEntry,
  U64
} from "../schema/Entry.js"
import {
  AuthorNotFound,
  BadSignature,
  InvalidNamespace,
  DocumentNotCreated,
  EntryIsEmpty,
  type InsertError,
  NamespaceMismatch,
  NewerEntryExists,
  ReadOnly,
  ReplicaNotClosed,
  ReplicaNotFound,
  ReplicaNotOpen,
  StoreError,
  SyncNotEnabled
} from "../schema/Errors.js"
import { LocalInsert, OpenState, RemoteInsert, type ReplicaEvent } from "../schema/Events.js"
import { Author, type AuthorId, type Hash, type NamespaceId, NamespaceSecret } from "../schema/Keys.js"
import type { Query } from "../schema/Query.js"
import * as Crypto from "./Crypto.js"
import type { SignRequest } from "./Crypto.js"
import * as Store from "./Store.js"

/** Capacity of the actor's inbox (spec 03 §6). */
export const INBOX_CAPACITY = 1024
/** Most jobs applied in one transaction. */
export const MAX_BATCH = 512
/** Remote entries verified per chunk: big enough to keep the workers busy, small enough to overlap with writes. */
const REMOTE_CHUNK = 512
/** From this many waiting jobs on, a batch takes only half of them (pipelining). */
const SPLIT_FROM = 16
/** Capacity of each subscriber's event mailbox: a slow subscriber back-pressures the actor (spec 01 §11). */
export const EVENT_CAPACITY = 1024

export interface OpenOptions {
  /** Enable sync for this replica (sticky: later opens can only turn it on). */
  readonly sync?: boolean
}

export interface InsertOutcome {
  readonly entry: SignedEntry
  /** Entries of the author removed by this insert (older entries at the key or below it). */
  readonly removed: number
}

export interface ReplicaService {
  // -- global requests
  readonly createAuthor: Effect.Effect<Author, StoreError>
  readonly importAuthor: (author: Author) => Effect.Effect<AuthorId, StoreError>
  readonly exportAuthor: (id: AuthorId) => Effect.Effect<Option.Option<Author>, StoreError>
  readonly deleteAuthor: (id: AuthorId) => Effect.Effect<void, StoreError>
  readonly listAuthors: Effect.Effect<ReadonlyArray<AuthorId>, StoreError>
  /** Imports or upgrades a capability; an open replica's capability is upgraded in place (spec 03 §6). */
  readonly importNamespace: (
    cap: Capability.Capability
  ) => Effect.Effect<NamespaceId, StoreError | NamespaceMismatch>
  /** A new random namespace, imported and opened (one handle). */
  readonly createReplica: (options?: OpenOptions) => Effect.Effect<NamespaceId, StoreError>
  readonly listReplicas: Effect.Effect<ReadonlyArray<readonly [NamespaceId, Capability.CapabilityKind]>, StoreError>
  readonly contentHashes: Stream.Stream<Hash, StoreError>
  /** Resolves once every job queued before it is committed. */
  readonly flush: Effect.Effect<void, StoreError>

  // -- per replica
  readonly open: (ns: NamespaceId, options?: OpenOptions) => Effect.Effect<void, StoreError | ReplicaNotFound>
  /** One handle less; `true` when that was the last one (the replica is closed, its subscriber streams end). */
  readonly close: (ns: NamespaceId) => Effect.Effect<boolean>
  readonly state: (ns: NamespaceId) => Effect.Effect<OpenState, ReplicaNotOpen>
  readonly setSync: (ns: NamespaceId, sync: boolean) => Effect.Effect<void, ReplicaNotOpen>
  readonly capability: (ns: NamespaceId) => Effect.Effect<Capability.Capability, ReplicaNotOpen>
  /**
   * Subscribes at once (no event published after this returns is missed); the stream ends when the replica closes.
   * Unsubscribes when the scope closes.
   */
  readonly subscribe: (ns: NamespaceId) => Effect.Effect<Stream.Stream<ReplicaEvent>, ReplicaNotOpen, Scope.Scope>
  /**
   * `subscribe` as a pull, for consumers on the write path: each run waits for the events published since the last
   * one (in order, at least one), and fails with NoSuchElementException once the replica closed and every event
   * before that was taken; also, at once, when a subscription that was full at the close was dropped, or the scope
   * ended. A Stream stage costs about 60 Effect operations per event, this about 20.
   */
  readonly subscribePull: (
    ns: NamespaceId
  ) => Effect.Effect<Effect.Effect<ReadonlyArray<ReplicaEvent>, Cause.NoSuchElementException>, ReplicaNotOpen, Scope.Scope>
  /**
   * Hands each insert event to `sink` right after its commit, in order, from the actor itself: no queue and no fiber
   * between the commit and the sink (the live engine feeds its subscribers' queues this way). The sink runs in the
   * actor, so it must be quick and must never wait for the actor (reads are fine, writes deadlock); a slow sink slows
   * every write, as a full subscriber stream does. A failing sink is logged and skipped. Registered at once, removed when the scope closes; counts as a subscriber.
   * With `counted: false` it is a probe: it does not count as a subscriber and sees events only while someone else
   * subscribes (the live engine counts what was published to its own subscription this way).
   */
  readonly subscribeSink: (
    ns: NamespaceId,
    sink: (event: ReplicaEvent) => Effect.Effect<void>,
    options?: { readonly counted?: boolean }
  ) => Effect.Effect<void, ReplicaNotOpen, Scope.Scope>
  readonly insertLocal: (
    ns: NamespaceId,
    author: AuthorId,
    key: Uint8Array,
    hash: Hash,
    len: bigint
  ) => Effect.Effect<InsertOutcome, InsertError>
  /** Writes a tombstone at `prefix`: removes the author's older entries at and below it. */
  readonly deletePrefix: (
    ns: NamespaceId,
    author: AuthorId,
    prefix: Uint8Array
  ) => Effect.Effect<InsertOutcome, InsertError>
  readonly insertRemote: (
    ns: NamespaceId,
    entry: SignedEntry,
    from: Uint8Array,
    status: ContentStatus
  ) => Effect.Effect<number, InsertError | SyncNotEnabled>
  /**
   * Many remote entries of one peer: validated and verified as a batch (signatures spread over the Crypto pool),
   * applied in order. One result per entry; the whole call fails only when the replica is not open for sync.
   */
  readonly insertRemoteMany: (
    ns: NamespaceId,
    entries: ReadonlyArray<readonly [SignedEntry, ContentStatus]>,
    from: Uint8Array
  ) => Effect.Effect<
    ReadonlyArray<Either.Either<InsertOutcome, InsertError | SyncNotEnabled>>,
    ReplicaNotOpen | SyncNotEnabled
  >
  /**
   * `insertRemoteMany` in two steps: the checks that need no store (signatures above all) start now, in the
   * background; the returned effect waits for them and stores the valid entries. Reconciliation starts the checks of
   * a message's values before it computes its answer, which reads the store as it was before them.
   */
  readonly prepareRemoteMany: (
    ns: NamespaceId,
    entries: ReadonlyArray<readonly [SignedEntry, ContentStatus]>,
    from: Uint8Array
  ) => Effect.Effect<
    Effect.Effect<ReadonlyArray<Either.Either<InsertOutcome, InsertError | SyncNotEnabled>>>,
    ReplicaNotOpen | SyncNotEnabled
  >
  readonly getExact: (
    ns: NamespaceId,
    author: AuthorId,
    key: Uint8Array,
    includeEmpty?: boolean
  ) => Effect.Effect<Option.Option<SignedEntry>, StoreError | ReplicaNotOpen>
  readonly getMany: (ns: NamespaceId, query: Query) => Stream.Stream<SignedEntry, StoreError | ReplicaNotOpen>
  readonly exportSecretKey: (ns: NamespaceId) => Effect.Effect<NamespaceSecret, ReplicaNotOpen | ReadOnly>
  /** Closes one handle, then removes the replica with all its data; fails while other handles keep it open. */
  readonly dropReplica: (ns: NamespaceId) => Effect.Effect<void, StoreError | ReplicaNotClosed>
  readonly registerUsefulPeer: (
    ns: NamespaceId,
    peer: Uint8Array
  ) => Effect.Effect<void, StoreError | DocumentNotCreated>
  readonly getSyncPeers: (
    ns: NamespaceId
  ) => Effect.Effect<Option.Option<ReadonlyArray<Uint8Array>>, StoreError | ReplicaNotOpen>
  readonly setDownloadPolicy: (
    ns: NamespaceId,
    policy: DownloadPolicy.DownloadPolicy
  ) => Effect.Effect<void, StoreError | DocumentNotCreated>
  readonly getDownloadPolicy: (ns: NamespaceId) => Effect.Effect<DownloadPolicy.DownloadPolicy, StoreError>
  /** The live set the engine resumes at start (finding 3); see `Store.setLive`. */
  readonly setLive: Store.StoreService["setLive"]
  readonly listLive: Store.StoreService["listLive"]
  /** Wanted content kept in the store (finding 4); see `Store.addWanted`. */
  readonly addWanted: Store.StoreService["addWanted"]
  readonly removeWanted: Store.StoreService["removeWanted"]
  readonly listWanted: Store.StoreService["listWanted"]
  readonly countWanted: Store.StoreService["countWanted"]
  readonly clearWanted: Store.StoreService["clearWanted"]
  readonly hasNewsForUs: (ns: NamespaceId, heads: AuthorHeads.AuthorHeads) => Effect.Effect<number, StoreError>
  readonly getLatestForEachAuthor: (
    ns: NamespaceId
  ) => Effect.Effect<ReadonlyArray<Store.LatestEntry>, StoreError>
}

const verdictError = (ns: NamespaceId, e: SignedEntry, verdict: Crypto.Verdict) =>
  verdict === "ok" ? undefined : new BadSignature({ namespace: ns, author: e.author, reason: verdict })

export class Replica extends Context.Tag("docs/Replica")<Replica, ReplicaService>() {}

/** The last message a closing replica publishes: subscriber streams end after the events before it. */
const END: unique symbol = Symbol("docs/Replica/END")

interface OpenReplica {
  capability: Capability.Capability
  /** Cached download policy: decides RemoteInsert.shouldDownload without a read per entry. */
  policy: DownloadPolicy.DownloadPolicy
  handles: number
  sync: boolean
  /**
   * One mailbox of capacity {@link EVENT_CAPACITY} per stream subscriber, each event offered to all (a full one
   * back-pressures the actor). Not a PubSub: its subscriptions made every event survive V8's scavenges
   * (internal/mailbox.ts).
   */
  readonly events: Set<Mailbox.Mailbox<ReplicaEvent | typeof END>>
  readonly sinks: Set<(event: ReplicaEvent) => Effect.Effect<void>>
  /** Sinks that do not count as subscribers (`subscribeSink(…, { counted: false })`). */
  readonly probes: Set<(event: ReplicaEvent) => Effect.Effect<void>>
}

/** Stream subscribers plus sinks. */
const subscriberCount = (r: OpenReplica): number => r.events.size + r.sinks.size

/** Replies to a caller: completes its `Effect.async` (or keeps the exit until it registers). */
type Reply<A, E> = (exit: Exit.Exit<A, E>) => void

/** A chunk of remote entries after the checks that need no store: failures in `results`, `valid` at `at`. */
interface CheckedChunk {
  readonly results: Array<Either.Either<InsertOutcome, InsertError | SyncNotEnabled>>
  readonly valid: ReadonlyArray<readonly [SignedEntry, ContentStatus]>
  readonly at: ReadonlyArray<number>
}

/** What a job did inside the batch transaction. */
interface Applied {
  /** Replies once the batch's commit is known (publishing events first when it committed). */
  readonly reply: (commit: Exit.Exit<void, StoreError>) => Effect.Effect<void>
  /** A store failure of this job: it rolls the whole batch back. */
  readonly broken: StoreError | undefined
}

/** A prepared job that runs its own work inside the batch transaction. */
interface WorkStep {
  readonly _tag: "Work"
  readonly apply: Effect.Effect<Applied>
  readonly abort: (error: StoreError) => void
}

/** How each entry of a Put step ended, in order; a store failure fails the whole step (and its batch). */
type PutResults = Exit.Exit<ReadonlyArray<Either.Either<InsertOutcome, InsertError>>, StoreError>

/**
 * A prepared insert: one entry to sign in the Crypto pool (local), or a chunk of already verified entries (remote),
 * checked and put in order with its neighbours in one `Store.putMany` (the hot path: no per-entry effects beyond the
 * SQL, one job per chunk).
 */
interface PutStep {
  readonly _tag: "Put"
  readonly sign: SignRequest | undefined
  /** The entries to put when `sign` is undefined. */
  readonly entries: ReadonlyArray<SignedEntry>
  /** Checks each entry just before the put (validation, still open); a failure is that entry's result. */
  readonly check: (entry: SignedEntry) => InsertError | undefined
  readonly finish: (results: PutResults) => Applied
  readonly abort: (error: StoreError) => void
}

type Step = WorkStep | PutStep

/** A queued job. `prepare` runs in queue order, outside the transaction (checks, timestamps); it never fails. */
interface Job {
  readonly prepare: Effect.Effect<Step>
}

interface Batch {
  readonly steps: ReadonlyArray<Step>
  readonly signing: Fiber.Fiber<ReadonlyArray<SignedEntry>>
}

export const make: Effect.Effect<ReplicaService, never, Store.Store | Crypto.Crypto | Scope.Scope> = Effect.gen(
  function*() {
  const store = yield* Store.Store
  const crypto = yield* Crypto.Crypto
  // Mailboxes, not Queues: a Queue made every Job and Batch survive V8's scavenges (internal/mailbox.ts).
  const inbox = yield* Mailbox.make<Job>({ capacity: INBOX_CAPACITY, strategy: "suspend" })
  const ready = yield* Mailbox.make<Batch>()
  // Two batches may be prepared ahead of the one being written: signing (worker threads) overlaps with SQLite.
  const inFlight = yield* Effect.makeSemaphore(2)
  const replicas = new Map<string, OpenReplica>()
  const authors = new Map<string, Author>()
  const keys = new PublicKeyCache()
  let lastTimestamp = 0n
  /**
   * Callers waiting for the reply of a queued job. Jobs queued while the layer shuts down may never be applied (the
   * inbox shutdown drops them): their callers are interrupted, as an offer to the shut-down inbox is, instead of
   * waiting forever.
   */
  const waiting = new Set<Reply<never, never>>()
  let stopped = false

  /** Microseconds from Effect's Clock, strictly increasing within this actor (spec 01 §8). */
  const nextTimestamp = Effect.map(Clock.currentTimeNanos, (nanos) => {
    const now = nanos / 1000n
    lastTimestamp = now > lastTimestamp ? now : lastTimestamp + 1n
    return lastTimestamp
  })
  const nowMicros = Effect.map(Clock.currentTimeNanos, (n) => n / 1000n)

  /**
   * Ends the subscriber streams of a closing replica after the events already published, as the reference's
   * receivers drain their channel (spec 01 §11); a shutdown would drop them. Close does not wait for a subscriber
   * whose mailbox is full: then every subscriber's mailbox is shut down.
   */
  const endEvents = (r: OpenReplica) =>
    Effect.suspend(() => {
      const mailboxes = [...r.events]
      const full = mailboxes.some((m) => Option.getOrElse(m.unsafeSize(), () => 0) >= EVENT_CAPACITY)
      return Effect.forEach(mailboxes, (m) => (full ? m.shutdown : m.offer(END)), { discard: true })
    })

  /** Stage 1: prepare a batch in order and start signing its local entries. */
  const prepareBatch = (jobs: ReadonlyArray<Job>) =>
    Effect.gen(function*() {
      const steps = yield* Effect.forEach(jobs, (job) => job.prepare)
      const requests = steps.flatMap((s) => (s._tag === "Put" && s.sign !== undefined ? [s.sign] : []))
      // A daemon fiber: it outlives an interrupted stage 1 so that shutdown can still finish the batch.
      // A few signatures are made right here (the pool would sign them inline too): no fiber for them.
      const signing = requests.length === 0
        ? Fiber.succeed<ReadonlyArray<SignedEntry>>([])
        : requests.length * 2 < Crypto.INLINE_BELOW
        ? Fiber.succeed(yield* crypto.signEntries(requests))
        : yield* Effect.forkDaemon(crypto.signEntries(requests))
      return { steps, signing }
    })

  /** The consecutive Put steps of a batch in one putMany; returns how each one ended. */
  const applyPuts = (steps: ReadonlyArray<PutStep>, signed: () => SignedEntry | undefined) =>
    Effect.gen(function*() {
      const entries: Array<SignedEntry> = []
      /** Per step, its candidates in order: an entry to put, or the failure that replaces its put. */
      const candidates: Array<Array<SignedEntry | InsertError>> = []
      for (const step of steps) {
        const list: ReadonlyArray<SignedEntry | undefined> = step.sign === undefined ? step.entries : [signed()]
        const out: Array<SignedEntry | InsertError> = new Array(list.length)
        for (let i = 0; i < list.length; i++) {
          const entry = list[i]
          const failure = entry === undefined
            ? new StoreError({ method: "sign", cause: "entry missing" })
            : step.check(entry)
          if (failure !== undefined || entry === undefined) out[i] = failure!
          else {
            entries.push(entry)
            out[i] = entry
          }
        }
        candidates.push(out)
      }
      const outcomes = yield* Effect.either(entries.length === 0 ? Effect.succeed([]) : store.putMany(entries))
      if (Either.isLeft(outcomes)) {
        const failed: PutResults = Exit.fail(outcomes.left)
        return { applied: steps.map((step) => step.finish(failed)), broken: outcomes.left }
      }
      const list = outcomes.right
      let next = 0
      const applied = steps.map((step, s) =>
        step.finish(Exit.succeed(candidates[s]!.map((c): Either.Either<InsertOutcome, InsertError> => {
          if ("_tag" in c) return Either.left(c)
          const outcome = list[next++]!
          return outcome._tag === "Inserted"
            ? Either.right({ entry: c, removed: outcome.removed })
            : Either.left(
              new NewerEntryExists({
                namespace: c.namespace,
                author: c.author,
                key: outcome.newer.key,
                timestamp: outcome.newer.timestamp
              })
            )
        })))
      )
      return { applied, broken: undefined }
    })

  /** Stage 2: apply a batch in one transaction, then reply (and publish) after the commit. */
  const applyBatch = ({ signing, steps }: Batch) =>
    Effect.gen(function*() {
      const signed = yield* Fiber.join(signing)
      let nextSigned = 0
      const takeSigned = () => signed[nextSigned++]
      const replies: Array<Applied["reply"]> = []
      const commit = yield* store.withTransaction(Effect.gen(function*() {
        let i = 0
        while (i < steps.length) {
          const step = steps[i]!
          if (step._tag === "Work") {
            const { broken, reply } = yield* step.apply
            replies.push(reply)
            i++
            if (broken !== undefined) return yield* broken
            continue
          }
          let j = i
          const run: Array<PutStep> = []
          while (j < steps.length && steps[j]!._tag === "Put") run.push(steps[j++] as PutStep)
          const { applied, broken } = yield* applyPuts(run, takeSigned)
          for (const a of applied) replies.push(a.reply)
          i = j
          if (broken !== undefined) return yield* broken
        }
      })).pipe(Effect.exit)
      for (const reply of replies) yield* reply(commit)
      if (Exit.isFailure(commit)) {
        const error = Cause.failureOption(commit.cause).pipe(
          Option.getOrElse(() => new StoreError({ method: "transaction", cause: Cause.squash(commit.cause) }))
        )
        for (const step of steps.slice(replies.length)) step.abort(error)
      }
    })

  // Shutdown (spec 03 §6). Registered before the stage fibers, so it runs after they are interrupted: applies the
  // batches already prepared and the jobs still queued, then closes every replica so subscriber streams end.
  yield* Effect.addFinalizer(() =>
    Effect.gen(function*() {
      for (const batch of yield* ready.clear) yield* applyBatch(batch)
      const rest = yield* inbox.clear
      if (rest.length > 0) yield* applyBatch(yield* prepareBatch([...rest]))
      yield* inbox.shutdown
      stopped = true
      for (const reply of waiting) reply(Exit.interrupt(FiberId.none))
      for (const r of replicas.values()) yield* endEvents(r)
      replicas.clear()
    })
  )
  // After the first job, let the other ready fibers queue theirs: fewer, fuller batches. Of a long queue take half,
  // so the next batch is prepared and signed while this one is written.
  const takeBatch = Effect.gen(function*() {
    const first = yield* takeOrInterrupt(inbox)
    yield* Effect.yieldNow()
    const waiting = Option.getOrElse(inbox.unsafeSize(), () => 0)
    const n = waiting < SPLIT_FROM ? waiting : Math.min(MAX_BATCH - 1, Math.ceil(waiting / 2))
    // At least n are queued and only this fiber takes: takeN returns at once.
    const [rest] = n === 0 ? [Chunk.empty<Job>()] : yield* inbox.takeN(n)
    return [first, ...rest]
  })
  // Each stage is interrupted only while it waits; a batch it took is always handed on or applied.
  yield* Effect.uninterruptibleMask((restore) =>
    restore(Effect.zipRight(inFlight.take(1), takeBatch)).pipe(
      Effect.flatMap((jobs) => prepareBatch([...jobs])),
      Effect.flatMap((batch) => ready.offer(batch))
    )
  ).pipe(Effect.forever, Effect.forkScoped)
  yield* Effect.uninterruptibleMask((restore) =>
    restore(takeOrInterrupt(ready)).pipe(Effect.flatMap(applyBatch), Effect.zipRight(inFlight.release(1)))
  ).pipe(Effect.forever, Effect.forkScoped)

  /**
   * Queues the job built by `makeJob` and waits for its reply. The reply is a plain callback into an
   * `Effect.async`: the hot path allocates no Deferred per job.
   */
  const enqueue = <A, E>(makeJob: (reply: Reply<A, E | StoreError>) => Job): Effect.Effect<A, E | StoreError> =>
    Effect.suspend(() => {
      let resume: ((effect: Effect.Effect<A, E | StoreError>) => void) | undefined
      let early: Exit.Exit<A, E | StoreError> | undefined
      const reply: Reply<A, E | StoreError> = (exit) => {
        if (resume === undefined) early = exit
        else if (waiting.delete(reply)) resume(exit)
      }
      return Effect.flatMap(
        inbox.offer(makeJob(reply)),
        // Refused once the inbox is shut down: interrupted, as an offer to a shut-down Queue is.
        (accepted) =>
          accepted
            ? Effect.async<A, E | StoreError>((cb) => {
              if (early !== undefined) cb(early)
              else if (stopped) cb(Exit.interrupt(FiberId.none))
              else {
                resume = cb
                waiting.add(reply)
              }
            })
            : Effect.interrupt
      )
    })

  /** The Applied of a job's outcome: `after` (events) runs only once the batch committed. */
  const applied = <A, E>(
    reply: Reply<A, E | StoreError>,
    exit: Exit.Exit<NoInfer<A>, NoInfer<E | StoreError>>,
    after?: (a: NoInfer<A>) => Effect.Effect<void>
  ): Applied => ({
    broken: Exit.isFailure(exit)
      ? Option.getOrUndefined(
        Option.filter(Cause.failureOption(exit.cause), (e): e is E & StoreError => e instanceof StoreError)
      )
      : undefined,
    reply: (commit) =>
      Exit.isFailure(exit)
        ? Effect.sync(() => reply(exit))
        : Exit.isFailure(commit)
        ? Effect.sync(() => reply(Exit.failCause(commit.cause)))
        : after === undefined
        ? Effect.sync(() => reply(exit))
        : Effect.zipRight(after(exit.value), Effect.sync(() => reply(exit)))
  })

  /** A job whose whole work runs in the transaction. `after` runs once the batch committed (events). */
  const submit = <A, E>(
    work: Effect.Effect<A, E>,
    after?: (a: A) => Effect.Effect<void>
  ): Effect.Effect<A, E | StoreError> =>
    enqueue<A, E>((reply) => ({
      prepare: Effect.succeed({
        _tag: "Work",
        apply: Effect.map(Effect.exit(work), (exit) => applied(reply, exit, after)),
        abort: (error) => reply(Exit.fail(error))
      })
    }))

  const hex = toHex
  /** Suspended: the replica is looked up when the effect runs (an effect built before an open or close is reused). */
  const getOpen = (ns: NamespaceId): Effect.Effect<OpenReplica, ReplicaNotOpen> =>
    Effect.suspend(() => {
      const r = replicas.get(hex(ns))
      return r === undefined ? Effect.fail(new ReplicaNotOpen({ namespace: ns })) : Effect.succeed(r)
    })

  // -- authors (cached in memory: deriving keys costs more than the signature)

  const lookupAuthor = (id: AuthorId): Effect.Effect<Author, AuthorNotFound | StoreError> => {
    const cached = authors.get(hex(id))
    if (cached !== undefined) return Effect.succeed(cached)
    return Effect.flatMap(store.getAuthor(id), Option.match({
      onNone: () => Effect.fail(new AuthorNotFound({ author: id })),
      onSome: (a) => Effect.sync(() => (authors.set(hex(id), a), a))
    }))
  }

  const importAuthor = (author: Author) =>
    submit(Effect.as(store.importAuthor(author), author.id), () => Effect.sync(() => void authors.set(hex(author.id), author)))

  const createAuthor = Effect.suspend(() => {
    const author = Author.generate()
    return Effect.as(importAuthor(author), author)
  })

  const deleteAuthor = (id: AuthorId) =>
    submit(store.deleteAuthor(id), () => Effect.sync(() => void authors.delete(hex(id))))

  // -- namespaces

  const importNamespace = (cap: Capability.Capability) =>
    submit(
      Effect.gen(function*() {
        const outcome = yield* store.importNamespace(cap)
        const open = replicas.get(hex(cap.id))
        if (outcome === "Upgraded" && open !== undefined) {
          const merged = Capability.merge(open.capability, cap)
          if (Either.isRight(merged)) open.capability = merged.right.capability
        }
        return cap.id
      })
    )

  const openNow = (ns: NamespaceId, options?: OpenOptions) =>
    Effect.gen(function*() {
      const existing = replicas.get(hex(ns))
      if (existing !== undefined) {
        existing.handles++
        existing.sync ||= options?.sync ?? false
        return
      }
      const capability = yield* store.openReplica(ns)
      const policy = yield* store.getDownloadPolicy(ns)
      replicas.set(hex(ns), {
        capability,
        policy,
        handles: 1,
        sync: options?.sync ?? false,
        sinks: new Set(),
        probes: new Set(),
        events: new Set()
      })
    })

  const open = (ns: NamespaceId, options?: OpenOptions) => submit(openNow(ns, options))

  const closeNow = (ns: NamespaceId) =>
    Effect.gen(function*() {
      const r = replicas.get(hex(ns))
      if (r === undefined) return true
      r.handles--
      if (r.handles > 0) return false
      replicas.delete(hex(ns))
      yield* store.closeReplica(ns)
      yield* endEvents(r)
      return true
    })

  const close = (ns: NamespaceId) => submit(closeNow(ns)).pipe(Effect.orDie)

  const createReplica = (options?: OpenOptions) =>
    Effect.suspend(() => {
      const secret = NamespaceSecret.generate()
      return submit(Effect.gen(function*() {
        yield* store.importNamespace(new Capability.Write({ secret })).pipe(
          Effect.catchTag("NamespaceMismatch", (e) => Effect.die(e))
        )
        yield* openNow(secret.id, options).pipe(Effect.catchTag("ReplicaNotFound", (e) => Effect.die(e)))
        return secret.id
      }))
    })

  const dropReplica = (ns: NamespaceId) =>
    submit(Effect.gen(function*() {
      yield* closeNow(ns)
      yield* store.removeReplica(ns)
    }))

  // -- inserts

  /**
   * Publishes an event built only when someone listens (spec 02 §5: "only built when there are subscribers"): with
   * none, nothing is allocated or retained per insert. `subscribe` counts a subscriber before it returns, so no
   * event published after that is skipped.
   */
  const publish = (r: OpenReplica, event: () => ReplicaEvent) =>
    subscriberCount(r) === 0 ? Effect.void : Effect.suspend(() => {
      const built = event()
      const streamed = r.events.size === 0
        ? Effect.void
        : Effect.forEach(r.events, (mailbox) => mailbox.offer(built), { discard: true })
      const sunk = r.sinks.size === 0 ? streamed : Effect.zipRight(streamed, Effect.forEach(r.sinks, (sink) => sink(built), { discard: true }))
      if (r.probes.size === 0) return sunk
      return Effect.zipRight(sunk, Effect.forEach(r.probes, (probe) => probe(built), { discard: true }))
    })

  /**
   * Insert local / delete prefix (spec 01 §10). Prepared in queue order: open and read-only checks, author lookup and
   * the timestamp; signed in the Crypto pool; then validated and put inside the batch transaction.
   */
  const local = (ns: NamespaceId, authorId: AuthorId, key: Uint8Array, hash: Hash, len: bigint) =>
    enqueue<InsertOutcome, InsertError>((reply) => ({
      prepare: Effect.gen(function*() {
        const abort = (error: StoreError) => reply(Exit.fail(error))
        const prepared = yield* Effect.either(Effect.gen(function*() {
          const replica = yield* getOpen(ns)
          const secret = yield* Capability.secretKey(replica.capability)
          const author = yield* lookupAuthor(authorId)
          const timestamp = yield* nextTimestamp
          const entry = new Entry(
            {
              id: new RecordIdentifier({ namespace: ns, author: authorId, key }, true),
              record: new EntryRecord({ len: U64.make(len), hash, timestamp: U64.make(timestamp) }, true)
            },
            true
          )
          return { replica, request: { namespace: secret, author, entry }, timestamp }
        }))
        if (Either.isLeft(prepared)) {
          const failed: WorkStep = {
            _tag: "Work",
            apply: Effect.succeed(applied(reply, Exit.fail(prepared.left))),
            abort
          }
          return failed
        }
        const { replica, request, timestamp } = prepared.right
        const step: PutStep = {
          _tag: "Put",
          sign: request,
          entries: [],
          check: (signed) =>
            replicas.get(hex(ns)) !== replica
              ? new ReplicaNotOpen({ namespace: ns })
              : validateEntry(keys, timestamp, ns, signed, "local"),
          finish: (results) =>
            applied(
              reply,
              Exit.flatMap(results, (list) => Either.match(list[0]!, { onLeft: Exit.fail, onRight: Exit.succeed })),
              (o) =>
                publish(replica, () => trusted(LocalInsert.prototype, { namespace: ns, entry: o.entry, _tag: "LocalInsert" }))
            ),
          abort
        }
        return step
      })
    }))

  const insertLocal: ReplicaService["insertLocal"] = (ns, author, key, hash, len) =>
    len === 0n || Buffer.compare(hash, EMPTY) === 0
      ? Effect.fail(new EntryIsEmpty({ namespace: ns }))
      : local(ns, author, key, hash, len)

  const deletePrefix: ReplicaService["deletePrefix"] = (ns, author, prefix) => local(ns, author, prefix, EMPTY, 0n)

  /**
   * Verified remote entries as one Put job, applied in order (spec 01 §10 insertRemoteEntry each; RemoteInsert after
   * commit). One result per entry; a store failure fails the job.
   */
  const remote = (ns: NamespaceId, entries: ReadonlyArray<readonly [SignedEntry, ContentStatus]>, from: Uint8Array) =>
    enqueue<ReadonlyArray<Either.Either<InsertOutcome, InsertError | SyncNotEnabled>>, never>((reply) => ({
      prepare: Effect.sync((): Step => {
        const abort = (error: StoreError) => reply(Exit.fail(error))
        const key = hex(ns)
        const replica = replicas.get(key)
        if (replica === undefined || !replica.sync) {
          const refused = replica === undefined
            ? new ReplicaNotOpen({ namespace: ns })
            : new SyncNotEnabled({ namespace: ns })
          return {
            _tag: "Work",
            apply: Effect.succeed(applied(reply, Exit.succeed(entries.map(() => Either.left(refused))))),
            abort
          }
        }
        return {
          _tag: "Put",
          sign: undefined,
          entries: entries.map(([e]) => e),
          check: () => (replicas.get(key) !== replica ? new ReplicaNotOpen({ namespace: ns }) : undefined),
          finish: (results) =>
            applied(reply, results, (list) =>
              subscriberCount(replica) === 0 ? Effect.void : Effect.forEach(list, (r, i) => {
                if (Either.isLeft(r)) return Effect.void
                const [entry, status] = entries[i]!
                return publish(replica, () =>
                  trusted(RemoteInsert.prototype, {
                    namespace: ns,
                    entry,
                    from,
                    shouldDownload: DownloadPolicy.matches(replica.policy, entry.key),
                    remoteContentStatus: status,
                    _tag: "RemoteInsert"
                  }))
              }, { discard: true })),
          abort
        }
      })
    }))

  /**
   * The checks of one chunk of remote entries that need no store: namespace, both signatures strictly on the Crypto
   * pool, future timestamp, empty/len (spec 01 §8 order). The failures are in `results`; `valid` still has to be stored.
   */
  const checkRemoteChunk = (ns: NamespaceId, entries: ReadonlyArray<readonly [SignedEntry, ContentStatus]>, now: bigint) =>
    Effect.map(
      crypto.verifyEntries(
        keys,
        entries.filter(([e]) => equals(e.namespace, ns)).map(([e]) => e)
      ),
      (verdicts): CheckedChunk => {
        const results: Array<Either.Either<InsertOutcome, InsertError | SyncNotEnabled>> = new Array(entries.length)
        const valid: Array<readonly [SignedEntry, ContentStatus]> = []
        const at: Array<number> = []
        let v = 0
        for (let i = 0; i < entries.length; i++) {
          const item = entries[i]!
          const failure = !equals(item[0].namespace, ns)
            ? new InvalidNamespace({ namespace: ns, got: item[0].namespace })
            : verdictError(ns, item[0], verdicts[v++]!) ?? validateEntry(keys, now, ns, item[0], "local")
          if (failure !== undefined) results[i] = Either.left(failure)
          else {
            valid.push(item)
            at.push(i)
          }
        }
        return { results, valid, at }
      }
    )

  /** Stores the valid entries of a checked chunk in order as one actor job; one result per entry, in order. */
  const applyRemoteChunk = (ns: NamespaceId, checked: CheckedChunk, from: Uint8Array) =>
    Effect.gen(function*() {
      const { at, results, valid } = checked
      if (valid.length === 0) return results
      const applied = yield* Effect.either(remote(ns, valid, from))
      for (let k = 0; k < at.length; k++) {
        results[at[k]!] = Either.isLeft(applied) ? Either.left(applied.left) : applied.right[k]!
      }
      return results
    })

  /** The time remote entries are checked against, once the replica is known to be open for sync. */
  const syncNow = (ns: NamespaceId) =>
    Effect.flatMap(getOpen(ns), (r) => (r.sync ? nowMicros : Effect.fail(new SyncNotEnabled({ namespace: ns }))))

  const prepareRemoteMany: ReplicaService["prepareRemoteMany"] = (ns, entries, from) =>
    Effect.gen(function*() {
      const now = yield* syncNow(ns)
      if (entries.length === 0) return Effect.succeed([])
      const chunks: Array<ReadonlyArray<readonly [SignedEntry, ContentStatus]>> = []
      for (let i = 0; i < entries.length; i += REMOTE_CHUNK) chunks.push(entries.slice(i, i + REMOTE_CHUNK))
      // Checked in the background, two chunks at a time; each chunk is stored as soon as it is checked, in order, so
      // the next chunk's signatures are verified while the actor writes this one.
      const checked = yield* Effect.forEach(chunks, () => Deferred.make<CheckedChunk>())
      const checking = yield* Effect.fork(Effect.forEach(
        chunks,
        (chunk, i) => Effect.flatMap(checkRemoteChunk(ns, chunk, now), (c) => Deferred.succeed(checked[i]!, c)),
        { concurrency: 2, discard: true }
      ).pipe(
        // A check that dies (a crypto worker lost) fails the store step instead of leaving it waiting.
        Effect.onExit((exit) =>
          Exit.isSuccess(exit) ? Effect.void : Effect.forEach(checked, (d) => Deferred.failCause(d, exit.cause), { discard: true })
        )
      ))
      return Effect.ensuring(
        Effect.map(
          Effect.forEach(checked, (deferred) => Effect.flatMap(Deferred.await(deferred), (c) => applyRemoteChunk(ns, c, from))),
          (results) => results.flat()
        ),
        Fiber.interrupt(checking)
      )
    })

  const insertRemoteMany: ReplicaService["insertRemoteMany"] = (ns, entries, from) =>
    Effect.gen(function*() {
      // One chunk (the live path: a gossiped entry or a few): checked and stored without a background fiber.
      if (entries.length > REMOTE_CHUNK) return yield* Effect.flatten(prepareRemoteMany(ns, entries, from))
      const now = yield* syncNow(ns)
      return yield* applyRemoteChunk(ns, yield* checkRemoteChunk(ns, entries, now), from)
    })

  const insertRemote: ReplicaService["insertRemote"] = (ns, entry, from, status) =>
    Effect.flatMap(insertRemoteMany(ns, [[entry, status]], from), (results) =>
      Either.match(results[0]!, { onLeft: Effect.fail, onRight: (o) => Effect.succeed(o.removed) }))

  // -- reads and small state requests

  const state = (ns: NamespaceId) =>
    Effect.map(getOpen(ns), (r) => new OpenState({ sync: r.sync, subscribers: subscriberCount(r), handles: r.handles }))

  const setSync = (ns: NamespaceId, sync: boolean) =>
    Effect.flatMap(getOpen(ns), (r) => Effect.sync(() => void (r.sync = sync)))

  /** The replica's events from now on, for the scope, counted as a subscriber; END follows the last one. */
  const subscription = (ns: NamespaceId) =>
    Effect.gen(function*() {
      const mailbox = yield* Mailbox.make<ReplicaEvent | typeof END>({ capacity: EVENT_CAPACITY, strategy: "suspend" })
      yield* Effect.acquireRelease(
        // Looked up and registered in one synchronous step: a close in between would leave the mailbox without END.
        Effect.suspend(() => {
          const r = replicas.get(hex(ns))
          if (r === undefined) return Effect.fail(new ReplicaNotOpen({ namespace: ns }))
          r.events.add(mailbox)
          return Effect.succeed(r)
        }),
        // Shut down when the subscriber goes: an actor waiting to offer to its full mailbox goes on.
        (r) =>
          Effect.zipRight(Effect.sync(() => r.events.delete(mailbox)), mailbox.shutdown)
      )
      return mailbox
    })

  const subscribe = (ns: NamespaceId) =>
    Effect.map(subscription(ns), (mailbox) =>
      Stream.takeWhile(Mailbox.toStream(mailbox), (e): e is ReplicaEvent => e !== END))

  const subscribePull: ReplicaService["subscribePull"] = (ns) =>
    Effect.gen(function*() {
      const mailbox = yield* subscription(ns)
      let ended = false
      const done = Effect.fail(new Cause.NoSuchElementException())
      return Effect.suspend((): Effect.Effect<ReadonlyArray<ReplicaEvent>, Cause.NoSuchElementException> =>
        ended ? done : Effect.flatMap(takeAvailable(mailbox), (taken) => {
          const end = taken.indexOf(END)
          if (end < 0) return Effect.succeed(taken as ReadonlyArray<ReplicaEvent>)
          ended = true
          return end === 0 ? done : Effect.succeed(taken.slice(0, end) as ReadonlyArray<ReplicaEvent>)
        })
      )
    })

  const subscribeSink: ReplicaService["subscribeSink"] = (ns, sink, options) =>
    Effect.gen(function*() {
      const r = yield* getOpen(ns)
      // Its own entry (the same sink may be registered twice); a defect in it must not stop the actor.
      const entry = (event: ReplicaEvent) =>
        Effect.catchAllCause(sink(event), (cause) => Effect.logError("replica event sink failed", cause))
      const set = options?.counted === false ? r.probes : r.sinks
      set.add(entry)
      yield* Effect.addFinalizer(() => Effect.sync(() => set.delete(entry)))
    })

  const requireOpen = <A, E>(ns: NamespaceId, effect: Effect.Effect<A, E>) => Effect.zipRight(getOpen(ns), effect)

  return Replica.of({
    createAuthor,
    importAuthor,
    exportAuthor: store.getAuthor,
    deleteAuthor,
    listAuthors: store.listAuthors,
    importNamespace,
    createReplica,
    listReplicas: store.listNamespaces,
    contentHashes: store.contentHashes,
    flush: submit(Effect.void),
    open,
    close,
    state,
    setSync,
    capability: (ns) => Effect.map(getOpen(ns), (r) => r.capability),
    subscribe,
    subscribePull,
    subscribeSink,
    insertLocal,
    deletePrefix,
    insertRemote,
    insertRemoteMany,
    prepareRemoteMany,
    getExact: (ns, author, key, includeEmpty = false) =>
      requireOpen(ns, store.getExact(ns, author, key, includeEmpty)),
    getMany: (ns, query) => Stream.unwrap(Effect.as(getOpen(ns), store.getMany(ns, query))),
    exportSecretKey: (ns) => Effect.flatMap(getOpen(ns), (r) => Capability.secretKey(r.capability)),
    dropReplica,
    registerUsefulPeer: (ns, peer) => submit(store.registerUsefulPeer(ns, peer)),
    getSyncPeers: (ns) => requireOpen(ns, store.getSyncPeers(ns)),
    setDownloadPolicy: (ns, policy) =>
      submit(store.setDownloadPolicy(ns, policy), () =>
        Effect.sync(() => {
          const r = replicas.get(hex(ns))
          if (r !== undefined) r.policy = policy
        })),
    // An open replica's policy is cached (kept current by setDownloadPolicy): no read per gossiped write.
    getDownloadPolicy: (ns) => {
      const r = replicas.get(hex(ns))
      return r === undefined ? store.getDownloadPolicy(ns) : Effect.succeed(r.policy)
    },
    hasNewsForUs: store.hasNewsForUs,
    getLatestForEachAuthor: store.getLatestForEachAuthor,
    setLive: store.setLive,
    listLive: store.listLive,
    addWanted: store.addWanted,
    removeWanted: store.removeWanted,
    listWanted: store.listWanted,
    countWanted: store.countWanted,
    clearWanted: store.clearWanted
  })
})

export const layer: Layer.Layer<Replica, never, Store.Store | Crypto.Crypto> = Layer.scoped(Replica, make)
