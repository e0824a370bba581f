/**
 * `rangedocs demo`: a persistent store in a data directory, two authors, one document; writes, a prefix delete and
 * queries, printing each step.
 */
import { Chunk, Console, Effect, Stream } from "effect"
import { blake3 } from "../internal/blake3.js"
import { toHex, utf8 } from "../internal/bytes.js"
import type { SignedEntry } from "../schema/Entry.js"
import { fmtShort, Hash, type NamespaceId } from "../schema/Keys.js"
import { Query } from "../schema/Query.js"
import * as Replica from "../services/Replica.js"

const text = (b: Uint8Array) => new TextDecoder().decode(b)

const show = (e: SignedEntry) =>
  `  ${text(e.key).padEnd(16)} author ${fmtShort(e.author)}  ${e.isEmpty ? "(deleted)" : `${e.contentLen} bytes`}  t=${e.timestamp}`

export const demo = (storePath: string) =>
  Effect.gen(function*() {
    const replica = yield* Replica.Replica
    yield* Console.log(`store: ${storePath}`)
    const alice = yield* replica.createAuthor
    const bob = yield* replica.createAuthor
    yield* Console.log(`authors: alice ${fmtShort(alice.id)}, bob ${fmtShort(bob.id)}`)
    const doc: NamespaceId = yield* replica.createReplica()
    yield* Console.log(`document: ${toHex(doc)}`)

    const set = (author: typeof alice, key: string, value: string) => {
      const bytes = utf8(value)
      return Effect.tap(
        replica.insertLocal(doc, author.id, utf8(key), Hash.make(blake3(bytes)), BigInt(bytes.length)),
        () => Console.log(`set ${key} = ${JSON.stringify(value)} (by ${author === alice ? "alice" : "bob"})`)
      )
    }
    yield* set(alice, "notes/monday", "buy milk")
    yield* set(alice, "notes/tuesday", "call bob")
    yield* set(bob, "notes/monday", "bob's monday")
    yield* set(alice, "todo", "write the demo")
    yield* set(alice, "notes/monday", "buy oat milk")

    const list = (title: string, query: Query) =>
      Effect.gen(function*() {
        const entries = Chunk.toArray(yield* Stream.runCollect(replica.getMany(doc, query)))
        yield* Console.log(`${title} (${entries.length}):`)
        for (const e of entries) yield* Console.log(show(e))
      })

    yield* list("all entries, by author then key", Query.all())
    yield* list("newest entry per key", Query.singleLatestPerKey())
    yield* list("keys under notes/, by key", Query.keyPrefix(utf8("notes/")).sortBy("KeyAuthor"))

    const { removed } = yield* replica.deletePrefix(doc, alice.id, utf8("notes/"))
    yield* Console.log(`alice deletes prefix notes/: ${removed} entries removed`)
    yield* list("all entries after the delete", Query.all())
    yield* list("including deletion markers", Query.all().withIncludeEmpty())
    const bobs = yield* replica.deletePrefix(doc, bob.id, new Uint8Array(0))
    yield* Console.log(`bob deletes the empty prefix, everything he wrote: ${bobs.removed} entries removed`)
    yield* list("what is left", Query.all())
    yield* replica.flush
  })
