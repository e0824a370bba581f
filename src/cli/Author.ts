/**
 * `rangedocs author …`: the node's authors (secret keys it signs entries with). What the commands do is in
 * `AuthorRun.ts`, imported when one of them runs.
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import { common, lazy } from "./Common.js"

const run = lazy(() => import("./AuthorRun.js"))

const authorId = Args.text({ name: "ID" }).pipe(Args.withDescription("an author id (64 hex characters)"))

const setOption = Options.text("set").pipe(
  Options.withPseudoName("ID"),
  Options.withDescription("make this author (an id) the default"),
  Options.optional
)

export const listConfig = common
const list = Command.make("list", listConfig, run((m) => m.list)).pipe(
  Command.withDescription("list the authors whose secret keys the node holds")
)

export const createConfig = common
const create = Command.make("create", createConfig, run((m) => m.create)).pipe(
  Command.withDescription("create a new author")
)

export const defaultCommandConfig = { ...common, set: setOption }
const defaultCommand = Command.make("default", defaultCommandConfig, run((m) => m.defaultCommand)).pipe(
  Command.withDescription("print the default author, or set it with --set ID")
)

export const exportCommandConfig = { ...common, id: authorId }
const exportCommand = Command.make("export", exportCommandConfig, run((m) => m.exportCommand)).pipe(
  Command.withDescription("print an author's secret key (hex); keep it private")
)

export const importCommandConfig = { ...common, secret: Args.text({ name: "SECRET" }).pipe(Args.withDescription("an author secret (64 hex characters)")) }
const importCommand = Command.make("import", importCommandConfig, run((m) => m.importCommand)).pipe(
  Command.withDescription("import an author from its secret key")
)

export const deleteCommandConfig = { ...common, id: authorId }
const deleteCommand = Command.make("delete", deleteCommandConfig, run((m) => m.deleteCommand)).pipe(
  Command.withDescription("delete an author (not the default one)")
)

export const authorSubcommands = [list, create, defaultCommand, exportCommand, importCommand, deleteCommand] as const

export const authorCommand = Command.make("author").pipe(
  Command.withDescription("manage authors"),
  Command.withSubcommands(authorSubcommands)
)
