/**
 * live: `nodes` nodes on loopback share one document (every node joins through node 0's ticket, or with
 * `--topology chain` through its predecessor's). Once all are gossip neighbors, node 0 writes `writes` entries at a
 * steady rate (`--interval` ms apart, default {@link DEFAULT_INTERVAL_MS}; `--size` bytes of content, default 32); a
 * write's latency is the time from the start of its `setBytes` until every other node has emitted InsertRemote for
 * it. Baseline, same run and nodes: a raw gossipsub message of the encoded Put's size, publish → received by every
 * other node, at the same rate.
 *
 * By default every node runs in a process of its own (bench/live-node.ts, driven over IPC), as nodes run in
 * reality; times are `performance.timeOrigin + performance.now()`, shared by the processes of one machine. Reported
 * beside the latencies: raw gossipsub's own p99, and per node the CPU time per write and the time its main thread was
 * busy (event-loop utilisation: above the CPU time when the thread waited for a core).
 *
 * Flags: `--unbundled` runs each node from its module files instead of a bundle (`bundledProgram`, as deployed);
 * `--in-process` runs all nodes on this process's one thread (the swarm's rate is then bounded by a write's CPU
 * cost summed over all nodes); with `--ops` it also counts the Effect operations all nodes execute per write (op
 * supervision slows the run: its latencies are not comparable). `--inline-max N` sets the nodes' `inlineContentMax`
 * (0: content is downloaded, not gossiped inline). `--no-content` makes the receivers skip content (download policy
 * NothingExcept), `--stats` prints every node's counters, `--profile FILE` records the write phase (per node:
 * FILE.nodeI.cpuprofile; `--profile-raw FILE` the raw gossipsub phase), `--heap-profile FILE` (process mode) samples
 * its allocations instead, collected garbage included (FILE.nodeI.heapprofile), `--promoted-profile FILE` only the
 * allocations that outlived the scavenges (promoted to the old generation: what makes scavenges slow and
 * mark-compacts frequent), `--dump FILE` writes each write's send time and latencies and `--node-args "…"`
 * passes node/V8 flags to the node processes (process mode), after the runner's own, which they inherit (the node
 * program's, package.json). In process mode `--warmup N` (default {@link DEFAULT_WARMUP_WRITES}) writes N unmeasured
 * entries first at the same rate, so that the figures are those of running nodes, not of code still being compiled
 * (as the blobs bench warms up before it measures).
 */
import type { GossipSubEvents } from "@libp2p/gossipsub"
import { Context, Effect, Layer, Schema, Stream } from "effect"
import { writeFileSync } from "node:fs"
import { toHex } from "../src/internal/bytes.js"
import { memoryNode } from "../src/layers/Node.js"
import * as DownloadPolicy from "../src/schema/DownloadPolicy.js"
import * as Op from "../src/schema/Op.js"
import { Query } from "../src/schema/Query.js"
import type { DocTicket } from "../src/schema/Ticket.js"
import * as Docs from "../src/services/Docs.js"
import * as Gossip from "../src/services/Gossip.js"
import * as Network from "../src/services/Network.js"
import { GossipRouter, type GossipRouterService } from "../src/services/Network/router.js"
import { nodeProgram } from "./bundle.js"
import { type Child, forkChild } from "./ipc.js"
import { countingOps, numberFlag, OpCounter, profiled, progress, randomBytes } from "./util.js"

/**
 * One write every 10 ms (100 writes/s). Measured with one process per node on the shared 2-core machine: with a
 * load average around 4–5 the swarm keeps up (p50 ≈ 7 ms), around 8 it sustains only ~25 writes/s and a queue builds.
 */
const DEFAULT_INTERVAL_MS = 10
/** Unmeasured writes before the measured ones (process mode): about 3 s at the default rate. */
const DEFAULT_WARMUP_WRITES = 300

interface BenchNode {
  readonly docs: Docs.DocsService
  readonly network: Network.NetworkService
  readonly gossip: Gossip.GossipService
  /** Raw gossipsub, for the baseline: the node's internal router (a node's context holds it; not a public service). */
  readonly router: GossipRouterService
}

const startNode = (inlineContentMax: number | undefined) => Effect.gen(function*() {
  const live = inlineContentMax === undefined ? {} : { inlineContentMax }
  const context = yield* Layer.build(memoryNode({ listen: ["/ip4/127.0.0.1/tcp/0"], live }))
  return {
    docs: Context.get(context, Docs.Docs),
    network: Context.get(context, Network.Network),
    gossip: Context.get(context, Gossip.Gossip),
    router: Context.unsafeGet(context, GossipRouter)
  } satisfies BenchNode
})

/** A node's main-thread GC pauses since its `gcReset` (bench/live-node.ts `gc`). */
interface GcCounts {
  readonly scavenges: number
  readonly markCompacts: number
  readonly pauseMs: number
  readonly maxPauseMs: number
}

const percentile = (sorted: ReadonlyArray<number>, p: number) =>
  sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!

const round2 = (x: number) => Math.round(x * 100) / 100

const waitUntil = (check: () => boolean, ms: number) =>
  Effect.gen(function*() {
    const deadline = performance.now() + ms
    while (!check() && performance.now() < deadline) yield* Effect.sleep(5)
    return check()
  })

/** Sleeps until `at` (performance.now() ms); a fiber that is late does not sleep. */
const sleepUntil = (at: number) => {
  const ms = at - performance.now()
  return ms > 0.5 ? Effect.sleep(ms) : Effect.void
}

/** Raw gossipsub publish → receive on a topic of its own, with every node subscribed; p50 over `count` messages. */
const rawGossip = (nodes: ReadonlyArray<BenchNode>, size: number, count: number, interval: number) =>
  Effect.gen(function*() {
    const topic = `rangedocs-bench/raw/${toHex(randomBytes(8))}`
    const arrivals = nodes.slice(1).map(() => new Map<number, number>())
    yield* Effect.acquireRelease(
      Effect.sync(() =>
        nodes.slice(1).map((node, i) => {
          const pubsub = node.router.pubsub
          const listener = (event: GossipSubEvents["gossipsub:message"]) => {
            const { msg } = event.detail
            if (msg.topic !== topic || msg.data.length < 4) return
            const n = new DataView(msg.data.buffer, msg.data.byteOffset, 4).getUint32(0)
            if (!arrivals[i]!.has(n)) arrivals[i]!.set(n, performance.now())
          }
          pubsub.addEventListener("gossipsub:message", listener)
          pubsub.subscribe(topic)
          return () => {
            pubsub.removeEventListener("gossipsub:message", listener)
            pubsub.unsubscribe(topic)
          }
        })
      ),
      (undo) => Effect.sync(() => undo.forEach((f) => f()))
    )
    const publisher = nodes[0]!.router.pubsub
    publisher.subscribe(topic)
    yield* Effect.addFinalizer(() => Effect.sync(() => publisher.unsubscribe(topic)))
    // Everyone has heard of everyone's subscription: a probe reaches all receivers.
    const meshed = yield* Effect.gen(function*() {
      for (let probe = 1_000_000; probe < 1_000_200; probe++) {
        const data = new Uint8Array(Math.max(4, size))
        new DataView(data.buffer).setUint32(0, probe)
        yield* Effect.promise(() => publisher.publish(topic, data))
        if (yield* waitUntil(() => arrivals.every((a) => a.has(probe)), 50)) return true
      }
      return false
    })
    if (!meshed) return NaN
    const sent = new Array<number>(count)
    const t0 = performance.now()
    for (let n = 0; n < count; n++) {
      yield* sleepUntil(t0 + n * interval)
      const data = randomBytes(Math.max(4, size))
      new DataView(data.buffer).setUint32(0, n)
      sent[n] = performance.now()
      yield* Effect.promise(() => publisher.publish(topic, data))
    }
    yield* waitUntil(() => arrivals.every((a) => [...a.keys()].filter((k) => k < count).length >= count), 5_000)
    const latencies: Array<number> = []
    for (let n = 0; n < count; n++) {
      const times = arrivals.map((a) => a.get(n))
      if (times.every((t) => t !== undefined)) latencies.push(Math.max(...(times as Array<number>)) - sent[n]!)
    }
    latencies.sort((a, b) => a - b)
    return percentile(latencies, 0.5)
  }).pipe(Effect.scoped)

const snapshot = (node: BenchNode, ns: Parameters<Docs.DocsService["get"]>[0]) =>
  Stream.runCollect(node.docs.get(ns, Query.all().withIncludeEmpty())).pipe(
    Effect.map((entries) =>
      [...entries].map((e) => `${toHex(e.author)}/${toHex(e.key)}/${toHex(e.contentHash)}/${e.entry.record.timestamp}`)
        .sort().join("\n")
    )
  )

/** The flags both modes share, checked and announced on stderr. */
const options = (flags: ReadonlyMap<string, string>, what: string) =>
  Effect.gen(function*() {
    const n = numberFlag(flags, "nodes", 3)
    const writes = numberFlag(flags, "writes", 2000)
    const interval = numberFlag(flags, "interval", DEFAULT_INTERVAL_MS)
    const size = numberFlag(flags, "size", 32)
    const topology: "chain" | "star" = flags.get("topology") === "chain" ? "chain" : "star"
    if (n < 2) return yield* Effect.dieMessage("--nodes must be at least 2")
    progress(`live: ${n} ${what} (${topology}), ${writes} writes every ${interval} ms, ${size}-byte values`)
    return { n, writes, interval, size, topology }
  })

const inProcessBench = (flags: ReadonlyMap<string, string>) =>
  Effect.gen(function*() {
    const { interval, n, size, topology, writes } = yield* options(flags, "nodes")

    const inline = flags.get("inline-max")
    const nodes = yield* Effect.forEach(
      Array.from({ length: n }),
      () => startNode(inline === undefined ? undefined : Number(inline)),
      { concurrency: "unbounded" }
    )
    const author = yield* nodes[0]!.docs.authorGetDefault
    const doc0 = yield* Docs.createDoc(nodes[0]!.docs)
    const ns = doc0.id
    // Per receiving node: write index → arrival time of its InsertRemote.
    const arrivals = nodes.slice(1).map(() => new Map<number, number>())
    const scope = yield* Effect.scope
    let ticket: DocTicket = yield* doc0.share("Write", "Addresses")
    const noContent = flags.get("no-content") === "true"
    for (let i = 1; i < n; i++) {
      const doc = yield* Docs.importNamespace(nodes[i]!.docs, ticket.capability)
      if (noContent) yield* doc.setDownloadPolicy(new DownloadPolicy.NothingExcept({ filters: [] }))
      const events = yield* doc.subscribe()
      yield* doc.startSync(ticket.nodes)
      const seen = arrivals[i - 1]!
      yield* Stream.runForEach(events, (event) =>
        Effect.sync(() => {
          if (event._tag !== "InsertRemote") return
          const key = new TextDecoder().decode(event.entry.id.key)
          if (!key.startsWith("w/")) return
          const k = Number(key.slice(2))
          if (!seen.has(k)) seen.set(k, performance.now())
        })).pipe(Effect.forkIn(scope))
      if (topology === "chain") ticket = yield* doc.share("Write", "Addresses")
    }
    const degree = (i: number) => topology === "star" ? (i === 0 ? n - 1 : 1) : (i === 0 || i === n - 1 ? 1 : 2)
    const counts = () => Effect.forEach(nodes, (node) => Effect.map(node.gossip.neighbors(ns), (x) => x.length))
    const t0 = performance.now()
    let meshed = false
    while (!meshed && performance.now() - t0 < 20_000) {
      meshed = (yield* counts()).every((c, i) => c >= degree(i))
      if (!meshed) yield* Effect.sleep(20)
    }
    if (!meshed) return yield* Effect.dieMessage("nodes did not become gossip neighbors within 20 s")
    progress(`  swarm ready in ${Math.round(performance.now() - t0)} ms`)

    // The size of a Put as gossiped: one entry of this bench, encoded.
    yield* doc0.setBytes(author, text("probe"), randomBytes(size))
    const probe = yield* nodes[0]!.docs.getExact(ns, text("probe"), author, false)
    const putBytes = probe._tag === "Some"
      ? (yield* Schema.encode(Op.OpFromBytes)(new Op.Put({ entry: probe.value }))).length
      : 0
    // Warm-up and mesh check: the probe reached everyone.
    for (const node of nodes.slice(1)) {
      let ok = false
      const t1 = performance.now()
      while (!ok && performance.now() - t1 < 10_000) {
        ok = (yield* node.docs.getExact(ns, text("probe"), author, false))._tag === "Some"
        if (!ok) yield* Effect.sleep(10)
      }
    }

    const gossipP50Ms = yield* rawGossip(nodes, putBytes, Math.min(writes, 500), interval)
    progress(`  raw gossipsub (${putBytes} bytes): p50 ${round2(gossipP50Ms)} ms`)

    const values = Array.from({ length: writes }, () => randomBytes(size))
    const keys = Array.from({ length: writes }, (_, i) => text(`w/${i}`))
    const sent = new Array<number>(writes)
    const run = Effect.gen(function*() {
      const start = performance.now()
      for (let i = 0; i < writes; i++) {
        yield* sleepUntil(start + i * interval)
        sent[i] = performance.now()
        yield* doc0.setBytes(author, keys[i]!, values[i]!)
        if (i > 0 && i % 500 === 0) progress(`  ${i} writes`)
      }
      const writeMs = performance.now() - start
      progress(`  ${writes} writes in ${Math.round(writeMs)} ms (${Math.round(writes / (writeMs / 1000))}/s)`)
      yield* waitUntil(() => arrivals.every((a) => a.size >= writes), 15_000)
    })
    const ops0 = opCounter.count
    yield* profiled(flags, run)
    const opsPerWrite = flags.get("ops") === "true" ? Math.round((opCounter.count - ops0) / writes) : undefined
    if (opsPerWrite !== undefined) progress(`  Effect operations per write (all nodes): ${opsPerWrite}`)

    const latencies: Array<number> = []
    let delivered = 0
    for (let i = 0; i < writes; i++) {
      const times = arrivals.map((a) => a.get(i))
      if (times.every((t) => t !== undefined)) {
        delivered++
        latencies.push(Math.max(...(times as Array<number>)) - sent[i]!)
      }
    }
    latencies.sort((a, b) => a - b)
    const p50Ms = percentile(latencies, 0.5)
    const p99Ms = percentile(latencies, 0.99)
    progress(`  delivered ${delivered}/${writes}; p50 ${round2(p50Ms)} ms, p90 ${round2(percentile(latencies, 0.9))} ms, p99 ${round2(p99Ms)} ms, max ${round2(latencies.at(-1) ?? NaN)} ms`)

    if (flags.get("stats") === "true") {
      for (const node of nodes) progress(`  ${JSON.stringify(yield* node.docs.stats)} ${JSON.stringify(yield* node.gossip.stats)}`)
    }
    // Equal contents everywhere (content downloads are not waited for: entries only).
    let equal = false
    const t2 = performance.now()
    while (!equal && performance.now() - t2 < 15_000) {
      const snaps = yield* Effect.forEach(nodes, (node) => snapshot(node, ns))
      equal = snaps.every((s) => s === snaps[0])
      if (!equal) yield* Effect.sleep(50)
    }
    return {
      bench: "live",
      mode: "in-process",
      nodes: n,
      writes,
      intervalMs: interval,
      p50Ms: round2(p50Ms),
      p99Ms: round2(p99Ms),
      gossipP50Ms: round2(gossipP50Ms),
      ratio: round2(p50Ms / gossipP50Ms),
      converged: delivered === writes && equal,
      ...(opsPerWrite === undefined ? {} : { opsPerWrite })
    }
  }).pipe(Effect.scoped, Effect.orDie)

const text = (s: string) => new TextEncoder().encode(s)

// ---------------------------------------------------------------------------------------------------------------
// One process per node (the default)

const now = () => performance.timeOrigin + performance.now()

/** Ends every node's profile (bench/live-node.ts `profileStart`) into `prefix.nodeI.cpuprofile|heapprofile`. */
const stopProfiles = (nodes: ReadonlyArray<Child>, prefix: string, heap: boolean) =>
  Effect.gen(function*() {
    const ext = heap ? "heapprofile" : "cpuprofile"
    yield* Effect.forEach(nodes, (node, i) => node.call("profileStop", { file: `${prefix}.node${i}.${ext}`, heap }))
    progress(`  profiles written to ${prefix}.node*.${ext}`)
  })

const pollUntil = (check: Effect.Effect<boolean>, ms: number, every = 20) =>
  Effect.gen(function*() {
    const deadline = now() + ms
    let ok = yield* check
    while (!ok && now() < deadline) {
      yield* Effect.sleep(every)
      ok = yield* check
    }
    return ok
  })

const allOf = (children: ReadonlyArray<Child>, cmd: string, args: Record<string, unknown> = {}) =>
  Effect.forEach(children, (c) => c.call(cmd, args), { concurrency: "unbounded" })

/** p50 of publish → received by every receiver; one process per node, like the engine's measurement. */
const rawGossipMulti = (nodes: ReadonlyArray<Child>, size: number, count: number, interval: number) =>
  Effect.gen(function*() {
    const topic = `rangedocs-bench/raw/${toHex(randomBytes(8))}`
    const receivers = nodes.slice(1)
    yield* allOf(nodes, "rawSubscribe", { topic })
    let meshed = false
    for (let probe = 1_000_000; !meshed && probe < 1_000_200; probe++) {
      yield* nodes[0]!.call("rawPublishOne", { n: probe, size })
      meshed = yield* pollUntil(
        Effect.map(allOf(receivers, "rawHas", { n: probe }), (xs) => xs.every((x) => x === true)),
        50,
        5
      )
    }
    if (!meshed) return { p50: NaN, p99: NaN }
    const cpu0 = (yield* allOf(nodes, "cpu")).map(Number)
    const sent = (yield* nodes[0]!.call("rawPublish", { count, interval, size })) as Array<number>
    yield* pollUntil(
      Effect.map(allOf(receivers, "rawArrived"), (xs) => xs.every((x) => Number(x) >= count)),
      5_000,
      50
    )
    const cpu1 = (yield* allOf(nodes, "cpu")).map(Number)
    progress(`  raw gossipsub CPU per message (ms): ${cpu1.map((c, i) => round2((c - cpu0[i]!) / count)).join(", ")}`)
    const arrivals = (yield* allOf(receivers, "rawArrivals")).map((x) => new Map(x as Array<[number, number]>))
    yield* allOf(nodes, "rawUnsubscribe")
    const { delivered, latencies } = latenciesOf(sent, arrivals)
    progress(
      `  raw gossipsub: delivered ${delivered}/${count}; p50 ${round2(percentile(latencies, 0.5))} ms, p99 ${
        round2(percentile(latencies, 0.99))
      } ms`
    )
    return { p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99) }
  })

const latenciesOf = (sent: ReadonlyArray<number>, arrivals: ReadonlyArray<ReadonlyMap<number, number>>) => {
  const latencies: Array<number> = []
  for (let i = 0; i < sent.length; i++) {
    const times = arrivals.map((a) => a.get(i))
    if (times.every((t) => t !== undefined)) latencies.push(Math.max(...(times as Array<number>)) - sent[i]!)
  }
  latencies.sort((a, b) => a - b)
  return { latencies, delivered: latencies.length }
}

const multiProcessBench = (flags: ReadonlyMap<string, string>) =>
  Effect.gen(function*() {
    const { interval, n, size, topology, writes } = yield* options(flags, "node processes")
    const env: NodeJS.ProcessEnv = {}
    const inline = flags.get("inline-max")
    if (inline !== undefined) env["RANGEDOCS_BENCH_INLINE"] = inline

    const execArgv = (flags.get("node-args") ?? "").split(" ").filter((a) => a !== "")
    // Each node runs bench/live-node.ts bundled as the deployed program is (`bundledProgram`; a smaller heap for V8 to
    // mark than the module files give), or with `--unbundled` its compiled module file.
    const program = yield* nodeProgram("live-node", flags)
    const nodes = yield* Effect.forEach(Array.from({ length: n }), () => forkChild(program, "node", env, execArgv), {
      concurrency: "unbounded"
    })
    const receivers = nodes.slice(1)
    let ticket = String(yield* nodes[0]!.call("create"))
    const noContent = flags.get("no-content") === "true"
    for (const node of receivers) {
      const next = String(yield* node.call("join", { ticket, noContent }))
      if (topology === "chain") ticket = next
    }
    const degree = (i: number) => topology === "star" ? (i === 0 ? n - 1 : 1) : (i === 0 || i === n - 1 ? 1 : 2)
    const t0 = now()
    const meshed = yield* pollUntil(
      Effect.map(allOf(nodes, "neighbors"), (cs) => cs.every((c, i) => Number(c) >= degree(i))),
      20_000
    )
    if (!meshed) return yield* Effect.dieMessage("nodes did not become gossip neighbors within 20 s")
    progress(`  swarm ready in ${Math.round(now() - t0)} ms`)

    const putBytes = Number(yield* nodes[0]!.call("probe", { size }))
    yield* pollUntil(Effect.map(allOf(receivers, "hasProbe"), (xs) => xs.every((x) => x === true)), 10_000)

    const rawProfile = flags.get("profile-raw")
    if (rawProfile !== undefined) yield* allOf(nodes, "profileStart", { heap: false })
    const raw = yield* rawGossipMulti(nodes, putBytes, Math.min(writes, 500), interval)
    if (rawProfile !== undefined) yield* stopProfiles(nodes, rawProfile, false)
    const gossipP50Ms = raw.p50
    progress(`  raw gossipsub (${putBytes} bytes): p50 ${round2(gossipP50Ms)} ms`)

    // Steady state, as the blobs bench warms up: the first writes of a fresh process run cold code (JIT tiers, heap
    // growth); they are written at the same rate under another prefix and not measured.
    const warmUp = numberFlag(flags, "warmup", DEFAULT_WARMUP_WRITES)
    if (warmUp > 0) {
      yield* nodes[0]!.call("write", { writes: warmUp, interval, size, prefix: "warm/" })
      yield* Effect.sleep(500)
      progress(`  ${warmUp} warm-up writes (not measured)`)
    }

    const promotedProfile = flags.get("promoted-profile")
    const heapProfile = flags.get("heap-profile") ?? promotedProfile
    const profile = heapProfile ?? flags.get("profile")
    const heap = heapProfile !== undefined
    if (profile !== undefined) yield* allOf(nodes, "profileStart", { heap, promoted: promotedProfile !== undefined })
    const cpu0 = (yield* allOf(nodes, "cpu")).map(Number)
    const busy0 = (yield* allOf(nodes, "busy")).map(Number)
    yield* allOf(nodes, "gcReset")
    const { sent, writeMs } = (yield* nodes[0]!.call("write", { writes, interval, size })) as {
      sent: Array<number>
      writeMs: number
    }
    progress(`  ${writes} writes in ${Math.round(writeMs)} ms (${Math.round(writes / (writeMs / 1000))}/s)`)
    yield* pollUntil(
      Effect.map(allOf(receivers, "arrived"), (xs) => xs.every((x) => Number(x) >= writes)),
      15_000,
      50
    )
    const cpu1 = (yield* allOf(nodes, "cpu")).map(Number)
    const busy1 = (yield* allOf(nodes, "busy")).map(Number)
    const gcPauses = (yield* allOf(nodes, "gc")) as ReadonlyArray<GcCounts>
    const cpuMsPerWrite = cpu1.map((c, i) => round2((c - cpu0[i]!) / writes))
    const mainMsPerWrite = busy1.map((b, i) => round2((b - busy0[i]!) / writes))
    progress(`  CPU per write (ms): ${cpuMsPerWrite.join(", ")}; main thread busy: ${mainMsPerWrite.join(", ")}`)
    progress(
      `  GC on the main thread while writing, per node: ${
        gcPauses.map((g) =>
          `${g.scavenges} scavenges + ${g.markCompacts} mark-compacts, ${round2(g.pauseMs)} ms in all, longest ${
            round2(g.maxPauseMs)
          } ms`
        ).join("; ")
      }`
    )
    if (profile !== undefined) yield* stopProfiles(nodes, profile, heap)
    const arrivals = (yield* allOf(receivers, "arrivals")).map((x) => new Map(x as Array<[number, number]>))
    const { delivered, latencies } = latenciesOf(sent, arrivals)
    const p50Ms = percentile(latencies, 0.5)
    const p99Ms = percentile(latencies, 0.99)
    const dump = flags.get("dump")
    if (dump !== undefined) {
      // Per write: when it was sent (ms after the first) and its latency at each receiver, to see where the tail is.
      const rows = sent.map((t, i) => [round2(t - sent[0]!), ...arrivals.map((a) => round2((a.get(i) ?? NaN) - t))])
      writeFileSync(dump, JSON.stringify(rows))
      progress(`  per-write latencies written to ${dump}`)
    }
    progress(`  delivered ${delivered}/${writes}; p50 ${round2(p50Ms)} ms, p90 ${round2(percentile(latencies, 0.9))} ms, p99 ${round2(p99Ms)} ms, max ${round2(latencies.at(-1) ?? NaN)} ms`)
    if (flags.get("stats") === "true") {
      for (const s of yield* allOf(nodes, "stats")) progress(`  ${JSON.stringify(s)}`)
    }
    const equal = yield* pollUntil(
      Effect.map(allOf(nodes, "snapshot"), (snaps) => snaps.every((s) => s === snaps[0])),
      15_000,
      50
    )
    return {
      bench: "live",
      mode: "process-per-node",
      nodes: n,
      writes,
      intervalMs: interval,
      warmUpWrites: warmUp,
      p50Ms: round2(p50Ms),
      p99Ms: round2(p99Ms),
      gossipP50Ms: round2(gossipP50Ms),
      gossipP99Ms: round2(raw.p99),
      ratio: round2(p50Ms / gossipP50Ms),
      converged: delivered === writes && equal,
      cpuMsPerWrite,
      mainMsPerWrite,
      gcMaxPauseMs: gcPauses.map((g) => round2(g.maxPauseMs))
    }
  }).pipe(Effect.scoped)

/** In-process runs with `--ops` count the Effect operations of every node's fibers. */
const opCounter = new OpCounter()

export const liveBench = (flags: ReadonlyMap<string, string>) =>
  flags.get("in-process") !== "true"
    ? multiProcessBench(flags)
    : flags.get("ops") === "true"
    ? countingOps(opCounter, inProcessBench(flags))
    : inProcessBench(flags)
