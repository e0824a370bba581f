/** Test fixtures: signed entries at chosen keys and timestamps. */
import { blake3 } from "../../src/internal/blake3.js"
import { utf8 } from "../../src/internal/bytes.js"
import { signEntry } from "../../src/internal/signing.js"
import { equals, startsWith } from "../../src/internal/bytes.js"
import {
  compareRecords,
  EMPTY,
  Entry,
  EntryRecord,
  makeSignedEntry,
  RecordIdentifier,
  type SignedEntry,
  U64
} from "../../src/schema/Entry.js"
import { type Author, Hash, type NamespaceSecret } from "../../src/schema/Keys.js"

export const key = (k: string | Uint8Array): Uint8Array => (typeof k === "string" ? utf8(k) : k)

export const entryAt = (
  ns: NamespaceSecret,
  author: Author,
  k: string | Uint8Array,
  timestamp: bigint,
  content: string | null = "value"
): SignedEntry => {
  const data = content === null ? undefined : utf8(content)
  return signEntry(
    ns,
    author,
    new Entry({
      id: new RecordIdentifier({ namespace: ns.id, author: author.id, key: key(k) }),
      record: new EntryRecord({
        len: U64.make(BigInt(data?.length ?? 0)),
        hash: data === undefined ? EMPTY : Hash.make(blake3(data)),
        timestamp: U64.make(timestamp)
      })
    })
  )
}

export const tombstoneAt = (ns: NamespaceSecret, author: Author, k: string | Uint8Array, timestamp: bigint) =>
  entryAt(ns, author, k, timestamp, null)

/** A copy of `e` with some fields replaced, signatures untouched (to forge or tamper with entries). */
export const withFields = (
  e: SignedEntry,
  o: Partial<{
    namespace: Uint8Array
    author: Uint8Array
    key: Uint8Array
    len: bigint
    hash: Uint8Array
    timestamp: bigint
    authorSignature: Uint8Array
    namespaceSignature: Uint8Array
  }>
): SignedEntry =>
  makeSignedEntry({
    namespace: e.namespace,
    author: e.author,
    key: e.key,
    len: e.contentLen,
    hash: e.contentHash,
    timestamp: e.timestamp,
    authorSignature: e.signature.author,
    namespaceSignature: e.signature.namespace,
    ...o
  })

/** spec 01 §9 with option B of §13, taken literally: the oracle of the property tests. Mutates `state`. */
export const modelPut = (state: Array<SignedEntry>, e: SignedEntry): number | "NotInserted" => {
  const mine = (s: SignedEntry) => equals(s.namespace, e.namespace) && equals(s.author, e.author)
  if (state.some((s) => mine(s) && startsWith(e.key, s.key) && compareRecords(e.record, s.record) <= 0)) {
    return "NotInserted"
  }
  const removed = state.filter((s) => mine(s) && startsWith(s.key, e.key) && compareRecords(s.record, e.record) <= 0)
  const kept = state.filter((s) => !removed.includes(s))
  state.length = 0
  state.push(...kept, e)
  return removed.length
}
