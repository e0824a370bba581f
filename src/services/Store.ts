/**
 * The document store (spec 03) on SQLite through @effect/sql-sqlite-node: authors, namespaces, entries with their
 * key-ordered index, latest-per-author, sync peers and download policies. One implementation; `layerMemory` runs it
 * on `:memory:`, `layerFile` on a WAL database file.
 *
 * Insert rules are spec 01 §9 with option B of §13: every stored entry of the author whose key is a prefix of the new
 * key (tombstones and the empty key included) blocks an older or equal insert. Prefix removal is a true starts-with
 * range. Every statement is confined to one namespace.
 *
 * Streaming reads (`getMany`, `contentHashes`) are paged by keyset: every entry present for the whole read is returned
 * exactly once and in order; entries written while the stream runs may or may not appear. Nothing loads a whole
 * namespace into memory.
 */
import * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import type { Connection } from "@effect/sql/SqlConnection"
import { SqlError } from "@effect/sql/SqlError"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import { Chunk, Clock, Context, Effect, Either, Layer, Metric, Option, Schema, type Scope, Stream } from "effect"
import { blake3, EMPTY_HASH } from "../internal/blake3.js"
import { compare, concat, equals, latin1, prefixUpperBound, u64FromBytesBE, u64ToBytesBE } from "../internal/bytes.js"
import { FingerprintTree } from "../internal/fingerprintTree.js"
import type { RangeSummary, RangeView } from "../internal/reconcile.js"
import * as AuthorHeads from "../schema/AuthorHeads.js"
import * as Capability from "../schema/Capability.js"
import { DocumentNotCreated, NamespaceMismatch, ReplicaNotClosed, ReplicaNotFound, StoreError } from "../schema/Errors.js"
import * as DownloadPolicy from "../schema/DownloadPolicy.js"
import { compareRecords, EMPTY, entryFingerprint, makeSignedEntry, sharedKey, type SignedEntry } from "../schema/Entry.js"
import { Author, AuthorFromBytes, AuthorId, Hash, NamespaceId } from "../schema/Keys.js"
import type { Query } from "../schema/Query.js"

/** Most recently useful peers kept per document (spec 03 §3). */
export const PEERS_PER_DOC_CACHE_SIZE = 5
/** Rows read per statement while building a range index. */
const INDEX_PAGE = 50_000
/** Rows fetched per page by streaming reads. */
export const PAGE_SIZE = 512
/** Rows `getMany` read from SQLite into JS (skipped rows of an offset are not: SQLite steps over them). */
export const queryRowsRead = Metric.counter("rangedocs_store_query_rows", { incremental: true })

export type PutOutcome =
  | { readonly _tag: "Inserted"; readonly removed: number }
  | { readonly _tag: "NotInserted"; readonly newer: { readonly key: Uint8Array; readonly timestamp: bigint } }

export type ImportOutcome = "Inserted" | "Upgraded" | "NoChange"

export interface LatestEntry {
  readonly author: AuthorId
  readonly timestamp: bigint
  readonly key: Uint8Array
}

export interface StoreService {
  /** Runs `effect` in one SQLite transaction (nested calls join it): the actor's group commit. */
  readonly withTransaction: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | StoreError, R>

  readonly importAuthor: (author: Author) => Effect.Effect<void, StoreError>
  readonly getAuthor: (id: AuthorId) => Effect.Effect<Option.Option<Author>, StoreError>
  readonly deleteAuthor: (id: AuthorId) => Effect.Effect<void, StoreError>
  /** Every author id, ascending. */
  readonly listAuthors: Effect.Effect<ReadonlyArray<AuthorId>, StoreError>

  /** Insert, or merge into the stored capability (spec 01 §2). */
  readonly importNamespace: (cap: Capability.Capability) => Effect.Effect<ImportOutcome, StoreError | NamespaceMismatch>
  readonly getCapability: (ns: NamespaceId) => Effect.Effect<Option.Option<Capability.Capability>, StoreError>
  /** Every namespace with its capability kind, ascending by id. */
  readonly listNamespaces: Effect.Effect<
    ReadonlyArray<readonly [NamespaceId, Capability.CapabilityKind]>,
    StoreError
  >
  /** Loads the capability and marks the namespace open. */
  readonly openReplica: (ns: NamespaceId) => Effect.Effect<Capability.Capability, StoreError | ReplicaNotFound>
  readonly closeReplica: (ns: NamespaceId) => Effect.Effect<void>
  /** Deletes every entry, the capability, sync peers and policy of a closed namespace. */
  readonly removeReplica: (ns: NamespaceId) => Effect.Effect<void, StoreError | ReplicaNotClosed>

  /**
   * spec 01 §9 with option B, **without any validation**: the caller must have checked the entry (signatures,
   * namespace, timestamp, key length — Replica's insert paths do). Named unsafe because storing an unchecked entry
   * makes this node serve a forgery to its peers.
   */
  readonly unsafePut: (entry: SignedEntry) => Effect.Effect<PutOutcome, StoreError>
  /**
   * The read-only view of one namespace that reconciliation works on (spec 02): ranks, ids and range fingerprints in
   * O(log n) from an in-memory index, entries by rank from SQLite. Ranges are confined to the namespace.
   */
  readonly rangeView: (ns: NamespaceId) => Effect.Effect<RangeView<StoreError>, StoreError>
  /**
   * What a session needs before it knows the two sides differ — entry count, set fingerprint, first id — without
   * building the range index: from the index when it is loaded, else from the summary kept when the store last closed
   * the namespace (exact: every write since dropped it). None when neither is there.
   */
  readonly rangeSummary: (ns: NamespaceId) => Effect.Effect<Option.Option<RangeSummary>, StoreError>
  /** `unsafePut` for each entry in order, in one transaction (or the current one); no validation either. */
  readonly putMany: (entries: ReadonlyArray<SignedEntry>) => Effect.Effect<ReadonlyArray<PutOutcome>, StoreError>
  readonly getExact: (
    ns: NamespaceId,
    author: AuthorId,
    key: Uint8Array,
    includeEmpty: boolean
  ) => Effect.Effect<Option.Option<SignedEntry>, StoreError>
  readonly getMany: (ns: NamespaceId, query: Query) => Stream.Stream<SignedEntry, StoreError>
  /** Number of stored entries of a namespace, tombstones included. */
  readonly count: (ns: NamespaceId) => Effect.Effect<number, StoreError>
  /** The content hash of every stored entry in every namespace (duplicates possible, tombstones give EMPTY). */
  readonly contentHashes: Stream.Stream<Hash, StoreError>
  /** Newest timestamp per author with data in `ns`, ascending by author. */
  readonly getLatestForEachAuthor: (ns: NamespaceId) => Effect.Effect<ReadonlyArray<LatestEntry>, StoreError>
  /** How many authors `heads` knows newer data of than we do (spec 01 §12). */
  readonly hasNewsForUs: (ns: NamespaceId, heads: AuthorHeads.AuthorHeads) => Effect.Effect<number, StoreError>

  readonly registerUsefulPeer: (
    ns: NamespaceId,
    peer: Uint8Array
  ) => Effect.Effect<void, StoreError | DocumentNotCreated>
  /** Most recently useful first; none when empty. */
  readonly getSyncPeers: (ns: NamespaceId) => Effect.Effect<Option.Option<ReadonlyArray<Uint8Array>>, StoreError>
  readonly setDownloadPolicy: (
    ns: NamespaceId,
    policy: DownloadPolicy.DownloadPolicy
  ) => Effect.Effect<void, StoreError | DocumentNotCreated>
  readonly getDownloadPolicy: (ns: NamespaceId) => Effect.Effect<DownloadPolicy.DownloadPolicy, StoreError>
  /** Marks a document live (the engine resumes it at start, finding 3) or not; `removeReplica` unmarks it. */
  readonly setLive: (ns: NamespaceId, live: boolean) => Effect.Effect<void, StoreError>
  readonly listLive: Effect.Effect<ReadonlyArray<NamespaceId>, StoreError>
  /** Content a document wants and could not get yet (finding 4: remembered here, not in memory). */
  readonly addWanted: (ns: NamespaceId, hashes: ReadonlyArray<Hash>) => Effect.Effect<void, StoreError>
  /** Forgets `hash` for every document (its content is complete). */
  readonly removeWanted: (hash: Hash) => Effect.Effect<void, StoreError>
  /** Up to `limit` wanted hashes of `ns` after `after` (hash order), for paging through a large wanted set. */
  readonly listWanted: (ns: NamespaceId, limit: number, after?: Hash) => Effect.Effect<ReadonlyArray<Hash>, StoreError>
  readonly countWanted: (ns: NamespaceId) => Effect.Effect<number, StoreError>
  /** Forgets the wanted set of `ns` (the document left). */
  readonly clearWanted: (ns: NamespaceId) => Effect.Effect<void, StoreError>
}

export class Store extends Context.Tag("docs/Store")<Store, StoreService>() {}

// ---------------------------------------------------------------------------------------------------------------
// Schema

const migrations = Migrator.fromRecord({
  "0001_initial": Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    // u64 values (ts, len) are 8-byte big-endian BLOBs: exact for every u64 and ordered by memcmp.
    yield* sql`CREATE TABLE authors (id BLOB PRIMARY KEY, secret BLOB NOT NULL) WITHOUT ROWID`
    yield* sql`CREATE TABLE namespaces (id BLOB PRIMARY KEY, kind INTEGER NOT NULL, bytes BLOB NOT NULL) WITHOUT ROWID`
    yield* sql`CREATE TABLE records (
      ns BLOB NOT NULL, author BLOB NOT NULL, key BLOB NOT NULL,
      ts BLOB NOT NULL, len BLOB NOT NULL, hash BLOB NOT NULL, ns_sig BLOB NOT NULL, author_sig BLOB NOT NULL,
      PRIMARY KEY (ns, author, key)) WITHOUT ROWID`
    // (ns, key, author) compared element by element (spec 03 §2).
    yield* sql`CREATE INDEX records_by_key ON records (ns, key, author)`
    yield* sql`CREATE TABLE latest (ns BLOB NOT NULL, author BLOB NOT NULL, ts BLOB NOT NULL, key BLOB NOT NULL,
      PRIMARY KEY (ns, author)) WITHOUT ROWID`
    // latest-per-author keeps the maximum (spec 03 §2): a late, older entry does not move it back.
    yield* sql`CREATE TRIGGER records_latest AFTER INSERT ON records BEGIN
      INSERT INTO latest (ns, author, ts, key) VALUES (NEW.ns, NEW.author, NEW.ts, NEW.key)
      ON CONFLICT (ns, author) DO UPDATE SET ts = excluded.ts, key = excluded.key WHERE excluded.ts > latest.ts;
    END`
    yield* sql`CREATE TABLE sync_peers (ns BLOB NOT NULL, peer BLOB NOT NULL, stamp INTEGER NOT NULL,
      PRIMARY KEY (ns, peer)) WITHOUT ROWID`
    yield* sql`CREATE TABLE download_policy (ns BLOB PRIMARY KEY, policy BLOB NOT NULL) WITHOUT ROWID`
  }),
  "0002_live": Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`CREATE TABLE live_docs (ns BLOB PRIMARY KEY) WITHOUT ROWID`
    yield* sql`CREATE TABLE wanted (ns BLOB NOT NULL, hash BLOB NOT NULL, PRIMARY KEY (ns, hash)) WITHOUT ROWID`
    yield* sql`CREATE INDEX wanted_by_hash ON wanted (hash)`
  }),
  "0003_range_summaries": Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    // A namespace's entry count and set fingerprint as its range index had them when the store last closed it (see
    // `rangeSummary`). Any write to the namespace's records drops its row, in the writing statement itself: a row
    // that exists is exact.
    yield* sql`CREATE TABLE range_summaries (ns BLOB PRIMARY KEY, count INTEGER NOT NULL, fingerprint BLOB NOT NULL)
      WITHOUT ROWID`
    yield* sql`CREATE TRIGGER range_summaries_insert AFTER INSERT ON records BEGIN
      DELETE FROM range_summaries WHERE ns = NEW.ns;
    END`
    yield* sql`CREATE TRIGGER range_summaries_update AFTER UPDATE ON records BEGIN
      DELETE FROM range_summaries WHERE ns = OLD.ns OR ns = NEW.ns;
    END`
    yield* sql`CREATE TRIGGER range_summaries_delete AFTER DELETE ON records BEGIN
      DELETE FROM range_summaries WHERE ns = OLD.ns;
    END`
  })
})

const migrate = Migrator.make({})({ loader: migrations, table: "rangedocs_migrations" })

// ---------------------------------------------------------------------------------------------------------------
// Rows

interface EntryRow {
  readonly ns: Uint8Array
  readonly author: Uint8Array
  readonly key: Uint8Array
  readonly ts: Uint8Array
  readonly len: Uint8Array
  readonly hash: Uint8Array
  readonly ns_sig: Uint8Array
  readonly author_sig: Uint8Array
}

const ENTRY_COLUMNS = "ns, author, key, ts, len, hash, ns_sig, author_sig"

const rowToEntry = (r: EntryRow): SignedEntry =>
  makeSignedEntry({
    namespace: r.ns,
    author: r.author,
    key: r.key,
    len: u64FromBytesBE(r.len),
    hash: r.hash,
    timestamp: u64FromBytesBE(r.ts),
    authorSignature: r.author_sig,
    namespaceSignature: r.ns_sig
  })

/**
 * One namespace's entries as one BLOB per row: `author ‖ key ‖ ts ‖ len ‖ hash ‖ ns_sig ‖ author_sig` (the key's
 * length is the rest: 208 bytes are fixed). The fields become views into that one buffer: a row costs one allocation
 * instead of eight (SQLite concatenates the bytes as they are; the CAST only gives them back as a BLOB). The author is
 * shared with other entries of the same author.
 */
const PACKED_COLUMNS = "CAST(author || key || ts || len || hash || ns_sig || author_sig AS BLOB) AS b"

/** Ids per statement of `entriesByRanks`. */
const RANK_BATCH = 256
const RANK_BATCH_SQL = `SELECT ${PACKED_COLUMNS} FROM records WHERE ns = ? AND (author, key) IN (VALUES ${
  Array.from({ length: RANK_BATCH }, () => "(?, ?)").join(", ")
})`

interface PackedRow {
  readonly b: Uint8Array
}

const packedToEntry = (ns: Uint8Array, r: PackedRow): SignedEntry => {
  const b = r.b
  const k = b.length - 176
  return makeSignedEntry({
    namespace: ns,
    author: sharedKey(b, 0),
    key: b.subarray(32, k),
    timestamp: u64FromBytesBE(b.subarray(k, k + 8)),
    len: u64FromBytesBE(b.subarray(k + 8, k + 16)),
    hash: b.subarray(k + 16, k + 48),
    namespaceSignature: b.subarray(k + 48, k + 112),
    authorSignature: b.subarray(k + 112, k + 176)
  })
}

/** `prefix ‖ bytes of the latin1 string s` in one allocation. */
const withLatin1 = (prefix: Uint8Array, s: string): Uint8Array => {
  const out = new Uint8Array(prefix.length + s.length)
  out.set(prefix)
  for (let i = 0, o = prefix.length; i < s.length; i++) out[o + i] = s.charCodeAt(i)
  return out
}
/** Scratch of `indexKey`, grown on demand. */
let keyScratch = Buffer.allocUnsafeSlow(1024)

/** One flat string (a concatenation would keep a rope of three strings alive in the index per entry). */
const indexKey = (author: Uint8Array, key: Uint8Array) => {
  const n = author.length + key.length
  if (keyScratch.length < n) keyScratch = Buffer.allocUnsafeSlow(2 * n)
  keyScratch.set(author)
  keyScratch.set(key, author.length)
  return keyScratch.toString("latin1", 0, n)
}

/**
 * Whether the namespace's tree (which holds exactly its stored ids) has a candidate of spec 01 §9 for the index key
 * `own` (author ‖ key): a stored key of the author that is a prefix of the key, equals it, or extends it. Without
 * one, a put needs no candidate query (the common case of a sync: new keys).
 *
 * A stored proper prefix p of `own` sorts before it, so p ≤ pred < own for the stored predecessor pred of `own`, and
 * every string in [p, own) starts with p: p is a common prefix of pred and own. Only those lengths are looked up.
 */
const hasCandidates = (tree: FingerprintTree, own: string): boolean => {
  const r = tree.rank(own)
  if (r < tree.size && tree.select(r).startsWith(own)) return true
  if (r === 0) return false
  const pred = tree.select(r - 1)
  const max = Math.min(pred.length, own.length)
  let common = 0
  while (common < max && pred.charCodeAt(common) === own.charCodeAt(common)) common++
  if (common < 32) return false
  if (common === pred.length) return true
  for (let n = 32; n <= common; n++) if (tree.has(own.slice(0, n))) return true
  return false
}

/** The set fingerprint of spec 01 §7: the entries' XOR on top of BLAKE3(""). */
const setFingerprint = (tree: FingerprintTree): Uint8Array => {
  const out = tree.xorRange(0, tree.size)
  for (let i = 0; i < 32; i++) out[i]! ^= EMPTY_HASH[i]!
  return out
}

const recordOf = (r: { readonly ts: Uint8Array; readonly hash: Uint8Array }) => ({
  timestamp: u64FromBytesBE(r.ts),
  hash: r.hash
})

// The blocked check and the prefix-removal candidates of spec 01 §9 in one statement: stored keys that are prefixes of
// the new key (one index lookup per prefix length) and stored keys that extend it (a range scan bounded by `upper`).
// Params: key, ns, author, key, ns, author, key[, upper].
const PREFIXES = `WITH RECURSIVE p(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM p WHERE n < length(?))
  SELECT r.key, r.ts, r.hash FROM p JOIN records r ON r.ns = ? AND r.author = ? AND r.key = coalesce(substr(?, 1, p.n), X'')`
const PUT_CANDIDATES_UNBOUNDED = `${PREFIXES}
  UNION ALL SELECT key, ts, hash FROM records WHERE ns = ? AND author = ? AND key > ?`
const PUT_CANDIDATES_BOUNDED = `${PUT_CANDIDATES_UNBOUNDED} AND key < ?`
// Removes the author's entries whose key starts with the new key and whose record (ts, hash) is <= the new one.
// Params: ns, author, key, ts, ts, hash[, upper].
const REMOVE_OLDER_UNBOUNDED = `DELETE FROM records WHERE ns = ? AND author = ? AND key >= ?
  AND (ts < ? OR (ts = ? AND hash <= ?))`
const REMOVE_OLDER = `${REMOVE_OLDER_UNBOUNDED} AND key < ?`
const INSERT_ENTRY = `INSERT INTO records (${ENTRY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`
/**
 * Rows per multi-row INSERT (8 parameters each; SQLite allows 32766). A statement costs far more in @effect/sql than in
 * SQLite, so runs of new keys are written in statements of 128, 64, …, 1 rows (eight statement texts to prepare).
 */
const INSERT_ROWS = 128
const INSERT_TEXTS: ReadonlyArray<string> = Array.from({ length: 8 }, (_, log) =>
  `INSERT INTO records (${ENTRY_COLUMNS}) VALUES ${Array.from({ length: 1 << log }, () => "(?, ?, ?, ?, ?, ?, ?, ?)").join(", ")}`)

const INSERTED: PutOutcome = { _tag: "Inserted", removed: 0 }


// ---------------------------------------------------------------------------------------------------------------
// Implementation

export const make: Effect.Effect<StoreService, StoreError, SqlClient.SqlClient | Scope.Scope> = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const fail = (method: string) => (cause: SqlError | Migrator.MigrationError) => new StoreError({ method, cause })

  // WAL + NORMAL: a commit is atomic and survives a process crash (kill -9); only a power loss may drop the last
  // commits. Page cache 16 MiB per connection and no memory map: both count in the process's resident memory (a
  // map makes every page of the file read so far resident), and a sync's reads are ordered range scans that the
  // OS page cache serves well (measured with `npm run bench -- sync --mem`).
  yield* sql`PRAGMA synchronous = NORMAL`.pipe(Effect.mapError(fail("open")))
  // 4 MiB of page cache per store: the fingerprint index answers the hot reads from memory (sync peak RSS −10..15 MB).
  yield* sql`PRAGMA cache_size = -4096`.pipe(Effect.mapError(fail("open")))
  yield* sql`PRAGMA mmap_size = 0`.pipe(Effect.mapError(fail("open")))
  yield* sql`PRAGMA temp_store = MEMORY`.pipe(Effect.mapError(fail("open")))
  // Checkpoint every 64 MiB of WAL instead of 4 MiB: each checkpoint syncs the database file.
  yield* sql`PRAGMA wal_autocheckpoint = 16384`.pipe(Effect.mapError(fail("open")))
  yield* sql`PRAGMA foreign_keys = OFF`.pipe(Effect.mapError(fail("open")))
  yield* migrate.pipe(Effect.mapError(fail("migrate")))

  /** Runs a raw statement on the transaction's connection when there is one (no compile, no span: hot path). */
  const exec = <Row extends object>(text: string, params: ReadonlyArray<unknown>): Effect.Effect<ReadonlyArray<Row>, SqlError> =>
    Effect.flatMap(Effect.serviceOption(SqlClient.TransactionConnection), (tx) =>
      Option.isSome(tx)
        ? (tx.value[0].execute(text, params, undefined) as Effect.Effect<ReadonlyArray<Row>, SqlError>)
        : (sql.unsafe<Row>(text, params).withoutTransform as Effect.Effect<ReadonlyArray<Row>, SqlError>))

  const inTransaction = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | SqlError, R> =>
    Effect.flatMap(Effect.serviceOption(SqlClient.TransactionConnection), (tx) =>
      Option.isSome(tx) ? effect : sql.withTransaction(effect))

  /** The connection of the current transaction (inside `inTransaction`). */
  const transactionConnection = Effect.flatMap(
    Effect.serviceOption(SqlClient.TransactionConnection),
    Option.match({ onNone: () => Effect.dieMessage("no transaction"), onSome: ([conn]) => Effect.succeed(conn) })
  )

  // -- range index (spec 02): one fingerprint tree per namespace, built on first use from one pass over its ids,
  // maintained by every put and removal after that, dropped when the namespace closes. A rolled-back transaction
  // drops every tree (they are rebuilt on next use), so no tree ever holds a change the database does not.
  const indexes = new Map<string, FingerprintTree>()
  const dropIndexes = Effect.sync(() => indexes.clear())

  const withTransaction: StoreService["withTransaction"] = (effect) =>
    sql.withTransaction(effect).pipe(
      Effect.onError(() => dropIndexes),
      Effect.mapError((e) => (e instanceof SqlError ? new StoreError({ method: "transaction", cause: e }) : e))
    )

  const open = new Set<string>()

  // Peer stamps continue after those of an earlier session, even when the clock is now behind them (spec 03 §3).
  const stampRows = yield* exec<{ s: string }>(`SELECT CAST(coalesce(max(stamp), 0) AS TEXT) AS s FROM sync_peers`, []).pipe(
    Effect.mapError(fail("open"))
  )
  let lastPeerStamp = BigInt(stampRows[0]?.s ?? "0")

  // -- authors

  const importAuthor = (author: Author) =>
    exec(`INSERT INTO authors (id, secret) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET secret = excluded.secret`, [
      author.id,
      Schema.encodeSync(AuthorFromBytes)(author).subarray(1)
    ]).pipe(Effect.asVoid, Effect.mapError(fail("importAuthor")))

  const getAuthor = (id: AuthorId) =>
    exec<{ secret: Uint8Array }>(`SELECT secret FROM authors WHERE id = ?`, [id]).pipe(
      Effect.map((rows) => Option.map(Option.fromNullable(rows[0]), (r) => Author.fromSeed(r.secret))),
      Effect.mapError(fail("getAuthor"))
    )

  const deleteAuthor = (id: AuthorId) =>
    exec(`DELETE FROM authors WHERE id = ?`, [id]).pipe(Effect.asVoid, Effect.mapError(fail("deleteAuthor")))

  const listAuthors = exec<{ id: Uint8Array }>(`SELECT id FROM authors ORDER BY id`, []).pipe(
    Effect.map((rows) => rows.map((r) => AuthorId.make(r.id))),
    Effect.mapError(fail("listAuthors"))
  )

  // -- namespaces

  const getCapability = (ns: NamespaceId) =>
    exec<{ kind: number; bytes: Uint8Array }>(`SELECT kind, bytes FROM namespaces WHERE id = ?`, [ns]).pipe(
      Effect.map((rows) => Option.flatMap(Option.fromNullable(rows[0]), (r) => Option.fromNullable(Capability.fromRaw(r.kind, r.bytes)))),
      Effect.mapError(fail("getCapability"))
    )

  const writeCapability = (cap: Capability.Capability) => {
    const raw = Capability.toRaw(cap)
    return exec(
      `INSERT INTO namespaces (id, kind, bytes) VALUES (?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, bytes = excluded.bytes`,
      [cap.id, raw.kind, raw.bytes]
    )
  }

  const importNamespace = (cap: Capability.Capability) =>
    inTransaction(Effect.gen(function*() {
      const stored = yield* getCapability(cap.id)
      if (Option.isNone(stored)) {
        yield* writeCapability(cap)
        return "Inserted" as const
      }
      const merged = Capability.merge(stored.value, cap)
      if (Either.isLeft(merged)) return yield* merged.left
      if (!merged.right.upgraded) return "NoChange" as const
      yield* writeCapability(merged.right.capability)
      return "Upgraded" as const
    })).pipe(Effect.mapError((e) => (e._tag === "SqlError" ? fail("importNamespace")(e) : e)))

  const listNamespaces = exec<{ id: Uint8Array; kind: number }>(`SELECT id, kind FROM namespaces ORDER BY id`, []).pipe(
    Effect.map((rows) =>
      rows.map((r) => [NamespaceId.make(r.id), Capability.kindFromCode(r.kind) ?? "read"] as const)
    ),
    Effect.mapError(fail("listNamespaces"))
  )

  /**
   * Opening a namespace without entries (a new document, or one joined but not synced yet) gives it its empty index
   * at once: its writes then never query for candidates (spec 01 §9) and go out in multi-row INSERTs. A stored
   * namespace's index is still built only when a session needs it (seconds for a million entries).
   */
  const openReplica = (ns: NamespaceId): Effect.Effect<Capability.Capability, StoreError | ReplicaNotFound> =>
    getCapability(ns).pipe(
      Effect.flatMap(Option.match({
        onNone: (): Effect.Effect<Capability.Capability, StoreError | ReplicaNotFound> =>
          Effect.fail(new ReplicaNotFound({ namespace: ns })),
        onSome: (cap) =>
          Effect.suspend(() =>
            indexes.has(latin1(ns))
              ? Effect.void
              : Effect.map(exec<{ one: number }>(`SELECT 1 AS one FROM records WHERE ns = ? LIMIT 1`, [ns]), (rows) => {
                if (rows.length === 0 && !indexes.has(latin1(ns))) indexes.set(latin1(ns), new FingerprintTree())
              }).pipe(Effect.mapError(fail("openReplica")))
          ).pipe(Effect.as(cap), Effect.tap(() => Effect.sync(() => open.add(latin1(ns)))))
      }))
    )

  /**
   * Keeps the loaded index's count and fingerprint of each namespace (or the given one) for the next cold start (see
   * `rangeSummary`). Best effort: a failure only costs that start an index build.
   */
  const keepSummaries = (only?: NamespaceId) =>
    Effect.suspend(() => {
      const trees = only === undefined
        ? Array.from(indexes)
        : Array.from(indexes).filter(([k]) => k === latin1(only))
      return Effect.forEach(trees, ([k, tree]) =>
        exec(
          `INSERT INTO range_summaries (ns, count, fingerprint) VALUES (?, ?, ?)
           ON CONFLICT (ns) DO UPDATE SET count = excluded.count, fingerprint = excluded.fingerprint`,
          [Buffer.from(k, "latin1"), tree.size, setFingerprint(tree)]
        ), { discard: true })
    }).pipe(Effect.catchAll((e) => Effect.logDebug("range summary not kept", e)))

  const closeReplica = (ns: NamespaceId) =>
    Effect.zipRight(
      keepSummaries(ns),
      Effect.sync(() => {
        open.delete(latin1(ns))
        indexes.delete(latin1(ns))
      })
    )

  // Suspended: the open mark is checked when the effect runs, not when it is built.
  const removeReplica = (ns: NamespaceId) =>
    Effect.suspend((): Effect.Effect<void, StoreError | ReplicaNotClosed> =>
      open.has(latin1(ns))
        ? Effect.fail(new ReplicaNotClosed({ namespace: ns }))
        : inTransaction(Effect.gen(function*() {
          for (const table of ["records", "latest", "sync_peers", "download_policy", "live_docs", "wanted"]) {
            yield* exec(`DELETE FROM ${table} WHERE ns = ?`, [ns])
          }
          yield* exec(`DELETE FROM namespaces WHERE id = ?`, [ns])
          indexes.delete(latin1(ns))
        })).pipe(Effect.onError(() => dropIndexes), Effect.mapError(fail("removeReplica")))
    )

  // -- entries

  /** spec 01 §9 (option B) for one entry, on the transaction's connection. */
  const putOne = (conn: Connection, e: SignedEntry) =>
    Effect.gen(function*() {
      const run = <Row extends object>(text: string, params: ReadonlyArray<unknown>) =>
        conn.execute(text, params, undefined) as Effect.Effect<ReadonlyArray<Row>, SqlError>
      const { id, record } = e.entry
      const upper = prefixUpperBound(id.key)
      const tree = indexes.get(latin1(id.namespace))
      const own = tree === undefined ? undefined : indexKey(id.author, id.key)
      const select = [id.key, id.namespace, id.author, id.key, id.namespace, id.author, id.key]
      const rows = tree !== undefined && own !== undefined && !hasCandidates(tree, own)
        ? []
        : yield* run<{ key: Uint8Array; ts: Uint8Array; hash: Uint8Array }>(
          upper === undefined ? PUT_CANDIDATES_UNBOUNDED : PUT_CANDIDATES_BOUNDED,
          upper === undefined ? select : [...select, upper]
        )
      const removed: Array<Uint8Array> = []
      for (const row of rows) {
        const stored = recordOf(row)
        const order = compareRecords(record, stored)
        // A stored prefix (or the same key) at least as new blocks the insert.
        if (row.key.length <= id.key.length && order <= 0) {
          return { _tag: "NotInserted", newer: { key: row.key, timestamp: stored.timestamp } } as const
        }
        if (row.key.length >= id.key.length && order >= 0) removed.push(row.key)
      }
      const removable = removed.length
      const ts = u64ToBytesBE(record.timestamp)
      if (removable > 0) {
        const base = [id.namespace, id.author, id.key, ts, ts, record.hash]
        yield* run(upper === undefined ? REMOVE_OLDER_UNBOUNDED : REMOVE_OLDER, upper === undefined ? base : [...base, upper])
      }
      yield* run(INSERT_ENTRY, [
        id.namespace,
        id.author,
        id.key,
        ts,
        u64ToBytesBE(record.len),
        record.hash,
        e.signature.namespace,
        e.signature.author
      ])
      if (tree !== undefined) {
        for (const key of removed) tree.delete(indexKey(id.author, key))
        tree.insert(own ?? indexKey(id.author, id.key), entryFingerprint(e.entry))
      }
      return { _tag: "Inserted", removed: removable } as const
    })

  /** Inserts rows known to have no candidate (spec 01 §9), in multi-row statements. */
  const insertRows = (conn: Connection, rows: ReadonlyArray<SignedEntry>): Effect.Effect<void, SqlError> =>
    Effect.suspend(() => {
      const u64 = new DataView(new ArrayBuffer(16 * rows.length))
      const u64Bytes = new Uint8Array(u64.buffer)
      const statements: Array<Effect.Effect<unknown, SqlError>> = []
      for (let at = 0; at < rows.length;) {
        let log = 7
        while (1 << log > rows.length - at) log--
        const n = 1 << log
        const params: Array<unknown> = new Array(8 * n)
        for (let j = 0, p = 0; j < n; j++, p += 8) {
          const e = rows[at + j]!
          const { id, record } = e.entry
          const o = 16 * (at + j)
          u64.setBigUint64(o, record.timestamp, false)
          u64.setBigUint64(o + 8, record.len, false)
          params[p] = id.namespace
          params[p + 1] = id.author
          params[p + 2] = id.key
          params[p + 3] = u64Bytes.subarray(o, o + 8)
          params[p + 4] = u64Bytes.subarray(o + 8, o + 16)
          params[p + 5] = record.hash
          params[p + 6] = e.signature.namespace
          params[p + 7] = e.signature.author
        }
        statements.push(conn.execute(INSERT_TEXTS[log]!, params, undefined))
        at += n
      }
      return Effect.all(statements, { discard: true })
    })

  const putMany = (entries: ReadonlyArray<SignedEntry>) =>
    inTransaction(Effect.gen(function*() {
      const conn = yield* transactionConnection
      const outcomes: Array<PutOutcome> = new Array(entries.length)
      // A new key that the namespace's tree shows no candidate for needs no query: it joins the pending rows, and the
      // tree takes it at once (so later entries of the batch see it). An entry that needs a query writes the pending
      // rows first. A failure rolls the transaction back and drops every tree.
      let pending: Array<SignedEntry> = []
      let ns: Uint8Array | undefined
      let tree: FingerprintTree | undefined
      for (let i = 0; i < entries.length; i++) {
        const e = entries[i]!
        const { id } = e.entry
        if (ns === undefined || (id.namespace !== ns && !equals(id.namespace, ns))) {
          ns = id.namespace
          tree = indexes.get(latin1(ns))
        }
        if (tree !== undefined) {
          const own = indexKey(id.author, id.key)
          if (!hasCandidates(tree, own)) {
            tree.insert(own, entryFingerprint(e.entry))
            pending.push(e)
            outcomes[i] = INSERTED
            if (pending.length === INSERT_ROWS) {
              yield* insertRows(conn, pending)
              pending = []
            }
            continue
          }
        }
        if (pending.length > 0) {
          yield* insertRows(conn, pending)
          pending = []
        }
        outcomes[i] = yield* putOne(conn, e)
      }
      if (pending.length > 0) yield* insertRows(conn, pending)
      return outcomes
    })).pipe(Effect.onError(() => dropIndexes), Effect.mapError(fail("put")))

  /** The namespace's fingerprint tree: built in one read transaction (no write interleaves) on first use. */
  const loadIndex = (ns: NamespaceId): Effect.Effect<FingerprintTree, StoreError> =>
    Effect.suspend(() => {
      const cached = indexes.get(latin1(ns))
      if (cached !== undefined) return Effect.succeed(cached)
      return inTransaction(Effect.gen(function*() {
        const again = indexes.get(latin1(ns))
        if (again !== undefined) return again
        const conn = yield* transactionConnection
        // Keys in one array, fingerprints packed in one growing buffer: no per-entry Uint8Array while building. Each
        // row is one BLOB `author ‖ key ‖ ts ‖ hash`, so the fingerprint input is `ns ‖ row` (spec 01 §7: ts is stored
        // big-endian already) and the index key is the row without its last 40 bytes.
        const keys: Array<string> = []
        let fps = new Uint8Array(32 * INDEX_PAGE)
        let input = new Uint8Array(1024)
        input.set(ns)
        let cursor: readonly [Uint8Array, Uint8Array] | undefined
        while (true) {
          const rows = (yield* conn.execute(
            cursor === undefined
              ? `SELECT CAST(author || key || ts || hash AS BLOB) AS b FROM records WHERE ns = ? ORDER BY author, key
                 LIMIT ${INDEX_PAGE}`
              : `SELECT CAST(author || key || ts || hash AS BLOB) AS b FROM records WHERE ns = ? AND (author, key) > (?, ?)
                 ORDER BY author, key LIMIT ${INDEX_PAGE}`,
            cursor === undefined ? [ns] : [ns, cursor[0], cursor[1]],
            undefined
          )) as ReadonlyArray<{ b: Uint8Array }>
          if (fps.length < 32 * (keys.length + rows.length)) {
            const grown = new Uint8Array(Math.max(fps.length * 2, 32 * (keys.length + rows.length)))
            grown.set(fps)
            fps = grown
          }
          for (const { b } of rows) {
            if (input.length < 32 + b.length) {
              input = new Uint8Array(2 * (32 + b.length))
              input.set(ns)
            }
            input.set(b, 32)
            fps.set(blake3(input.subarray(0, 32 + b.length)), 32 * keys.length)
            keys.push(latin1(b.subarray(0, b.length - 40)))
          }
          const last = rows[rows.length - 1]
          if (rows.length < INDEX_PAGE || last === undefined) break
          cursor = [last.b.subarray(0, 32), last.b.subarray(32, last.b.length - 40)]
        }
        const tree = FingerprintTree.fromSortedPacked(keys, fps.subarray(0, 32 * keys.length))
        indexes.set(latin1(ns), tree)
        return tree
      })).pipe(Effect.mapError(fail("rangeIndex")))
    })

  /** Entries at ranks [a, b) of a namespace's index: one range read between the ids at both ends. */
  const entriesByRank = (ns: NamespaceId, tree: FingerprintTree, a: number, b: number) => {
    if (b <= a) return Effect.succeed([])
    const lo = Buffer.from(tree.select(a), "latin1")
    const hi = Buffer.from(tree.select(b - 1), "latin1")
    return exec<PackedRow>(
      `SELECT ${PACKED_COLUMNS} FROM records WHERE ns = ? AND (author, key) >= (?, ?) AND (author, key) <= (?, ?)
       ORDER BY author, key`,
      [ns, lo.subarray(0, 32), lo.subarray(32), hi.subarray(0, 32), hi.subarray(32)]
    ).pipe(Effect.map((rows) => rows.map((r) => packedToEntry(ns, r))), Effect.mapError(fail("entriesByRank")))
  }

  /**
   * The entries at the given ranks (ascending, distinct) of a namespace's index, by primary key in statements of
   * {@link RANK_BATCH} ids: a message of thousands of small ranges costs a few statements instead of one each (a
   * statement costs about as much as reading a hundred rows). A rank whose entry is gone is missing from the map.
   */
  const entriesByRanks = (ns: NamespaceId, tree: FingerprintTree, ranks: ReadonlyArray<number>) =>
    Effect.gen(function*() {
      const out = new Map<number, SignedEntry>()
      for (let from = 0; from < ranks.length; from += RANK_BATCH) {
        const wanted = new Map<string, number>()
        const params: Array<unknown> = [ns]
        for (const r of ranks.slice(from, from + RANK_BATCH)) {
          const key = tree.select(r)
          wanted.set(key, r)
          const id = Buffer.from(key, "latin1")
          params.push(id.subarray(0, 32), id.subarray(32))
        }
        // The last id fills the unused places: one statement text, prepared once.
        while (params.length < 1 + 2 * RANK_BATCH) params.push(params[params.length - 2], params[params.length - 1])
        const rows = yield* exec<PackedRow>(RANK_BATCH_SQL, params)
        for (const row of rows) {
          const r = wanted.get(latin1(row.b.subarray(0, row.b.length - 176)))
          if (r !== undefined) out.set(r, packedToEntry(ns, row))
        }
      }
      return out
    }).pipe(Effect.mapError(fail("entriesByRanks")))

  const rangeSummary = (ns: NamespaceId): Effect.Effect<Option.Option<RangeSummary>, StoreError> =>
    Effect.suspend(() => {
      const tree = indexes.get(latin1(ns))
      if (tree !== undefined) {
        return Effect.succeed(Option.some({
          size: tree.size,
          fingerprint: setFingerprint(tree),
          firstId: tree.size === 0 ? concat(ns, new Uint8Array(32)) : withLatin1(ns, tree.select(0))
        }))
      }
      return inTransaction(Effect.gen(function*() {
        const rows = yield* exec<{ count: number; fingerprint: Uint8Array }>(
          `SELECT count, fingerprint FROM range_summaries WHERE ns = ?`,
          [ns]
        )
        const row = rows[0]
        if (row === undefined || row.fingerprint.length !== 32) return Option.none()
        const first = yield* exec<{ author: Uint8Array; key: Uint8Array }>(
          `SELECT author, key FROM records WHERE ns = ? ORDER BY author, key LIMIT 1`,
          [ns]
        )
        const f = first[0]
        return Option.some({
          size: row.count,
          fingerprint: Uint8Array.from(row.fingerprint),
          firstId: f === undefined ? concat(ns, new Uint8Array(32)) : concat(ns, f.author, f.key)
        })
      }))
    }).pipe(Effect.mapError(fail("rangeSummary")))

  const rangeView = (ns: NamespaceId): Effect.Effect<RangeView<StoreError>, StoreError> =>
    Effect.map(loadIndex(ns), (tree) => ({
      size: () => tree.size,
      rank: (id) => {
        const c = compare(id.subarray(0, 32), ns)
        return c < 0 ? 0 : c > 0 ? tree.size : tree.rank(latin1(id.subarray(32)))
      },
      idAt: (i) => withLatin1(ns, tree.select(i)),
      xorInto: (a, b, out) => void tree.xorRange(a, b, out),
      entries: (a, b) => entriesByRank(ns, tree, a, b),
      entriesAtRanks: (ranks) => entriesByRanks(ns, tree, ranks),
      defaultId: concat(ns, new Uint8Array(32)),
      holds: (e) => {
        if (compare(e.namespace, ns) !== 0) return false
        // The fingerprint only for a stored key: in a sync most received keys are new.
        const fp = tree.get(indexKey(e.author, e.key))
        return fp !== undefined && compare(fp, entryFingerprint(e.entry)) === 0
      }
    }))

  const unsafePut = (e: SignedEntry) => Effect.map(putMany([e]), (outcomes) => outcomes[0]!)

  const getExact = (ns: NamespaceId, author: AuthorId, key: Uint8Array, includeEmpty: boolean) =>
    exec<EntryRow>(`SELECT ${ENTRY_COLUMNS} FROM records WHERE ns = ? AND author = ? AND key = ?`, [ns, author, key]).pipe(
      Effect.map((rows) => {
        const row = rows[0]
        if (row === undefined) return Option.none()
        const entry = rowToEntry(row)
        return includeEmpty || !entry.isEmpty ? Option.some(entry) : Option.none()
      }),
      Effect.mapError(fail("getExact"))
    )

  /**
   * Offset and limit are SQL's: the first page skips `offset` results inside SQLite (an index walk, no row reaches
   * JS), the next pages continue after the last row read (keyset) and stop at `limit`. SingleLatestPerKey selects
   * each key's newest entry in SQL too (a NOT EXISTS probe of the key's group on `records_by_key`), so the offset
   * counts keys, as the grouped stream does: a page anywhere in a large document reads O(limit) rows into JS.
   */
  const getMany = (ns: NamespaceId, query: Query): Stream.Stream<SignedEntry, StoreError> => {
    const byKey = query.author === undefined &&
      (query.kind._tag === "SingleLatestPerKey" || query.kind.sortBy === "KeyAuthor")
    const [first, second] = byKey ? ["key", "author"] as const : ["author", "key"] as const
    const desc = query.direction === "Desc"
    const where: Array<string> = ["r.ns = ?"]
    const params: Array<unknown> = [ns]
    if (query.author !== undefined) {
      where.push("r.author = ?")
      params.push(query.author)
    }
    if (query.key._tag === "Exact") {
      where.push("r.key = ?")
      params.push(query.key.key)
    } else if (query.key._tag === "Prefix") {
      where.push("r.key >= ?")
      params.push(query.key.prefix)
      const upper = prefixUpperBound(query.key.prefix)
      if (upper !== undefined) {
        where.push("r.key < ?")
        params.push(upper)
      }
    }
    // The newest entry of its key (spec 03 §4): no entry of the same key is newer, or as new and met first in this
    // order (the grouped stream kept the first of a tie). With an author filter each key has one entry.
    if (query.kind._tag === "SingleLatestPerKey" && query.author === undefined) {
      where.push(`NOT EXISTS (SELECT 1 FROM records o INDEXED BY records_by_key WHERE o.ns = r.ns AND o.key = r.key AND o.author != r.author
        AND (o.ts > r.ts OR (o.ts = r.ts AND o.author ${desc ? ">" : "<"} r.author)))`)
    }
    if (!query.includeEmpty) {
      where.push("r.hash != ?")
      params.push(EMPTY)
    }
    const columns = ENTRY_COLUMNS.split(", ").map((c) => `r.${c} AS ${c}`).join(", ")
    const base = `SELECT ${columns} FROM records r WHERE ${where.join(" AND ")}`
    const dir = desc ? "DESC" : "ASC"
    const order = `ORDER BY r.${first} ${dir}, r.${second} ${dir} LIMIT ?`
    type Cursor = { readonly after: readonly [Uint8Array, Uint8Array] | undefined; readonly left: number }
    const page = (cursor: Cursor) => {
      const n = Math.min(PAGE_SIZE, cursor.left)
      const text = cursor.after === undefined
        ? `${base} ${order}${query.offset > 0 ? " OFFSET ?" : ""}`
        : `${base} AND (r.${first}, r.${second}) ${desc ? "<" : ">"} (?, ?) ${order}`
      const args = cursor.after === undefined
        ? (query.offset > 0 ? [...params, n, query.offset] : [...params, n])
        : [...params, cursor.after[0], cursor.after[1], n]
      return exec<EntryRow>(text, args).pipe(
        Effect.tap((rows) => Metric.incrementBy(queryRowsRead, rows.length)),
        Effect.map((rows) => {
          const last = rows[rows.length - 1]
          const left = cursor.left - rows.length
          const next: Option.Option<Cursor> = rows.length < n || last === undefined || left <= 0
            ? Option.none()
            : Option.some({ after: [last[first], last[second]] as const, left })
          return [Chunk.unsafeFromArray(rows.map(rowToEntry)), next] as const
        }),
        Effect.mapError(fail("getMany"))
      )
    }
    const limit = query.limit ?? Number.POSITIVE_INFINITY
    return limit === 0 ? Stream.empty : Stream.paginateChunkEffect({ after: undefined, left: limit } as Cursor, page)
  }

  const count = (ns: NamespaceId) =>
    exec<{ n: number }>(`SELECT count(*) AS n FROM records WHERE ns = ?`, [ns]).pipe(
      Effect.map((rows) => rows[0]?.n ?? 0),
      Effect.mapError(fail("count"))
    )

  const contentHashes: Stream.Stream<Hash, StoreError> = Stream.paginateChunkEffect(
    Option.none<readonly [Uint8Array, Uint8Array, Uint8Array]>(),
    (cursor) =>
      exec<{ ns: Uint8Array; author: Uint8Array; key: Uint8Array; hash: Uint8Array }>(
        `SELECT ns, author, key, hash FROM records ${
          Option.isSome(cursor) ? "WHERE (ns, author, key) > (?, ?, ?)" : ""
        } ORDER BY ns, author, key LIMIT ${PAGE_SIZE}`,
        Option.isSome(cursor) ? cursor.value : []
      ).pipe(
        Effect.map((rows) => {
          const last = rows[rows.length - 1]
          return [
            Chunk.unsafeFromArray(rows.map((r) => Hash.make(r.hash, { disableValidation: true }))),
            rows.length < PAGE_SIZE || last === undefined
              ? Option.none()
              : Option.some(Option.some([last.ns, last.author, last.key] as const))
          ] as const
        }),
        Effect.mapError(fail("contentHashes"))
      )
  )

  const getLatestForEachAuthor = (ns: NamespaceId) =>
    exec<{ author: Uint8Array; ts: Uint8Array; key: Uint8Array }>(
      `SELECT author, ts, key FROM latest WHERE ns = ? ORDER BY author`,
      [ns]
    ).pipe(
      Effect.map((rows) =>
        rows.map((r) => ({ author: AuthorId.make(r.author), timestamp: u64FromBytesBE(r.ts), key: r.key }))
      ),
      Effect.mapError(fail("getLatestForEachAuthor"))
    )

  const hasNewsForUs = (ns: NamespaceId, heads: AuthorHeads.AuthorHeads) =>
    Effect.map(getLatestForEachAuthor(ns), (latest) =>
      AuthorHeads.hasNewsFor(heads, AuthorHeads.fromEntries(latest.map((l) => [l.author, l.timestamp] as const))))

  // -- sync peers and download policy

  const requireNamespace = (ns: NamespaceId, method: string) =>
    exec<{ id: Uint8Array }>(`SELECT id FROM namespaces WHERE id = ?`, [ns]).pipe(
      Effect.mapError(fail(method)),
      Effect.flatMap((rows) =>
        rows.length === 0 ? Effect.fail(new DocumentNotCreated({ namespace: ns })) : Effect.void
      )
    )

  const registerUsefulPeer = (ns: NamespaceId, peer: Uint8Array) =>
    inTransaction(Effect.gen(function*() {
      yield* requireNamespace(ns, "registerUsefulPeer")
      // Strictly increasing stamps keep the LRU order of registrations within one clock tick (spec 03 §3).
      const now = yield* Clock.currentTimeNanos
      lastPeerStamp = now > lastPeerStamp ? now : lastPeerStamp + 1n
      yield* exec(
        `INSERT INTO sync_peers (ns, peer, stamp) VALUES (?, ?, ?) ON CONFLICT (ns, peer) DO UPDATE SET stamp = excluded.stamp`,
        [ns, peer, lastPeerStamp]
      )
      yield* exec(
        `DELETE FROM sync_peers WHERE ns = ? AND peer NOT IN
          (SELECT peer FROM sync_peers WHERE ns = ? ORDER BY stamp DESC LIMIT ${PEERS_PER_DOC_CACHE_SIZE})`,
        [ns, ns]
      )
    })).pipe(Effect.mapError((e) => (e._tag === "SqlError" ? fail("registerUsefulPeer")(e) : e)))

  const getSyncPeers = (ns: NamespaceId) =>
    exec<{ peer: Uint8Array }>(`SELECT peer FROM sync_peers WHERE ns = ? ORDER BY stamp DESC`, [ns]).pipe(
      Effect.map((rows) => (rows.length === 0 ? Option.none() : Option.some(rows.map((r) => new Uint8Array(r.peer))))),
      Effect.mapError(fail("getSyncPeers"))
    )

  const setDownloadPolicy = (ns: NamespaceId, policy: DownloadPolicy.DownloadPolicy) =>
    inTransaction(Effect.gen(function*() {
      yield* requireNamespace(ns, "setDownloadPolicy")
      yield* exec(
        `INSERT INTO download_policy (ns, policy) VALUES (?, ?) ON CONFLICT (ns) DO UPDATE SET policy = excluded.policy`,
        [ns, Schema.encodeSync(DownloadPolicy.DownloadPolicyFromBytes)(policy)]
      )
    })).pipe(Effect.mapError((e) => (e._tag === "SqlError" ? fail("setDownloadPolicy")(e) : e)))

  const getDownloadPolicy = (ns: NamespaceId) =>
    exec<{ policy: Uint8Array }>(`SELECT policy FROM download_policy WHERE ns = ?`, [ns]).pipe(
      Effect.mapError(fail("getDownloadPolicy")),
      Effect.flatMap((rows) =>
        rows[0] === undefined
          ? Effect.succeed(DownloadPolicy.defaultPolicy)
          : Schema.decode(DownloadPolicy.DownloadPolicyFromBytes)(rows[0].policy).pipe(
            Effect.mapError((cause) => new StoreError({ method: "getDownloadPolicy", cause }))
          )
      )
    )

  const setLive = (ns: NamespaceId, live: boolean) =>
    exec(
      live ? `INSERT INTO live_docs (ns) VALUES (?) ON CONFLICT (ns) DO NOTHING` : `DELETE FROM live_docs WHERE ns = ?`,
      [ns]
    ).pipe(Effect.asVoid, Effect.mapError(fail("setLive")))

  const listLive = exec<{ ns: Uint8Array }>(
    `SELECT l.ns AS ns FROM live_docs l JOIN namespaces n ON n.id = l.ns ORDER BY l.ns`,
    []
  ).pipe(
    Effect.map((rows) => rows.map((r) => NamespaceId.make(new Uint8Array(r.ns)))),
    Effect.mapError(fail("listLive"))
  )

  const addWanted = (ns: NamespaceId, hashes: ReadonlyArray<Hash>) =>
    hashes.length === 0 ? Effect.void : inTransaction(Effect.forEach(hashes, (hash) =>
      exec(`INSERT INTO wanted (ns, hash) VALUES (?, ?) ON CONFLICT (ns, hash) DO NOTHING`, [ns, hash]), {
      discard: true
    })).pipe(Effect.mapError(fail("addWanted")))

  const removeWanted = (hash: Hash) =>
    exec(`DELETE FROM wanted WHERE hash = ?`, [hash]).pipe(Effect.asVoid, Effect.mapError(fail("removeWanted")))

  const listWanted = (ns: NamespaceId, limit: number, after?: Hash) =>
    (after === undefined
      ? exec<{ hash: Uint8Array }>(`SELECT hash FROM wanted WHERE ns = ? ORDER BY hash LIMIT ?`, [ns, limit])
      : exec<{ hash: Uint8Array }>(`SELECT hash FROM wanted WHERE ns = ? AND hash > ? ORDER BY hash LIMIT ?`, [
        ns,
        after,
        limit
      ])).pipe(
        Effect.map((rows) => rows.map((r) => Hash.make(new Uint8Array(r.hash)))),
        Effect.mapError(fail("listWanted"))
      )

  const countWanted = (ns: NamespaceId) =>
    exec<{ n: number }>(`SELECT count(*) AS n FROM wanted WHERE ns = ?`, [ns]).pipe(
      Effect.map((rows) => Number(rows[0]?.n ?? 0)),
      Effect.mapError(fail("countWanted"))
    )

  const clearWanted = (ns: NamespaceId) =>
    exec(`DELETE FROM wanted WHERE ns = ?`, [ns]).pipe(Effect.asVoid, Effect.mapError(fail("clearWanted")))

  // The summaries of the namespaces whose index is loaded, for the next start (the SQL client closes after us).
  yield* Effect.addFinalizer(() => keepSummaries())

  return Store.of({
    setLive,
    listLive,
    addWanted,
    removeWanted,
    listWanted,
    countWanted,
    clearWanted,
    withTransaction,
    importAuthor,
    getAuthor,
    deleteAuthor,
    listAuthors,
    importNamespace,
    getCapability,
    listNamespaces,
    openReplica,
    closeReplica,
    removeReplica,
    unsafePut,
    putMany,
    rangeView,
    rangeSummary,
    getExact,
    getMany,
    count,
    contentHashes,
    getLatestForEachAuthor,
    hasNewsForUs,
    registerUsefulPeer,
    getSyncPeers,
    setDownloadPolicy,
    getDownloadPolicy
  })
})

/** The store on an existing SqlClient. */
export const layer: Layer.Layer<Store, StoreError, SqlClient.SqlClient> = Layer.scoped(Store, make)

/** An in-memory store (SQLite `:memory:`), lost when its scope closes. */
export const layerMemory: Layer.Layer<Store, StoreError> = layer.pipe(
  Layer.provide(Layer.orDie(SqliteClient.layer({ filename: ":memory:" })))
)

/** A persistent store in one SQLite file (WAL), created if missing. */
export const layerFile = (filename: string): Layer.Layer<Store, StoreError> =>
  layer.pipe(Layer.provide(Layer.orDie(SqliteClient.layer({ filename }))))
