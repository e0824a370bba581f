/**
 * The node's default author (spec 05 §11): used when a write names no author. `layerMemory` creates a fresh author
 * per start; `layerFile(dataDir)` keeps its id in `<dataDir>/default-author` (exactly 64 lowercase hex characters).
 * A new author is imported and the store flushed before the file is written, so the file never names a missing
 * author; a file naming an author the store lacks stops the node with an error that says what to do.
 */
import { Context, Effect, Layer, Option, Ref, Schema } from "effect"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { toHex } from "../internal/bytes.js"
import { secretFile, writeSecretFile } from "../internal/files.js"
import { AuthorNotExists, DocsError } from "../schema/DocsErrors.js"
import type { StoreError } from "../schema/Errors.js"
import { type AuthorId, AuthorIdFromHex } from "../schema/Keys.js"
import * as Replica from "./Replica.js"

export const DEFAULT_AUTHOR_FILE = "default-author"

export interface DefaultAuthorService {
  readonly get: Effect.Effect<AuthorId>
  /** Makes `id` the default (persisted for a file-backed node); the store must hold the author's secret key. */
  readonly set: (id: AuthorId) => Effect.Effect<void, AuthorNotExists | StoreError | DocsError>
}

export class DefaultAuthor extends Context.Tag("docs/DefaultAuthor")<DefaultAuthor, DefaultAuthorService>() {}

const make = (initial: AuthorId, persist: (id: AuthorId) => Effect.Effect<void, DocsError>) =>
  Effect.gen(function*() {
    const replica = yield* Replica.Replica
    const current = yield* Ref.make(initial)
    const set = (id: AuthorId) =>
      Effect.gen(function*() {
        const author = yield* replica.exportAuthor(id)
        if (Option.isNone(author)) return yield* new AuthorNotExists({ author: id })
        yield* persist(id)
        yield* Ref.set(current, id)
      })
    return DefaultAuthor.of({ get: Ref.get(current), set })
  })

const createAuthor = Effect.gen(function*() {
  const replica = yield* Replica.Replica
  const author = yield* replica.createAuthor
  return author.id
})

/** A fresh default author for this run (spec 05 §11 `Mem`). */
export const layerMemory: Layer.Layer<DefaultAuthor, StoreError, Replica.Replica> = Layer.effect(
  DefaultAuthor,
  Effect.flatMap(createAuthor, (id) => make(id, () => Effect.void))
)

const fileError = (file: string, what: string, cause?: unknown) =>
  new DocsError({ message: `${file}: ${what}${cause instanceof Error ? `: ${cause.message}` : ""}` })

/** Mode 0600: the file names the author whose secret signs the node's writes. */
const writeFile = (file: string, id: AuthorId) =>
  writeSecretFile(file, toHex(id)).pipe(
    Effect.mapError((error) => fileError(file, `could not write the default author: ${error.reason}`))
  )

/** The default author in `<dataDir>/default-author` (spec 05 §11 `Persistent`). */
export const layerFile = (dataDir: string): Layer.Layer<DefaultAuthor, StoreError | DocsError, Replica.Replica> =>
  Layer.effect(
    DefaultAuthor,
    Effect.gen(function*() {
      const replica = yield* Replica.Replica
      const file = path.join(dataDir, DEFAULT_AUTHOR_FILE)
      yield* secretFile(file).pipe(Effect.mapError((error) => fileError(file, error.reason)))
      const text = yield* Effect.tryPromise(() => fs.readFile(file, "utf8")).pipe(Effect.option)
      let id: AuthorId
      if (Option.isSome(text)) {
        const parsed = Schema.decodeUnknownOption(AuthorIdFromHex)(text.value)
        if (Option.isNone(parsed) || text.value.length !== 64) {
          return yield* fileError(file, "Failed to parse the default author")
        }
        id = parsed.value
        if (Option.isNone(yield* replica.exportAuthor(id))) {
          return yield* fileError(
            file,
            "the default author is missing from the docs store; delete this file to start with a new default author"
          )
        }
      } else {
        id = yield* createAuthor
        yield* replica.flush
        yield* Effect.tryPromise({
          try: () => fs.mkdir(dataDir, { recursive: true, mode: 0o700 }),
          catch: (cause) => fileError(dataDir, "could not create the data directory", cause)
        })
        yield* writeFile(file, id)
      }
      return yield* make(id, (next) => writeFile(file, next))
    })
  )
