/** The node stacks of src/layers/Node.ts: bootstrap peers, the counters of spec 05 §14, persistence of a restart. */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Scope, Exit } from "effect"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { toHex } from "../../src/internal/bytes.js"
import * as Docs from "../../src/services/Docs.js"
import { eventually, startMemoryNode, startPersistentNode } from "../utils/nodes.js"

const SPEC_COUNTERS = [
  "new_entries_local",
  "new_entries_remote",
  "new_entries_local_size",
  "new_entries_remote_size",
  "sync_via_accept_success",
  "sync_via_accept_failure",
  "sync_via_connect_success",
  "sync_via_connect_failure",
  "actor_tick_main",
  "doc_live_tick_main",
  "doc_live_tick_actor",
  "doc_live_tick_replica_event",
  "doc_live_tick_running_sync_connect",
  "doc_live_tick_running_sync_accept",
  "doc_live_tick_pending_downloads"
]

const text = (s: string) => new TextEncoder().encode(s)

describe("Node layers", () => {
  it.scopedLive("a node dials its bootstrap peers when it starts", () =>
    Effect.gen(function*() {
      const a = yield* startMemoryNode()
      const b = yield* startMemoryNode({ bootstrap: [yield* a.network.addr] })
      yield* eventually(
        Effect.map(b.network.peers, (peers) => peers.some((p) => toHex(p) === toHex(a.network.nodeId))),
        10_000,
        "B connected to its bootstrap peer A"
      )
    }))

  it.scopedLive("stats has every counter of spec 05 §14 and counts local writes of a live document", () =>
    Effect.gen(function*() {
      const a = yield* startMemoryNode()
      const before = yield* a.docs.stats
      for (const name of SPEC_COUNTERS) assert.isNumber(before[name], name)
      const doc = yield* Docs.createDoc(a.docs)
      yield* doc.startSync([])
      const author = yield* a.docs.authorGetDefault
      yield* doc.setBytes(author, text("k"), text("value"))
      yield* eventually(
        Effect.map(a.docs.stats, (s) => s["new_entries_local"] === 1 && s["new_entries_local_size"] === 5),
        10_000,
        "local write counted"
      )
      const after = yield* a.docs.stats
      assert.isAtLeast(after["doc_live_tick_replica_event"]!, 1)
    }))

  it.scopedLive("a persistent node keeps its identity, default author, documents and entries across a restart", () =>
    Effect.gen(function*() {
      const dir = yield* Effect.acquireRelease(
        Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), "rangedocs-node-"))),
        (d) => Effect.promise(() => fs.rm(d, { recursive: true, force: true }))
      )
      const first = yield* Scope.make()
      const a = yield* Scope.extend(startPersistentNode(dir), first)
      const id = toHex(a.network.nodeId)
      const author = yield* a.docs.authorGetDefault
      const doc = yield* Docs.createDoc(a.docs)
      yield* doc.setBytes(author, text("kept"), text("across restarts"))
      yield* Scope.close(first, Exit.void)

      const b = yield* startPersistentNode(dir)
      assert.strictEqual(toHex(b.network.nodeId), id)
      assert.strictEqual(toHex(yield* b.docs.authorGetDefault), toHex(author))
      const reopened = yield* Docs.openDoc(b.docs, doc.id)
      const entry = yield* reopened.getExact(author, text("kept"))
      assert.isTrue(entry._tag === "Some")
      if (entry._tag === "Some") {
        assert.strictEqual(new TextDecoder().decode(yield* Docs.readContent(b.docs, entry.value)), "across restarts")
      }
    }))
})
