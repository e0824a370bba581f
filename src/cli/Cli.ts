/** The `rangedocs` command line (@effect/cli). */
import { Command, Options } from "@effect/cli"
import { Effect, Option } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { PersistentStore, storeFile } from "../layers/Stores.js"
import { demo } from "./Demo.js"

const dataDir = Options.directory("data-dir").pipe(
  Options.withDescription("data directory (default: a fresh temporary directory for the demo)"),
  Options.optional
)

const demoCommand = Command.make("demo", { dataDir }, ({ dataDir }) =>
  Effect.gen(function*() {
    const dir = Option.getOrElse(dataDir, () => fs.mkdtempSync(path.join(os.tmpdir(), "rangedocs-demo-")))
    yield* Effect.sync(() => fs.mkdirSync(dir, { recursive: true }))
    yield* demo(storeFile(dir)).pipe(Effect.provide(PersistentStore(dir)))
  })).pipe(Command.withDescription("write, delete by prefix and query a document in a persistent store"))

export const command = Command.make("rangedocs").pipe(
  Command.withDescription("multi-dimensional key-value documents that sync peer to peer"),
  Command.withSubcommands([demoCommand])
)

export const run = Command.run(command, { name: "rangedocs", version: "0.1.0" })
