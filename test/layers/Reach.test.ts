/**
 * Whole nodes through a relay on loopback (issue 17), without root: a node that listens nowhere is reached through
 * its reservation only, and sync, blob transfer, gossip (live updates both ways) and membership all run over the
 * limited relayed connection. The NAT lab (test/lab) does the same through real NATs.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer, Option, Stream } from "effect"
import { toHex } from "../../src/internal/bytes.js"
import type { NamespaceId } from "../../src/schema/Keys.js"
import type * as LiveEvent from "../../src/schema/LiveEvent.js"
import { peerIdFromNodeId } from "../../src/schema/NodeAddr.js"
import { Query } from "../../src/schema/Query.js"
import * as Docs from "../../src/services/Docs.js"
import * as Network from "../../src/services/Network.js"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { ADDRESS_BOOK_FILE } from "../../src/services/AddressBook.js"
import { eventually, record, startMemoryNode, startPersistentNode, type TestNode } from "../utils/nodes.js"

const text = (s: string) => new TextEncoder().encode(s)
const str = (b: Uint8Array) => new TextDecoder().decode(b)

/** `key` → content, for the newest entry of each key whose content is here. */
const contents = (node: TestNode, ns: NamespaceId) =>
  node.docs.get(ns, Query.singleLatestPerKey()).pipe(
    Stream.mapEffect((e) =>
      Effect.map(Effect.option(node.docs.readContent(e.entry.record.hash)), (c) => [str(e.entry.id.key), c] as const)
    ),
    Stream.runCollect,
    Effect.map((all) => new Map([...all].flatMap(([k, c]) => Option.isSome(c) ? [[k, str(c.value)] as const] : [])))
  )

const has = (node: TestNode, ns: NamespaceId, key: string, value: string) =>
  Effect.map(contents(node, ns), (m) => m.get(key) === value)

describe("Reach (whole nodes, loopback)", () => {
  it.scopedLive("a node reached only through a relay syncs entries and content both ways, and live updates flow over the limited connection", () =>
    Effect.gen(function*() {
      const relayCtx = yield* Layer.build(Network.layer({ relayService: true }))
      const relay = Context.get(relayCtx, Network.Network)
      const relayAddr = `${(yield* relay.addr).addrs[0]}/p2p/${peerIdFromNodeId(relay.nodeId).toString()}`
      const a = yield* startMemoryNode({ listen: [], relays: [relayAddr], network: { relayCheckInterval: "200 millis" } })
      // b keeps its address book in a file: what it remembers of a after the sync is read there.
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rangedocs-reach-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true })))
      const b = yield* startPersistentNode(dir)
      yield* eventually(Effect.map(a.network.shareAddr("relay"), (x) => x.addrs.length === 1), 15_000, "a's reservation")
      assert.deepStrictEqual((yield* a.network.shareAddr("direct")).addrs, [])

      const docA = yield* Docs.createDoc(a.docs)
      const authorA = yield* a.docs.authorGetDefault
      // Over 128 KiB (libp2p's default relay data limit) of content.
      const big = "x".repeat(300 * 1024)
      yield* docA.setBytes(authorA, text("big"), text(big))
      yield* docA.setBytes(authorA, text("hello"), text("from a"))
      const ticket = yield* docA.share("Write", "Relay")
      assert.isTrue(ticket.nodes[0]!.addrs.every((x) => x.endsWith("/p2p-circuit")))
      const [docB, eventsB] = yield* Docs.importAndSubscribe(b.docs, ticket)
      const seenB = yield* record(eventsB)
      const ns = docA.id
      yield* eventually(has(b, ns, "hello", "from a"), 20_000, "b has a's entry")
      yield* eventually(has(b, ns, "big", big), 20_000, "b has a's 300 KiB content")
      assert.deepStrictEqual(yield* b.network.connectionKind(a.network.nodeId), Option.some("relayed"))
      // SyncFinished and node info say how the peer is reached.
      const finished = yield* seenB.until((e): e is LiveEvent.SyncFinished => e._tag === "SyncFinished")
      assert.strictEqual(finished.event.via, "relayed")
      const peers = (yield* b.docs.nodeStatus).peers ?? []
      assert.deepStrictEqual(
        peers.filter((p) => toHex(p.nodeId) === toHex(a.network.nodeId)).map((p) => p.via),
        ["relayed"]
      )
      // After the sync (before its SyncFinished), b remembers a by its circuit, whole: not the relay's own address (a
      // cut at the last /p2p/ of the circuit made it that), and not nothing (circuits were dropped as undialable): a
      // restarted b could not reach a otherwise.
      const book: Record<string, ReadonlyArray<string>> = JSON.parse(fs.readFileSync(path.join(dir, ADDRESS_BOOK_FILE), "utf8"))
      assert.deepStrictEqual(book[toHex(a.network.nodeId)], (yield* a.network.shareAddr("relay")).addrs)
      const relaysOfA = (yield* a.docs.nodeStatus).relays ?? []
      assert.deepStrictEqual(relaysOfA.map((r) => [r.relay, r.status]), [[relayAddr, "reserved"]])

      // Live, both ways, once the sync is done: gossip over the relayed connection.
      yield* docB.setBytes(yield* b.docs.authorGetDefault, text("reply"), text("from b"))
      yield* eventually(has(a, ns, "reply", "from b"), 20_000, "a has b's live write")
      yield* docA.setBytes(authorA, text("live"), text("again from a"))
      yield* eventually(has(b, ns, "live", "again from a"), 20_000, "b has a's live write")
    }), { timeout: 90_000 })
})
