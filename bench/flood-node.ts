/**
 * The flooding peer of the flood benchmark (finding 4), in a process of its own (forked by bench/flood.ts): joins the
 * document with a write ticket (RANGEDOCS_FLOOD_TICKET), waits until the node under test is its gossip neighbor, then
 * gossips RANGEDOCS_FLOOD_PUTS validly signed Puts whose content it never has (so it never serves it). It also keeps
 * the entries in its store, so that a Put the node missed reaches it by sync. Reports `{ flooded, ms }` over IPC, then
 * stays a member until the parent disconnects.
 */
import "../src/internal/polyfill.js"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Context, Effect, Layer } from "effect"
import { blake3 } from "../src/internal/blake3.js"
import { signEntry } from "../src/internal/signing.js"
import { memoryNode } from "../src/layers/Node.js"
import { Entry, EntryRecord, RecordIdentifier, U64 } from "../src/schema/Entry.js"
import { Author, Hash } from "../src/schema/Keys.js"
import * as Op from "../src/schema/Op.js"
import { parseTicket } from "../src/schema/Ticket.js"
import * as Docs from "../src/services/Docs.js"
import * as Gossip from "../src/services/Gossip.js"
import * as Store from "../src/services/Store.js"

const main = Effect.gen(function*() {
  const ticket = parseTicket(process.env["RANGEDOCS_FLOOD_TICKET"] ?? "")
  if (ticket._tag === "Left") return yield* Effect.dieMessage(ticket.left.message)
  const capability = ticket.right.capability
  if (capability._tag !== "Write") return yield* Effect.dieMessage("a write ticket is needed")
  const puts = Number(process.env["RANGEDOCS_FLOOD_PUTS"] ?? "10000")
  const context = yield* Layer.build(memoryNode({ listen: ["/ip4/127.0.0.1/tcp/0"] }))
  const docs = Context.get(context, Docs.Docs)
  const gossip = Context.get(context, Gossip.Gossip)
  const store = Context.get(context, Store.Store)
  const doc = yield* Docs.importTicket(docs, ticket.right)
  while ((yield* gossip.neighbors(doc.id)).length === 0) yield* Effect.sleep("100 millis")

  const secret = capability.secret
  const author = Author.generate()
  const salt = `${process.pid}-${Date.now()}`
  const entries = Array.from({ length: puts }, (_, i) => {
    const content = new TextEncoder().encode(`absent content ${salt} ${i}`)
    return signEntry(secret, author, new Entry({
      id: new RecordIdentifier({ namespace: secret.id, author: author.id, key: new TextEncoder().encode(`flood/${i}`) }),
      record: new EntryRecord({
        len: U64.make(BigInt(content.length)),
        hash: Hash.make(blake3(content)),
        timestamp: U64.make(1_000_000n + BigInt(i))
      })
    }))
  })
  for (let i = 0; i < entries.length; i += 1000) yield* store.putMany(entries.slice(i, i + 1000))
  const t0 = performance.now()
  let flooded = 0
  yield* Effect.forEach(entries, (entry) =>
    Effect.map(gossip.broadcast(doc.id, new Op.Put({ entry })), (outcome) => {
      if (outcome._tag === "Published") flooded++
    }), { concurrency: 8, discard: true })
  process.send?.({ flooded, ms: Math.round(performance.now() - t0) })
  return yield* Effect.never
}).pipe(Effect.scoped)

process.on("disconnect", () => process.exit(0))
NodeRuntime.runMain(main)
