/**
 * A test-only hostile peer (finding 4): a member with a write ticket that gossips validly signed Puts whose content
 * it never serves. It also keeps the entries in its store (without content), so a victim that missed a gossiped Put
 * gets the entry by the next sync, and still never the content.
 */
import { Context, Effect } from "effect"
import type { SignedEntry } from "../../src/schema/Entry.js"
import { Author, type NamespaceId, type NamespaceSecret } from "../../src/schema/Keys.js"
import * as Op from "../../src/schema/Op.js"
import * as Gossip from "../../src/services/Gossip.js"
import * as Store from "../../src/services/Store.js"
import { entryAt } from "./entries.js"
import type { TestNode } from "./nodes.js"

/** `count` valid entries of one fresh author, each with content nobody has (unique per call). */
export const absentContentPuts = (secret: NamespaceSecret, count: number, prefix = "flood/"): Array<SignedEntry> => {
  const author = Author.generate()
  const salt = Math.random().toString(36).slice(2)
  return Array.from({ length: count }, (_, i) => entryAt(secret, author, `${prefix}${i}`, 1_000_000n + BigInt(i), `absent ${salt} ${i}`))
}

/** Stores the entries on `node` (no content) and gossips each as a Put, `concurrency` publishes at a time. */
export const flood = (node: TestNode, ns: NamespaceId, entries: ReadonlyArray<SignedEntry>, concurrency = 8) =>
  Effect.gen(function*() {
    const store = Context.get(node.context, Store.Store)
    const gossip = Context.get(node.context, Gossip.Gossip)
    for (let i = 0; i < entries.length; i += 1000) yield* store.putMany(entries.slice(i, i + 1000))
    let sent = 0
    yield* Effect.forEach(entries, (entry) =>
      Effect.map(gossip.broadcast(ns, new Op.Put({ entry })), (o) => {
        if (o._tag === "Published") sent++
      }), { concurrency, discard: true })
    return sent
  })
