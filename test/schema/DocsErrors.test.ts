import { assert, describe, it } from "@effect/vitest"
import { Schema } from "effect"
import {
  ApiError,
  AuthorNotExists,
  DefaultAuthorDelete,
  DocClosed,
  DocsError,
  EntryMissingAfterInsert,
  InvalidTicket,
  ReadAccessOnly,
  ReplicaClosed
} from "../../src/schema/DocsErrors.js"
import {
  AuthorNotFound,
  DocumentNotCreated,
  EntryIsEmpty,
  NewerEntryExists,
  ReadOnly,
  ReplicaNotClosed,
  ReplicaNotFound,
  ReplicaNotOpen,
  SyncNotEnabled
} from "../../src/schema/Errors.js"
import { Author, NamespaceSecret } from "../../src/schema/Keys.js"

const namespace = NamespaceSecret.fromSeed(new Uint8Array(32).fill(1)).id
const author = Author.fromSeed(new Uint8Array(32).fill(2)).id

// The catalogue of spec 06 §7, message by message.
const catalogue: ReadonlyArray<readonly [string, { readonly _tag: string; readonly message: string }]> = [
  ["replica not open", new ReplicaNotOpen({ namespace })],
  ["Replica not found", new ReplicaNotFound({ namespace })],
  ["sync is not enabled for replica", new SyncNotEnabled({ namespace })],
  ["author not found", new AuthorNotFound({ author })],
  ["Attempted to insert to read only replica", new ReadOnly({ namespace })],
  ["Replica allows read access only.", new ReadAccessOnly({ namespace })],
  ["Attempted to insert an empty entry", new EntryIsEmpty({ namespace })],
  [
    "A newer entry exists for either this entry's key or a prefix of the key.",
    new NewerEntryExists({ namespace, author, key: new Uint8Array([1]), timestamp: 5n })
  ],
  ["replica is closed", new ReplicaClosed({ namespace })],
  ["replica is not closed", new ReplicaNotClosed({ namespace })],
  ["document not created", new DocumentNotCreated({ namespace })],
  ["The author does not exist", new AuthorNotExists({ author })],
  ["Deleting the default author is not supported", new DefaultAuthorDelete({ author })],
  ["document is closed", new DocClosed({ namespace })],
  ["failed to get entry after insertion", new EntryMissingAfterInsert({ namespace, author, key: new Uint8Array([1]) })]
]

describe("DocsErrors", () => {
  it("every error of the catalogue has the spec's message", () => {
    for (const [message, error] of catalogue) assert.strictEqual(error.message, message, error._tag)
  })

  it("DocsError carries any message; InvalidTicket its reason", () => {
    assert.strictEqual(new DocsError({ message: "boom" }).message, "boom")
    assert.strictEqual(new InvalidTicket({ reason: "truncated" }).message, "invalid ticket: truncated")
  })

  it("ApiError holds every catalogue error, and its tags keep the messages across encode/decode", () => {
    for (const [message, error] of catalogue) {
      const decoded = Schema.decodeUnknownSync(ApiError)(Schema.encodeUnknownSync(ApiError)(error))
      assert.strictEqual(decoded._tag, error._tag)
      assert.strictEqual(decoded.message, message)
    }
  })
})
