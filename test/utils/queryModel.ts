import { compare, equals, startsWith } from "../../src/internal/bytes.js"
import type { SignedEntry } from "../../src/schema/Entry.js"
import type { Query } from "../../src/schema/Query.js"

export const byAuthorKey = (x: SignedEntry, y: SignedEntry) => compare(x.author, y.author) || compare(x.key, y.key)
const byKeyAuthor = (x: SignedEntry, y: SignedEntry) => compare(x.key, y.key) || compare(x.author, y.author)

/**
 * spec 03 §4 evaluated literally over the entries of one namespace: everything filtered and sorted in memory, then
 * the page sliced out (the Store tests' model of a query).
 */
export const modelQuery = (entries: ReadonlyArray<SignedEntry>, q: Query): Array<SignedEntry> => {
  const keyOk = (e: SignedEntry) =>
    q.key._tag === "Any" ? true : q.key._tag === "Exact" ? equals(e.key, q.key.key) : startsWith(e.key, q.key.prefix)
  const filtered = entries.filter((e) => (q.author === undefined || equals(e.author, q.author)) && keyOk(e))
  let out: Array<SignedEntry>
  if (q.kind._tag === "Flat") {
    out = filtered.sort(q.kind.sortBy === "KeyAuthor" && q.author === undefined ? byKeyAuthor : byAuthorKey)
    if (q.direction === "Desc") out.reverse()
  } else {
    const walk = filtered.sort(q.author === undefined ? byKeyAuthor : byAuthorKey)
    if (q.direction === "Desc") walk.reverse()
    out = []
    let best: SignedEntry | undefined
    for (const e of walk) {
      if (best !== undefined && !equals(best.key, e.key)) {
        out.push(best)
        best = undefined
      }
      // The first met of the newest wins a tie.
      if (best === undefined || e.timestamp > best.timestamp) best = e
    }
    if (best !== undefined) out.push(best)
  }
  if (!q.includeEmpty) out = out.filter((e) => !e.isEmpty)
  return out.slice(q.offset, q.limit === undefined ? undefined : q.offset + q.limit)
}
