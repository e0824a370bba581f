/** Fixtures for tests with several peers. */
import { Effect } from "effect"
import * as Capability from "../../src/schema/Capability.js"
import type { SignedEntry } from "../../src/schema/Entry.js"
import type { NamespaceSecret } from "../../src/schema/Keys.js"
import * as Replica from "../../src/services/Replica.js"
import * as Store from "../../src/services/Store.js"

/** The document `namespace` holds `entries` (put straight into the store) and is open for sync. */
export const openWithEntries = (namespace: NamespaceSecret, entries: ReadonlyArray<SignedEntry>) =>
  Effect.gen(function*() {
    const store = yield* Store.Store
    const replica = yield* Replica.Replica
    yield* replica.importNamespace(new Capability.Write({ secret: namespace }))
    yield* store.putMany(entries)
    yield* replica.open(namespace.id, { sync: true })
  })
