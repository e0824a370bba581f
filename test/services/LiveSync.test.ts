import { describe, expect, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import * as Docs from "../../src/services/Docs.js"
import * as LiveEvent from "../../src/schema/LiveEvent.js"
import { eventually, record, startMemoryNode } from "../utils/nodes.js"

const text = (s: string) => new TextEncoder().encode(s)
const is = <T extends LiveEvent.LiveEvent["_tag"]>(tag: T) => (e: LiveEvent.LiveEvent): e is Extract<LiveEvent.LiveEvent, { _tag: T }> => e._tag === tag

describe("LiveSync", () => {
  it.scopedLive("two nodes: share, join, writes both ways arrive live with their content", () =>
    Effect.gen(function*() {
      const a = yield* startMemoryNode()
      const b = yield* startMemoryNode()
      const author = yield* a.docs.authorGetDefault
      const docA = yield* Docs.createDoc(a.docs)
      yield* docA.setBytes(author, text("before"), text("written before the share"))
      const ticket = yield* docA.share("Write", "Addresses")
      const eventsA = yield* record(yield* docA.subscribe())

      const [docB, events] = yield* Docs.importAndSubscribe(b.docs, ticket)
      const seenB = yield* record(events)
      yield* seenB.until(is("SyncFinished"))
      yield* seenB.until(is("PendingContentReady"))
      const first = yield* docB.getExact(author, text("before"))
      expect(Option.isSome(first)).toBe(true)
      yield* eventually(Effect.map(Effect.either(b.docs.readContent(Option.getOrThrow(first).record.hash)), (r) => r._tag === "Right"))

      // live: a write on A reaches B through gossip, and its content follows
      yield* docA.setBytes(author, text("live"), text("hello from a"))
      const remote = yield* seenB.until((e): e is LiveEvent.InsertRemote =>
        e._tag === "InsertRemote" && new TextDecoder().decode(e.entry.id.key) === "live")
      expect(remote.from).toEqual(a.network.nodeId)
      yield* seenB.until((e): e is LiveEvent.ContentReady => e._tag === "ContentReady" && e.hash.every((x, i) => x === remote.entry.record.hash[i]))
      expect(new TextDecoder().decode(yield* b.docs.readContent(remote.entry.record.hash))).toBe("hello from a")

      // and back: B writes with its own author
      const authorB = yield* b.docs.authorGetDefault
      yield* docB.setBytes(authorB, text("reply"), text("hello from b"))
      yield* eventsA.until((e): e is LiveEvent.InsertRemote =>
        e._tag === "InsertRemote" && new TextDecoder().decode(e.entry.id.key) === "reply")
      yield* eventually(Effect.map(docA.getExact(authorB, text("reply")), Option.isSome))
    }))
})
