/**
 * `rangedocs demo`: two in-memory nodes in one process on loopback. The first creates a document and writes; it
 * shares a write ticket; the second joins and we watch the entries and their content arrive live; the second writes
 * back; the first deletes by prefix; each step is printed.
 */
import { Command } from "@effect/cli"
import { Chunk, Context, Duration, Effect, Layer, Queue, Stream } from "effect"
import { equals, toHex } from "../internal/bytes.js"
import { memoryNode } from "../layers/Node.js"
import type { Entry } from "../schema/Entry.js"
import type { LiveEvent } from "../schema/LiveEvent.js"
import { Query } from "../schema/Query.js"
import { ticketToString } from "../schema/Ticket.js"
import * as Docs from "../services/Docs.js"
import { CliError, common, line, short, showKey } from "./Common.js"
import { showEvent } from "./Events.js"

const LOOPBACK = ["/ip4/127.0.0.1/tcp/0"]
const WAIT = Duration.seconds(30)
const text = (b: Uint8Array) => new TextDecoder().decode(b)
const bytes = (s: string) => new TextEncoder().encode(s)

/** A node's live events on a queue, so the demo can wait for particular ones in order. */
const eventsOf = (doc: Docs.Doc) =>
  Effect.gen(function*() {
    const queue = yield* Queue.unbounded<LiveEvent>()
    const events = yield* doc.subscribe()
    yield* Effect.forkScoped(Stream.runForEach(events, (e) => Queue.offer(queue, e)))
    return queue
  })

/** Takes events (printing them) until `done` holds for all seen so far. */
const waitFor = (
  who: string,
  queue: Queue.Queue<LiveEvent>,
  what: string,
  done: (seen: ReadonlyArray<LiveEvent>) => boolean
) =>
  Effect.gen(function*() {
    const seen: Array<LiveEvent> = []
    while (!done(seen)) {
      const e = yield* Queue.take(queue)
      seen.push(e)
      yield* line(`    ${who} ← ${showEvent(e)}`)
    }
  }).pipe(
    Effect.timeoutFail({ duration: WAIT, onTimeout: () => new CliError({ message: `timed out waiting for ${what}` }) })
  )

/** Every key in `keys` arrived (InsertRemote) and its content is here (Complete, or ContentReady for its hash). */
const arrived = (keys: ReadonlyArray<string>) => (seen: ReadonlyArray<LiveEvent>) =>
  keys.every((k) =>
    seen.some((e) =>
      e._tag === "InsertRemote" && equals(e.entry.id.key, bytes(k)) &&
      (e.contentStatus === "Complete" || e.entry.record.len === 0n ||
        seen.some((r) => r._tag === "ContentReady" && equals(r.hash, e.entry.record.hash)))
    )
  )

const show = (api: Docs.DocsService) => (e: Entry) =>
  Effect.gen(function*() {
    const content = e.record.len === 0n
      ? "(deleted)"
      : JSON.stringify(text(yield* api.readContent(e.record.hash)))
    return `    ${showKey(e.id.key).padEnd(14)} by ${short(e.id.author)}  ${content}`
  })

const listing = (title: string, api: Docs.DocsService, doc: Docs.Doc) =>
  Effect.gen(function*() {
    const entries = Chunk.toReadonlyArray(yield* Stream.runCollect(doc.getMany(Query.singleLatestPerKey())))
    yield* line(`  ${title} (${entries.length} keys):`)
    for (const e of entries) yield* line(yield* show(api)(e))
  })

const startNode = (name: string) =>
  Effect.gen(function*() {
    const context = yield* Layer.build(memoryNode({ listen: LOOPBACK }))
    const api = Context.get(context, Docs.Docs)
    const info = yield* api.nodeStatus
    yield* line(`  node ${name}: ${toHex(info.nodeId)} on ${info.addrs.join(", ")}`)
    return api
  })

export const demo = Effect.scoped(Effect.gen(function*() {
  yield* line("1. two in-memory nodes on loopback")
  const a = yield* startNode("A")
  const b = yield* startNode("B")

  yield* line("2. A creates a document and writes three entries")
  const docA = yield* Effect.acquireRelease(Docs.createDoc(a), (d) => Effect.ignore(d.close))
  const alice = yield* a.authorGetDefault
  yield* line(`  document ${toHex(docA.id)}, A's author ${short(alice)}`)
  for (const [k, v] of [["greeting", "hello from A"], ["notes/monday", "buy milk"], ["notes/tuesday", "call B"]]) {
    yield* docA.setBytes(alice, bytes(k!), bytes(v!))
    yield* line(`  A set ${k} = ${JSON.stringify(v)}`)
  }

  const eventsA = yield* eventsOf(docA)
  yield* line("3. A shares a write ticket (and starts syncing the document)")
  const ticket = yield* docA.share("Write", "Addresses")
  const ticketText = ticketToString(ticket)
  yield* line(`  ticket: ${ticketText.slice(0, 48)}… (${ticketText.length} characters)`)

  yield* line("4. B joins with the ticket; entries and content arrive live")
  const [docB, events] = yield* Docs.importAndSubscribe(b, ticket)
  yield* Effect.addFinalizer(() => Effect.ignore(docB.close))
  const eventsB = yield* Queue.unbounded<LiveEvent>()
  yield* Effect.forkScoped(Stream.runForEach(events, (e) => Queue.offer(eventsB, e)))
  yield* waitFor("B", eventsB, "A's entries on B", arrived(["greeting", "notes/monday", "notes/tuesday"]))
  yield* listing("B has", b, docB)

  yield* line("5. B writes back")
  const bob = yield* b.authorGetDefault
  yield* docB.setBytes(bob, bytes("reply"), bytes("hi A, B here"))
  yield* line(`  B (author ${short(bob)}) set reply = "hi A, B here"`)
  yield* waitFor("A", eventsA, "B's reply on A", arrived(["reply"]))
  yield* listing("A has", a, docA)

  yield* line("6. A deletes everything it wrote under notes/")
  const removed = yield* docA.del(alice, bytes("notes/"))
  yield* line(`  A removed ${removed} entries`)
  yield* waitFor("B", eventsB, "the deletion on B", arrived(["notes/"]))
  yield* listing("B has", b, docB)

  yield* line("done: both nodes hold the same document")
}))

export const demoCommand = Command.make("demo", common, () => demo).pipe(
  Command.withDescription("two in-memory nodes in this process: create, write, share, join, sync live, delete")
)
