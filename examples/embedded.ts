/**
 * Embeds a rangedocs node in an Effect program by Layer composition: the program needs `Docs`, the node layer
 * provides it. Creates a document, writes two entries, shares a read ticket, reads everything back and exits.
 *
 *   node --import tsx examples/embedded.ts            # in-memory node
 *   node --import tsx examples/embedded.ts ./my-data  # persistent node in ./my-data (documents survive restarts)
 */
import { NodeRuntime } from "@effect/platform-node"
import { Console, Effect, Layer, Schema, Stream } from "effect"
import { Docs, Keys, Node, Query, Ticket } from "../src/index.js"

const text = (s: string) => new TextEncoder().encode(s)
const str = (b: Uint8Array) => new TextDecoder().decode(b)
const hex = Schema.encodeSync(Keys.NamespaceIdFromHex)

/** A small service of the application's own, written against the Docs API only. */
class Notes extends Effect.Service<Notes>()("example/Notes", {
  effect: Effect.gen(function*() {
    const docs = yield* Docs.Docs
    const author = yield* docs.authorGetDefault
    const doc = yield* Docs.createDoc(docs)
    return {
      doc,
      write: (key: string, value: string) => doc.setBytes(author, text(key), text(value)),
      readAll: Effect.flatMap(
        Stream.runCollect(doc.getMany(Query.Query.singleLatestPerKey())),
        Effect.forEach((entry) =>
          Effect.map(Docs.readContent(docs, entry), (content) => [str(entry.id.key), str(content)] as const))
      )
    }
  })
}) {}

const program = Effect.gen(function*() {
  const notes = yield* Notes
  yield* Console.log(`document ${hex(notes.doc.id)}`)
  yield* notes.write("greeting", "hello from an embedded node")
  yield* notes.write("notes/1", "documents sync peer to peer")
  const ticket = yield* notes.doc.share("Read", "Addresses")
  yield* Console.log(`ticket: ${Ticket.ticketToString(ticket)}`)
  for (const [key, value] of yield* notes.readAll) yield* Console.log(`${key} = ${value}`)
  yield* notes.doc.close
})

const dataDir = process.argv[2]
const node = dataDir === undefined
  ? Node.memoryNode({ listen: ["/ip4/127.0.0.1/tcp/0"] })
  : Node.persistentNode(dataDir, { listen: ["/ip4/127.0.0.1/tcp/0"] })

// The node is built when the program starts and shut down (stores flushed, connections closed) when it ends.
const MainLive = Notes.Default.pipe(Layer.provideMerge(node))

program.pipe(Effect.provide(MainLive), NodeRuntime.runMain)
