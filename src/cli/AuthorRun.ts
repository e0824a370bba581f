/** What the `rangedocs author …` commands do (their arguments and options: `Author.ts`). */
import type * as Command from "@effect/cli/Command"
import { Chunk, Effect, Option, Stream } from "effect"
import { equals, toHex } from "../internal/bytes.js"
import type * as Spec from "./Author.js"
import { CliError, emit, errLine, withClient } from "./Common.js"
import { parseAuthorId, parseAuthorSecret } from "./Parse.js"

type Options<C extends Command.Command.Config> = Command.Command.ParseConfig<C>

export const list = (options: Options<typeof Spec.listConfig>) =>
  withClient(options, (api) =>
    Effect.gen(function*() {
      const def = yield* api.authorGetDefault
      const authors = Chunk.toReadonlyArray(yield* Stream.runCollect(api.authorList))
      for (const a of authors) {
        const isDefault = equals(a, def)
        yield* emit(options, { authorId: toHex(a), default: isDefault }, () => `${toHex(a)}${isDefault ? " (default)" : ""}`)
      }
    }))

export const create = (options: Options<typeof Spec.createConfig>) =>
  withClient(options, (api) =>
    Effect.gen(function*() {
      const id = yield* api.authorCreate
      yield* emit(options, { authorId: toHex(id) }, () => toHex(id))
    }))

export const defaultCommand = (options: Options<typeof Spec.defaultCommandConfig>) =>
  withClient(options, (api) =>
    Effect.gen(function*() {
      if (Option.isSome(options.set)) {
        const id = yield* parseAuthorId(options.set.value)
        yield* api.authorSetDefault(id)
      }
      const id = yield* api.authorGetDefault
      yield* emit(options, { authorId: toHex(id) }, () => toHex(id))
    }))

export const exportCommand = (options: Options<typeof Spec.exportCommandConfig>) =>
  withClient(options, (api) =>
    Effect.gen(function*() {
      const id = yield* parseAuthorId(options.id)
      const author = yield* api.authorExport(id)
      if (Option.isNone(author)) return yield* new CliError({ message: `author not found: ${toHex(id)}` })
      const secret = author.value.toSecretHex()
      yield* emit(options, { authorId: toHex(id), secret }, () => secret)
    }))

export const importCommand = (options: Options<typeof Spec.importCommandConfig>) =>
  withClient(options, (api) =>
      Effect.gen(function*() {
        const author = yield* parseAuthorSecret(options.secret)
        const id = yield* api.authorImport(author)
        yield* emit(options, { authorId: toHex(id) }, () => toHex(id))
      }))

export const deleteCommand = (options: Options<typeof Spec.deleteCommandConfig>) =>
  withClient(options, (api) =>
    Effect.gen(function*() {
      const id = yield* parseAuthorId(options.id)
      yield* api.authorDelete(id)
      if (options.json) yield* emit(options, { deleted: toHex(id) }, () => [])
      else yield* errLine(`deleted author ${toHex(id)}`)
    }))

