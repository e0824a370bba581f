/**
 * The live engine (spec 05): keeps a gossip topic per live document, runs direct sync sessions with its peers,
 * downloads entry content through the blob downloader and publishes `LiveEvent`s to subscribers.
 *
 * One actor fiber owns all engine state and reads one inbox: API commands, accept decisions, gossip events, replica
 * insert events and the completions of sessions and downloads, in the order they occur (spec 05 §3.1 suggestion).
 * Everything that waits (sessions, downloads, gossip receive loops, event forwarding) runs in other fibers that only
 * post to the inbox, so a handler never waits on the inbox itself. A session's insert events are published by the
 * replica before its last insert returns, and every session ends with a network round trip (the close handshake), so
 * they reach the inbox before the session's completion does: `PendingContentReady` (§10.3) relies on that order.
 *
 * Deviations from the reference, all listed as suggestions or quirks in spec 05:
 * - undecodable gossip is counted and skipped by the Gossip service; the topic keeps working (§8.2);
 * - `ContentReady` goes to every document that waited on the hash (§9.3);
 * - the empty hash is never downloaded;
 * - wanted content is not forgotten: hashes whose download failed or had no provider are kept per document and tried
 *   again with each peer that becomes a neighbor or finishes a sync with us, and after a restart the wanted set of a
 *   document is recomputed from its entries when it goes live;
 * - a useful peer's addresses are kept in the AddressBook, so `startSync` can dial stored peers after a restart.
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
  FiberSet,
  Layer,
  Mailbox,
  Metric,
  Option,
  Schema,
  Scope,
  Stream
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
import type { Hash, NamespaceId } from "../schema/Keys.js"
import * as LiveEvent from "../schema/LiveEvent.js"
import { NodeAddr, NodeId } from "../schema/NodeAddr.js"
import * as Op from "../schema/Op.js"
import { Query } from "../schema/Query.js"
import type { AcceptError, ConnectError } from "../schema/SyncErrors.js"
import * as DownloadPolicy from "../schema/DownloadPolicy.js"
import * as AddressBook from "./AddressBook.js"
import * as Blobs from "./Blobs.js"
import * as BlobTransfer from "./BlobTransfer.js"
import * as Gossip from "./Gossip.js"
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

/**
 * After a neighbor of a live document goes away (its connection dropped, e.g. libp2p's connection monitor aborts a
 * connection whose ping timed out under load), it is dialed again after this pause, doubling per attempt, until it is
 * a neighbor again or {@link REDIAL_ATTEMPTS} dials were made; the sync on NeighborUp then fetches what gossip lost.
 */
export const REDIAL_DELAY: Duration.Duration = Duration.millis(500)
export const REDIAL_ATTEMPTS = 5

/** Wanted hashes of a document tried with one new candidate provider at a time. */
export const RETRY_BATCH = 256

/** Pause before a failed download is tried again with the providers known by then; doubles per attempt. */
export const DEFAULT_DOWNLOAD_RETRY_DELAY: Duration.Duration = Duration.seconds(1)
/** Timed retries of one failed download; after them only a new provider (sync, ContentReady, neighbor) retries it. */
export const DEFAULT_DOWNLOAD_RETRIES = 6

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
  "actor_tick_main",
  // The engine's loop ticks by source (spec 05 §14 names; our one inbox carries every source).
  "doc_live_tick_main",
  "doc_live_tick_actor",
  "doc_live_tick_replica_event",
  "doc_live_tick_running_sync_connect",
  "doc_live_tick_running_sync_accept",
  "doc_live_tick_pending_downloads",
  "doc_gossip_tick_main",
  "doc_gossip_tick_event",
  "doc_gossip_tick_actor",
  "doc_gossip_tick_pending_join"
] as const
export type CounterName = (typeof COUNTERS)[number]

const makeCounters = (node: string) => {
  const counters = {} as Record<CounterName, Metric.Metric.Counter<number>>
  for (const name of COUNTERS) counters[name] = Metric.counter(`rangedocs_${name}`).pipe(Metric.tagged("node", node))
  return counters
}

// ---------------------------------------------------------------------------------------------------------------
// Engine state (spec 05 §3, §6)

type Origin = LiveEvent.Origin

type SyncState =
  | { readonly _tag: "Idle" }
  | { readonly _tag: "Running"; readonly start: number; readonly origin: Origin }

interface PeerState {
  state: SyncState
  resyncRequested: boolean
  /** A session with this peer succeeded since the document went live: it is worth asking for wanted content. */
  synced: boolean
}

interface Doc {
  readonly ns: NamespaceId
  readonly peers: Map<string, PeerState>
  mayEmitReady: boolean
  /** Owns the replica subscription, the gossip receive loop and the wanted-content scan of this document. */
  readonly scope: Scope.CloseableScope
}

interface Wanted {
  readonly hash: Hash
  /** Documents that want it and have no download running for it. */
  readonly docs: Set<string>
}

type Command =
  | { readonly _tag: "StartSync"; readonly ns: NamespaceId; readonly peers: ReadonlyArray<NodeAddr>; readonly done: Deferred.Deferred<void, ReplicaNotFound | StoreError> }
  | { readonly _tag: "Leave"; readonly ns: NamespaceId; readonly kill: boolean; readonly done: Deferred.Deferred<void> }
  | { readonly _tag: "Subscribe"; readonly ns: NamespaceId; readonly sink: Mailbox.Mailbox<LiveEvent.LiveEvent> }
  | { readonly _tag: "Accept"; readonly ns: NamespaceId; readonly peer: NodeId; readonly done: Deferred.Deferred<Sync.AcceptOutcome> }
  | { readonly _tag: "NeighborUp"; readonly ns: NamespaceId; readonly peer: NodeId }
  | { readonly _tag: "NeighborDown"; readonly ns: NamespaceId; readonly peer: NodeId }
  | { readonly _tag: "SyncReport"; readonly ns: NamespaceId; readonly from: NodeId; readonly heads: Uint8Array }
  | { readonly _tag: "ContentReadyFrom"; readonly ns: NamespaceId; readonly node: NodeId; readonly hash: Hash }
  | { readonly _tag: "Replica"; readonly ns: NamespaceId; readonly event: RemoteInsert }
  | { readonly _tag: "Connected"; readonly ns: NamespaceId; readonly peer: NodeId; readonly reason: LiveEvent.SyncReason; readonly exit: Exit.Exit<Sync.SyncFinished, ConnectError> }
  | { readonly _tag: "Accepted"; readonly exit: Exit.Exit<Sync.SyncFinished, AcceptError> }
  | { readonly _tag: "Downloaded"; readonly hash: Hash; readonly exit: Exit.Exit<Blobs.Added, DownloadFailed> }
  | { readonly _tag: "WantedScan"; readonly ns: NamespaceId; readonly hashes: ReadonlyArray<Hash> }
  | { readonly _tag: "RetryDownload"; readonly hash: Hash }
  | { readonly _tag: "Redial"; readonly ns: NamespaceId; readonly peer: NodeId; readonly attempt: number }

const isEmptyHash = (hash: Uint8Array) => toHex(hash) === EMPTY_HEX

/** Inline content of a gossiped Put is the entry's content: same length, same BLAKE3 hash. */
const inlineMatches = (entry: SignedEntry, content: Uint8Array): boolean =>
  BigInt(content.length) === entry.entry.record.len && bytesEqual(blake3(content), entry.entry.record.hash)
const EMPTY_HEX = toHex(EMPTY)

export const make = (config: LiveSyncConfig = {}) =>
  Effect.gen(function*() {
    const replica = yield* Replica.Replica
    const network = yield* Network.Network
    const gossip = yield* Gossip.Gossip
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
    const tasks = yield* FiberSet.make<unknown, unknown>()
    const fork = <A, E>(effect: Effect.Effect<A, E>) => FiberSet.run(tasks, effect)

    // -- state, touched by the actor fiber only
    const docs = new Map<string, Doc>()
    const subscribers = new Map<string, Set<Mailbox.Mailbox<LiveEvent.LiveEvent>>>()
    /** Wanted content without a running download (spec 05 `missingHashes`, kept per document). */
    const wanted = new Map<string, Wanted>()
    /** Running downloads: hash → documents waiting on it (spec 05 `queuedHashes`). */
    const queued = new Map<string, Set<string>>()
    const queuedByDoc = new Map<string, Set<string>>()
    /** Known providers per hash; read by the downloader on each attempt (spec 05 `hashProviders`). */
    const providers = new Map<string, Map<string, NodeId>>()
    /** Timed retries already scheduled per failed hash; cleared when its download succeeds. */
    const retries = new Map<string, number>()
    const retryDelay = Duration.decode(config.downloadRetryDelay ?? DEFAULT_DOWNLOAD_RETRY_DELAY)
    const maxRetries = config.downloadRetries ?? DEFAULT_DOWNLOAD_RETRIES
    const inlineMax = config.inlineContentMax ?? DEFAULT_INLINE_CONTENT_MAX
    let shuttingDown = false

    // -- sync (spec 04) with the engine's accept decision
    const sync = yield* Sync.Sync
    yield* sync.serve({
      accept: (ns, peer) =>
        Effect.flatMap(Deferred.make<Sync.AcceptOutcome>(), (done) =>
          Effect.zipRight(post({ _tag: "Accept", ns, peer, done }), Deferred.await(done))),
      onAccepted: (exit) => post({ _tag: "Accepted", exit })
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

    // -- per-peer state (spec 05 §6)

    const peerState = (doc: Doc, peer: NodeId): PeerState => {
      const key = toHex(peer)
      let state = doc.peers.get(key)
      if (state === undefined) {
        state = { state: { _tag: "Idle" }, resyncRequested: false, synced: false }
        doc.peers.set(key, state)
      }
      return state
    }

    const startConnect = (doc: Doc, peer: NodeId, reason: LiveEvent.SyncReason, now: number): boolean => {
      const state = peerState(doc, peer)
      if (state.state._tag === "Running") {
        if (reason === "SyncReport") state.resyncRequested = true
        return false
      }
      state.state = { _tag: "Running", start: now, origin: { _tag: "Connect", reason } }
      state.resyncRequested = false
      return true
    }

    const syncWithPeer = (doc: Doc, peer: NodeId, reason: LiveEvent.SyncReason) =>
      Effect.gen(function*() {
        if (shuttingDown) return
        const now = yield* Clock.currentTimeMillis
        if (!startConnect(doc, peer, reason, now)) return
        const ns = doc.ns
        const target = yield* addressBook.lookup(peer)
        yield* fork(
          Effect.exit(sync.syncWith(ns, target.addrs.length > 0 ? target : peer)).pipe(
            Effect.flatMap((exit) => post({ _tag: "Connected", ns, peer, reason, exit }))
          )
        )
      })

    // -- content (spec 05 §9)

    const wantedFor = (hash: Hash): Wanted => {
      const key = toHex(hash)
      let w = wanted.get(key)
      if (w === undefined) {
        w = { hash, docs: new Set() }
        wanted.set(key, w)
      }
      return w
    }

    const addProvider = (hash: Hash, node: NodeId) => {
      const key = toHex(hash)
      let set = providers.get(key)
      if (set === undefined) {
        set = new Map()
        providers.set(key, set)
      }
      set.set(toHex(node), node)
    }

    const queue = (hashHex: string, nsHex: string) => {
      let docsOfHash = queued.get(hashHex)
      if (docsOfHash === undefined) {
        docsOfHash = new Set()
        queued.set(hashHex, docsOfHash)
      }
      docsOfHash.add(nsHex)
      let hashesOfDoc = queuedByDoc.get(nsHex)
      if (hashesOfDoc === undefined) {
        hashesOfDoc = new Set()
        queuedByDoc.set(nsHex, hashesOfDoc)
      }
      hashesOfDoc.add(hashHex)
    }

    /** spec 05 §9.2, with wanted content kept per document. */
    const startDownload = (nsHex: string, hash: Hash, node: NodeId | undefined, onlyIfWanted: boolean) =>
      Effect.gen(function*() {
        if (shuttingDown || isEmptyHash(hash)) return
        const hashHex = toHex(hash)
        const status = yield* blobs.status(hash).pipe(Effect.orElseSucceed(() => "Missing" as const))
        if (status === "Complete") {
          wanted.delete(hashHex)
          retries.delete(hashHex)
          return
        }
        if (node !== undefined) addProvider(hash, node)
        if (queued.has(hashHex)) {
          queue(hashHex, nsHex)
          return
        }
        const w = wanted.get(hashHex)
        if (onlyIfWanted && w === undefined) return
        queue(hashHex, nsHex)
        if (w !== undefined) {
          for (const other of w.docs) queue(hashHex, other)
          wanted.delete(hashHex)
        }
        const candidates = () => providers.get(hashHex)?.values() ?? []
        yield* fork(
          Effect.exit(transfer.download(hash, candidates)).pipe(
            Effect.flatMap((exit) => post({ _tag: "Downloaded", hash, exit }))
          )
        )
      })

    /** Offers `node` as a candidate provider for the content `ns` still wants (a few at a time). */
    const retryWanted = (nsHex: string, node: NodeId) =>
      Effect.gen(function*() {
        let n = 0
        for (const w of [...wanted.values()]) {
          if (n >= RETRY_BATCH) break
          if (!w.docs.has(nsHex)) continue
          n++
          yield* startDownload(nsHex, w.hash, node, true)
        }
      })

    const downloadFinished = (hash: Hash, exit: Exit.Exit<Blobs.Added, DownloadFailed>) =>
      Effect.gen(function*() {
        const hashHex = toHex(hash)
        const waiting = queued.get(hashHex) ?? new Set<string>()
        queued.delete(hashHex)
        const emptied: Array<string> = []
        for (const nsHex of waiting) {
          const set = queuedByDoc.get(nsHex)
          set?.delete(hashHex)
          if (set !== undefined && set.size === 0) {
            queuedByDoc.delete(nsHex)
            emptied.push(nsHex)
          }
        }
        if (Exit.isSuccess(exit)) {
          retries.delete(hashHex)
          yield* count("downloads_success")
          yield* count("download_bytes", exit.value.size)
          for (const nsHex of waiting) {
            yield* emit(nsHex, new LiveEvent.ContentReady({ hash }, true))
            const doc = docs.get(nsHex)
            if (doc !== undefined) yield* broadcast(doc.ns, new Op.ContentReady({ hash }, true))
          }
        } else if (!Exit.isInterrupted(exit)) {
          yield* count("downloads_failure")
          yield* Effect.logDebug("download failed", Cause.squash(exit.cause))
          const w = wantedFor(hash)
          for (const nsHex of waiting) if (docs.has(nsHex)) w.docs.add(nsHex)
          if (w.docs.size === 0) wanted.delete(hashHex)
          else {
            // Providers may have been busy or briefly away: try again later, without waiting for a new provider.
            const attempt = retries.get(hashHex) ?? 0
            if (attempt < maxRetries && !shuttingDown) {
              retries.set(hashHex, attempt + 1)
              yield* fork(
                Effect.sleep(Duration.times(retryDelay, 2 ** attempt)).pipe(
                  Effect.zipRight(post({ _tag: "RetryDownload", hash }))
                )
              )
            }
          }
        }
        for (const nsHex of emptied) {
          const doc = docs.get(nsHex)
          if (doc !== undefined && doc.mayEmitReady) {
            doc.mayEmitReady = false
            yield* emit(nsHex, new LiveEvent.PendingContentReady())
          }
        }
      })

    /**
     * The replica's insert events of a live document (spec 05 §9.1), handled in the document's own fiber as they
     * come: local inserts are broadcast at once, remote ones counted, and only an entry whose content the document
     * wants and lacks goes on to the actor (downloads). Posting every event to the actor cost a hop per write.
     */
    const onReplicaEvents = (ns: NamespaceId, events: ReadonlyArray<ReplicaEvent>) =>
      Effect.gen(function*() {
        for (const event of events) {
          if (event._tag === "LocalInsert") {
            yield* count("doc_live_tick_replica_event")
            yield* count("new_entries_local")
            yield* count("new_entries_local_size", Number(event.entry.record.len))
            yield* count("gossip_put_sent")
            yield* publish(ns, trusted(Op.Put.prototype, { entry: event.entry, _tag: "Put" }))
            continue
          }
          yield* count("new_entries_remote")
          yield* count("new_entries_remote_size", Number(event.entry.record.len))
          const hash = event.entry.contentHash
          const status = !event.shouldDownload || isEmptyHash(hash)
            ? "Complete"
            : yield* blobs.status(hash).pipe(Effect.orElseSucceed(() => "Missing" as const))
          if (status === "Complete") yield* count("doc_live_tick_replica_event")
          else yield* post({ _tag: "Replica", ns, event })
        }
      })

    /** A remote entry whose content the document wants and did not have when it was inserted. */
    const onRemoteInsert = (ns: NamespaceId, event: RemoteInsert) =>
      Effect.gen(function*() {
        const nsHex = toHex(ns)
        if (!docs.has(nsHex)) return
        const from = NodeId.make(event.from)
        if (event.remoteContentStatus === "Complete") return yield* startDownload(nsHex, event.entry.contentHash, from, false)
        if (isEmptyHash(event.entry.contentHash)) return
        const status = yield* blobs.status(event.entry.contentHash).pipe(Effect.orElseSucceed(() => "Missing" as const))
        if (status !== "Complete") {
          // The sender does not have it: remember it as wanted, and the sender as a later candidate.
          const hashHex = toHex(event.entry.contentHash)
          // A neighbor may have announced it (ContentReady) before the entry itself was inserted.
          const announced = providers.get(hashHex)?.size ?? 0
          addProvider(event.entry.contentHash, from)
          if (queued.has(hashHex)) queue(hashHex, nsHex)
          else {
            wantedFor(event.entry.contentHash).docs.add(nsHex)
            if (announced > 0) yield* startDownload(nsHex, event.entry.contentHash, undefined, true)
          }
        }
      })

    // -- session completion (spec 05 §7)

    const syncFinished = (
      ns: NamespaceId,
      peer: NodeId,
      origin: Origin,
      exit: Exit.Exit<Sync.SyncFinished, ConnectError | AcceptError>
    ) =>
      Effect.gen(function*() {
        const nsHex = toHex(ns)
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
            const heads = AuthorHeads.encode(outcome.headsReceived, gossip.maxMessageSize - SYNC_REPORT_OVERHEAD)
            yield* broadcast(ns, new Op.SyncReport({ namespace: ns, heads }))
          }
        } else {
          yield* count(connect ? "sync_via_connect_failure" : "sync_via_accept_failure")
        }
        const doc = docs.get(nsHex)
        if (doc === undefined) return
        const state = doc.peers.get(toHex(peer))
        if (state === undefined || state.state._tag === "Idle") return
        const started = state.state.start
        const resync = state.resyncRequested
        state.state = { _tag: "Idle" }
        state.resyncRequested = false
        const finished = yield* Clock.currentTimeMillis
        const result = Exit.isSuccess(exit)
          ? { _tag: "Ok" as const, details: new LiveEvent.SyncDetails({ entriesReceived: exit.value.outcome.numRecv, entriesSent: exit.value.outcome.numSent }) }
          : { _tag: "Err" as const, error: describeCause(exit.cause) }
        yield* emit(nsHex, new LiveEvent.SyncFinished({ event: new LiveEvent.SyncEvent({ peer, origin, started, finished, result }) }))
        if (queuedByDoc.has(nsHex)) doc.mayEmitReady = true
        else {
          doc.mayEmitReady = false
          yield* emit(nsHex, new LiveEvent.PendingContentReady())
        }
        if (Exit.isSuccess(exit)) {
          state.synced = true
          yield* retryWanted(nsHex, peer)
        }
        if (resync) yield* syncWithPeer(doc, peer, "Resync")
      })

    const scheduleRedial = (ns: NamespaceId, peer: NodeId, attempt: number) =>
      attempt >= REDIAL_ATTEMPTS || shuttingDown
        ? Effect.void
        : fork(
          Effect.sleep(Duration.times(REDIAL_DELAY, 2 ** attempt)).pipe(
            Effect.zipRight(post({ _tag: "Redial", ns, peer, attempt }))
          )
        )

    const rememberAddresses = (peer: NodeId) =>
      Effect.gen(function*() {
        const addrs = yield* network.peerAddresses(peer)
        yield* addressBook.remember(new NodeAddr({ nodeId: peer, addrs: addrs.filter(isDialable) }))
      })

    // -- commands

    const acceptRequest = (ns: NamespaceId, peer: NodeId): Effect.Effect<Sync.AcceptOutcome> =>
      Effect.gen(function*() {
        const doc = docs.get(toHex(ns))
        if (doc === undefined || shuttingDown) return "NotFound"
        const state = peerState(doc, peer)
        if (state.state._tag === "Running") {
          if (state.state.origin._tag === "Accept") return "AlreadySyncing"
          // Both dialed (spec 04 §7): the session started by the smaller node id survives.
          if (toHex(me) < toHex(peer)) return "AlreadySyncing"
        }
        state.state = { _tag: "Running", start: yield* Clock.currentTimeMillis, origin: { _tag: "Accept" } }
        state.resyncRequested = false
        return "Allow"
      })

    const goLive = (ns: NamespaceId) =>
      Effect.gen(function*() {
        const nsHex = toHex(ns)
        const existing = docs.get(nsHex)
        if (existing !== undefined) return existing
        yield* replica.open(ns, { sync: true })
        const scope = yield* Scope.fork(serviceScope, ExecutionStrategy.sequential)
        const doc: Doc = { ns, peers: new Map(), mayEmitReady: false, scope }
        docs.set(nsHex, doc)
        const setup = Effect.gen(function*() {
          // Pulls, not Streams: a Stream stage cost three times the Effect operations per event on the write path.
          const replicaEvents = yield* replica.subscribePull(ns)
          yield* Effect.flatMap(replicaEvents, (events) => onReplicaEvents(ns, events)).pipe(
            Effect.forever,
            Effect.catchTag("NoSuchElementException", () => Effect.void),
            Effect.forkScoped
          )
          yield* gossip.join(ns, [])
          const topic = yield* gossip.eventsPull(ns)
          const inserting = yield* Effect.makeSemaphore(INSERT_PIPELINE)
          yield* Effect.flatMap(topic, (events) => onGossip(ns, events, inserting, scope)).pipe(
            Effect.forever,
            Effect.forkScoped
          )
          yield* Effect.forkScoped(scanWanted(ns))
        })
        const ok = yield* Effect.exit(Scope.extend(setup, scope))
        if (Exit.isFailure(ok)) {
          docs.delete(nsHex)
          yield* Scope.close(scope, Exit.void)
          yield* replica.close(ns)
          return yield* Effect.die(Cause.squash(ok.cause))
        }
        return doc
      })

    /**
     * Gossip events of one topic (spec 05 §8.2), as they arrived since the last call; runs in the topic's receive
     * loop, not in the actor. Other events are posted in order at once. Consecutive Puts relayed by the same node are
     * inserted as one batch (one verification round on the crypto pool, one transaction), and up to
     * {@link INSERT_PIPELINE} batches are in flight: a loop that awaited each insert would cap a document's gossip
     * intake at one store round trip per entry. Insert order does not matter (the newest entry wins either way).
     */
    const onGossip = (
      ns: NamespaceId,
      events: ReadonlyArray<Gossip.GossipEvent>,
      inserting: Effect.Semaphore,
      scope: Scope.Scope
    ): Effect.Effect<void> =>
      Effect.gen(function*() {
        let batch: Array<readonly [SignedEntry, ContentStatus]> = []
        /** Verified inline content of the batch's entries: key → content. */
        let contents: Array<readonly [Uint8Array, Uint8Array]> = []
        let batchFrom: NodeId | undefined
        const flush = Effect.suspend(() => {
          if (batch.length === 0 || batchFrom === undefined) return Effect.void
          const entries = batch
          const inline = contents
          const from = batchFrom
          batch = []
          contents = []
          return inserting.take(1).pipe(
            Effect.zipRight(
              count("gossip_put_received", entries.length).pipe(
                Effect.zipRight(addInline(ns, inline)),
                Effect.zipRight(replica.insertRemoteMany(ns, entries, from)),
                // The temporary tags of the inline content end once the entries protect it.
                Effect.scoped,
                Effect.ignore,
                Effect.ensuring(inserting.release(1)),
                Effect.forkIn(scope)
              )
            ),
            Effect.asVoid
          )
        })
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
                  if (batchFrom !== undefined && toHex(batchFrom) !== toHex(event.deliveredFrom)) yield* flush
                  batchFrom = event.deliveredFrom
                  // Content is there to fetch only if the message came straight from its publisher.
                  let status: ContentStatus = event.direct ? "Complete" : "Missing"
                  if (op.content !== undefined) {
                    if (inlineMatches(op.entry, op.content)) {
                      contents.push([op.entry.entry.id.key, op.content])
                      status = "Complete"
                    } else yield* count("gossip_inline_content_rejected")
                  }
                  batch.push([op.entry, status])
                  break
                }
                // Both are meant for direct neighbors only (spec 05 §8.1); gossipsub relays them further, and a
                // relayed one names a node we may have no connection or address for.
                case "ContentReady":
                  if (event.direct) yield* post({ _tag: "ContentReadyFrom", ns, node: event.from, hash: op.hash })
                  break
                case "SyncReport":
                  if (event.direct && toHex(op.namespace) === toHex(ns)) {
                    yield* post({ _tag: "SyncReport", ns, from: event.from, heads: op.heads })
                  }
                  break
              }
            }
          }
        }
        yield* flush
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

    /** After a restart the wanted content of a live document comes from its entries (download policy applied). */
    const scanWanted = (ns: NamespaceId) =>
      Effect.gen(function*() {
        const policy = yield* replica.getDownloadPolicy(ns)
        const hashes: Array<Hash> = []
        const seen = new Set<string>()
        yield* Stream.runForEach(replica.getMany(ns, Query.all()), (entry) =>
          Effect.gen(function*() {
            const hash = entry.contentHash
            const key = toHex(hash)
            if (key === EMPTY_HEX || seen.has(key) || !DownloadPolicy.matches(policy, entry.key)) return
            seen.add(key)
            const status = yield* blobs.status(hash).pipe(Effect.orElseSucceed(() => "Missing" as const))
            if (status !== "Complete") hashes.push(hash)
          }))
        if (hashes.length > 0) yield* post({ _tag: "WantedScan", ns, hashes })
      }).pipe(Effect.catchAllCause((cause) => Effect.logWarning("scanning wanted content failed", cause)))

    const joinPeers = (doc: Doc, peers: ReadonlyArray<NodeAddr>) =>
      Effect.gen(function*() {
        for (const peer of peers) if (peer.addrs.length > 0) yield* addressBook.remember(peer)
        const ids = dedupe(peers.map((p) => p.nodeId)).filter((id) => toHex(id) !== meHex)
        yield* gossip.join(doc.ns, peers.filter((p) => toHex(p.nodeId) !== meHex))
        for (const id of ids) yield* syncWithPeer(doc, id, "DirectJoin")
      })

    const startSync = (ns: NamespaceId, peers: ReadonlyArray<NodeAddr>) =>
      Effect.gen(function*() {
        const doc = yield* goLive(ns)
        const stored = yield* replica.getSyncPeers(ns).pipe(
          Effect.map(Option.getOrElse(() => [] as ReadonlyArray<Uint8Array>)),
          Effect.orElseSucceed(() => [] as ReadonlyArray<Uint8Array>)
        )
        const storedAddrs: Array<NodeAddr> = []
        for (const id of stored) if (id.length === 32) storedAddrs.push(yield* addressBook.lookup(NodeId.make(id)))
        yield* joinPeers(doc, [...peers, ...storedAddrs])
      })

    const leave = (ns: NamespaceId, kill: boolean) =>
      Effect.gen(function*() {
        const nsHex = toHex(ns)
        const doc = docs.get(nsHex)
        if (doc !== undefined) {
          docs.delete(nsHex)
          for (const hashHex of queuedByDoc.get(nsHex) ?? []) queued.get(hashHex)?.delete(nsHex)
          queuedByDoc.delete(nsHex)
          for (const w of wanted.values()) w.docs.delete(nsHex)
          yield* Scope.close(doc.scope, Exit.void)
          yield* gossip.leave(ns)
          yield* replica.setSync(ns, false).pipe(Effect.ignore)
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
          return leave(command.ns, command.kill).pipe(Effect.zipRight(Deferred.succeed(command.done, undefined)))
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
          return Effect.flatMap(acceptRequest(command.ns, command.peer), (o) => Deferred.succeed(command.done, o))
        case "NeighborUp": {
          const doc = docs.get(toHex(command.ns))
          if (doc === undefined) return Effect.void
          return emit(toHex(command.ns), new LiveEvent.NeighborUp({ peer: command.peer })).pipe(
            Effect.zipRight(syncWithPeer(doc, command.peer, "NewNeighbor"))
          )
        }
        case "NeighborDown":
          return docs.has(toHex(command.ns))
            ? emit(toHex(command.ns), new LiveEvent.NeighborDown({ peer: command.peer })).pipe(
              Effect.zipRight(scheduleRedial(command.ns, command.peer, 0))
            )
            : Effect.void
        case "Redial": {
          if (!docs.has(toHex(command.ns)) || shuttingDown) return Effect.void
          return Effect.gen(function*() {
            const current = yield* gossip.neighbors(command.ns)
            if (current.some((id) => toHex(id) === toHex(command.peer))) return
            yield* gossip.join(command.ns, [yield* addressBook.lookup(command.peer)])
            yield* scheduleRedial(command.ns, command.peer, command.attempt + 1)
          })
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
        case "ContentReadyFrom":
          return docs.has(toHex(command.ns))
            ? startDownload(toHex(command.ns), command.hash, command.node, true)
            : Effect.void
        case "Replica":
          return onRemoteInsert(command.ns, command.event)
        case "Connected": {
          const exit = command.exit
          if (Exit.isFailure(exit)) {
            const failure = Cause.failureOption(exit.cause)
            if (Option.isSome(failure) && failure.value._tag === "RemoteAbort" && failure.value.reason === "AlreadySyncing") {
              return Effect.void
            }
            // A peer cooling down after too many invalid entries: no session ran.
            if (Option.isSome(failure) && failure.value._tag === "PeerCoolingDown") return Effect.void
          }
          return syncFinished(command.ns, command.peer, { _tag: "Connect", reason: command.reason }, exit)
        }
        case "Accepted": {
          const exit = command.exit
          if (Exit.isSuccess(exit)) return syncFinished(exit.value.namespace, exit.value.peer, { _tag: "Accept" }, exit)
          const failure = Cause.failureOption(exit.cause)
          if (Option.isNone(failure)) return Effect.logWarning("sync acceptor died", exit.cause)
          const error = failure.value
          // Refused sessions never ran (the pair's state was not taken for them); Sync logged the failure already.
          if (error._tag === "SyncRejected" || error._tag === "PeerCoolingDown") return Effect.void
          if (error.namespace === undefined) return Effect.void
          return syncFinished(error.namespace, error.peer, { _tag: "Accept" }, exit)
        }
        case "Downloaded":
          return downloadFinished(command.hash, command.exit)
        case "WantedScan": {
          const nsHex = toHex(command.ns)
          const doc = docs.get(nsHex)
          if (doc === undefined) return Effect.void
          return Effect.gen(function*() {
            for (const hash of command.hashes) {
              const hashHex = toHex(hash)
              if (queued.has(hashHex)) queue(hashHex, nsHex)
              else wantedFor(hash).docs.add(nsHex)
            }
            // Peers that synced before the scan finished will not offer themselves again: ask them now.
            for (const [key, state] of doc.peers) {
              const peer = fromHex(key)
              if (state.synced && peer !== undefined) yield* retryWanted(nsHex, NodeId.make(peer))
            }
          })
        }
        case "RetryDownload": {
          const w = wanted.get(toHex(command.hash))
          if (w === undefined) return Effect.void
          const nsHex = [...w.docs].find((d) => docs.has(d))
          return nsHex === undefined ? Effect.void : startDownload(nsHex, w.hash, undefined, true)
        }
      }
    }

    yield* Effect.forkScoped(
      Effect.forever(
        Effect.flatMap(takeOrInterrupt(inbox), (command) =>
          handle(command).pipe(
            Effect.zipRight(count("actor_tick_main")),
            Effect.zipRight(count("doc_live_tick_main")),
            Effect.zipRight(count(tickOf(command))),
            Effect.catchAllCause((cause) =>
              Cause.isInterruptedOnly(cause) ? Effect.void : Effect.logError("live engine command failed", cause)
            )
          ))
      ).pipe(Effect.annotateLogs({ service: "LiveSync" }))
    )

    // Shutdown (spec 05 §13): no new work, subscribers' streams end, topics and replicas are left, running sessions
    // and downloads are interrupted (the FiberSet closes before this finalizer runs: finalizers run in reverse).
    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        shuttingDown = true
        for (const nsHex of [...subscribers.keys()]) yield* dropSubscribers(nsHex)
        for (const doc of [...docs.values()]) yield* leave(doc.ns, true)
        yield* replica.flush.pipe(Effect.ignore)
      })
    )

    const ask = <A, E>(make: (done: Deferred.Deferred<A, E>) => Command) =>
      Effect.flatMap(Deferred.make<A, E>(), (done) => Effect.zipRight(post(make(done)), Deferred.await(done)))

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
      return blobs.status(event.entry.contentHash).pipe(
        Effect.orElseSucceed(() => "Missing" as const),
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

    const metrics = Effect.gen(function*() {
      const out: Record<string, number> = {}
      for (const name of COUNTERS) out[name] = (yield* Metric.value(counters[name])).count
      return out
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
    case "NeighborUp":
    case "NeighborDown":
    case "SyncReport":
    case "ContentReadyFrom":
      return "doc_gossip_tick_event"
    default:
      return "doc_live_tick_actor"
  }
}

/** Bytes of a SyncReport besides its heads: variant, namespace, length prefix. */
const SYNC_REPORT_OVERHEAD = 1 + 32 + 5

const dedupe = (ids: ReadonlyArray<NodeId>): Array<NodeId> => {
  const seen = new Map<string, NodeId>()
  for (const id of ids) seen.set(toHex(id), id)
  return [...seen.values()]
}

/** Loopback, LAN and public TCP addresses; not relay circuits we cannot use. */
const isDialable = (addr: string) => !addr.includes("/p2p-circuit")

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
