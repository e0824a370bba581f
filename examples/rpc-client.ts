/**
 * Drives a running rangedocs node from another process over RPC. The node's data directory holds its RPC address
 * (`rpc.json`) and access token (`rpc-token`), so that is all a client needs. Lists the documents, creates one, sets
 * and gets a key.
 *
 *   rangedocs start --data-dir ./node1                           # in one terminal
 *   node --import tsx examples/rpc-client.ts ./node1              # in another (or RANGEDOCS_DATA_DIR=./node1)
 */
import { NodeRuntime } from "@effect/platform-node"
import { Console, Effect, Option, Schema, Stream } from "effect"
import { Docs, DocsRpc, Keys, NodeAddr } from "../src/index.js"

const text = (s: string) => new TextEncoder().encode(s)
const str = (b: Uint8Array) => new TextDecoder().decode(b)
const hex = Schema.encodeSync(Keys.NamespaceIdFromHex)

const program = Effect.gen(function*() {
  const docs = yield* Docs.Docs
  const node = yield* docs.nodeStatus
  yield* Console.log(`node ${Schema.encodeSync(NodeAddr.NodeIdFromHex)(node.nodeId)}`)

  const existing = yield* Stream.runCollect(docs.list)
  yield* Console.log(`${existing.length} document(s)`)
  for (const { capability, id } of existing) yield* Console.log(`  ${hex(id)} ${capability}`)

  const author = yield* docs.authorGetDefault
  const doc = yield* Docs.createDoc(docs)
  yield* Console.log(`created ${hex(doc.id)}`)
  yield* doc.setBytes(author, text("hello"), text("world"))
  const entry = yield* doc.getExact(author, text("hello"))
  if (Option.isSome(entry)) {
    yield* Console.log(`hello = ${str(yield* Docs.readContent(docs, entry.value))}`)
  }
  yield* doc.close
})

const dataDir = process.argv[2] ?? process.env["RANGEDOCS_DATA_DIR"]

if (dataDir === undefined) {
  console.error("usage: node --import tsx examples/rpc-client.ts DATA_DIR   (or set RANGEDOCS_DATA_DIR)")
  process.exitCode = 2
} else {
  program.pipe(
    Effect.provide(DocsRpc.layerClientFromDataDir(dataDir)),
    Effect.tapError((error) => Console.error(error.message)),
    NodeRuntime.runMain({ disableErrorReporting: true })
  )
}
