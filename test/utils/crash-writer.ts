/**
 * Child process of the crash-safety test in test/services/Replica.test.ts:
 * `node --import tsx test/utils/crash-writer.ts <file>`.
 *
 * Opens a replica on `<file>` and writes with 64 writes in flight (two authors, random keys from a three-letter
 * alphabet so that prefixes collide, a deletePrefix every fourth write) until it is killed. Prints "ready" once its
 * first write is committed. Stops by itself after 10 s so that it never outlives the test.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Console, Effect, Layer } from "effect"
import { blake3 } from "../../src/internal/blake3.js"
import { utf8 } from "../../src/internal/bytes.js"
import { Hash } from "../../src/schema/Keys.js"
import * as Crypto from "../../src/services/Crypto.js"
import * as Replica from "../../src/services/Replica.js"
import * as Store from "../../src/services/Store.js"

const ALPHABET = "abc"
const randomKey = () => {
  const n = Math.floor(Math.random() * 4)
  let k = ""
  for (let i = 0; i < n; i++) k += ALPHABET[Math.floor(Math.random() * ALPHABET.length)]
  return utf8(k)
}

const program = Effect.gen(function*() {
  const replica = yield* Replica.Replica
  const authors = [yield* replica.createAuthor, yield* replica.createAuthor]
  const ns = yield* replica.createReplica()
  const content = (i: number) => {
    const bytes = utf8(`value ${i}`)
    return { hash: Hash.make(blake3(bytes)), len: BigInt(bytes.length) }
  }
  let written = 0
  const writeOne = Effect.suspend(() => {
    const author = authors[Math.floor(Math.random() * authors.length)]!.id
    const i = written++
    if (i % 4 === 3) return replica.deletePrefix(ns, author, randomKey())
    const { hash, len } = content(i)
    return replica.insertLocal(ns, author, randomKey(), hash, len)
  })
  yield* writeOne
  yield* Console.log("ready")
  const writer = writeOne.pipe(Effect.forever)
  yield* Effect.all(Array.from({ length: 64 }, () => writer), { concurrency: "unbounded", discard: true }).pipe(
    Effect.timeoutOption("10 seconds")
  )
})

const layer = (file: string) =>
  Replica.layer.pipe(Layer.provide(Store.layerFile(file)), Layer.provide(Crypto.layer(1)))

const file = process.argv[2]
NodeRuntime.runMain(
  file === undefined ? Effect.dieMessage("usage: crash-writer.ts <file>") : program.pipe(Effect.provide(layer(file)))
)
