/** `rangedocs author …`: the node's authors (secret keys it signs entries with). */
import { Args, Command, Options } from "@effect/cli"
import { Chunk, Effect, Option, Stream } from "effect"
import { equals, toHex } from "../internal/bytes.js"
import { CliError, common, emit, errLine, parseAuthorId, parseAuthorSecret, withClient } from "./Common.js"

const authorId = Args.text({ name: "ID" }).pipe(Args.withDescription("an author id (64 hex characters)"))

const list = Command.make("list", common, (options) =>
  withClient(options, (api) =>
    Effect.gen(function*() {
      const def = yield* api.authorGetDefault
      const authors = Chunk.toReadonlyArray(yield* Stream.runCollect(api.authorList))
      for (const a of authors) {
        const isDefault = equals(a, def)
        yield* emit(options, { authorId: toHex(a), default: isDefault }, () => `${toHex(a)}${isDefault ? " (default)" : ""}`)
      }
    }))).pipe(Command.withDescription("list the authors whose secret keys the node holds"))

const create = Command.make("create", common, (options) =>
  withClient(options, (api) =>
    Effect.gen(function*() {
      const id = yield* api.authorCreate
      yield* emit(options, { authorId: toHex(id) }, () => toHex(id))
    }))).pipe(Command.withDescription("create a new author"))

const setOption = Options.text("set").pipe(
  Options.withPseudoName("ID"),
  Options.withDescription("make this author (an id) the default"),
  Options.optional
)

const defaultCommand = Command.make("default", { ...common, set: setOption }, (options) =>
  withClient(options, (api) =>
    Effect.gen(function*() {
      if (Option.isSome(options.set)) {
        const id = yield* parseAuthorId(options.set.value)
        yield* api.authorSetDefault(id)
      }
      const id = yield* api.authorGetDefault
      yield* emit(options, { authorId: toHex(id) }, () => toHex(id))
    }))).pipe(Command.withDescription("print the default author, or set it with --set ID"))

const exportCommand = Command.make("export", { ...common, id: authorId }, (options) =>
  withClient(options, (api) =>
    Effect.gen(function*() {
      const id = yield* parseAuthorId(options.id)
      const author = yield* api.authorExport(id)
      if (Option.isNone(author)) return yield* new CliError({ message: `author not found: ${toHex(id)}` })
      const secret = author.value.toSecretHex()
      yield* emit(options, { authorId: toHex(id), secret }, () => secret)
    }))).pipe(Command.withDescription("print an author's secret key (hex); keep it private"))

const importCommand = Command.make(
  "import",
  { ...common, secret: Args.text({ name: "SECRET" }).pipe(Args.withDescription("an author secret (64 hex characters)")) },
  (options) =>
    withClient(options, (api) =>
      Effect.gen(function*() {
        const author = yield* parseAuthorSecret(options.secret)
        const id = yield* api.authorImport(author)
        yield* emit(options, { authorId: toHex(id) }, () => toHex(id))
      }))
).pipe(Command.withDescription("import an author from its secret key"))

const deleteCommand = Command.make("delete", { ...common, id: authorId }, (options) =>
  withClient(options, (api) =>
    Effect.gen(function*() {
      const id = yield* parseAuthorId(options.id)
      yield* api.authorDelete(id)
      if (options.json) yield* emit(options, { deleted: toHex(id) }, () => [])
      else yield* errLine(`deleted author ${toHex(id)}`)
    }))).pipe(Command.withDescription("delete an author (not the default one)"))

export const authorSubcommands = [list, create, defaultCommand, exportCommand, importCommand, deleteCommand] as const

export const authorCommand = Command.make("author").pipe(
  Command.withDescription("manage authors"),
  Command.withSubcommands(authorSubcommands)
)
