/**
 * `rangedocs doc …`: documents on the running node. The commands' arguments and options are defined here; what they
 * do is in `DocRun.ts`, imported when one of them runs (so `--help`, `--version` and the other commands do not load
 * it, nor the schemas it needs).
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import { common, lazy } from "./Common.js"

const run = lazy(() => import("./DocRun.js"))

export const docArg = Args.text({ name: "DOC" }).pipe(Args.withDescription("a document id (64 hex characters)"))
const keyArg = Args.text({ name: "KEY" }).pipe(Args.withDescription("an entry key (UTF-8)"))
const authorOption = Options.text("author").pipe(
  Options.withPseudoName("ID"),
  Options.withDescription("an author id (default: the node's default author)"),
  Options.optional
)

export const createConfig = common
const create = Command.make("create", createConfig, run((m) => m.create)).pipe(
  Command.withDescription("create a document; prints its id")
)

export const listConfig = common
const list = Command.make("list", listConfig, run((m) => m.list)).pipe(
    Command.withDescription("list the node's documents and our capability (write or read)")
  )

export const dropConfig = { ...common, doc: docArg }
const drop = Command.make("drop", dropConfig, run((m) => m.drop)).pipe(
  Command.withDescription("stop syncing a document and delete it from the node")
)

export const setConfig = {
  ...common,
  doc: docArg,
  key: keyArg,
  value: Args.text({ name: "VALUE" }).pipe(
    Args.withDescription("the value (UTF-8); without it and --file, stdin is read"),
    Args.optional
  ),
  file: Options.file("file").pipe(Options.withPseudoName("PATH"), Options.withDescription("read the value from this file"), Options.optional),
  author: authorOption
}
const set = Command.make("set", setConfig, run((m) => m.set)).pipe(
  Command.withDescription("set KEY to VALUE (or --file, or stdin); prints the content hash")
)

export const getConfig = {
  ...common,
  doc: docArg,
  key: keyArg,
  author: authorOption,
  includeEmpty: Options.boolean("include-empty").pipe(Options.withDescription("also find deletion markers")),
  meta: Options.boolean("meta").pipe(Options.withDescription("print the entry instead of its content"))
}
const get = Command.make("get", getConfig, run((m) => m.get)).pipe(
  Command.withDescription("print the content of KEY (the newest entry, or --author's) exactly; --meta: the entry")
)

export const keysConfig = {
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
}
const keys = Command.make("keys", keysConfig, run((m) => m.keys)).pipe(
  Command.withDescription("list entries: key, author (short), length")
)

export const delConfig = {
  ...common,
  doc: docArg,
  prefix: Args.text({ name: "PREFIX" }).pipe(Args.withDescription("delete the author's entries at and below this key")),
  author: authorOption
}
const del = Command.make("del", delConfig, run((m) => m.del)).pipe(
  Command.withDescription("delete an author's entries by key prefix; prints how many were removed")
)

export const shareConfig = {
  ...common,
  doc: docArg,
  mode: Args.choice([["read", "Read" as const], ["write", "Write" as const]], { name: "MODE" }).pipe(
    Args.withDescription("read or write: which capability the ticket grants")
  ),
  addr: Options.choice("addr", ["both", "direct", "relay", "none"] as const).pipe(
    Options.withDefault("both" as const),
    Options.withDescription(
      "which of the node's addresses the ticket carries: both (default: direct and through its relays), direct, " +
        "relay (only through its relays), none (the node id alone: found on the LAN or through relays)"
    )
  )
}
const share = Command.make("share", shareConfig, run((m) => m.share)).pipe(
  Command.withDescription("print a ticket for the document (and start syncing it)")
)

export const joinConfig = {
  ...common,
  ticket: Args.text({ name: "TICKET" }).pipe(Args.withDescription("a ticket from `doc share`")),
  watch: Options.boolean("watch").pipe(Options.withDescription("then print live events until Ctrl-C"))
}
const join = Command.make("join", joinConfig, run((m) => m.join)).pipe(
  Command.withDescription("import a ticket's document and sync with its nodes; prints the document id")
)

export const watchConfig = { ...common, doc: docArg }
const watch = Command.make("watch", watchConfig, run((m) => m.watch)).pipe(
  Command.withDescription("print the document's live events, one per line, until Ctrl-C")
)

export const importFileConfig = {
  ...common,
  doc: docArg,
  key: keyArg,
  file: Args.text({ name: "PATH" }).pipe(Args.withDescription("the file to import (read by the node)")),
  author: authorOption
}
const importFile = Command.make("import-file", importFileConfig, run((m) => m.importFile)).pipe(
  Command.withDescription("set KEY to the content of a file; prints hash and size")
)

export const exportFileConfig = {
  ...common,
  doc: docArg,
  key: keyArg,
  file: Args.text({ name: "PATH" }).pipe(Args.withDescription("where to write the content (written by the node)")),
  author: authorOption
}
const exportFile = Command.make("export-file", exportFileConfig, run((m) => m.exportFile)).pipe(
  Command.withDescription("write the content of KEY (the newest entry, or --author's) to a file")
)

export const importDirConfig = {
  ...common,
  doc: docArg,
  dir: Args.directory({ name: "DIR", exists: "yes" }).pipe(Args.withDescription("the directory to import (read here)")),
  prefix: Options.text("prefix").pipe(
    Options.withPseudoName("P"),
    Options.withDescription("put before each file's relative path (e.g. photos/); default none"),
    Options.withDefault("")
  ),
  author: authorOption
}
const importDir = Command.make("import", importDirConfig, run((m) => m.importDir)).pipe(
  Command.withDescription("set P + relative path to the content of every file under DIR (streamed); prints key, hash, size")
)

export const exportDirConfig = {
  ...common,
  doc: docArg,
  prefix: Args.text({ name: "PREFIX" }).pipe(Args.withDescription("export the keys starting with this (\"\" for all)")),
  dir: Args.text({ name: "DIR" }).pipe(Args.withDescription("where to write the files (created if missing)"))
}
const exportDir = Command.make("export", exportDirConfig, run((m) => m.exportDir)).pipe(
  Command.withDescription(
    "write each newest entry under PREFIX to DIR/<key without PREFIX>; keys that are no safe relative path are skipped"
  )
)

export const policyGetConfig = { ...common, doc: docArg }
const policyGet = Command.make("get", policyGetConfig, run((m) => m.policyGet)).pipe(
  Command.withDescription("print the document's download policy")
)

export const policySetConfig = {
  ...common,
  doc: docArg,
  mode: Args.choice([["nothing-except", "NothingExcept" as const], ["everything-except", "EverythingExcept" as const]], {
    name: "MODE"
  }),
  filters: Args.text({ name: "FILTER" }).pipe(
    Args.withDescription("prefix:utf8:<text>, prefix:hex:<hex>, exact:utf8:<text> or exact:hex:<hex>"),
    Args.repeated
  )
}
const policySet = Command.make("set", policySetConfig, run((m) => m.policySet)).pipe(
  Command.withDescription("set which content the node downloads for the document")
)

export const policySubcommands = [policyGet, policySet] as const

const policy = Command.make("policy").pipe(
  Command.withDescription("the document's download policy"),
  Command.withSubcommands(policySubcommands)
)

export const peersConfig = { ...common, doc: docArg }
const peers = Command.make("peers", peersConfig, run((m) => m.peers)).pipe(
  Command.withDescription("the peers the document last synced with (newest first, at most 5)")
)

export const statusConfig = { ...common, doc: docArg }
const status = Command.make("status", statusConfig, run((m) => m.status)).pipe(
  Command.withDescription("whether the document syncs, and its subscribers and open handles")
)

export const leaveConfig = { ...common, doc: docArg }
const leave = Command.make("leave", leaveConfig, run((m) => m.leave)).pipe(
  Command.withDescription("stop syncing the document (its entries and subscribers stay; share or join starts again)")
)

export const syncConfig = {
  ...common,
  doc: docArg,
  addrs: Args.text({ name: "ADDR" }).pipe(
    Args.withDescription("a peer's multiaddr ending in /p2p/<peer id> (as `start` prints them)"),
    Args.repeated
  )
}
const sync = Command.make("sync", syncConfig, run((m) => m.sync)).pipe(
  Command.withDescription("start live sync of the document, with these peers too")
)

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
  importDir,
  exportDir,
  policy,
  peers,
  status,
  leave,
  sync
] as const

export const docCommand = Command.make("doc").pipe(
  Command.withDescription("documents"),
  Command.withSubcommands(docSubcommands)
)
