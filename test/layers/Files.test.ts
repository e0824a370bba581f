/**
 * Secrets at rest (issue 15, finding 7): a persistent node's data directory is 0700 and every file holding a secret
 * 0600, from creation in a fresh directory, and tightened at start (one warning line each) in a directory left
 * readable by others. Real persistent nodes in temp directories, stopped by the test's scope.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Logger, LogLevel } from "effect"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { storeFile } from "../../src/layers/Stores.js"
import { DEFAULT_AUTHOR_FILE } from "../../src/services/DefaultAuthor.js"
import { loadOrCreateToken, TOKEN_FILE } from "../../src/services/DocsRpc.js"
import { NODE_KEY_FILE } from "../../src/services/Network.js"
import { startPersistentNode } from "../utils/nodes.js"

const tempDir = Effect.acquireRelease(
  Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), "rangedocs-files-"))),
  (dir) => Effect.promise(() => fs.rm(dir, { recursive: true, force: true }))
)

const modeOf = (file: string) => Effect.promise(() => fs.stat(file)).pipe(Effect.map((s) => s.mode & 0o777))

const secretFiles = (dataDir: string) => {
  const db = storeFile(dataDir)
  return [
    db,
    `${db}-wal`,
    `${db}-shm`,
    path.join(dataDir, NODE_KEY_FILE),
    path.join(dataDir, DEFAULT_AUTHOR_FILE),
    path.join(dataDir, TOKEN_FILE)
  ]
}

/** Runs `effect` with WARN lines recorded in `lines` (message text only). */
const recordingWarnings = (lines: Array<string>) =>
  Logger.replace(
    Logger.defaultLogger,
    Logger.make(({ logLevel, message }) => {
      if (LogLevel.greaterThanEqual(logLevel, LogLevel.Warning)) {
        lines.push((Array.isArray(message) ? message : [message]).map(String).join(" "))
      }
    })
  )

/** A persistent node and its RPC token, as `rangedocs start` sets them up; the node runs until the scope closes. */
const startWithToken = (dataDir: string) =>
  Effect.gen(function*() {
    const node = yield* startPersistentNode(dataDir)
    yield* loadOrCreateToken(dataDir)
    // A write, so that the WAL holds something (the -wal and -shm files exist while the node runs).
    yield* node.docs.authorCreate
    return node
  })

describe("data directory modes", () => {
  it.scopedLive("finding 7: a fresh data directory is 0700 and every secret file 0600 from creation", () =>
    Effect.gen(function*() {
      const dataDir = path.join(yield* tempDir, "fresh")
      const warnings: Array<string> = []
      yield* startWithToken(dataDir).pipe(Effect.provide(recordingWarnings(warnings)), Logger.withMinimumLogLevel(LogLevel.Debug))
      assert.strictEqual(yield* modeOf(dataDir), 0o700)
      for (const file of secretFiles(dataDir)) {
        assert.strictEqual((yield* modeOf(file)).toString(8), "600", file)
      }
      assert.deepStrictEqual(warnings.filter((line) => line.includes("tightened")), [])
    }))

  it.scopedLive("finding 7: a 0755 directory with 0644 secret files is tightened at start, one warning line each", () =>
    Effect.gen(function*() {
      const dataDir = path.join(yield* tempDir, "loose")
      yield* Effect.scoped(startWithToken(dataDir))
      // As an older version, a copy or a careless umask left them; -wal and -shm as a crash leaves them.
      yield* Effect.promise(() => fs.chmod(dataDir, 0o755))
      for (const file of secretFiles(dataDir)) {
        yield* Effect.promise(() => fs.appendFile(file, "", { mode: 0o644 }))
        yield* Effect.promise(() => fs.chmod(file, 0o644))
      }
      const warnings: Array<string> = []
      yield* startWithToken(dataDir).pipe(Effect.provide(recordingWarnings(warnings)), Logger.withMinimumLogLevel(LogLevel.Debug))
      assert.strictEqual((yield* modeOf(dataDir)).toString(8), "700")
      for (const file of secretFiles(dataDir)) {
        assert.strictEqual((yield* modeOf(file)).toString(8), "600", file)
      }
      const tightened = warnings.filter((line) => line.includes("tightened"))
      for (const target of [dataDir, ...secretFiles(dataDir)]) {
        assert.strictEqual(tightened.filter((line) => line.includes(`${target} was mode`)).length, 1, target)
      }
      assert.strictEqual(tightened.length, 7)
    }))
})
