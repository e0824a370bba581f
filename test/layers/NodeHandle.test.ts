/** Node handles for programs that run several nodes, and seeded identities (issue 16, "for embedders and tests"). */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Redacted, Stream } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { toHex } from "../../src/internal/bytes.js"
import { publicKeyOf } from "../../src/internal/ed25519.js"
import * as Node from "../../src/layers/Node.js"
import { Query } from "../../src/schema/Query.js"
import * as Docs from "../../src/services/Docs.js"

const text = (s: string) => new TextEncoder().encode(s)
const LOOPBACK = { listen: ["/ip4/127.0.0.1/tcp/0"] }

describe("Node.start", () => {
  it.live("a seeded identity gives the node id; shutdown stops the node and is idempotent; several nodes run at once", () =>
    Effect.gen(function*() {
      const seed = new Uint8Array(32).fill(9)
      const a = yield* Node.start(Node.memoryNode({ ...LOOPBACK, identity: Redacted.make(seed) }))
      const b = yield* Node.start(Node.memoryNode(LOOPBACK))
      assert.strictEqual(toHex(a.nodeId), toHex(publicKeyOf(seed)))
      assert.notStrictEqual(toHex(a.nodeId), toHex(b.nodeId))
      const doc = yield* Docs.createDoc(a.docs)
      yield* doc.setBytes(yield* a.docs.authorGetDefault, text("k"), text("v"))
      yield* a.shutdown
      yield* a.shutdown
      // The stopped node answers no more; the other one still does.
      const after = yield* Effect.exit(Stream.runCollect(a.docs.get(doc.id, Query.all())).pipe(Effect.timeout("2 seconds")))
      assert.isTrue(Exit.isFailure(after), "a stopped node does not serve")
      assert.isAbove((yield* b.docs.authorGetDefault).length, 0)
      yield* b.shutdown
    }))

  it.live("a persistent node started, stopped and started again keeps its node id and data", () =>
    Effect.gen(function*() {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rangedocs-handle-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true })))
      const first = yield* Node.start(Node.persistentNode(dir, LOOPBACK))
      const doc = yield* Docs.createDoc(first.docs)
      yield* first.shutdown
      const second = yield* Node.start(Node.persistentNode(dir, LOOPBACK))
      assert.strictEqual(toHex(second.nodeId), toHex(first.nodeId))
      const ids = yield* Stream.runCollect(second.docs.list)
      assert.isTrue([...ids].some((d) => toHex(d.id) === toHex(doc.id)))
      yield* second.shutdown
    }).pipe(Effect.scoped))

  it.live("a node that cannot start fails with a typed error and leaves nothing running", () =>
    Effect.gen(function*() {
      const exit = yield* Effect.exit(Node.start(Node.memoryNode({ listen: ["/ip4/127.0.0.1/tcp/0"], network: { streamWindow: 1 } })))
      assert.isTrue(Exit.isFailure(exit))
    }))
})
