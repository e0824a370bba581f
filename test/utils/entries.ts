/** Test fixtures: signed entries at chosen keys and timestamps. */
import { blake3 } from "../../src/internal/blake3.js"
import { utf8 } from "../../src/internal/bytes.js"
import { signEntry } from "../../src/internal/signing.js"
import { EMPTY, Entry, EntryRecord, RecordIdentifier, type SignedEntry, U64 } from "../../src/schema/Entry.js"
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
