/**
 * One node of the live benchmark in a process of its own (forked by bench/live.ts), as nodes run in reality: it
 * answers the parent's commands over the IPC channel (`{ id, cmd, args }` → `{ id, ok, value }`). Times are
 * `performance.timeOrigin + performance.now()`, which processes on one machine share.
 */
import "../src/internal/polyfill.js"
import type { GossipSubEvents } from "@libp2p/gossipsub"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Context, Effect, Layer, Schema, Scope, Stream } from "effect"
import * as inspector from "node:inspector"
import * as fs from "node:fs"
import { constants, PerformanceObserver } from "node:perf_hooks"
import { toHex } from "../src/internal/bytes.js"
import { memoryNode } from "../src/layers/Node.js"
import * as DownloadPolicy from "../src/schema/DownloadPolicy.js"
import type { AuthorId } from "../src/schema/Keys.js"
import * as Op from "../src/schema/Op.js"
import { Query } from "../src/schema/Query.js"
import { parseTicket, ticketToString } from "../src/schema/Ticket.js"
import * as Docs from "../src/services/Docs.js"
import * as Gossip from "../src/services/Gossip.js"
import * as LiveSync from "../src/services/LiveSync.js"
import { GossipRouter } from "../src/services/Network/router.js"
import { serveRunner } from "./ipc.js"
import { randomBytes } from "./util.js"

const now = () => performance.timeOrigin + performance.now()
const text = (s: string) => new TextEncoder().encode(s)
const sleepUntil = (at: number) => {
  const ms = at - now()
  return ms > 0.5 ? Effect.sleep(ms) : Effect.void
}

const main = Effect.gen(function*() {
  const inlineMax = process.env["RANGEDOCS_BENCH_INLINE"]
  const live: LiveSync.LiveSyncConfig = inlineMax === undefined ? {} : { inlineContentMax: Number(inlineMax) }
  const context = yield* Layer.build(memoryNode({ listen: ["/ip4/127.0.0.1/tcp/0"], live }))
  const docs = Context.get(context, Docs.Docs)
  const gossip = Context.get(context, Gossip.Gossip)
  // Raw gossipsub for the baseline: the node's internal router (in the node's context, not a public service).
  const pubsub = Context.unsafeGet(context, GossipRouter).pubsub
  const scope = yield* Effect.scope

  let doc: Docs.Doc | undefined
  let author: AuthorId | undefined
  /** Write index → arrival time of its InsertRemote here. */
  const arrivals = new Map<number, number>()
  /** Raw gossipsub: message number → arrival time. */
  const rawArrivals = new Map<number, number>()
  let rawTopic: string | undefined
  const rawListener = (event: GossipSubEvents["gossipsub:message"]) => {
    const { msg } = event.detail
    if (msg.topic !== rawTopic || msg.data.length < 4) return
    const n = new DataView(msg.data.buffer, msg.data.byteOffset, 4).getUint32(0)
    if (!rawArrivals.has(n)) rawArrivals.set(n, now())
  }
  pubsub.addEventListener("gossipsub:message", rawListener)
  let session: inspector.Session | undefined
  /** Main-thread GC pauses since the last `gcReset` (perf_hooks "gc" entries). */
  let gc = { scavenges: 0, markCompacts: 0, pauseMs: 0, maxPauseMs: 0 }
  const gcObserver = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const kind = (entry as { readonly detail?: { readonly kind?: number } }).detail?.kind
      if (kind === constants.NODE_PERFORMANCE_GC_MINOR) gc.scavenges++
      else if (kind === constants.NODE_PERFORMANCE_GC_MAJOR) gc.markCompacts++
      gc.pauseMs += entry.duration
      gc.maxPauseMs = Math.max(gc.maxPauseMs, entry.duration)
    }
  })
  gcObserver.observe({ entryTypes: ["gc"] })
  yield* Effect.addFinalizer(() => Effect.sync(() => gcObserver.disconnect()))

  const theDoc = () => doc === undefined ? Effect.dieMessage("no document") : Effect.succeed(doc)

  const handle = (cmd: string, args: Record<string, unknown>): Effect.Effect<unknown, unknown> => {
    switch (cmd) {
      case "create":
        return Effect.gen(function*() {
          author = yield* docs.authorGetDefault
          doc = yield* Docs.createDoc(docs)
          return ticketToString(yield* doc.share("Write", "Addresses"))
        })
      case "join":
        return Effect.gen(function*() {
          const ticket = parseTicket(String(args["ticket"]))
          if (ticket._tag === "Left") return yield* Effect.dieMessage(ticket.left.message)
          const d = yield* Docs.importNamespace(docs, ticket.right.capability)
          doc = d
          if (args["noContent"] === true) yield* d.setDownloadPolicy(new DownloadPolicy.NothingExcept({ filters: [] }))
          const events = yield* Scope.extend(d.subscribe(), scope)
          yield* d.startSync(ticket.right.nodes)
          yield* Stream.runForEach(events, (event) =>
            Effect.sync(() => {
              if (event._tag !== "InsertRemote") return
              const key = new TextDecoder().decode(event.entry.id.key)
              if (!key.startsWith("w/")) return
              const k = Number(key.slice(2))
              if (!arrivals.has(k)) arrivals.set(k, now())
            })).pipe(Effect.forkIn(scope))
          return ticketToString(yield* d.share("Write", "Addresses"))
        })
      case "neighbors":
        return Effect.flatMap(theDoc(), (d) => Effect.map(gossip.neighbors(d.id), (x) => x.length))
      case "probe":
        return Effect.gen(function*() {
          const d = yield* theDoc()
          yield* d.setBytes(author!, text("probe"), randomBytes(Number(args["size"])))
          const probe = yield* docs.getExact(d.id, text("probe"), author!, false)
          return probe._tag === "Some"
            ? (yield* Schema.encode(Op.OpFromBytes)(new Op.Put({ entry: probe.value }))).length
            : 0
        })
      case "hasProbe":
        return Effect.gen(function*() {
          const d = yield* theDoc()
          const all = yield* Stream.runCollect(docs.get(d.id, Query.all()))
          return [...all].some((e) => new TextDecoder().decode(e.key) === "probe")
        })
      case "write":
        return Effect.gen(function*() {
          const d = yield* theDoc()
          const writes = Number(args["writes"])
          const interval = Number(args["interval"])
          const size = Number(args["size"])
          const values = Array.from({ length: writes }, () => randomBytes(size))
          // Warm-up writes use another prefix: they are not counted as arrivals.
          const prefix = typeof args["prefix"] === "string" ? args["prefix"] : "w/"
          const keys = Array.from({ length: writes }, (_, i) => text(`${prefix}${i}`))
          const sent = new Array<number>(writes)
          const start = now() + 20
          for (let i = 0; i < writes; i++) {
            yield* sleepUntil(start + i * interval)
            sent[i] = now()
            yield* d.setBytes(author!, keys[i]!, values[i]!)
          }
          return { sent, writeMs: now() - start }
        })
      case "cpu":
        return Effect.sync(() => {
          const u = process.cpuUsage()
          return (u.user + u.system) / 1000
        })
      case "gc":
        return Effect.sync(() => ({ ...gc }))
      case "gcReset":
        return Effect.sync(() => {
          gc = { scavenges: 0, markCompacts: 0, pauseMs: 0, maxPauseMs: 0 }
        })
      case "busy":
        // Milliseconds the main thread (event loop) has been busy: the part of `cpu` that is not GC helper,
        // worker or thread-pool threads.
        return Effect.sync(() => performance.eventLoopUtilization().active)
      case "arrivals":
        return Effect.sync(() => [...arrivals.entries()])
      case "arrived":
        return Effect.sync(() => arrivals.size)
      case "snapshot":
        return Effect.gen(function*() {
          const d = yield* theDoc()
          const entries = yield* Stream.runCollect(docs.get(d.id, Query.all().withIncludeEmpty()))
          return [...entries].map((e) =>
            `${toHex(e.author)}/${toHex(e.key)}/${toHex(e.contentHash)}/${e.entry.record.timestamp}`
          ).sort().join("\n")
        })
      case "stats":
        return Effect.gen(function*() {
          return { docs: yield* docs.stats, gossip: yield* gossip.stats }
        })
      case "rawSubscribe":
        return Effect.sync(() => {
          rawTopic = String(args["topic"])
          pubsub.subscribe(rawTopic)
          return true
        })
      case "rawUnsubscribe":
        return Effect.sync(() => {
          if (rawTopic !== undefined) pubsub.unsubscribe(rawTopic)
          rawTopic = undefined
          return true
        })
      case "rawPublishOne":
        return Effect.gen(function*() {
          const data = new Uint8Array(Math.max(4, Number(args["size"])))
          new DataView(data.buffer).setUint32(0, Number(args["n"]))
          yield* Effect.promise(() => pubsub.publish(rawTopic!, data))
          return true
        })
      case "rawHas":
        return Effect.sync(() => rawArrivals.has(Number(args["n"])))
      case "rawPublish":
        return Effect.gen(function*() {
          const count = Number(args["count"])
          const interval = Number(args["interval"])
          const size = Math.max(4, Number(args["size"]))
          const sent = new Array<number>(count)
          const start = now() + 20
          for (let n = 0; n < count; n++) {
            yield* sleepUntil(start + n * interval)
            const data = randomBytes(size)
            new DataView(data.buffer).setUint32(0, n)
            sent[n] = now()
            yield* Effect.promise(() => pubsub.publish(rawTopic!, data))
          }
          return sent
        })
      case "rawArrivals":
        return Effect.sync(() => [...rawArrivals.entries()].filter(([n]) => n < 1_000_000))
      case "rawArrived":
        return Effect.sync(() => [...rawArrivals.keys()].filter((n) => n < 1_000_000).length)
      case "profileStart":
        return Effect.async<boolean>((resume) => {
          session = new inspector.Session()
          session.connect()
          if (args["heap"] === true) {
            // Every allocation sampled, including objects a scavenge already collected: where the garbage comes from.
            // With `promoted`, only objects that survived the scavenges (promoted to the old generation, whether a
            // mark-compact collected them later or not): what makes old-generation collections.
            session.post("HeapProfiler.enable", () =>
              session!.post("HeapProfiler.startSampling", {
                samplingInterval: 8192,
                includeObjectsCollectedByMajorGC: true,
                includeObjectsCollectedByMinorGC: args["promoted"] !== true
              } as inspector.HeapProfiler.StartSamplingParameterType, () => resume(Effect.succeed(true))))
            return
          }
          session.post("Profiler.enable", () =>
            session!.post("Profiler.setSamplingInterval", { interval: 200 }, () =>
              session!.post("Profiler.start", () => resume(Effect.succeed(true)))))
        })
      case "profileStop":
        return Effect.async<boolean>((resume) => {
          if (session === undefined) return resume(Effect.succeed(false))
          const done = (err: Error | null, profile: unknown) => {
            if (err === null) fs.writeFileSync(String(args["file"]), JSON.stringify(profile))
            session!.disconnect()
            session = undefined
            resume(Effect.succeed(err === null))
          }
          if (args["heap"] === true) session.post("HeapProfiler.stopSampling", (err, result) => done(err, result?.profile))
          else session.post("Profiler.stop", (err, result) => done(err, result?.profile))
        })
      default:
        return Effect.dieMessage(`unknown command ${cmd}`)
    }
  }

  return yield* serveRunner(handle, scope)
}).pipe(Effect.scoped)

NodeRuntime.runMain(main)
