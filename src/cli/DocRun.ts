/** What the `rangedocs doc …` commands do (their arguments and options: `Doc.ts`). */
import type * as Command from "@effect/cli/Command"
import { Effect, Either, Option, Schema, type Scope, Stream } from "effect"
import { peerIdFromString } from "@libp2p/peer-id"
import * as fs from "node:fs"
import * as path from "node:path"
import { equals, toHex } from "../internal/bytes.js"
import type { ApiError } from "../schema/DocsErrors.js"
import {
  type DownloadPolicy,
  EverythingExcept,
  type FilterKind,
  filterToString,
  NothingExcept,
  parseFilter
} from "../schema/DownloadPolicy.js"
import type { Entry } from "../schema/Entry.js"
import type { AuthorId, NamespaceId } from "../schema/Keys.js"
import type { LiveEvent } from "../schema/LiveEvent.js"
import { MultiaddrString, NodeAddr, nodeIdFromPeerId } from "../schema/NodeAddr.js"
import { Query } from "../schema/Query.js"
import { addrInfoOptionsOf, ticketToString } from "../schema/Ticket.js"
import { CONTENT_REPLY_MAX } from "../schema/Rpc.js"
import type { DocsService } from "../services/DocsApi.js"
import {
  CliError,
  type Common,
  emit,
  entryJson,
  errLine,
  nonNegative,
  oneLine,
  openScoped,
  showKey,
  showTime,
  short,
  stderr,
  stdout,
  utf8OrUndefined,
  withClient
} from "./Common.js"
import type * as Spec from "./Doc.js"
import { authorOrDefault, parseAuthorId, parseDocId, parseKey, parseTicketArg, utf8 } from "./Parse.js"
import { eventJson, showEvent } from "./Events.js"
import { MiB, progressBar, progressDone, showBytes, showProgress } from "./Progress.js"

type Options<C extends Command.Command.Config> = Command.Command.ParseConfig<C>

/** Runs `f` with the document open (one handle, closed at the end). DOC is parsed before the node is contacted. */
const withDoc = <A, E>(
  options: Common & { readonly doc: string },
  f: (doc: NamespaceId, api: DocsService) => Effect.Effect<A, E, Scope.Scope>
) =>
  Effect.flatMap(parseDocId(options.doc), (id) =>
    withClient(options, (api) => Effect.flatMap(openScoped(api, id), (doc) => f(doc, api))))

/** Prints events until the stream ends (the document was dropped or closed, or the node stopped) or Ctrl-C. */
const printEvents = (options: Common, events: Stream.Stream<LiveEvent, ApiError>) =>
  Stream.runForEach(events, (e) => emit(options, eventJson(e), () => showEvent(e))).pipe(
    Effect.zipRight(errLine("the event stream ended (the document was closed or dropped, or the node stopped)"))
  )

/** The newest entry for `key` (or `author`'s entry). */
const findEntry = (
  api: DocsService,
  docId: NamespaceId,
  key: Uint8Array,
  author: Option.Option<AuthorId>,
  includeEmpty: boolean
): Effect.Effect<Option.Option<Entry>, ApiError> =>
  Option.match(author, {
    onSome: (a) => Effect.map(api.getExact(docId, key, a, includeEmpty), Option.map((e) => e.entry)),
    onNone: () =>
      Stream.runHead(
        api.get(docId, Query.singleLatestPerKey().withKeyExact(key).withIncludeEmpty(includeEmpty)).pipe(
          Stream.map((e) => e.entry)
        )
      )
  })

const entryLines = (e: Entry): ReadonlyArray<string> => [
  `doc:       ${toHex(e.id.namespace)}`,
  `author:    ${toHex(e.id.author)}`,
  `key:       ${showKey(e.id.key)}`,
  `hash:      ${toHex(e.record.hash)}`,
  `len:       ${e.record.len}`,
  `timestamp: ${e.record.timestamp} (${showTime(e.record.timestamp)})`
]

const notFound = (key: Uint8Array) => new CliError({ message: `entry not found: ${showKey(key)}` })

const optionalAuthorId = (author: Option.Option<string>) =>
  Option.match(author, {
    onNone: () => Effect.succeed(Option.none<AuthorId>()),
    onSome: (a) => Effect.map(parseAuthorId(a), Option.some)
  })

/**
 * Fails unless the node has the document. Drop and the download policy take any id without complaint (dropping
 * nothing, or keeping a policy for a document to come); from the command line, an unknown DOC is most likely a typo.
 */
const mustKnow = (api: DocsService, id: NamespaceId) =>
  Effect.flatMap(Stream.runHead(Stream.filter(api.list, (item) => equals(item.id, id))), (known) =>
    Option.isNone(known)
      ? Effect.fail(new CliError({ message: "unknown document (DOC): the node has no such document" }))
      : Effect.void)

// -- create / list / drop

export const create = (options: Options<typeof Spec.createConfig>) =>
  withClient(options, (api) =>
    Effect.gen(function*() {
      const doc = yield* Effect.acquireRelease(api.create, (id) => Effect.ignore(api.close(id)))
      yield* emit(options, { docId: toHex(doc) }, () => toHex(doc))
    }))

export const list = (options: Options<typeof Spec.listConfig>) =>
  withClient(options, (api) =>
    Stream.runForEach(api.list, (item) =>
      emit(options, { docId: toHex(item.id), capability: item.capability }, () =>
        `${toHex(item.id)}\t${item.capability}`)))

export const drop = (options: Options<typeof Spec.dropConfig>) =>
  Effect.flatMap(parseDocId(options.doc), (id) =>
    withClient(options, (api) =>
      Effect.gen(function*() {
        yield* mustKnow(api, id)
        yield* api.drop(id).pipe(
          Effect.catchTag("ReplicaNotClosed", () =>
            Effect.fail(
              new CliError({
                message: `document ${toHex(id)} is still open elsewhere (a running \`doc watch\` or \`doc join --watch\`?); stop those first`
              })
            ))
        )
        if (options.json) yield* emit(options, { dropped: toHex(id) }, () => [])
        else yield* errLine(`dropped ${toHex(id)}`)
      })))

// -- set / get / keys / del

/** The largest value `doc get --json` prints (as contentHex, twice its size); larger ones are refused with a hint. */
const JSON_CONTENT_MAX = CONTENT_REPLY_MAX

/** A readable (stdin, a file) as a stream of chunks: read as the upload sends them, never held whole. */
const readable = (open: () => NodeJS.ReadableStream, what: string): Stream.Stream<Uint8Array, CliError> =>
  Stream.fromAsyncIterable(
    { [Symbol.asyncIterator]: () => open()[Symbol.asyncIterator]() },
    (e) => new CliError({ message: `cannot read ${what}: ${e instanceof Error && "code" in e ? String(e.code) : String(e)}` })
  ).pipe(Stream.map((c) => typeof c === "string" ? utf8(c) : new Uint8Array(c.buffer, c.byteOffset, c.byteLength)))

/** The size of what stdin reads when it is a regular file (`< file`), for a progress bar with a total. */
const stdinSize = (): number | undefined => {
  try {
    const stat = fs.fstatSync(0)
    return stat.isFile() ? stat.size : undefined
  } catch {
    return undefined
  }
}

/** Shows the bytes sent so far on stderr, at most once per MiB. */
const withProgress = (total: number | undefined) => (data: Stream.Stream<Uint8Array, CliError>) =>
  Stream.suspend(() => {
    let sent = 0
    let shown = -1
    const show = total === undefined
      ? (done: number) => stderr(`\r${showBytes(done)} sent`)
      : progressBar(total)
    return Stream.tap(data, (c) => {
      sent += c.length
      const mib = Math.floor(sent / MiB)
      if (mib === shown) return Effect.void
      shown = mib
      return show(sent)
    })
  })

const plural = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`

export const set = (options: Options<typeof Spec.setConfig>) =>
  Effect.gen(function*() {
      const key = yield* parseKey(options.key)
      if (Option.isSome(options.value) && Option.isSome(options.file)) {
        return yield* new CliError({ message: "give either VALUE or --file, not both" })
      }
      const tty = showProgress(options)
      let total: number | undefined
      let value: Stream.Stream<Uint8Array, CliError>
      if (Option.isSome(options.value)) {
        value = Stream.make(utf8(options.value.value))
      } else if (Option.isSome(options.file)) {
        const file = options.file.value
        const stat = yield* Effect.try({
          try: () => fs.statSync(file),
          catch: (e) => new CliError({ message: `cannot read ${file}: ${e instanceof Error && "code" in e ? String(e.code) : String(e)}` })
        })
        if (!stat.isFile()) return yield* new CliError({ message: `not a file: ${file}` })
        total = stat.size
        value = readable(() => fs.createReadStream(file, { highWaterMark: MiB }), file)
      } else {
        total = stdinSize()
        value = readable(() => process.stdin, "stdin")
      }
      if (tty && Option.isNone(options.value)) value = withProgress(total)(value)
      yield* withDoc(options, (doc, api) =>
        Effect.gen(function*() {
          const author = yield* authorOrDefault(api, options.author)
          const outcome = yield* api.setStream(doc, author, key, value)
          if (tty && Option.isNone(options.value)) yield* stderr("\n")
          // The prefix rule: the write removed the author's older entries at the key and below it.
          if (outcome.removed > 0 && !options.json) {
            yield* errLine(`replaced ${plural(outcome.removed, "entry", "entries")} at or below ${JSON.stringify(showKey(key))}`)
          }
          yield* emit(
            options,
            { ...entryJson(outcome.entry.entry), replaced: outcome.removed },
            () => toHex(outcome.entry.contentHash)
          )
        }))
    })

export const get = (options: Options<typeof Spec.getConfig>) =>
  withDoc(options, (doc, api) =>
      Effect.gen(function*() {
        const key = yield* parseKey(options.key)
        const author = yield* optionalAuthorId(options.author)
        const entry = yield* findEntry(api, doc, key, author, options.includeEmpty)
        if (Option.isNone(entry)) return yield* notFound(key)
        const e = entry.value
        if (options.meta) return yield* emit(options, entryJson(e), () => entryLines(e))
        const notHereYet = () => Effect.fail(new CliError({ message: `the content of ${showKey(key)} is not on this node yet` }))
        if (options.json) {
          if (e.record.len > BigInt(JSON_CONTENT_MAX)) {
            return yield* new CliError({
              message: `the value of ${showKey(key)} is ${showBytes(Number(e.record.len))}, too large for --json (at most ${
                showBytes(JSON_CONTENT_MAX)
              } as contentHex): use --meta --json, or doc get without --json, or doc export-file`
            })
          }
          const content = e.record.len === 0n
            ? new Uint8Array(0)
            : yield* api.readContent(e.record.hash).pipe(Effect.catchTag("BlobNotFound", notHereYet))
          return yield* emit(options, { ...entryJson(e), contentHex: toHex(content) }, () => [])
        }
        // Piece by piece, each handed to stdout before the next is asked for: bounded memory whatever the size (one
        // ReadContent of a large value failed in the RPC layer's 16 MiB message bound).
        if (e.record.len === 0n) return
        yield* Stream.runForEach(api.blobRead(e.record.hash), stdout).pipe(Effect.catchTag("BlobNotFound", notHereYet))
      }))

export const keys = (options: Options<typeof Spec.keysConfig>) =>
  withDoc(options, (doc, api) =>
      Effect.gen(function*() {
        const limit = yield* nonNegative("--limit", options.limit)
        const offset = yield* nonNegative("--offset", options.offset)
        const author = yield* optionalAuthorId(options.author)
        const direction = options.desc ? "Desc" as const : "Asc" as const
        let query = options.latest
          ? Query.singleLatestPerKey().sortDirection(direction)
          : Query.all().sortBy(options.sort === "key" ? "KeyAuthor" : "AuthorKey", direction)
        if (Option.isSome(options.prefix)) query = query.withKeyPrefix(utf8(options.prefix.value))
        if (Option.isSome(author)) query = query.withAuthor(author.value)
        if (Option.isSome(limit)) query = query.withLimit(limit.value)
        if (Option.isSome(offset)) query = query.withOffset(offset.value)
        if (options.includeEmpty) query = query.withIncludeEmpty()
        yield* Stream.runForEach(api.get(doc, query), ({ entry }) =>
          emit(options, entryJson(entry), () =>
            `${showKey(entry.id.key)}\t${short(entry.id.author)}\t${entry.record.len}`))
      }))

export const del = (options: Options<typeof Spec.delConfig>) =>
  withDoc(options, (doc, api) =>
      Effect.gen(function*() {
        const author = yield* authorOrDefault(api, options.author)
        const removed = yield* api.del(doc, author, utf8(options.prefix))
        yield* emit(options, { removed }, () => String(removed))
      }))

// -- share / join / watch

export const share = (options: Options<typeof Spec.shareConfig>) =>
  withDoc(options, (doc, api) =>
      Effect.gen(function*() {
        const ticket = yield* api.share(doc, options.mode, addrInfoOptionsOf(options.addr))
        const text = ticketToString(ticket)
        yield* emit(options, { ticket: text }, () => text)
      }))

export const join = (options: Options<typeof Spec.joinConfig>) =>
  Effect.gen(function*() {
      const ticket = yield* parseTicketArg(options.ticket)
      yield* withClient(options, (api) =>
        Effect.gen(function*() {
          const doc = yield* Effect.acquireRelease(api.import(ticket.capability), (id) => Effect.ignore(api.close(id)))
          const events = options.watch ? Option.some(yield* api.subscribe(doc)) : Option.none()
          yield* api.startSync(doc, ticket.nodes)
          yield* emit(options, { docId: toHex(doc) }, () => toHex(doc))
          if (Option.isSome(events)) yield* printEvents(options, events.value)
        }))
    })

export const watch = (options: Options<typeof Spec.watchConfig>) =>
  withDoc(options, (doc, api) =>
    Effect.gen(function*() {
      const events = yield* api.subscribe(doc)
      // On stderr in JSON mode too: it tells a script (or a test) that no later event will be missed.
      yield* errLine(`watching ${toHex(doc)}; stop with Ctrl-C`)
      yield* printEvents(options, events)
    }))

// -- files

export const importFile = (options: Options<typeof Spec.importFileConfig>) =>
  withDoc(options, (doc, api) =>
      Effect.gen(function*() {
        const key = yield* parseKey(options.key)
        const file = path.resolve(options.file)
        const stat = yield* Effect.try({
          try: () => fs.statSync(file),
          catch: () => new CliError({ message: `cannot read ${file}` })
        })
        if (!stat.isFile()) return yield* new CliError({ message: `not a file: ${file}` })
        const author = yield* authorOrDefault(api, options.author)
        const tty = showProgress(options)
        const outcome = yield* api.importFile(doc, author, key, file, tty ? progressBar(stat.size) : undefined)
        if (tty) yield* progressDone
        yield* emit(
          options,
          { key: options.key, hash: toHex(outcome.hash), size: outcome.size },
          () => `${toHex(outcome.hash)}\t${outcome.size}`
        )
      }))

export const exportFile = (options: Options<typeof Spec.exportFileConfig>) =>
  withDoc(options, (doc, api) =>
      Effect.gen(function*() {
        const key = yield* parseKey(options.key)
        const author = yield* optionalAuthorId(options.author)
        const entry = yield* findEntry(api, doc, key, author, false)
        if (Option.isNone(entry)) return yield* notFound(key)
        const file = path.resolve(options.file)
        const tty = showProgress(options)
        const size = Number(entry.value.record.len)
        yield* api.exportFile(entry.value.record.hash, file, tty ? progressBar(size) : undefined)
        if (tty) yield* Effect.zipRight(progressBar(size)(size), progressDone)
        yield* emit(options, { path: file, ...entryJson(entry.value) }, () => file)
      }))

// -- policy / peers / status

const policyJson = (p: DownloadPolicy) => ({
  policy: p._tag === "NothingExcept" ? "nothing-except" : "everything-except",
  filters: p.filters.map(filterToString)
})

const showPolicy = (p: DownloadPolicy) => {
  const j = policyJson(p)
  return [j.policy, ...j.filters.map((f) => `  ${f}`)]
}

export const policyGet = (options: Options<typeof Spec.policyGetConfig>) =>
  Effect.flatMap(parseDocId(options.doc), (id) =>
    withClient(options, (api) =>
      Effect.gen(function*() {
        yield* mustKnow(api, id)
        const policy = yield* api.getDownloadPolicy(id)
        yield* emit(options, policyJson(policy), () => showPolicy(policy))
      })))

export const policySet = (options: Options<typeof Spec.policySetConfig>) =>
  Effect.flatMap(parseDocId(options.doc), (id) =>
    withClient(options, (api) =>
      Effect.gen(function*() {
        const filters: Array<FilterKind> = []
        for (const f of options.filters) {
          const parsed = parseFilter(f)
          if (Either.isLeft(parsed)) return yield* new CliError({ message: `invalid filter '${f}': ${parsed.left}` })
          filters.push(parsed.right)
        }
        const policy = options.mode === "NothingExcept" ? new NothingExcept({ filters }) : new EverythingExcept({ filters })
        yield* mustKnow(api, id)
        yield* api.setDownloadPolicy(id, policy)
        yield* emit(options, policyJson(policy), () => showPolicy(policy))
      })))

export const peers = (options: Options<typeof Spec.peersConfig>) =>
  withDoc(options, (doc, api) =>
    Effect.gen(function*() {
      const peers = yield* api.getSyncPeers(doc)
      for (const p of Option.getOrElse(peers, () => [])) {
        yield* emit(options, { nodeId: toHex(p) }, () => toHex(p))
      }
    }))

export const status = (options: Options<typeof Spec.statusConfig>) =>
  withDoc(options, (doc, api) =>
    Effect.gen(function*() {
      const s = yield* api.status(doc)
      // Not counting the handle this command holds.
      const handles = Math.max(0, s.handles - 1)
      yield* emit(options, { docId: toHex(doc), sync: s.sync, subscribers: s.subscribers, handles }, () => [
        `sync:        ${s.sync ? "on" : "off"}`,
        `subscribers: ${s.subscribers}`,
        `handles:     ${handles}`
      ])
    }))


export const leave = (options: Options<typeof Spec.leaveConfig>) =>
  withDoc(options, (doc, api) =>
    Effect.gen(function*() {
      yield* api.leave(doc)
      if (options.json) yield* emit(options, { left: toHex(doc) }, () => [])
      else yield* errLine(`left ${toHex(doc)}: no longer syncing`)
    }))

/** `…/p2p/<peer id>` → the peer's node id and the transport address before the suffix. */
const parsePeerAddr = (text: string): Effect.Effect<NodeAddr, CliError> =>
  Effect.gen(function*() {
    const bad = new CliError({ message: `not a peer address (a multiaddr ending in /p2p/<peer id>): ${text}` })
    const at = text.lastIndexOf("/p2p/")
    if (at < 0) return yield* bad
    const peer = yield* Effect.try({ try: () => peerIdFromString(text.slice(at + 5)), catch: () => bad })
    const nodeId = yield* Either.mapLeft(nodeIdFromPeerId(peer), () => bad)
    const transport = text.slice(0, at)
    if (transport !== "" && !Schema.is(MultiaddrString)(transport)) return yield* bad
    return new NodeAddr({ nodeId, addrs: transport === "" ? [] : [transport] })
  })

export const sync = (options: Options<typeof Spec.syncConfig>) =>
  Effect.gen(function*() {
    const peers = yield* Effect.forEach(options.addrs, parsePeerAddr)
    yield* withDoc(options, (doc, api) =>
      Effect.gen(function*() {
        yield* api.startSync(doc, peers)
        if (options.json) yield* emit(options, { syncing: toHex(doc), peers: peers.length }, () => [])
        else yield* errLine(`syncing ${toHex(doc)}${peers.length === 0 ? "" : ` (with ${peers.length} given peers too)`}`)
      }))
  })

// -- directories

interface FileToImport {
  readonly rel: string
  readonly abs: string
  readonly size: number
}

const fsReason = (e: unknown) => e instanceof Error && "code" in e ? String(e.code) : String(e)

/** Regular files under `root` (sorted, relative paths with `/`), and what is skipped (links, devices, empty files). */
const walk = (root: string) =>
  Effect.tryPromise({
    try: async () => {
      const files: Array<FileToImport> = []
      const skipped: Array<{ readonly rel: string; readonly reason: string }> = []
      const visit = async (dir: string, relDir: string): Promise<void> => {
        const entries = await fs.promises.readdir(dir, { withFileTypes: true })
        entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
        for (const d of entries) {
          const rel = relDir === "" ? d.name : `${relDir}/${d.name}`
          const abs = path.join(dir, d.name)
          if (d.isDirectory()) await visit(abs, rel)
          else if (!d.isFile()) skipped.push({ rel, reason: d.isSymbolicLink() ? "a symbolic link" : "not a regular file" })
          else {
            const size = (await fs.promises.stat(abs)).size
            // An empty value is a deletion marker: there is no empty content.
            if (size === 0) skipped.push({ rel, reason: "empty (an entry cannot hold empty content)" })
            else files.push({ rel, abs, size })
          }
        }
      }
      await visit(root, "")
      return { files, skipped }
    },
    catch: (e) => new CliError({ message: `cannot read ${root}: ${fsReason(e)}` })
  })

export const importDir = (options: Options<typeof Spec.importDirConfig>) =>
  Effect.gen(function*() {
    const root = path.resolve(options.dir)
    const { files, skipped } = yield* walk(root)
    for (const s of skipped) yield* errLine(`skipped ${s.rel}: ${s.reason}`)
    const tty = showProgress(options)
    const total = files.reduce((n, f) => n + f.size, 0)
    yield* withDoc(options, (doc, api) =>
      Effect.gen(function*() {
        const author = yield* authorOrDefault(api, options.author)
        let done = 0
        let failed = 0
        for (const [i, file] of files.entries()) {
          const key = `${options.prefix}${file.rel}`
          const before = done
          let data = readable(() => fs.createReadStream(file.abs, { highWaterMark: MiB }), file.rel)
          if (tty) {
            const bar = progressBar(total, `${i + 1}/${files.length} ${file.rel}`)
            data = Stream.tap(data, (c) => {
              done += c.length
              return bar(done)
            })
          }
          const outcome = yield* Effect.either(api.setStream(doc, author, utf8(key), data))
          done = before + file.size
          if (outcome._tag === "Left") {
            failed++
            if (tty) yield* progressDone
            yield* errLine(`failed ${file.rel}: ${oneLine(outcome.left)}`)
            continue
          }
          const o = outcome.right
          yield* emit(
            options,
            { key, path: file.rel, hash: toHex(o.entry.contentHash), size: file.size, replaced: o.removed },
            () => `${key}\t${toHex(o.entry.contentHash)}\t${file.size}`
          ).pipe(Effect.zipLeft(tty ? progressBar(total, `${i + 1}/${files.length}`)(done) : Effect.void))
        }
        if (tty && files.length > 0) yield* progressDone
        const summary = `imported ${files.length - failed} of ${files.length} files (${showBytes(total)})` +
          (skipped.length > 0 ? `, skipped ${skipped.length}` : "")
        if (!options.json) yield* errLine(summary)
        if (failed > 0) return yield* new CliError({ message: `${failed} of ${files.length} files failed` })
      }))
  })

/**
 * `key` without `prefix` as the path segments of a file, or why it is not one: keys come from any writer of the
 * document, so only plain relative paths pass (UTF-8 without control characters or NUL, no leading `/`, no `\`,
 * no empty, `.` or `..` segment).
 */
export const safeRelativePath = (key: Uint8Array, prefix: Uint8Array): Either.Either<ReadonlyArray<string>, string> => {
  const text = utf8OrUndefined(key.subarray(prefix.length))
  if (text === undefined) return Either.left("not UTF-8 text, or holds control characters")
  if (text === "") return Either.left("the key is the prefix itself (no file name)")
  if (text.startsWith("/")) return Either.left("an absolute path")
  if (text.includes("\\")) return Either.left("holds a backslash")
  const segments = text.split("/")
  if (segments.some((s) => s === "" || s === "." || s === "..")) return Either.left("an empty, . or .. path segment")
  return Either.right(segments)
}

const isInside = (dir: string, target: string) => target.startsWith(dir.endsWith(path.sep) ? dir : dir + path.sep)

/** Writes `data` to `file` through a temporary sibling; refuses a parent that leads out of `root` (a link). */
const writeFile = (root: string, file: string, data: Stream.Stream<Uint8Array, ApiError>) =>
  Effect.gen(function*() {
    const parent = path.dirname(file)
    yield* Effect.tryPromise({
      try: async () => {
        await fs.promises.mkdir(parent, { recursive: true })
        const [realRoot, realParent] = await Promise.all([fs.promises.realpath(root), fs.promises.realpath(parent)])
        if (realParent !== realRoot && !isInside(realRoot, realParent)) throw new Error("leads out of the directory")
      },
      catch: (e) => fsReason(e)
    })
    const tmp = `${file}.${process.pid}.rangedocs-tmp`
    const handle = yield* Effect.acquireRelease(
      Effect.tryPromise({ try: () => fs.promises.open(tmp, "w"), catch: fsReason }),
      (fh) => Effect.promise(() => fh.close().catch(() => undefined))
    )
    yield* Stream.runForEach(
      Stream.mapError(data, (e) => e._tag === "BlobNotFound" ? "its content is not on this node yet" : oneLine(e)),
      (bytes) => Effect.tryPromise({ try: () => handle.write(bytes), catch: fsReason })
    ).pipe(
      Effect.zipRight(Effect.tryPromise({ try: () => fs.promises.rename(tmp, file), catch: fsReason })),
      Effect.onError(() => Effect.promise(() => fs.promises.rm(tmp, { force: true })))
    )
  }).pipe(Effect.scoped)

export const exportDir = (options: Options<typeof Spec.exportDirConfig>) =>
  withDoc(options, (doc, api) =>
    Effect.gen(function*() {
      const root = path.resolve(options.dir)
      yield* Effect.tryPromise({
        try: () => fs.promises.mkdir(root, { recursive: true }),
        catch: (e) => new CliError({ message: `cannot create ${root}: ${fsReason(e)}` })
      })
      const prefix = utf8(options.prefix)
      const tty = showProgress(options)
      let exported = 0
      let skipped = 0
      let bytes = 0
      const skip = (key: Uint8Array, reason: string) =>
        Effect.suspend(() => {
          skipped++
          return options.json
            ? emit(options, { skipped: showKey(key), keyHex: toHex(key), reason }, () => [])
            : errLine(`skipped ${JSON.stringify(showKey(key))}: ${reason}`)
        })
      yield* Stream.runForEach(api.get(doc, Query.singleLatestPerKey().withKeyPrefix(prefix)), ({ entry }) =>
        Effect.gen(function*() {
          const segments = safeRelativePath(entry.id.key, prefix)
          if (Either.isLeft(segments)) return yield* skip(entry.id.key, segments.left)
          const file = path.join(root, ...segments.right)
          if (!isInside(root, file)) return yield* skip(entry.id.key, "outside the directory")
          const size = Number(entry.record.len)
          const rel = segments.right.join("/")
          let done = 0
          const data = tty
            ? Stream.tap(api.blobRead(entry.record.hash), (c) => {
              done += c.length
              return progressBar(size, rel)(done)
            })
            : api.blobRead(entry.record.hash)
          const written = yield* Effect.either(writeFile(root, file, data))
          if (tty) yield* progressDone
          if (Either.isLeft(written)) return yield* skip(entry.id.key, written.left)
          exported++
          bytes += size
          yield* emit(options, { key: showKey(entry.id.key), path: file, size }, () => file)
        }))
      if (!options.json) {
        yield* errLine(
          `exported ${exported} files (${showBytes(bytes)}) to ${root}${skipped > 0 ? `; skipped ${skipped}` : ""}`
        )
      }
    }))
