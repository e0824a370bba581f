/** What the `rangedocs blob …` commands do (their arguments: `Blob.ts`). */
import type * as Command from "@effect/cli/Command"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as path from "node:path"
import { toHex } from "../internal/bytes.js"
import type * as Spec from "./Blob.js"
import { CliError, emit, stdout, withClient } from "./Common.js"
import { parseHash } from "./Parse.js"
import { progressBar, progressDone, showProgress } from "./Progress.js"

type Options<C extends Command.Command.Config> = Command.Command.ParseConfig<C>

const notHere = (hash: Uint8Array) =>
  new CliError({ message: `blob ${toHex(hash)} is not (completely) on this node` })

export const list = (options: Options<typeof Spec.listConfig>) =>
  withClient(options, (api) =>
    Stream.runForEach(api.blobList, (b) =>
      emit(
        options,
        { hash: toHex(b.hash), size: b.size, have: b.have, status: b.status },
        () => `${toHex(b.hash)}\t${b.size}\t${b.status === "Complete" ? "complete" : `partial ${b.have}/${b.size}`}`
      )))

export const get = (options: Options<typeof Spec.getConfig>) =>
  Effect.flatMap(parseHash(options.hash), (hash) =>
    withClient(options, (api) =>
      // Each piece is handed to stdout before the next is asked for: bounded memory at any size.
      Stream.runForEach(api.blobRead(hash), stdout).pipe(
        Effect.catchTag("BlobNotFound", () => Effect.fail(notHere(hash)))
      )))

export const exportCommand = (options: Options<typeof Spec.exportConfig>) =>
  Effect.flatMap(parseHash(options.hash), (hash) =>
    withClient(options, (api) =>
      Effect.gen(function*() {
        const file = path.resolve(options.file)
        const tty = showProgress(options)
        let total = 0
        yield* api.exportFile(hash, file, tty ? (bytes, size) => {
          total = size
          return progressBar(size)(bytes)
        } : undefined).pipe(Effect.catchTag("BlobNotFound", () => Effect.fail(notHere(hash))))
        if (tty && total > 0) yield* progressDone
        yield* emit(options, { path: file, hash: toHex(hash) }, () => file)
      })))

export const gc = (options: Options<typeof Spec.gcConfig>) =>
  withClient(options, (api) =>
    Effect.gen(function*() {
      const report = yield* api.blobGc
      yield* emit(options, report, () => `deleted ${report.deleted} blobs, kept ${report.kept}`)
    }))
