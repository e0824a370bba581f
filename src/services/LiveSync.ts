/**
 * The live engine (spec 05): keeps a gossip topic per live document, runs direct sync sessions with its peers,
 * downloads entry content through the blob downloader and publishes `LiveEvent`s to subscribers.
 *
 * A pure core and a thin shell. The core (`LiveSync/SyncState.ts`: per-peer sync state and the tie-break;
 * `LiveSync/ContentQueue.ts`: wanted content, providers, downloads) is plain data and functions that return
 * decisions. This module is the shell: one actor fiber owns the core and reads one inbox (API commands, accept
 * decisions, gossip events, replica insert events, completions of sessions and downloads, in the order they occur,
 * spec 05 §3.1 suggestion) and executes the core's decisions. Keyed background work lives in `FiberMap`s: sessions,
 * redials and sync retries per document (in the document's scope, so `leave` interrupts them), downloads and their
 * timed retries per hash. Every timer is a `Schedule`, so `TestClock` drives it.
 *
 * Order (finding 8): a session's completion is posted only after the document's insert-event fiber handled every
 * insert event the replica published before the session ended (a per-document count, see `Doc.published`), so every
 * download a session caused is queued before its `SyncFinished`; and a successful session announces its peer
 * (`NeighborUp`, once per neighborhood) before its `SyncFinished`, on both sides.
 *
 * Flood (finding 4): every queue filled from the network is bounded and what it drops is counted. A document's gossip
 * intake holds at most `gossipIntake` Puts not yet inserted (drained in batches by an inserter, so a flood is verified
 * in large rounds on the crypto workers); Puts beyond it are dropped (`gossip_put_dropped`), as are events Gossip's
 * own queue could not hold (`gossip_events_lagged`) and ContentReady/SyncReport Ops while the inbox is full
 * (`gossip_ops_dropped`). The nodes they came from are synced with (reason `SyncReport`, through the core: one
 * session per pair, a running one re-runs) once the intake drains, so every valid Put is still stored. A busy intake
 * yields to the event loop between takes and batches, so the node keeps answering. The inbox's other commands are
 * bounded by their sources: API calls wait for their answer, completions by the sessions and downloads running, and
 * `Replica` commands (one per remote insert whose content is wanted and missing) by the inserts themselves; a bound
 * that made their poster wait would deadlock (the actor waits on the replica, whose events wait on the poster).
 *
 * Restart (finding 3): the live set is kept in the store; at start the engine resumes each live document with its
 * stored peers. A failed session we started is retried with jittered exponential backoff until a session with the peer
 * succeeds (ours, or the one it starts with us) or the document leaves, with one WARN line per failed step. A step
 * the peer refuses with AlreadySyncing (it is syncing with us itself) is no success (counted, `sync_retry_refused`):
 * the peer may not reach us at all (behind a NAT, it may not know our current relay circuit), so the next step comes
 * unless its session succeeded. A peer cooling down after invalid entries ends the retries.
 *
 * Deviations from the reference, all listed as suggestions or quirks in spec 05:
 * - undecodable gossip is counted and skipped by the Gossip service; the topic keeps working (§8.2);
 * - `ContentReady` goes to every document that waited on the hash (§9.3);
 * - the empty hash is never downloaded;
 * - wanted content is not forgotten: it is kept in the store (a bounded working set in memory) and offered, a page at
 *   a time, to each peer that finishes a sync with us; after a restart the wanted set of a document is recomputed
 *   from its entries when it goes live;
 * - a useful peer's addresses are kept in the AddressBook, so `startSync` can dial stored peers after a restart;
 * - a peer whose claims to have content failed `distrustAfter` downloads in a row (ContentQueue) no longer starts a
 *   download by claiming (finding 4: a writer flooding entries whose content it never has); its entries' content
 *   waits for a provider that announces it or a sync that offers it, and one download that succeeds with it clears it.
 */
import {
  Cause,
  Clock,
  Context,
  Deferred,
  Duration,
  Effect,
  Exit,
  ExecutionStrategy,
  FiberMap,
  Layer,
  Mailbox,
  Metric,
  Option,
  Schedule,
  Schema,
  Scope,
  Stream,
  SubscriptionRef
} from "effect"
import { blake3 } from "../internal/blake3.js"
import { equals as bytesEqual, fromHex, toHex } from "../internal/bytes.js"
import { takeOrInterrupt } from "../internal/mailbox.js"
import { trusted } from "../internal/trusted.js"
import * as AuthorHeads from "../schema/AuthorHeads.js"
import type { DownloadFailed } from "../schema/BlobErrors.js"
import { type ContentStatus, EMPTY, type SignedEntry } from "../schema/Entry.js"
import type { ReplicaNotFound, ReplicaNotOpen, StoreError } from "../schema/Errors.js"
import type { RemoteInsert, ReplicaEvent } from "../schema/Events.js"
import * as ContentQueue from "./LiveSync/ContentQueue.js"
import * as SyncState from "./LiveSync/SyncState.js"
import { type Hash, NamespaceId } from "../schema/Keys.js"
import * as LiveEvent from "../schema/LiveEvent.js"
import { NodeAddr, NodeId, nodeIdEquals } from "../schema/NodeAddr.js"
import * as Op from "../schema/Op.js"
import { Query } from "../schema/Query.js"
import type { AcceptError, ConnectError } from "../schema/SyncErrors.js"
import * as DownloadPolicy from "../schema/DownloadPolicy.js"
import * as AddressBook from "./AddressBook.js"
import * as Blobs from "./Blobs.js"
import * as BlobTransfer from "./BlobTransfer.js"
import * as Gossip from "./Gossip.js"
import * as Membership from "./Membership.js"
import * as Network from "./Network.js"
import * as Ranger from "./Ranger.js"
import * as Replica from "./Replica.js"
import * as Store from "./Store.js"
import * as Sync from "./Sync.js"

/** Events buffered per subscriber before the engine and the replica wait for it (spec 05 §10.2). */
export const SUBSCRIBER_CAPACITY = 1024
/** Gossip Ops queued for publishing before the engine waits, and publishes in flight at once. */
const OUTBOX_CAPACITY = 1024
const PUBLISH_CONCURRENCY = 4
/** Batches of gossiped entries being inserted at once per document (the replica pipelines two batches). */
const INSERT_PIPELINE = 2
/** A pause of zero on the Clock: a turn of the event loop (its timers phase), so pending I/O runs first. */
const macrotaskYield = Effect.sleep(Duration.zero)

/** Largest batch of gossiped entries inserted at once (one verification round, one transaction). */
const INSERT_BATCH_MAX = 256

/**
 * Gossiped Puts of one document taken in and not yet inserted, at most. Puts beyond it are dropped and counted
 * (`gossip_put_dropped`); the nodes that relayed them are synced with once the intake drains (reason `SyncReport`),
 * so every valid Put is still stored, by the sync, which verifies in large batches on the worker pool.
 */
export const DEFAULT_GOSSIP_INTAKE = 1024

/**
 * Commands in the engine's inbox from which gossiped ContentReady and SyncReport Ops are dropped (counted in
 * `gossip_ops_dropped`, their publisher resynced once the intake drains) instead of posted: the receive loop never
 * waits for the actor, so without it a peer gossiping such Ops faster than the actor handles them grew the inbox.
 */
export const INBOX_GOSSIP_MAX = 4096

/**
 * Remote inserts whose content is wanted (Replica commands) the engine's inbox holds at most; at this many the
 * documents' insert-event fibers wait until the actor handled half of them (counted in `inbox_replica_waits`). The wait
 * reaches the replica (its bounded subscription fills) and so the inserts and the peers behind them. Without it a
 * flood of entries whose content is missing (finding 4) queued one command per entry: the flood bench's heap held
 * ~9k of them at its end.
 */
export const INBOX_REPLICA_MAX = 1024

/**
 * After a neighbor of a live document goes away (its connection dropped, e.g. libp2p's connection monitor aborts a
 * connection whose ping timed out under load), it is dialed again after this pause, doubling (jittered) per attempt,
 * until it is a neighbor again or {@link REDIAL_ATTEMPTS} dials were made; the sync on NeighborUp then fetches what
 * gossip lost.
 */
export const REDIAL_DELAY: Duration.Duration = Duration.millis(500)
export const REDIAL_ATTEMPTS = 5

/** Wanted hashes of a document offered to one new candidate provider at a time (a page of the store's wanted set). */
export const RETRY_BATCH = 256

/** Pause before a failed download is tried again with the providers known by then; doubles (jittered) per attempt. */
export const DEFAULT_DOWNLOAD_RETRY_DELAY: Duration.Duration = Duration.seconds(1)
/** Timed retries of one failed download; after them only a new provider (sync, ContentReady, neighbor) retries it. */
export const DEFAULT_DOWNLOAD_RETRIES = 6
/** Hashes with timed download retries pending at once; others wait for a new provider. */
export const MAX_DOWNLOAD_RETRIES_PENDING = 256

/** A failed session we started is tried again after this pause, doubling (jittered) per failure up to the max. */
export const DEFAULT_SYNC_RETRY_DELAY: Duration.Duration = Duration.seconds(1)
export const DEFAULT_SYNC_RETRY_MAX: Duration.Duration = Duration.minutes(2)

/** Wanted hashes gathered before they are written to the store in one transaction. */
const REMEMBER_BATCH = 1024

/** Peers per document announced by a session before gossip knew them (see `Doc.gossipPending`). */
const MAX_GOSSIP_PENDING = 256

/** Waiting for a document's insert events to be handled before a session's completion is posted (finding 8). */
const INTAKE_WAIT: Duration.Duration = Duration.seconds(10)

/**
 * Content of at most this many bytes travels inside the gossiped Put (Op variant 3), so receivers need no download
 * stream for small values. A Put that would exceed the gossip message limit with its content goes without it.
 */
export const DEFAULT_INLINE_CONTENT_MAX = 4096

export interface LiveSyncConfig {
  /** Default {@link DEFAULT_DOWNLOAD_RETRY_DELAY}. */
  readonly downloadRetryDelay?: Duration.DurationInput
  /** Default {@link DEFAULT_DOWNLOAD_RETRIES}. */
  readonly downloadRetries?: number
  /** Largest content gossiped inline with its entry; 0 turns it off. Default {@link DEFAULT_INLINE_CONTENT_MAX}. */
  readonly inlineContentMax?: number
  /** First pause before a failed sync is retried. Default {@link DEFAULT_SYNC_RETRY_DELAY}. */
  readonly syncRetryDelay?: Duration.DurationInput
  /** Longest pause between sync retries. Default {@link DEFAULT_SYNC_RETRY_MAX}. */
  readonly syncRetryMax?: Duration.DurationInput
  /** Bounds of the content queue (downloads in flight, wanted hashes in memory, providers per hash). */
  readonly content?: Partial<ContentQueue.Config>
  /** Peer states kept per document. Default {@link SyncState.DEFAULT_MAX_PEERS}. */
  readonly maxPeersPerDoc?: number
  /** Resume the documents that were live when the node stopped (finding 3). Default true. */
  readonly resume?: boolean
  /** Gossiped Puts per document taken in and not yet inserted. Default {@link DEFAULT_GOSSIP_INTAKE}. */
  readonly gossipIntake?: number
  /** Inbox size from which gossiped ContentReady and SyncReport Ops are dropped. Default {@link INBOX_GOSSIP_MAX}. */
  readonly inboxGossipMax?: number
}

export interface LiveSyncService {
  /**
   * Makes `ns` live (opens it with sync on: one handle, one subscriber), joins its gossip topic with `peers` and the
   * stored useful peers, and syncs with each. On a document that is already live, only adds peers (spec 05 §5).
   */
  readonly startSync: (
    ns: NamespaceId,
    peers: ReadonlyArray<NodeAddr>
  ) => Effect.Effect<void, ReplicaNotFound | StoreError>
  /** Stops gossip and sync for `ns` (closing the handle `startSync` took); `killSubscribers` ends event streams. */
  readonly leave: (ns: NamespaceId, killSubscribers: boolean) => Effect.Effect<void>
  /**
   * The document's events from now on: insert events of the replica (needs it open) merged with the engine's. The
   * subscription is in place when this returns and ends with the scope; the stream ends on `leave(ns, true)`, on
   * shutdown, or when the replica closes its last handle (then only its insert half ends).
   */
  readonly subscribe: (ns: NamespaceId) => Effect.Effect<Stream.Stream<LiveEvent.LiveEvent>, ReplicaNotOpen, Scope.Scope>
  readonly isLive: (ns: NamespaceId) => Effect.Effect<boolean>
  /** The node's counters (spec 05 §14 names, plus sync and gossip traffic). */
  readonly metrics: Effect.Effect<Readonly<Record<string, number>>>
}

export class LiveSync extends Context.Tag("docs/LiveSync")<LiveSync, LiveSyncService>() {}

// ---------------------------------------------------------------------------------------------------------------
// Metrics (spec 05 §14), tagged with the node id so several nodes in one process keep their own counts.

export const COUNTERS = [
  "new_entries_local",
  "new_entries_remote",
  "new_entries_local_size",
  "new_entries_remote_size",
  "sync_via_accept_success",
  "sync_via_accept_failure",
  "sync_via_connect_success",
  "sync_via_connect_failure",
  "sync_entries_sent",
  "sync_entries_received",
  "sync_entries_invalid",
  "sync_bytes_sent",
  "sync_bytes_received",
  "downloads_success",
  "downloads_failure",
  "download_bytes",
  "gossip_put_sent",
  "gossip_put_received",
  "gossip_inline_content_sent",
  "gossip_inline_content_received",
  "gossip_inline_content_rejected",
  "sync_retries",
  // Retry steps the peer refused with AlreadySyncing (it said it syncs with us itself); the retries go on.
  "sync_retry_refused",
  // Gossiped Puts dropped by the bounded intake, and gossip events Gossip dropped for the engine; both resync.
  "gossip_put_dropped",
  "gossip_events_lagged",
  "gossip_ops_dropped",
  "gossip_lag_resyncs", // syncs asked for by the above (one per node and drain; one runs per pair)
  // Times a document's insert-event fiber waited for room in the inbox (INBOX_REPLICA_MAX Replica commands queued).
  "inbox_replica_waits",
  "actor_tick_main",
  // The engine's loop ticks by source (spec 05 §14 names; our one inbox carries every source).
  "doc_live_tick_main",
  "doc_live_tick_actor",
  "doc_live_tick_replica_event",
  "doc_live_tick_running_sync_connect",
  "doc_live_tick_running_sync_accept",
  "doc_live_tick_pending_downloads"
] as const
export type CounterName = (typeof COUNTERS)[number]

/** Read from the engine's core (and Gossip's inbound bound): what its bounds dropped, and how full they are now. */
export const GAUGES = [
  "live_peers_evicted",
  "live_peers_refused",
  "wanted_overflow",
  "providers_dropped",
  // Claims to have content not acted on: their sender's downloads failed too often in a row (LiveSync/ContentQueue.ts).
  "content_claims_ignored",
  "downloads_in_flight",
  "wanted_in_memory",
  // Gossip's inbound bound (Gossip/gossipsubAdapter.ts): pauses of a peer's stream, most bytes held from one peer.
  "gossip_inbound_paused",
  "gossip_inbound_peak_bytes",
  // Replica commands (remote inserts whose content is wanted) in the inbox now, at most INBOX_REPLICA_MAX.
  "inbox_replica_queued"
] as const
export type GaugeName = (typeof GAUGES)[number]

const makeCounters = (node: string) => {
  const counters = {} as Record<CounterName, Metric.Metric.Counter<number>>
  for (const name of COUNTERS) counters[name] = Metric.counter(`rangedocs_${name}`).pipe(Metric.tagged("node", node))
  return counters
}

// ---------------------------------------------------------------------------------------------------------------
// Shell state

type Origin = LiveEvent.Origin

interface Doc {
  readonly ns: NamespaceId
  /** Owns the replica subscriptions, the gossip receive loop, the wanted-content scan and the keyed work below. */
  readonly scope: Scope.CloseableScope
  /** Running sessions we started, by peer. */
  readonly sessions: FiberMap.FiberMap<string>
  /** Redials of neighbors that went away, by peer. */
  readonly redials: FiberMap.FiberMap<string>
  /** Backoff loops of failed sessions we started, by peer. */
  readonly retries: FiberMap.FiberMap<string>
  /** Insert events the replica published to this document's engine subscription, and how many were handled. */
  published: number
  readonly handled: SubscriptionRef.SubscriptionRef<number>
  /** Where the next page of the stored wanted set starts. */
  cursor: Hash | undefined
  /**
   * Peers that were no gossip neighbors when a session with them started, with `inserts` at that moment and the
   * remote inserts they delivered since: an entry we got since then from anyone else may have missed them (the
   * session's snapshot is older; our Put or SyncReport for it reached only the gossip neighbors we had), so gossip's
   * NeighborUp syncs again only if there was one. Entries from the peer itself are no news for it.
   */
  readonly gossipPending: Map<string, GapMark>
  /** Inserts the document's event fiber handled, local (published to gossip) and remote. */
  inserts: number
  /** Peers gossip announced (its NeighborUp), until their NeighborDown. */
  readonly gossipUp: Set<string>
}

/** Gossiped Puts relayed by one node, inserted together. */
interface IntakeBatch {
  readonly from: NodeId
  readonly entries: Array<readonly [SignedEntry, ContentStatus]>
  /** Verified inline content of the batch's entries: key → content. */
  readonly contents: Array<readonly [Uint8Array, Uint8Array]>
}

/** A document's gossip intake: Puts taken in and not yet inserted (bounded), and whose dropped gossip to fetch by sync. */
interface Intake {
  readonly max: number
  /** Puts in `batches` or being inserted. */
  pending: number
  /** Waiting for the inserter, oldest first. */
  readonly batches: Array<IntakeBatch>
  /** Open while `batches` is not empty. */
  readonly ready: Effect.Latch
  /** Nodes whose gossip was dropped since the last resync was asked for, at most {@link Gossip.MAX_LAGGED_PEERS}. */
  readonly lagging: Map<string, NodeId>
}

const noteLagging = (intake: Intake, peer: NodeId) => {
  if (intake.lagging.size < Gossip.MAX_LAGGED_PEERS) intake.lagging.set(toHex(peer), peer)
}

type Command =
  | { readonly _tag: "StartSync"; readonly ns: NamespaceId; readonly peers: ReadonlyArray<NodeAddr>; readonly done: Deferred.Deferred<void, ReplicaNotFound | StoreError> }
  | { readonly _tag: "Leave"; readonly ns: NamespaceId; readonly kill: boolean; readonly done: Deferred.Deferred<void> }
  | { readonly _tag: "Subscribe"; readonly ns: NamespaceId; readonly sink: Mailbox.Mailbox<LiveEvent.LiveEvent> }
  | { readonly _tag: "Accept"; readonly ns: NamespaceId; readonly peer: NodeId; readonly done: Deferred.Deferred<Sync.AcceptOutcome> }
  | { readonly _tag: "NeighborUp"; readonly ns: NamespaceId; readonly peer: NodeId }
  | { readonly _tag: "NeighborDown"; readonly ns: NamespaceId; readonly peer: NodeId }
  | { readonly _tag: "SyncReport"; readonly ns: NamespaceId; readonly from: NodeId; readonly heads: Uint8Array }
  | { readonly _tag: "Lagged"; readonly ns: NamespaceId; readonly peers: ReadonlyArray<NodeId> }
  | { readonly _tag: "ContentReadyFrom"; readonly ns: NamespaceId; readonly node: NodeId; readonly hash: Hash }
  | { readonly _tag: "Replica"; readonly ns: NamespaceId; readonly event: RemoteInsert }
  | {
    readonly _tag: "Connected"
    readonly ns: NamespaceId
    readonly peer: NodeId
    readonly reason: LiveEvent.SyncReason
    readonly session: number
    readonly exit: Exit.Exit<Sync.SyncFinished, ConnectError>
    readonly done: Deferred.Deferred<boolean> | undefined
  }
  | { readonly _tag: "Accepted"; readonly exit: Exit.Exit<Sync.SyncFinished, AcceptError> }
  | { readonly _tag: "Downloaded"; readonly hash: Hash; readonly exit: Exit.Exit<Blobs.Added, DownloadFailed> }
  | { readonly _tag: "Offer"; readonly ns: NamespaceId; readonly peer: NodeId; readonly hashes: ReadonlyArray<Hash> }
  | { readonly _tag: "ScanDone"; readonly ns: NamespaceId }
  | { readonly _tag: "RetryDownload"; readonly hash: Hash; readonly done: Deferred.Deferred<boolean> }
  | { readonly _tag: "RetrySync"; readonly ns: NamespaceId; readonly peer: NodeId; readonly done: Deferred.Deferred<boolean> }

const isEmptyHash = (hash: Uint8Array) => bytesEqual(hash, EMPTY)
const EMPTY_HEX = toHex(EMPTY)

/** Inline content of a gossiped Put is the entry's content: same length, same BLAKE3 hash. */
const inlineMatches = (entry: SignedEntry, content: Uint8Array): boolean =>
  BigInt(content.length) === entry.entry.record.len && bytesEqual(blake3(content), entry.entry.record.hash)

/**
 * The document and peer of a failed accepted session that ran. Refused sessions (`SyncRejected`) and a peer cooling
 * down after too many invalid entries (`PeerCoolingDown`) never took the pair's state; Sync logged them already.
 */
const acceptedSessionOf = (error: AcceptError): { readonly ns: NamespaceId; readonly peer: NodeId } | undefined => {
  if (error._tag === "SyncRejected" || error._tag === "PeerCoolingDown" || error.namespace === undefined) return undefined
  return { ns: error.namespace, peer: error.peer }
}

/** A peer's mark in `Doc.gossipPending`: the document's `inserts` then, and the remote inserts it delivered since. */
interface GapMark {
  readonly base: number
  fromPeer: number
}

/** The typed error a session ended with, if it failed with one. */
const failureOf = <E>(exit: Exit.Exit<unknown, E>): E | undefined =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) : undefined

/** We did not start a session with the peer: it is cooling down after too many invalid entries. */
const isCoolingDown = (exit: Exit.Exit<unknown, ConnectError | AcceptError>): boolean =>
  failureOf(exit)?._tag === "PeerCoolingDown"

/**
 * A session we started that never ran: the peer runs one with us already (`AlreadySyncing`, spec 05 §7: ignored), or
 * the peer is cooling down after too many invalid entries (no session is started with it until the cool-down ends).
 */
const isAlreadySyncing = (exit: Exit.Exit<unknown, ConnectError>): boolean => {
  const error = failureOf(exit)
  return (error?._tag === "RemoteAbort" && error.reason === "AlreadySyncing") || isCoolingDown(exit)
}

/** Runs `attempt` after each step of `schedule` (its delays slept on the Clock) until it returns true or the schedule ends. */
const withBackoff = <Out, R>(schedule: Schedule.Schedule<Out, unknown, R>, attempt: Effect.Effect<boolean>) =>
  Effect.gen(function*() {
    const driver = yield* Schedule.driver(schedule)
    while (true) {
      const step = yield* Effect.option(driver.next(undefined))
      if (Option.isNone(step)) return
      if (yield* attempt) return
    }
  })

/** Exponential from `base`, capped at `max`, each delay jittered (×0.8–1.2). */
export const backoff = (base: Duration.DurationInput, max: Duration.DurationInput) =>
  Schedule.exponential(base).pipe(Schedule.union(Schedule.spaced(max)), Schedule.jittered)

export const make = (config: LiveSyncConfig = {}) =>
  Effect.gen(function*() {
    const replica = yield* Replica.Replica
    const network = yield* Network.Network
    const gossip = yield* Gossip.Gossip
    const membership = yield* Membership.Membership
    const blobs = yield* Blobs.Blobs
    const transfer = yield* BlobTransfer.BlobTransfer
    const addressBook = yield* AddressBook.AddressBook
    const me = network.nodeId
    const meHex = toHex(me)
    const counters = makeCounters(meHex.slice(0, 16))
    const count = (name: CounterName, by = 1) => Effect.sync(() => counters[name].unsafeUpdate(by, []))

    const serviceScope = yield* Effect.scope
    // Mailboxes, not Queues, on the write path: a Queue made every message survive V8's scavenges (internal/mailbox.ts).
    const inbox = yield* Mailbox.make<Command>()
    const post = (command: Command) => inbox.offer(command)
    const inboxGossipMax = config.inboxGossipMax ?? INBOX_GOSSIP_MAX
    const inboxFull = () => Option.getOrElse(inbox.unsafeSize(), () => 0) >= inboxGossipMax
    /** Replica commands in the inbox, and the latch insert-event fibers wait on at INBOX_REPLICA_MAX of them. */
    let replicaQueued = 0
    const replicaRoom = yield* Effect.makeLatch(true)
    const postReplica = (ns: NamespaceId, event: RemoteInsert): Effect.Effect<void> =>
      Effect.suspend(() => {
        if (replicaQueued < INBOX_REPLICA_MAX) {
          replicaQueued++
          return post({ _tag: "Replica", ns, event })
        }
        replicaRoom.unsafeClose()
        return count("inbox_replica_waits").pipe(
          Effect.zipRight(replicaRoom.await),
          Effect.zipRight(Effect.suspend(() => postReplica(ns, event)))
        )
      })
    /** The actor took a Replica command: once half of the bound is free the waiting fibers go on. */
    const replicaTaken = () => {
      replicaQueued--
      if (replicaQueued <= INBOX_REPLICA_MAX / 2) replicaRoom.unsafeOpen()
    }
    const downloads = yield* FiberMap.make<string>()
    const downloadRetries = yield* FiberMap.make<string>()
    /**
     * A timed retry waits for the outcome of the download it started, so that its loop (and its count of attempts)
     * lives until its last attempt ended: a failure while the loop runs starts no second loop.
     */
    const retryWaiters = new Map<string, Deferred.Deferred<boolean>>()

    // -- the core, touched by the actor fiber only
    const states = SyncState.make(meHex, config.maxPeersPerDoc ?? SyncState.DEFAULT_MAX_PEERS)
    const content = ContentQueue.make<NodeId>({ ...ContentQueue.defaultConfig, ...config.content })
    const docs = new Map<string, Doc>()
    const subscribers = new Map<string, Set<Mailbox.Mailbox<LiveEvent.LiveEvent>>>()
    const retryDelay = Duration.decode(config.downloadRetryDelay ?? DEFAULT_DOWNLOAD_RETRY_DELAY)
    const maxRetries = config.downloadRetries ?? DEFAULT_DOWNLOAD_RETRIES
    const inlineMax = config.inlineContentMax ?? DEFAULT_INLINE_CONTENT_MAX
    const gossipIntake = config.gossipIntake ?? DEFAULT_GOSSIP_INTAKE
    const syncBackoff = backoff(
      config.syncRetryDelay ?? DEFAULT_SYNC_RETRY_DELAY,
      config.syncRetryMax ?? DEFAULT_SYNC_RETRY_MAX
    )
    const downloadBackoff = Schedule.exponential(retryDelay).pipe(
      Schedule.jittered,
      Schedule.intersect(Schedule.recurs(Math.max(0, maxRetries)))
    )
    const redialBackoff = Schedule.exponential(REDIAL_DELAY).pipe(
      Schedule.jittered,
      Schedule.intersect(Schedule.recurs(REDIAL_ATTEMPTS))
    )
    let shuttingDown = false

    // -- sync (spec 04) with the engine's accept decision
    const sync = yield* Sync.Sync
    yield* sync.serve({
      accept: (ns, peer) =>
        Effect.flatMap(Deferred.make<Sync.AcceptOutcome>(), (done) =>
          Effect.zipRight(post({ _tag: "Accept", ns, peer, done }), Deferred.await(done))),
      onAccepted: (exit) =>
        Effect.zipRight(
          Exit.isSuccess(exit) ? intakeDone(exit.value.namespace) : Effect.void,
          post({ _tag: "Accepted", exit })
        )
    })

    /**
     * Waits until the document's insert-event fiber handled every event the replica published so far (finding 8):
     * the inserts of a session that just ended are published before its last insert returned.
     */
    const intakeDone = (ns: NamespaceId): Effect.Effect<void> =>
      Effect.suspend(() => {
        const doc = docs.get(toHex(ns))
        if (doc === undefined) return Effect.void
        const target = doc.published
        return doc.handled.changes.pipe(
          Stream.takeUntil((n) => n >= target),
          Stream.runDrain,
          Effect.timeoutOption(INTAKE_WAIT),
          Effect.asVoid
        )
      })

    // -- events

    /** Offers to a subscriber's mailbox (waits while it is full); `false` when its consumer went away. */
    const offerTo = (sink: Mailbox.Mailbox<LiveEvent.LiveEvent>, event: LiveEvent.LiveEvent) => sink.offer(event)

    const emit = (nsHex: string, event: LiveEvent.LiveEvent) =>
      Effect.gen(function*() {
        const sinks = subscribers.get(nsHex)
        if (sinks === undefined) return
        for (const sink of sinks) {
          if (!(yield* offerTo(sink, event))) sinks.delete(sink)
        }
        if (sinks.size === 0) subscribers.delete(nsHex)
      })

    const dropSubscribers = (nsHex: string) =>
      Effect.gen(function*() {
        const sinks = subscribers.get(nsHex)
        subscribers.delete(nsHex)
        if (sinks !== undefined) for (const sink of sinks) yield* sink.shutdown
      })

    /** A local Put with small content carries it (read here, in the publisher, not in the actor). */
    const withInlineContent = (op: Op.Op): Effect.Effect<Op.Op> => {
      if (op._tag !== "Put" || op.content !== undefined) return Effect.succeed(op)
      const len = op.entry.record.len
      if (len === 0n || len > BigInt(inlineMax)) return Effect.succeed(op)
      return blobs.read(op.entry.record.hash).pipe(
        Effect.map((content): Op.Op => trusted(Op.Put.prototype, { entry: op.entry, content, _tag: "Put" })),
        Effect.tap(() => count("gossip_inline_content_sent")),
        Effect.orElseSucceed(() => op)
      )
    }

    // Publishing (encode, sign, send) takes milliseconds: a few publishes run at once, each in a fiber of its caller.
    // Local inserts publish straight from the document's event fiber (which the semaphore slows down when the swarm
    // cannot keep up); the actor only queues its Ops (ContentReady, SyncReport) for a publisher fiber, so it never
    // waits for a publish slot.
    const publishing = yield* Effect.makeSemaphore(PUBLISH_CONCURRENCY)
    const publish = (ns: NamespaceId, op: Op.Op) =>
      publishing.take(1).pipe(
        Effect.zipRight(
          withInlineContent(op).pipe(
            Effect.flatMap((op) => gossip.broadcast(ns, op)),
            Effect.catchAllCause((cause) => Effect.logDebug("gossip broadcast failed", cause)),
            Effect.ensuring(publishing.release(1)),
            Effect.fork
          )
        ),
        Effect.asVoid
      )
    const outbox = yield* Mailbox.make<readonly [NamespaceId, Op.Op]>({ capacity: OUTBOX_CAPACITY, strategy: "suspend" })
    yield* takeOrInterrupt(outbox).pipe(
      Effect.flatMap(([ns, op]) => publish(ns, op)),
      Effect.forever,
      Effect.forkScoped
    )
    const broadcast = (ns: NamespaceId, op: Op.Op) => outbox.offer([ns, op] as const)

    // -- sessions (spec 05 §6)

    /** A fresh mark: nothing since now. */
    const markNow = (doc: Doc): GapMark => ({ base: doc.inserts, fromPeer: 0 })
    /** Whether the document got entries, other than from the peer itself, since the peer's mark. */
    const newsSince = (doc: Doc, mark: GapMark) => doc.inserts - mark.base - mark.fromPeer > 0
    /** Marks a peer no gossip neighbor yet at a session's start (see `Doc.gossipPending`). */
    const watchGossipGap = (doc: Doc, peerHex: string) => {
      const state = SyncState.peer(states, toHex(doc.ns), peerHex)
      if (state?.neighbor !== true && !doc.gossipPending.has(peerHex) && doc.gossipPending.size < MAX_GOSSIP_PENDING) {
        doc.gossipPending.set(peerHex, markNow(doc))
      }
    }

    /** Starts a session with `peer` if the core allows it; `done` learns whether it succeeded (a retry's attempt). */
    const syncWithPeer = (
      doc: Doc,
      peer: NodeId,
      reason: LiveEvent.SyncReason,
      done?: Deferred.Deferred<boolean>
    ): Effect.Effect<void> =>
      Effect.gen(function*() {
        const peerHex = toHex(peer)
        const session = shuttingDown
          ? undefined
          : SyncState.startConnect(states, toHex(doc.ns), peerHex, reason, yield* Clock.currentTimeMillis)
        if (session === undefined) {
          // Already running (its end decides), not live, or no room: a retry tries again at its next step.
          if (done !== undefined) yield* Deferred.succeed(done, !docs.has(toHex(doc.ns)))
          return
        }
        const ns = doc.ns
        watchGossipGap(doc, peerHex)
        const target = yield* addressBook.lookup(peer)
        yield* FiberMap.run(
          doc.sessions,
          peerHex,
          Effect.exit(sync.syncWith(ns, target.addrs.length > 0 ? target : peer)).pipe(
            Effect.tap(() => intakeDone(ns)),
            Effect.flatMap((exit) => post({ _tag: "Connected", ns, peer, reason, session, exit, done }))
          )
        )
      })

    /** Retries the sessions with `peer` with backoff until one with it succeeds or the document leaves (in its scope). */
    const scheduleRetry = (doc: Doc, peer: NodeId) =>
      FiberMap.run(
        doc.retries,
        toHex(peer),
        withBackoff(
          syncBackoff,
          Effect.flatMap(Deferred.make<boolean>(), (done) =>
            Effect.zipRight(post({ _tag: "RetrySync", ns: doc.ns, peer, done }), Deferred.await(done)))
        ),
        { onlyIfMissing: true }
      )

    /** Dials a neighbor that went away until it is one again (for gossip, or for the engine after a session with it). */
    const scheduleRedial = (doc: Doc, peer: NodeId) =>
      FiberMap.run(
        doc.redials,
        toHex(peer),
        withBackoff(
          redialBackoff,
          Effect.gen(function*() {
            const current = yield* gossip.neighbors(doc.ns)
            if (current.some((id) => toHex(id) === toHex(peer))) return true
            // Back as the engine announced it (a session with it succeeded): gossip's own NeighborUp follows when
            // the peer's subscription arrives, and the adopted peer's NeighborDown if it never does.
            if (SyncState.peer(states, toHex(doc.ns), toHex(peer))?.neighbor === true) return true
            yield* gossip.join(doc.ns, [yield* addressBook.lookup(peer)])
            return false
          })
        )
      )

    // -- content (spec 05 §9), decisions of the content queue

    const contentStatus = (hash: Hash) => blobs.status(hash).pipe(Effect.orElseSucceed(() => "Missing" as const))

    const execute = (decisions: ReadonlyArray<ContentQueue.Decision>): Effect.Effect<void> =>
      Effect.gen(function*() {
        if (decisions.length === 0) return
        for (const d of decisions) {
          switch (d._tag) {
            case "Remember": {
              let hashes = remembering.get(d.ns)
              if (hashes === undefined) {
                hashes = new Map()
                remembering.set(d.ns, hashes)
              }
              if (!hashes.has(toHex(d.hash))) {
                hashes.set(toHex(d.hash), d.hash)
                rememberingSize++
              }
              break
            }
            case "Forget":
              for (const hashes of remembering.values()) if (hashes.delete(toHex(d.hash))) rememberingSize--
              yield* replica.removeWanted(d.hash).pipe(Effect.catchAll(logStoreFailure))
              break
            case "Download": {
              const hash = d.hash
              yield* FiberMap.run(
                downloads,
                toHex(hash),
                Effect.exit(transfer.download(hash, () => ContentQueue.providersOf(content, hash))).pipe(
                  Effect.flatMap((exit) => post({ _tag: "Downloaded", hash, exit }))
                )
              )
              break
            }
            case "Cancel": {
              const key = toHex(d.hash)
              yield* FiberMap.remove(downloads, key)
              retryWaiters.delete(key)
              yield* FiberMap.remove(downloadRetries, key)
              break
            }
            case "ContentReady": {
              yield* emit(d.ns, new LiveEvent.ContentReady({ hash: d.hash }, true))
              const doc = docs.get(d.ns)
              if (doc !== undefined) yield* broadcast(doc.ns, new Op.ContentReady({ hash: d.hash }, true))
              break
            }
            case "Drained":
              if (SyncState.takeMayEmitReady(states, d.ns)) yield* emit(d.ns, new LiveEvent.PendingContentReady())
              break
          }
        }
      })

    /**
     * Wanted hashes to remember in the store, written in batches (one transaction each) when enough gathered or the
     * inbox is empty: a statement per hash blocked the event loop under a flood. Bounded by REMEMBER_BATCH.
     */
    const remembering = new Map<string, Map<string, Hash>>()
    let rememberingSize = 0
    const flushRemembered = Effect.gen(function*() {
      if (rememberingSize === 0) return
      const batch = [...remembering]
      remembering.clear()
      rememberingSize = 0
      for (const [nsHex, hashes] of batch) {
        const doc = docs.get(nsHex)
        if (doc !== undefined) yield* replica.addWanted(doc.ns, [...hashes.values()]).pipe(Effect.catchAll(logStoreFailure))
      }
    })

    const logStoreFailure = (error: StoreError) => Effect.logWarning(`wanted content not stored: ${error.method}`)

    /**
     * Offers `peer` (it just synced with us) as a provider for a page of the document's stored wanted set; the pages
     * rotate, so a large set is offered in turn. Runs outside the actor (store and blob reads).
     */
    const offerWanted = (doc: Doc, peer: NodeId) =>
      Effect.gen(function*() {
        const page = yield* replica.listWanted(doc.ns, RETRY_BATCH, doc.cursor)
        doc.cursor = page.length < RETRY_BATCH ? undefined : page[page.length - 1]
        const missing: Array<Hash> = []
        for (const hash of page) {
          if ((yield* contentStatus(hash)) === "Complete") yield* replica.removeWanted(hash)
          else missing.push(hash)
        }
        if (missing.length > 0) yield* post({ _tag: "Offer", ns: doc.ns, peer, hashes: missing })
      }).pipe(
        Effect.catchAll(logStoreFailure),
        Effect.forkIn(doc.scope),
        Effect.asVoid
      )

    /** After a restart the wanted content of a live document comes from its entries (download policy applied). */
    const scanWanted = (ns: NamespaceId) =>
      Effect.gen(function*() {
        const policy = yield* replica.getDownloadPolicy(ns)
        let batch: Array<Hash> = []
        const seen = new Set<string>()
        yield* Stream.runForEach(replica.getMany(ns, Query.all()), (entry) =>
          Effect.gen(function*() {
            const hash = entry.contentHash
            const key = toHex(hash)
            if (key === EMPTY_HEX || seen.has(key) || !DownloadPolicy.matches(policy, entry.key)) return
            // Bounded: `seen` only deduplicates within a page of hashes.
            if (seen.size >= RETRY_BATCH * 4) seen.clear()
            seen.add(key)
            if ((yield* contentStatus(hash)) !== "Complete") batch.push(hash)
            if (batch.length >= RETRY_BATCH) {
              yield* replica.addWanted(ns, batch)
              batch = []
            }
          }))
        yield* replica.addWanted(ns, batch)
        yield* post({ _tag: "ScanDone", ns })
      }).pipe(Effect.catchAllCause((cause) =>
        Cause.isInterruptedOnly(cause) ? Effect.void : Effect.logWarning(`scanning wanted content failed: ${describeCause(cause)}`)
      ))

    const downloadFinished = (hash: Hash, exit: Exit.Exit<Blobs.Added, DownloadFailed>) =>
      Effect.gen(function*() {
        if (Exit.isSuccess(exit)) {
          yield* count("downloads_success")
          yield* count("download_bytes", exit.value.size)
          yield* FiberMap.remove(downloadRetries, toHex(hash))
        } else if (!Exit.isInterrupted(exit)) {
          yield* count("downloads_failure")
          yield* Effect.logDebug("download failed", Cause.squash(exit.cause))
        }
        yield* execute(ContentQueue.downloaded(content, hash, Exit.isSuccess(exit)))
        // Providers may have been busy or briefly away: try again later with the providers known by then.
        if (Exit.isFailure(exit) && !Exit.isInterrupted(exit) && !shuttingDown) {
          const size = yield* FiberMap.size(downloadRetries)
          if (size < MAX_DOWNLOAD_RETRIES_PENDING) {
            yield* FiberMap.run(
              downloadRetries,
              toHex(hash),
              withBackoff(
                downloadBackoff,
                Effect.flatMap(Deferred.make<boolean>(), (done) =>
                  Effect.zipRight(post({ _tag: "RetryDownload", hash, done }), Deferred.await(done)))
              ),
              { onlyIfMissing: true }
            )
          }
        }
        const waiter = retryWaiters.get(toHex(hash))
        if (waiter !== undefined) {
          retryWaiters.delete(toHex(hash))
          yield* Deferred.succeed(waiter, !Exit.isFailure(exit) || Exit.isInterrupted(exit))
        }
      })

    /**
     * The replica's insert events of a live document (spec 05 §9.1), handled in the document's own fiber as they
     * come: local inserts are broadcast at once, remote ones counted, and only an entry whose content the document
     * wants and lacks goes on to the actor (downloads). Posting every event to the actor cost a hop per write.
     */
    const onReplicaEvents = (doc: Doc, events: ReadonlyArray<ReplicaEvent>) =>
      Effect.gen(function*() {
        const ns = doc.ns
        // Counted once per batch of events, not per event (an Effect per counter and event cost more than the rest).
        let ticks = 0
        let local = 0
        let localSize = 0
        let remote = 0
        let remoteSize = 0
        let lastFrom: Uint8Array | undefined
        let lastFromHex = ""
        for (const event of events) {
          doc.inserts++
          if (event._tag === "LocalInsert") {
            ticks++
            local++
            localSize += Number(event.entry.record.len)
            yield* publish(ns, trusted(Op.Put.prototype, { entry: event.entry, _tag: "Put" }))
            continue
          }
          remote++
          remoteSize += Number(event.entry.record.len)
          if (doc.gossipPending.size > 0) {
            // A session's entries share one `from` array: its hex is computed once per run of them.
            if (event.from !== lastFrom) {
              lastFrom = event.from
              lastFromHex = toHex(event.from)
            }
            const pending = doc.gossipPending.get(lastFromHex)
            if (pending !== undefined) pending.fromPeer++
          }
          const hash = event.entry.contentHash
          const status = !event.shouldDownload || isEmptyHash(hash) ? "Complete" : yield* contentStatus(hash)
          if (status === "Complete") ticks++
          else yield* postReplica(ns, event)
        }
        yield* Effect.sync(() => {
          const add = (name: CounterName, by: number) => {
            if (by > 0) counters[name].unsafeUpdate(by, [])
          }
          add("doc_live_tick_replica_event", ticks)
          add("new_entries_local", local)
          add("new_entries_local_size", localSize)
          add("gossip_put_sent", local)
          add("new_entries_remote", remote)
          add("new_entries_remote_size", remoteSize)
        })
        yield* SubscriptionRef.update(doc.handled, (n) => n + events.length)
      })

    /** A remote entry whose content the document wants and did not have when it was inserted. */
    const onRemoteInsert = (ns: NamespaceId, event: RemoteInsert) =>
      Effect.gen(function*() {
        const nsHex = toHex(ns)
        if (!docs.has(nsHex) || isEmptyHash(event.entry.contentHash)) return
        const hash = event.entry.contentHash
        if ((yield* contentStatus(hash)) === "Complete") return
        const from = NodeId.make(event.from)
        yield* execute(
          ContentQueue.want(content, nsHex, hash, [toHex(from), from], event.remoteContentStatus === "Complete")
        )
      })

    /** Once the intake drained, the nodes whose gossip was dropped are synced with (through the actor and the core). */
    const resyncLagging = (ns: NamespaceId, intake: Intake): Effect.Effect<void> =>
      Effect.suspend(() => {
        if (intake.pending > 0 || intake.lagging.size === 0) return Effect.void
        const peers = [...intake.lagging.values()]
        intake.lagging.clear()
        return post({ _tag: "Lagged", ns, peers })
      })

    /** What Gossip dropped for this document's receive loop since the last take: counted, its nodes resynced. */
    const onLagged = (intake: Intake, lagged: Gossip.Lagged | undefined): Effect.Effect<void> => {
      if (lagged === undefined) return Effect.void
      for (const peer of lagged.peers) noteLagging(intake, peer)
      return count("gossip_events_lagged", lagged.count)
    }

    /**
     * The inserter of a document's gossip intake: whenever one of {@link INSERT_PIPELINE} slots is free, the oldest
     * batch goes to the replica (one verification round, one transaction). While both slots are busy the batches grow
     * (up to {@link INSERT_BATCH_MAX}), so a flood is verified in large rounds on the crypto workers rather than entry
     * by entry on the node's thread; a lone write still goes at once.
     */
    const runInserter = (ns: NamespaceId, intake: Intake, inserting: Effect.Semaphore, scope: Scope.Scope) =>
      Effect.gen(function*() {
        while (true) {
          yield* intake.ready.await
          const batch = intake.batches.shift()
          if (batch === undefined) {
            intake.ready.unsafeClose()
            continue
          }
          if (intake.batches.length === 0) intake.ready.unsafeClose()
          yield* inserting.take(1)
          yield* count("gossip_put_received", batch.entries.length).pipe(
            Effect.zipRight(addInline(ns, batch.contents)),
            Effect.zipRight(replica.insertRemoteMany(ns, batch.entries, batch.from)),
            // The temporary tags of the inline content end once the entries protect it.
            Effect.scoped,
            Effect.ignore,
            Effect.ensuring(Effect.suspend(() => {
              intake.pending -= batch.entries.length
              return Effect.zipRight(inserting.release(1), resyncLagging(ns, intake))
            })),
            Effect.forkIn(scope)
          )
          // With a backlog, I/O (the RPC server's sockets among it) gets a turn between batches: Effect's scheduler
          // runs fibers in microtasks, and yields to the event loop only after 2048 rounds of them.
          yield* intake.batches.length > 0 ? macrotaskYield : Effect.yieldNow()
        }
      })

    /**
     * Gossip events of one topic (spec 05 §8.2), as they arrived since the last call; runs in the topic's receive
     * loop, not in the actor, and never waits for inserts. Other events are posted in order at once. Puts go to the
     * document's intake (consecutive ones relayed by the same node in one batch, see {@link runInserter}); insert order
     * does not matter (the newest entry wins either way). The intake is bounded: Puts beyond `intake.max` taken in and
     * not yet inserted are dropped and counted, and their relaying node is synced with once the intake drained.
     */
    const onGossip = (
      ns: NamespaceId,
      events: ReadonlyArray<Gossip.GossipEvent>,
      intake: Intake
    ): Effect.Effect<void> =>
      Effect.gen(function*() {
        let dropped = 0
        let opsDropped = 0
        for (const event of events) {
          switch (event._tag) {
            case "NeighborUp":
              yield* post({ _tag: "NeighborUp", ns, peer: event.peer })
              break
            case "NeighborDown":
              yield* post({ _tag: "NeighborDown", ns, peer: event.peer })
              break
            case "Received": {
              const op = event.op
              switch (op._tag) {
                case "Put": {
                  if (intake.pending >= intake.max) {
                    dropped++
                    noteLagging(intake, event.deliveredFrom)
                    if (!event.direct) noteLagging(intake, event.from)
                    break
                  }
                  intake.pending++
                  let batch = intake.batches[intake.batches.length - 1]
                  if (
                    batch === undefined || batch.entries.length >= INSERT_BATCH_MAX ||
                    !nodeIdEquals(batch.from, event.deliveredFrom)
                  ) {
                    batch = { from: event.deliveredFrom, entries: [], contents: [] }
                    intake.batches.push(batch)
                  }
                  // Content is there to fetch only if the message came straight from its publisher.
                  let status: ContentStatus = event.direct ? "Complete" : "Missing"
                  if (op.content !== undefined) {
                    if (inlineMatches(op.entry, op.content)) {
                      batch.contents.push([op.entry.entry.id.key, op.content])
                      status = "Complete"
                    } else yield* count("gossip_inline_content_rejected")
                  }
                  batch.entries.push([op.entry, status])
                  break
                }
                // Both are meant for direct neighbors only (spec 05 §8.1). Our nodes do not relay them (Gossip.ts),
                // but older or hostile ones may, and a relayed one names a node we may have no connection or address
                // for.
                case "ContentReady":
                  if (!event.direct) break
                  if (inboxFull()) {
                    opsDropped++
                    noteLagging(intake, event.from)
                  } else yield* post({ _tag: "ContentReadyFrom", ns, node: event.from, hash: op.hash })
                  break
                case "SyncReport":
                  if (!event.direct || toHex(op.namespace) !== toHex(ns)) break
                  if (inboxFull()) {
                    opsDropped++
                    noteLagging(intake, event.from)
                  } else yield* post({ _tag: "SyncReport", ns, from: event.from, heads: op.heads })
                  break
              }
            }
          }
        }
        if (intake.batches.length > 0) intake.ready.unsafeOpen()
        if (dropped > 0) yield* count("gossip_put_dropped", dropped)
        if (opsDropped > 0) yield* count("gossip_ops_dropped", opsDropped)
        yield* resyncLagging(ns, intake)
      })

    /**
     * Stores verified inline content before its entries are inserted, so that they arrive with their content and no
     * download starts; each blob is protected by a temporary tag until the caller's scope closes. Content the
     * document's download policy does not want is not stored.
     */
    const addInline = (ns: NamespaceId, inline: ReadonlyArray<readonly [Uint8Array, Uint8Array]>) =>
      inline.length === 0 ? Effect.void : Effect.gen(function*() {
        const policy = yield* replica.getDownloadPolicy(ns)
        let added = 0
        for (const [key, content] of inline) {
          if (!DownloadPolicy.matches(policy, key)) continue
          yield* blobs.addBytes(content)
          added++
        }
        yield* count("gossip_inline_content_received", added)
      }).pipe(Effect.catchAllCause((cause) => Effect.logDebug("storing inline content failed", cause)))

    // -- session completion (spec 05 §7)

    const syncFinished = (
      ns: NamespaceId,
      peer: NodeId,
      session: number | "accept",
      origin: Origin,
      exit: Exit.Exit<Sync.SyncFinished, ConnectError | AcceptError>,
      result: SyncState.Result,
      done: Deferred.Deferred<boolean> | undefined
    ) =>
      Effect.gen(function*() {
        const nsHex = toHex(ns)
        const peerHex = toHex(peer)
        const connect = origin._tag === "Connect"
        if (Exit.isSuccess(exit)) {
          const { outcome, traffic } = exit.value
          yield* count(connect ? "sync_via_connect_success" : "sync_via_accept_success")
          yield* count("sync_entries_sent", outcome.numSent)
          yield* count("sync_entries_received", outcome.numRecv)
          yield* count("sync_entries_invalid", outcome.numInvalid)
          yield* count("sync_bytes_sent", traffic.bytesSent)
          yield* count("sync_bytes_received", traffic.bytesReceived)
          yield* replica.registerUsefulPeer(ns, peer).pipe(Effect.ignore)
          yield* rememberAddresses(peer)
          if (outcome.numRecv > 0 && docs.has(nsHex)) {
            const heads = AuthorHeads.encode(outcome.headsReceived, Op.maxHeadsLength(gossip.maxMessageSize))
            yield* broadcast(ns, new Op.SyncReport({ namespace: ns, heads }))
          }
        } else if (result === "Failed") {
          yield* count(connect ? "sync_via_connect_failure" : "sync_via_accept_failure")
        }
        const doc = docs.get(nsHex)
        const now = yield* Clock.currentTimeMillis
        const f = SyncState.finish(states, nsHex, peerHex, session, result, now)
        if (doc === undefined || f === undefined) {
          // A retry whose attempt the peer refused (it runs its own session with us) goes on: that session may fail
          // too (the peer may not reach us at all); the next step ends it if a session succeeded meanwhile. A peer
          // cooling down (it sent invalid entries) ends the retries: we do not seek it out again.
          if (done !== undefined) {
            const cooling = isCoolingDown(exit)
            if (result === "Aborted" && !cooling) yield* count("sync_retry_refused")
            yield* Deferred.succeed(done, result === "Ok" || doc === undefined || cooling)
          }
          return
        }
        // The peer is a member we just synced with: subscribers learn it before the session's end (finding 8), and
        // gossip's NeighborUp for it later is no news (no second sync).
        if (result === "Ok" && SyncState.neighborUp(states, nsHex, peerHex, now)) {
          yield* emit(nsHex, new LiveEvent.NeighborUp({ peer }))
          // Gossip reports its NeighborDown even if it never joins the topic (then it is redialled like any other).
          yield* gossip.adoptNeighbor(ns, peer)
        }
        const finished = now
        const eventResult = Exit.isSuccess(exit)
          ? { _tag: "Ok" as const, details: new LiveEvent.SyncDetails({
            entriesReceived: exit.value.outcome.numRecv,
            entriesSent: exit.value.outcome.numSent,
            bytesReceived: exit.value.traffic.bytesReceived,
            bytesSent: exit.value.traffic.bytesSent
          }) }
          : { _tag: "Err" as const, error: describeCause(exit.cause) }
        const via = yield* network.connectionKind(peer)
        yield* emit(
          nsHex,
          new LiveEvent.SyncFinished({
            event: new LiveEvent.SyncEvent({
              peer,
              origin,
              started: f.started,
              finished,
              result: eventResult,
              ...(Option.isSome(via) ? { via: via.value } : {})
            })
          })
        )
        if (ContentQueue.isQueued(content, nsHex)) SyncState.setMayEmitReady(states, nsHex, true)
        else {
          SyncState.setMayEmitReady(states, nsHex, false)
          yield* emit(nsHex, new LiveEvent.PendingContentReady())
        }
        let resync = f.resync
        const pending = doc.gossipPending.get(peerHex)
        if (result === "Ok" && pending !== undefined) {
          // Entries since the session started are not in its snapshot, and gossip may not have reached the peer yet.
          if (newsSince(doc, pending)) resync = true
          if (doc.gossipUp.has(peerHex)) doc.gossipPending.delete(peerHex)
          else doc.gossipPending.set(peerHex, markNow(doc))
        }
        if (result === "Ok") yield* offerWanted(doc, peer)
        if (done !== undefined) yield* Deferred.succeed(done, result === "Ok")
        if (f.retry !== undefined && !shuttingDown && Exit.isFailure(exit)) {
          // One line per backoff step, no stack (the cause is at DEBUG).
          yield* Effect.logWarning(
            `sync with ${peerHex.slice(0, 16)} failed (${describeCause(exit.cause)}); retry ${f.retry}`
          )
          yield* Effect.logDebug("sync failure", exit.cause)
          yield* count("sync_retries")
          yield* scheduleRetry(doc, peer)
        }
        if (resync) yield* syncWithPeer(doc, peer, "Resync")
      })

    const rememberAddresses = (peer: NodeId) =>
      Effect.gen(function*() {
        const addrs = yield* network.peerAddresses(peer)
        yield* addressBook.remember(new NodeAddr({ nodeId: peer, addrs: addrs.filter(isDialable) }))
      })

    // -- live set (spec 05 §5)

    const goLive = (ns: NamespaceId) =>
      Effect.gen(function*() {
        const nsHex = toHex(ns)
        const existing = docs.get(nsHex)
        if (existing !== undefined) return existing
        yield* replica.open(ns, { sync: true })
        const scope = yield* Scope.fork(serviceScope, ExecutionStrategy.sequential)
        const setup = Effect.gen(function*() {
          const doc: Doc = {
            ns,
            scope,
            sessions: yield* FiberMap.make<string>(),
            redials: yield* FiberMap.make<string>(),
            retries: yield* FiberMap.make<string>(),
            published: 0,
            handled: yield* SubscriptionRef.make(0),
            cursor: undefined,
            gossipPending: new Map(),
            inserts: 0,
            gossipUp: new Set()
          }
          // Pulls, not Streams: a Stream stage cost three times the Effect operations per event on the write path.
          const replicaEvents = yield* replica.subscribePull(ns)
          // Counted from the replica actor itself, right after each commit (registered after the pull: never ahead).
          yield* replica.subscribeSink(ns, () => Effect.sync(() => doc.published++), { counted: false })
          yield* Effect.flatMap(replicaEvents, (events) => onReplicaEvents(doc, events)).pipe(
            Effect.forever,
            Effect.catchTag("NoSuchElementException", () => Effect.void),
            Effect.forkScoped
          )
          // Membership joins the gossip topic and keeps the document's swarm connected (finding 1).
          yield* membership.join(ns, [])
          const topic = yield* gossip.intake(ns)
          const inserting = yield* Effect.makeSemaphore(INSERT_PIPELINE)
          const intake: Intake = {
            max: Math.max(1, gossipIntake),
            pending: 0,
            batches: [],
            ready: yield* Effect.makeLatch(false),
            lagging: new Map()
          }
          yield* Effect.forkScoped(runInserter(ns, intake, inserting, scope))
          yield* Effect.flatMap(topic.take, (events) =>
            Effect.zipRight(
              Effect.flatMap(topic.lagged, (lagged) => onLagged(intake, lagged)),
              onGossip(ns, events, intake)
            ).pipe(
              // Busy: the event loop's I/O gets a turn before the next take (which then finds more events at once).
              Effect.zipRight(Effect.suspend(() => intake.pending >= INSERT_BATCH_MAX ? macrotaskYield : Effect.void))
            )).pipe(
              Effect.forever,
              Effect.forkScoped
            )
          yield* Effect.forkScoped(scanWanted(ns))
          return doc
        })
        const ok = yield* Effect.exit(Scope.extend(setup, scope))
        if (Exit.isFailure(ok)) {
          yield* Scope.close(scope, Exit.void)
          yield* replica.close(ns)
          return yield* Effect.die(Cause.squash(ok.cause))
        }
        docs.set(nsHex, ok.value)
        SyncState.insert(states, nsHex)
        return ok.value
      })

    const joinPeers = (doc: Doc, peers: ReadonlyArray<NodeAddr>) =>
      Effect.gen(function*() {
        for (const peer of peers) if (peer.addrs.length > 0) yield* addressBook.remember(peer)
        const ids = dedupe(peers.map((p) => p.nodeId)).filter((id) => toHex(id) !== meHex)
        yield* membership.join(doc.ns, peers.filter((p) => toHex(p.nodeId) !== meHex))
        for (const id of ids) yield* syncWithPeer(doc, id, "DirectJoin")
      })

    const startSync = (ns: NamespaceId, peers: ReadonlyArray<NodeAddr>) =>
      Effect.gen(function*() {
        const wasLive = docs.has(toHex(ns))
        const doc = yield* goLive(ns)
        if (!wasLive) yield* replica.setLive(ns, true)
        const stored = yield* replica.getSyncPeers(ns).pipe(
          Effect.map(Option.getOrElse(() => [] as ReadonlyArray<Uint8Array>)),
          Effect.orElseSucceed(() => [] as ReadonlyArray<Uint8Array>)
        )
        const storedAddrs: Array<NodeAddr> = []
        for (const id of stored) if (id.length === 32) storedAddrs.push(yield* addressBook.lookup(NodeId.make(id)))
        yield* joinPeers(doc, [...peers, ...storedAddrs])
      })

    /** `forget`: the user left (the live mark and the wanted set go); not at shutdown, where the node resumes them. */
    const leave = (ns: NamespaceId, kill: boolean, forget: boolean) =>
      Effect.gen(function*() {
        const nsHex = toHex(ns)
        const doc = docs.get(nsHex)
        if (doc !== undefined) {
          docs.delete(nsHex)
          SyncState.remove(states, nsHex)
          yield* membership.leave(ns)
          yield* execute(ContentQueue.leave(content, nsHex))
          const dropped = forget ? remembering.get(nsHex) : undefined
          if (dropped !== undefined) {
            rememberingSize -= dropped.size
            remembering.delete(nsHex)
          }
          yield* Scope.close(doc.scope, Exit.void)
          yield* gossip.leave(ns)
          yield* replica.setSync(ns, false).pipe(Effect.ignore)
          if (forget) {
            yield* replica.setLive(ns, false).pipe(Effect.catchAll(logStoreFailure))
            yield* replica.clearWanted(ns).pipe(Effect.catchAll(logStoreFailure))
          }
          yield* replica.close(ns)
        }
        if (kill) yield* dropSubscribers(nsHex)
      })

    const handle = (command: Command): Effect.Effect<void> => {
      switch (command._tag) {
        case "StartSync":
          return Effect.exit(startSync(command.ns, command.peers)).pipe(
            Effect.flatMap((exit) => Deferred.done(command.done, exit)),
            Effect.asVoid
          )
        case "Leave":
          return leave(command.ns, command.kill, true).pipe(Effect.zipRight(Deferred.succeed(command.done, undefined)))
        case "Subscribe":
          return Effect.sync(() => {
            const nsHex = toHex(command.ns)
            let sinks = subscribers.get(nsHex)
            if (sinks === undefined) {
              sinks = new Set()
              subscribers.set(nsHex, sinks)
            }
            sinks.add(command.sink)
          })
        case "Accept":
          return Effect.gen(function*() {
            const outcome = shuttingDown
              ? "NotFound"
              : SyncState.acceptRequest(states, toHex(command.ns), toHex(command.peer), yield* Clock.currentTimeMillis)
            const doc = docs.get(toHex(command.ns))
            if (outcome === "Allow" && doc !== undefined) watchGossipGap(doc, toHex(command.peer))
            yield* Deferred.succeed(command.done, outcome)
          })
        case "NeighborUp": {
          const nsHex = toHex(command.ns)
          const doc = docs.get(nsHex)
          if (doc === undefined) return Effect.void
          return Effect.gen(function*() {
            const peerHex = toHex(command.peer)
            if (doc.gossipUp.size < MAX_GOSSIP_PENDING) doc.gossipUp.add(peerHex)
            const pending = doc.gossipPending.get(peerHex)
            if (!SyncState.neighborUp(states, nsHex, peerHex, yield* Clock.currentTimeMillis)) {
              // Announced by a session already; only entries since it started may have missed the peer.
              if (pending !== undefined && newsSince(doc, pending)) yield* syncWithPeer(doc, command.peer, "NewNeighbor")
              // A running session's end decides (it may have missed writes made meanwhile).
              if (SyncState.peer(states, nsHex, peerHex)?.sync._tag !== "Running") doc.gossipPending.delete(peerHex)
              return
            }
            yield* emit(nsHex, new LiveEvent.NeighborUp({ peer: command.peer }))
            yield* syncWithPeer(doc, command.peer, "NewNeighbor")
          })
        }
        case "NeighborDown": {
          const nsHex = toHex(command.ns)
          const doc = docs.get(nsHex)
          doc?.gossipPending.delete(toHex(command.peer))
          doc?.gossipUp.delete(toHex(command.peer))
          if (doc === undefined || !SyncState.neighborDown(states, nsHex, toHex(command.peer))) return Effect.void
          return emit(nsHex, new LiveEvent.NeighborDown({ peer: command.peer })).pipe(
            Effect.zipRight(shuttingDown ? Effect.void : scheduleRedial(doc, command.peer))
          )
        }
        case "SyncReport": {
          const doc = docs.get(toHex(command.ns))
          if (doc === undefined) return Effect.void
          return Effect.gen(function*() {
            const heads = Schema.decodeUnknownOption(AuthorHeads.AuthorHeadsFromBytes)(command.heads)
            if (Option.isNone(heads)) return
            const news = yield* replica.hasNewsForUs(command.ns, heads.value).pipe(Effect.orElseSucceed(() => 0))
            if (news > 0) yield* syncWithPeer(doc, command.from, "SyncReport")
          })
        }
        case "Lagged": {
          // Gossip from these nodes was dropped (our intake or Gossip's queue was full): sync fetches it.
          const doc = docs.get(toHex(command.ns))
          if (doc === undefined) return Effect.void
          return Effect.forEach(command.peers, (peer) =>
            toHex(peer) === meHex ? Effect.void : Effect.zipRight(count("gossip_lag_resyncs"), syncWithPeer(doc, peer, "SyncReport")), { discard: true })
        }
        case "ContentReadyFrom": {
          const nsHex = toHex(command.ns)
          if (!docs.has(nsHex) || isEmptyHash(command.hash)) return Effect.void
          return Effect.gen(function*() {
            if ((yield* contentStatus(command.hash)) === "Complete") {
              return yield* execute(ContentQueue.complete(content, command.hash))
            }
            yield* execute(
              ContentQueue.provide(content, nsHex, command.hash, [toHex(command.node), command.node], true)
            )
          })
        }
        case "Replica":
          replicaTaken()
          return onRemoteInsert(command.ns, command.event)
        case "Connected": {
          const { exit } = command
          const result: SyncState.Result = Exit.isSuccess(exit) ? "Ok" : isAlreadySyncing(exit) ? "Aborted" : "Failed"
          return syncFinished(
            command.ns,
            command.peer,
            command.session,
            { _tag: "Connect", reason: command.reason },
            exit,
            result,
            command.done
          )
        }
        case "Accepted": {
          const exit = command.exit
          if (Exit.isSuccess(exit)) {
            return syncFinished(exit.value.namespace, exit.value.peer, "accept", { _tag: "Accept" }, exit, "Ok", undefined)
          }
          const failure = Cause.failureOption(exit.cause)
          if (Option.isNone(failure)) return Effect.logWarning("sync acceptor died").pipe(Effect.zipRight(Effect.logDebug(exit.cause)))
          // Refused sessions never ran (the pair's state was not taken for them).
          const of = acceptedSessionOf(failure.value)
          if (of === undefined) return Effect.logDebug("sync acceptor failed", failure.value)
          return syncFinished(of.ns, of.peer, "accept", { _tag: "Accept" }, exit, "Failed", undefined)
        }
        case "Downloaded":
          return downloadFinished(command.hash, command.exit)
        case "Offer": {
          const nsHex = toHex(command.ns)
          if (!docs.has(nsHex)) return Effect.void
          const peerHex = toHex(command.peer)
          const decisions: Array<ContentQueue.Decision> = []
          for (const hash of command.hashes) {
            for (const d of ContentQueue.provide(content, nsHex, hash, [peerHex, command.peer], false)) {
              if (d._tag !== "Remember") decisions.push(d) // already in the store
            }
          }
          return execute(decisions)
        }
        case "ScanDone": {
          const doc = docs.get(toHex(command.ns))
          if (doc === undefined) return Effect.void
          // Peers that synced before the scan finished will not offer themselves again: ask them now.
          return Effect.forEach(
            SyncState.syncedPeers(states, toHex(command.ns)).slice(0, 8),
            (peerHex) => {
              const peer = fromHex(peerHex)
              return peer === undefined ? Effect.void : offerWanted(doc, NodeId.make(peer))
            },
            { discard: true }
          )
        }
        case "RetryDownload": {
          const key = toHex(command.hash)
          const r = ContentQueue.retry(content, command.hash)
          const started = r.decisions.some((d) => d._tag === "Download" && toHex(d.hash) === key)
          if (started) retryWaiters.set(key, command.done)
          return execute(r.decisions).pipe(Effect.zipRight(started ? Effect.void : Deferred.succeed(command.done, !r.held)))
        }
        case "RetrySync": {
          const doc = docs.get(toHex(command.ns))
          if (doc === undefined) return Deferred.succeed(command.done, true)
          // A session with the peer succeeded since the failure (either side's): nothing left to retry.
          const state = SyncState.peer(states, toHex(command.ns), toHex(command.peer))
          if (state?.synced === true && state.failures === 0) {
            return Deferred.succeed(command.done, true)
          }
          return syncWithPeer(doc, command.peer, "Retry", command.done)
        }
      }
    }

    yield* Effect.forkScoped(
      Effect.forever(
        Effect.flatMap(takeOrInterrupt(inbox), (command) =>
          handle(command).pipe(
            Effect.zipRight(Effect.suspend(() =>
              rememberingSize >= REMEMBER_BATCH || Option.getOrElse(inbox.unsafeSize(), () => 0) === 0
                ? flushRemembered
                : Effect.void
            )),
            Effect.zipRight(count("actor_tick_main")),
            Effect.zipRight(count("doc_live_tick_main")),
            Effect.zipRight(count(tickOf(command))),
            Effect.catchAllCause((cause) =>
              Cause.isInterruptedOnly(cause) ? Effect.void : Effect.logError("live engine command failed", cause)
            )
          ))
      ).pipe(Effect.annotateLogs({ service: "LiveSync" }))
    )

    // Shutdown (spec 05 §13): no new work, subscribers' streams end, topics and replicas are left (still marked live:
    // the node resumes them at its next start), running sessions and downloads are interrupted (the FiberMaps close
    // before this finalizer runs: finalizers run in reverse; the documents' own with their scopes, in `leave`).
    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        shuttingDown = true
        yield* flushRemembered
        for (const nsHex of [...subscribers.keys()]) yield* dropSubscribers(nsHex)
        for (const doc of [...docs.values()]) yield* leave(doc.ns, true, false)
        yield* replica.flush.pipe(Effect.ignore)
      })
    )

    const ask = <A, E>(make: (done: Deferred.Deferred<A, E>) => Command) =>
      Effect.flatMap(Deferred.make<A, E>(), (done) => Effect.zipRight(post(make(done)), Deferred.await(done)))

    // Restart (finding 3): the documents that were live resume with their stored peers.
    if (config.resume ?? true) {
      yield* replica.listLive.pipe(
        Effect.orElseSucceed((): ReadonlyArray<NamespaceId> => []),
        Effect.flatMap((live) =>
          Effect.forEach(live, (ns) =>
            ask<void, ReplicaNotFound | StoreError>((done) => ({ _tag: "StartSync", ns, peers: [], done })).pipe(
              Effect.catchAll((error) => Effect.logWarning(`resuming a live document failed: ${error._tag}`))
            ), { discard: true })
        ),
        Effect.forkScoped
      )
    }

    const subscribe = (ns: NamespaceId) =>
      Effect.gen(function*() {
        const sink = yield* Effect.acquireRelease(
          Mailbox.make<LiveEvent.LiveEvent>({ capacity: SUBSCRIBER_CAPACITY, strategy: "suspend" }),
          (mailbox) => mailbox.shutdown
        )
        // The replica's insert events join the engine's in the one queue, put there by the replica actor right after
        // each commit: no stream merge and no fiber in between (the write-to-event latency is what users see), and
        // a full queue still back-pressures the replica. When the replica closes, only its events stop; the stream
        // ends with leave(kill), shutdown or the scope.
        yield* replica.subscribeSink(ns, (event) => Effect.flatMap(toLiveEvent(event), (e) => offerTo(sink, e)))
        yield* post({ _tag: "Subscribe", ns, sink })
        return Mailbox.toStream(sink)
      })

    // Events and Ops here wrap entries the replica already validated: re-validating a SignedEntry in each class
    // constructor costs ~150 µs, more than the rest of a gossiped write's path in this module.
    const toLiveEvent = (event: ReplicaEvent): Effect.Effect<LiveEvent.LiveEvent> => {
      if (event._tag === "LocalInsert") {
        return Effect.succeed(trusted(LiveEvent.InsertLocal.prototype, { entry: event.entry.entry, _tag: "InsertLocal" }))
      }
      return contentStatus(event.entry.contentHash).pipe(
        Effect.map((contentStatus) =>
          trusted(LiveEvent.InsertRemote.prototype, {
            from: NodeId.make(event.from, true),
            entry: event.entry.entry,
            contentStatus,
            _tag: "InsertRemote"
          })
        )
      )
    }

    /** Bounds of the core, read from it (what was dropped is counted, never silent). */
    const coreGauges = Effect.map(gossip.stats, (gossipStats): Record<GaugeName, number> => ({
      gossip_inbound_paused: gossipStats.inboundPaused,
      gossip_inbound_peak_bytes: gossipStats.inboundPeakBytes,
      inbox_replica_queued: replicaQueued,
      live_peers_evicted: states.evicted,
      live_peers_refused: states.refused,
      wanted_overflow: content.overflow,
      providers_dropped: content.providersDropped,
      content_claims_ignored: content.claimsIgnored,
      downloads_in_flight: content.inFlight.size,
      wanted_in_memory: content.wanted.size
    }))

    const metrics = Effect.gen(function*() {
      const out: Record<string, number> = {}
      for (const name of COUNTERS) out[name] = (yield* Metric.value(counters[name])).count
      return { ...out, ...(yield* coreGauges) }
    })

    return LiveSync.of({
      startSync: (ns, peers) => ask<void, ReplicaNotFound | StoreError>((done) => ({ _tag: "StartSync", ns, peers, done })),
      leave: (ns, kill) => ask<void, never>((done) => ({ _tag: "Leave", ns, kill, done })),
      subscribe,
      isLive: (ns) => Effect.sync(() => docs.has(toHex(ns))),
      metrics
    })
  })

/** The spec 05 §14 tick counter of the source a command comes from. */
const tickOf = (command: Command): CounterName => {
  switch (command._tag) {
    case "Replica":
      return "doc_live_tick_replica_event"
    case "Connected":
      return "doc_live_tick_running_sync_connect"
    case "Accepted":
      return "doc_live_tick_running_sync_accept"
    case "Downloaded":
    case "RetryDownload":
      return "doc_live_tick_pending_downloads"
    default:
      return "doc_live_tick_actor"
  }
}

const dedupe = (ids: ReadonlyArray<NodeId>): Array<NodeId> => {
  const seen = new Map<string, NodeId>()
  for (const id of ids) seen.set(toHex(id), id)
  return [...seen.values()]
}

/** Transport addresses and relay circuits (`<relay>/p2p-circuit`); not a bare `/p2p-circuit`, which names no relay. */
const isDialable = (addr: string) => !addr.startsWith("/p2p-circuit")

const describeCause = (cause: Cause.Cause<unknown>): string => {
  const error = Cause.squash(cause)
  return error instanceof Error ? error.message : String(error)
}

/**
 * The live engine with its own sync protocol endpoint (the Sync service is built with the engine's accept decision
 * and provided alongside).
 */
export const layer = (
  config: LiveSyncConfig = {}
): Layer.Layer<
  LiveSync,
  never,
  | Replica.Replica
  | Network.Network
  | Ranger.Ranger
  | Gossip.Gossip
  | Blobs.Blobs
  | BlobTransfer.BlobTransfer
  | AddressBook.AddressBook
  | Membership.Membership
  | Sync.Sync
> => Layer.scoped(LiveSync, make(config))

/** The Ranger with content status from the blob store (spec 05 §1, content-status callback). */
export const rangerLayer = (
  config: Partial<Ranger.RangerConfig> = {}
): Layer.Layer<Ranger.Ranger, never, Blobs.Blobs | Store.Store | Replica.Replica> =>
  Layer.unwrapEffect(Effect.map(Blobs.Blobs, (blobs) =>
    Ranger.layer({
      ...Ranger.defaultConfig,
      ...config,
      contentStatus: (entries) =>
        Effect.forEach(entries, (entry) => blobs.status(entry.contentHash).pipe(Effect.orElseSucceed(() => "Missing" as const)))
    })))
