/** `rangedocs doc …`: documents on the running node. */
import { Args, Command, Options } from "@effect/cli"
import { Effect, Either, Option, type Scope, Stream } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { toHex } from "../internal/bytes.js"
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
import { Query } from "../schema/Query.js"
import { ticketToString } from "../schema/Ticket.js"
import type { DocsService } from "../services/Docs.js"
import {
  authorOrDefault,
  CliError,
  type Common,
  common,
  emit,
  entryJson,
  errLine,
  nonNegative,
  openScoped,
  parseAuthorId,
  parseDocId,
  parseKey,
  parseTicketArg,
  showKey,
  showTime,
  short,
  stderr,
  stdout,
  utf8,
  withClient
} from "./Common.js"
import { eventJson, showEvent } from "./Events.js"

const docArg = Args.text({ name: "DOC" }).pipe(Args.withDescription("a document id (64 hex characters)"))
const keyArg = Args.text({ name: "KEY" }).pipe(Args.withDescription("an entry key (UTF-8)"))
const authorOption = Options.text("author").pipe(
  Options.withPseudoName("ID"),
  Options.withDescription("an author id (default: the node's default author)"),
  Options.optional
)

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

// -- create / list / drop

const create = Command.make("create", common, (options) =>
  withClient(options, (api) =>
    Effect.gen(function*() {
      const doc = yield* Effect.acquireRelease(api.create, (id) => Effect.ignore(api.close(id)))
      yield* emit(options, { docId: toHex(doc) }, () => toHex(doc))
    }))).pipe(Command.withDescription("create a document; prints its id"))

const list = Command.make("list", common, (options) =>
  withClient(options, (api) =>
    Stream.runForEach(api.list, (item) =>
      emit(options, { docId: toHex(item.id), capability: item.capability }, () =>
        `${toHex(item.id)}\t${item.capability}`)))).pipe(
    Command.withDescription("list the node's documents and our capability (write or read)")
  )

const drop = Command.make("drop", { ...common, doc: docArg }, (options) =>
  Effect.flatMap(parseDocId(options.doc), (id) =>
    withClient(options, (api) =>
    Effect.gen(function*() {
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
    })))).pipe(Command.withDescription("stop syncing a document and delete it from the node"))

// -- set / get / keys / del

const readStdin = Effect.async<Uint8Array, CliError>((resume) => {
  const chunks: Array<Buffer> = []
  const onData = (c: Buffer | string) => chunks.push(typeof c === "string" ? Buffer.from(c) : c)
  const onEnd = () => resume(Effect.succeed(new Uint8Array(Buffer.concat(chunks))))
  const onError = (e: Error) => resume(Effect.fail(new CliError({ message: `cannot read stdin: ${e.message}` })))
  process.stdin.on("data", onData).once("end", onEnd).once("error", onError)
  return Effect.sync(() => {
    process.stdin.off("data", onData).off("end", onEnd).off("error", onError)
    process.stdin.pause()
  })
})

const readFileArg = (file: string) =>
  Effect.tryPromise({
    try: () => fs.promises.readFile(file),
    catch: (e) => new CliError({ message: `cannot read ${file}: ${e instanceof Error && "code" in e ? String(e.code) : String(e)}` })
  }).pipe(Effect.map((b) => new Uint8Array(b)))

const set = Command.make(
  "set",
  {
    ...common,
    doc: docArg,
    key: keyArg,
    value: Args.text({ name: "VALUE" }).pipe(
      Args.withDescription("the value (UTF-8); without it and --file, stdin is read"),
      Args.optional
    ),
    file: Options.file("file").pipe(Options.withPseudoName("PATH"), Options.withDescription("read the value from this file"), Options.optional),
    author: authorOption
  },
  (options) =>
    Effect.gen(function*() {
      const key = yield* parseKey(options.key)
      if (Option.isSome(options.value) && Option.isSome(options.file)) {
        return yield* new CliError({ message: "give either VALUE or --file, not both" })
      }
      const value = Option.isSome(options.value)
        ? utf8(options.value.value)
        : Option.isSome(options.file)
        ? yield* readFileArg(options.file.value)
        : yield* readStdin
      yield* withDoc(options, (doc, api) =>
        Effect.gen(function*() {
          const author = yield* authorOrDefault(api, options.author)
          const entry = yield* api.set(doc, author, key, value)
          yield* emit(options, entryJson(entry.entry), () => toHex(entry.contentHash))
        }))
    })
).pipe(Command.withDescription("set KEY to VALUE (or --file, or stdin); prints the content hash"))

const get = Command.make(
  "get",
  {
    ...common,
    doc: docArg,
    key: keyArg,
    author: authorOption,
    includeEmpty: Options.boolean("include-empty").pipe(Options.withDescription("also find deletion markers")),
    meta: Options.boolean("meta").pipe(Options.withDescription("print the entry instead of its content"))
  },
  (options) =>
    withDoc(options, (doc, api) =>
      Effect.gen(function*() {
        const key = yield* parseKey(options.key)
        const author = yield* optionalAuthorId(options.author)
        const entry = yield* findEntry(api, doc, key, author, options.includeEmpty)
        if (Option.isNone(entry)) return yield* notFound(key)
        const e = entry.value
        if (options.meta) return yield* emit(options, entryJson(e), () => entryLines(e))
        const content = e.record.len === 0n ? new Uint8Array(0) : yield* api.readContent(e.record.hash).pipe(
          Effect.catchTag("BlobNotFound", () =>
            Effect.fail(new CliError({ message: `the content of ${showKey(key)} is not on this node yet` })))
        )
        if (options.json) {
          return yield* emit(options, { ...entryJson(e), contentHex: toHex(content) }, () => [])
        }
        yield* stdout(content)
      }))
).pipe(Command.withDescription("print the content of KEY (the newest entry, or --author's) exactly; --meta: the entry"))

const keys = Command.make(
  "keys",
  {
    ...common,
    doc: docArg,
    prefix: Options.text("prefix").pipe(
      Options.withPseudoName("P"),
      Options.withDescription("only keys starting with this"),
      Options.optional
    ),
    author: Options.text("author").pipe(
      Options.withPseudoName("ID"),
      Options.withDescription("only this author's entries"),
      Options.optional
    ),
    latest: Options.boolean("latest").pipe(Options.withDescription("only the newest entry per key")),
    sort: Options.choice("sort", ["key", "author"]).pipe(
      Options.withDescription("order by key then author, or by author then key"),
      Options.withDefault("key" as const)
    ),
    desc: Options.boolean("desc").pipe(Options.withDescription("descending order")),
    limit: Options.integer("limit").pipe(Options.withPseudoName("N"), Options.optional),
    offset: Options.integer("offset").pipe(Options.withPseudoName("N"), Options.optional),
    includeEmpty: Options.boolean("include-empty").pipe(Options.withDescription("also list deletion markers"))
  },
  (options) =>
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
).pipe(Command.withDescription("list entries: key, author (short), length"))

const del = Command.make(
  "del",
  {
    ...common,
    doc: docArg,
    prefix: Args.text({ name: "PREFIX" }).pipe(Args.withDescription("delete the author's entries at and below this key")),
    author: authorOption
  },
  (options) =>
    withDoc(options, (doc, api) =>
      Effect.gen(function*() {
        const author = yield* authorOrDefault(api, options.author)
        const removed = yield* api.del(doc, author, utf8(options.prefix))
        yield* emit(options, { removed }, () => String(removed))
      }))
).pipe(Command.withDescription("delete an author's entries by key prefix; prints how many were removed"))

// -- share / join / watch

const share = Command.make(
  "share",
  {
    ...common,
    doc: docArg,
    mode: Args.choice([["read", "Read" as const], ["write", "Write" as const]], { name: "MODE" }).pipe(
      Args.withDescription("read or write: which capability the ticket grants")
    )
  },
  (options) =>
    withDoc(options, (doc, api) =>
      Effect.gen(function*() {
        const ticket = yield* api.share(doc, options.mode, "Addresses")
        const text = ticketToString(ticket)
        yield* emit(options, { ticket: text }, () => text)
      }))
).pipe(Command.withDescription("print a ticket for the document (and start syncing it)"))

const join = Command.make(
  "join",
  {
    ...common,
    ticket: Args.text({ name: "TICKET" }).pipe(Args.withDescription("a ticket from `doc share`")),
    watch: Options.boolean("watch").pipe(Options.withDescription("then print live events until Ctrl-C"))
  },
  (options) =>
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
).pipe(Command.withDescription("import a ticket's document and sync with its nodes; prints the document id"))

const watch = Command.make("watch", { ...common, doc: docArg }, (options) =>
  withDoc(options, (doc, api) =>
    Effect.gen(function*() {
      const events = yield* api.subscribe(doc)
      // On stderr in JSON mode too: it tells a script (or a test) that no later event will be missed.
      yield* errLine(`watching ${toHex(doc)}; stop with Ctrl-C`)
      yield* printEvents(options, events)
    }))).pipe(Command.withDescription("print the document's live events, one per line, until Ctrl-C"))

// -- files

const MiB = 1024 * 1024
const showBytes = (n: number) => n >= MiB ? `${(n / MiB).toFixed(1)} MiB` : `${(n / 1024).toFixed(1)} KiB`

const progressBar = (total: number) => (done: number) => {
  const width = 30
  const ratio = total > 0 ? Math.min(1, done / total) : 1
  const filled = Math.round(ratio * width)
  return stderr(
    `\r[${"#".repeat(filled)}${"-".repeat(width - filled)}] ${(ratio * 100).toFixed(0).padStart(3)}% ${showBytes(done)} / ${showBytes(total)}`
  )
}

const importFile = Command.make(
  "import-file",
  {
    ...common,
    doc: docArg,
    key: keyArg,
    file: Args.text({ name: "PATH" }).pipe(Args.withDescription("the file to import (read by the node)")),
    author: authorOption
  },
  (options) =>
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
        const tty = process.stderr.isTTY === true && !options.json
        const outcome = yield* api.importFile(doc, author, key, file, tty ? progressBar(stat.size) : undefined)
        if (tty) yield* stderr("\n")
        yield* emit(
          options,
          { key: options.key, hash: toHex(outcome.hash), size: outcome.size },
          () => `${toHex(outcome.hash)}\t${outcome.size}`
        )
      }))
).pipe(Command.withDescription("set KEY to the content of a file; prints hash and size"))

const exportFile = Command.make(
  "export-file",
  {
    ...common,
    doc: docArg,
    key: keyArg,
    file: Args.text({ name: "PATH" }).pipe(Args.withDescription("where to write the content (written by the node)")),
    author: authorOption
  },
  (options) =>
    withDoc(options, (doc, api) =>
      Effect.gen(function*() {
        const key = yield* parseKey(options.key)
        const author = yield* optionalAuthorId(options.author)
        const entry = yield* findEntry(api, doc, key, author, false)
        if (Option.isNone(entry)) return yield* notFound(key)
        const file = path.resolve(options.file)
        const tty = process.stderr.isTTY === true && !options.json
        if (tty) yield* stderr(`exporting ${showBytes(Number(entry.value.record.len))} to ${file}…`)
        yield* api.exportFile(entry.value.record.hash, file)
        if (tty) yield* stderr(" done\n")
        yield* emit(options, { path: file, ...entryJson(entry.value) }, () => file)
      }))
).pipe(Command.withDescription("write the content of KEY (the newest entry, or --author's) to a file"))

// -- policy / peers / status

const policyJson = (p: DownloadPolicy) => ({
  policy: p._tag === "NothingExcept" ? "nothing-except" : "everything-except",
  filters: p.filters.map(filterToString)
})

const showPolicy = (p: DownloadPolicy) => {
  const j = policyJson(p)
  return [j.policy, ...j.filters.map((f) => `  ${f}`)]
}

const policyGet = Command.make("get", { ...common, doc: docArg }, (options) =>
  Effect.flatMap(parseDocId(options.doc), (id) =>
    withClient(options, (api) =>
      Effect.gen(function*() {
        const policy = yield* api.getDownloadPolicy(id)
        yield* emit(options, policyJson(policy), () => showPolicy(policy))
      })))).pipe(Command.withDescription("print the document's download policy"))

const policySet = Command.make(
  "set",
  {
    ...common,
    doc: docArg,
    mode: Args.choice([["nothing-except", "NothingExcept" as const], ["everything-except", "EverythingExcept" as const]], {
      name: "MODE"
    }),
    filters: Args.text({ name: "FILTER" }).pipe(
      Args.withDescription("prefix:utf8:<text>, prefix:hex:<hex>, exact:utf8:<text> or exact:hex:<hex>"),
      Args.repeated
    )
  },
  (options) =>
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
        yield* api.setDownloadPolicy(id, policy)
        yield* emit(options, policyJson(policy), () => showPolicy(policy))
      })))
).pipe(Command.withDescription("set which content the node downloads for the document"))

export const policySubcommands = [policyGet, policySet] as const

const policy = Command.make("policy").pipe(
  Command.withDescription("the document's download policy"),
  Command.withSubcommands(policySubcommands)
)

const peers = Command.make("peers", { ...common, doc: docArg }, (options) =>
  withDoc(options, (doc, api) =>
    Effect.gen(function*() {
      const peers = yield* api.getSyncPeers(doc)
      for (const p of Option.getOrElse(peers, () => [])) {
        yield* emit(options, { nodeId: toHex(p) }, () => toHex(p))
      }
    }))).pipe(Command.withDescription("the peers the document last synced with (newest first, at most 5)"))

const status = Command.make("status", { ...common, doc: docArg }, (options) =>
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
    }))).pipe(Command.withDescription("whether the document syncs, and its subscribers and open handles"))

export const docSubcommands = [
  create,
  list,
  drop,
  set,
  get,
  keys,
  del,
  share,
  join,
  watch,
  importFile,
  exportFile,
  policy,
  peers,
  status
] as const

export const docCommand = Command.make("doc").pipe(
  Command.withDescription("documents"),
  Command.withSubcommands(docSubcommands)
)
