/**
 * `rangedocs blob …`: the node's content store. What the commands do is in `BlobRun.ts`, imported when one of them
 * runs.
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import { common, lazy } from "./Common.js"

const run = lazy(() => import("./BlobRun.js"))

const hashArg = Args.text({ name: "HASH" }).pipe(Args.withDescription("a content hash (64 hex characters)"))

export const listConfig = common
const list = Command.make("list", listConfig, run((m) => m.list)).pipe(
  Command.withDescription("list the stored blobs: hash, size, status (partial ones with the bytes present)")
)

export const getConfig = { ...common, hash: hashArg }
const get = Command.make("get", getConfig, run((m) => m.get)).pipe(
  Command.withDescription("write a blob's content to stdout, exactly (streamed)")
)

export const exportConfig = {
  ...common,
  hash: hashArg,
  file: Args.text({ name: "PATH" }).pipe(Args.withDescription("where to write the content (written by the node)"))
}
const exportCommand = Command.make("export", exportConfig, run((m) => m.exportCommand)).pipe(
  Command.withDescription("write a blob's content to a file")
)

export const gcConfig = common
const gc = Command.make("gc", gcConfig, run((m) => m.gc)).pipe(
  Command.withDescription("delete the blobs no document references (and nothing being downloaded or uploaded)")
)

export const blobSubcommands = [list, get, exportCommand, gc] as const

export const blobCommand = Command.make("blob").pipe(
  Command.withDescription("the node's content store"),
  Command.withSubcommands(blobSubcommands)
)
