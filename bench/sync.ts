/**
 * sync: two nodes in one process over loopback TCP (libp2p, noise, yamux) with file stores. The first holds `entries`
 * entries; the second is empty, or with `--diff d` holds all but a `d` fraction of them plus `d` of its own. The second
 * syncs with the first. Ceiling: node:crypto verifying two signatures per entry on all cores (the Crypto worker pool),
 * nothing else, measured in the same run by the child process that writes the stores.
 *
 * `--via relay` (issue 17): the same sync once directly and once through a circuit relay v2 running in a child
 * process on loopback (`--relay-child`); the first node listens nowhere and is reached through its reservation on
 * the relay only. Prints the relayed run's figures, `directEntriesPerSec` from the direct run of the same
 * invocation, and `relayRatio` (relayed / direct).
 */
import { Context, Effect, Layer, Option, Schedule } from "effect"
import * as childProcess from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { blake3 } from "../src/internal/blake3.js"
import { PublicKeyCache } from "../src/internal/signing.js"
import * as Capability from "../src/schema/Capability.js"
import { Entry, EntryRecord, RecordIdentifier, type SignedEntry, U64 } from "../src/schema/Entry.js"
import { Author, Hash, NamespaceSecret, secretSeed } from "../src/schema/Keys.js"
import * as Crypto from "../src/services/Crypto.js"
import { type NodeAddr, peerIdFromNodeId } from "../src/schema/NodeAddr.js"
import * as Network from "../src/services/Network.js"
import * as Ranger from "../src/services/Ranger.js"
import * as Replica from "../src/services/Replica.js"
import * as Store from "../src/services/Store.js"
import * as Sync from "../src/services/Sync.js"
import { memorySampled, numberFlag, peakRssMb, profiled, progress, randomBytes, tempDir } from "./util.js"

const AUTHORS = 8
const CHUNK = 5000

/**
 * Writes the stores. Runs in a child process (`--fill-child`), so that generating and signing the entries does not
 * count in the peak RSS of the process that syncs; the parent passes the keys and the plan as flags.
 */
const fillStores = (flags: ReadonlyMap<string, string>) =>
  Effect.gen(function*() {
    const entries = numberFlag(flags, "entries", 100_000)
    const diff = numberFlag(flags, "diff", 0)
    const fileA = flags.get("file-a")!
    const fileB = flags.get("file-b")!
    const ns = NamespaceSecret.fromSeed(Buffer.from(flags.get("ns")!, "hex"))
    const authors = flags.get("authors")!.split(",").map((h) => Author.fromSeed(Buffer.from(h, "hex")))
    const crypto = yield* Layer.build(Crypto.layer())
    const signedBatch = batchSigner(Context.get(crypto, Crypto.Crypto), ns, authors)
    const fill = (file: string, count: number) =>
      Effect.gen(function*() {
        const store = yield* Store.Store
        yield* store.importNamespace(new Capability.Write({ secret: ns }))
        for (let done = 0; done < count; done += CHUNK) {
          yield* store.putMany(yield* signedBatch(Math.min(CHUNK, count - done)))
        }
      }).pipe(Effect.provide(Store.layerFile(file)), Effect.scoped)
    // A holds `entries`; B holds all but `diff` of them (a copy of A's file before A's own part) plus `diff` of its own.
    const own = Math.round(entries * diff)
    yield* fill(fileA, entries - own)
    if (diff > 0) {
      fs.copyFileSync(fileA, fileB)
      yield* fill(fileB, own)
    }
    yield* fill(fileA, own)
    // The ceiling: strict verification of two signatures per entry on the worker pool, nothing else. Measured here
    // so that its entries do not count in the peak RSS of the process that syncs.
    const sample: Array<SignedEntry> = []
    for (let i = 0; i < 4; i++) sample.push(...(yield* signedBatch(CHUNK)))
    const t0 = performance.now()
    const cpu0 = process.cpuUsage()
    yield* Context.get(crypto, Crypto.Crypto).verifyEntries(new PublicKeyCache(), sample)
    const cpu = process.cpuUsage(cpu0)
    const verifyCeilingPerSec = sample.length / ((performance.now() - t0) / 1000)
    // CPU per entry of the ceiling, every thread: what verification alone costs.
    const ceilingCpuUsPerEntry = (cpu.user + cpu.system) / sample.length
    return { bench: "sync-fill", peakRssMb: peakRssMb(), verifyCeilingPerSec, ceilingCpuUsPerEntry }
  }).pipe(Effect.scoped)

/** Signs `n` new entries (random keys, authors in turn, increasing timestamps) on the Crypto pool. */
const batchSigner = (signer: Crypto.CryptoService, ns: NamespaceSecret, authors: ReadonlyArray<Author>) => {
  const hash = Hash.make(blake3(randomBytes(100)))
  let ts = 1_700_000_000_000_000n
  return (n: number) =>
    signer.signEntries(Array.from({ length: n }, (_, i) => ({
      namespace: ns,
      author: authors[i % AUTHORS]!,
      entry: new Entry({
        id: new RecordIdentifier({
          namespace: ns.id,
          author: authors[i % AUTHORS]!.id,
          key: new TextEncoder().encode(Buffer.from(randomBytes(12)).toString("hex"))
        }),
        record: new EntryRecord({ len: U64.make(100n), hash, timestamp: U64.make(ts++) })
      })
    })))
}

/** The relay of `--via relay`: a relay service on loopback; prints its address, runs until stdin closes. */
const relayChild = Effect.gen(function*() {
  const ctx = yield* Layer.build(Network.layer({ relayService: true }))
  const network = Context.get(ctx, Network.Network)
  const addr = yield* network.addr
  const peer = peerIdFromNodeId(network.nodeId).toString()
  process.stdout.write(JSON.stringify({ relay: `${addr.addrs[0]}/p2p/${peer}` }) + "\n")
  yield* Effect.async<void>((resume) => {
    process.stdin.on("end", () => resume(Effect.void))
    process.stdin.on("close", () => resume(Effect.void))
    process.stdin.resume()
  })
  return { bench: "sync-relay" }
}).pipe(Effect.scoped)

/** Starts the relay child; its address. Killed when the scope closes. */
const startRelay = Effect.acquireRelease(
  Effect.async<{ readonly child: childProcess.ChildProcess; readonly addr: string }, Error>((resume) => {
    const child = childProcess.spawn(process.execPath, [...process.execArgv, process.argv[1]!, "sync", "--relay-child"], {
      stdio: ["pipe", "pipe", "inherit"]
    })
    let out = ""
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString()
      const line = out.split("\n").find((l) => l.includes("\"relay\""))
      if (line !== undefined) {
        const parsed: unknown = JSON.parse(line)
        if (typeof parsed === "object" && parsed !== null && "relay" in parsed && typeof parsed.relay === "string") {
          resume(Effect.succeed({ child, addr: parsed.relay }))
        }
      }
    })
    child.on("exit", (code) => resume(Effect.fail(new Error(`relay exited (${code})`))))
  }),
  ({ child }) => Effect.sync(() => child.kill("SIGKILL"))
)

export const syncBench = (flags: ReadonlyMap<string, string>) =>
  flags.has("fill-child") ? fillStores(flags) : flags.has("relay-child") ? relayChild : Effect.gen(function*() {
    const via = flags.get("via") ?? "direct"
    if (via !== "direct" && via !== "relay") return yield* Effect.dieMessage(`--via must be direct or relay, got ${via}`)
    const entries = numberFlag(flags, "entries", 100_000)
    const diff = numberFlag(flags, "diff", 0)
    const dir = tempDir("rangedocs-bench-sync-")
    const fileA = path.join(dir, "a.sqlite")
    const fileB = path.join(dir, "b.sqlite")
    const ns = NamespaceSecret.generate()
    const authors = Array.from({ length: AUTHORS }, () => Author.generate())
    progress(`sync: ${entries} entries, diff ${diff}, in ${dir}`)
    const hex = (b: Uint8Array) => Buffer.from(b).toString("hex")
    const filled = childProcess.spawnSync(process.execPath, [
      ...process.execArgv,
      process.argv[1]!,
      "sync",
      "--fill-child",
      "--entries", String(entries),
      "--diff", String(diff),
      "--file-a", fileA,
      "--file-b", fileB,
      "--ns", hex(secretSeed(ns)),
      "--authors", authors.map((a) => hex(secretSeed(a))).join(",")
    ], { stdio: ["ignore", "pipe", "inherit"] })
    if (filled.status !== 0) return yield* Effect.dieMessage(`writing the stores failed (exit ${filled.status})`)
    // The relayed run syncs a copy of B as it was before the direct run.
    const fileC = path.join(dir, "c.sqlite")
    if (via === "relay" && fs.existsSync(fileB)) fs.copyFileSync(fileB, fileC)
    const { ceilingCpuUsPerEntry, peakRssMb: fillRss, verifyCeilingPerSec } = JSON.parse(
      filled.stdout.toString().trim().split("\n").pop()!
    ) as {
      peakRssMb: number
      verifyCeilingPerSec: number
      ceilingCpuUsPerEntry: number
    }
    progress(`  stores written by a child process (its peak RSS ${fillRss} MB, not counted below)`)
    const crypto = yield* Layer.build(Crypto.layer())


    const node = (file: string, network: Network.NetworkConfig = {}) =>
      Layer.build(
        Sync.layerServing().pipe(
          Layer.provideMerge(Ranger.layer({
            ...Ranger.defaultConfig,
            ...(flags.get("values") === undefined ? {} : { maxValueBytes: Number(flags.get("values")) }),
            ...(flags.get("bulk") === undefined ? {} : { bulkValueBytes: Number(flags.get("bulk")) })
          })),
          Layer.provideMerge(Replica.layer),
          Layer.provideMerge(Layer.merge(Store.layerFile(file), Network.layer(network))),
          Layer.provide(Layer.succeedContext(crypto))
        )
      )

    /** One session: B (`fileOfB`) syncs with A, reached at the address `reach` gives. */
    const run = (
      label: string,
      fileOfB: string,
      networkOfA: Network.NetworkConfig,
      reach: (a: Network.NetworkService) => Effect.Effect<NodeAddr>
    ) =>
      Effect.scoped(Effect.gen(function*() {
        const a = yield* node(fileA, networkOfA)
        const b = yield* node(fileOfB)
        for (const ctx of [a, b]) {
          const replica = Context.get(ctx, Replica.Replica)
          yield* replica.importNamespace(new Capability.Write({ secret: ns }))
          yield* replica.open(ns.id, { sync: true })
        }
        const addrA = yield* reach(Context.get(a, Network.Network))
        progress(`  ${label}: nodes started (A at ${addrA.addrs.join(" ")}); peak RSS so far ${peakRssMb()} MB`)
        const start = performance.now()
        const rssBefore = peakRssMb()
        const cpu0 = process.cpuUsage()
        const elu0 = performance.eventLoopUtilization()
        const finished = yield* memorySampled(flags, profiled(flags, Context.get(b, Sync.Sync).syncWith(ns.id, addrA)))
        const ms = performance.now() - start
        const cpu = process.cpuUsage(cpu0)
        const mainBusyMs = performance.eventLoopUtilization(elu0).active
        const cpuMs = (cpu.user + cpu.system) / 1000
        const kind = yield* Context.get(b, Network.Network).connectionKind(addrA.nodeId)
        const received = finished.outcome.numRecv
        progress(`  ${label}: peak RSS before the session ${rssBefore} MB, after ${peakRssMb()} MB`)
        progress(`  ${label}: ${received} entries received in ${Math.round(ms)} ms (${Option.getOrElse(kind, () => "-")})`)
        progress(`  ${label}: CPU ${Math.round(cpuMs)} ms on every thread, main thread busy ${Math.round(mainBusyMs)} ms`)
        return { finished, ms, received, entriesPerSec: received / (ms / 1000), kind, cpuMs, mainBusyMs }
      }))

    const direct = yield* run("direct", fileB, {}, (a) => a.addr)
    let result = direct
    let relayed: { readonly relayRatio: number; readonly directEntriesPerSec: number; readonly connection: string } | undefined
    if (via === "relay") {
      const relay = yield* startRelay
      progress(`  relay child at ${relay.addr}`)
      result = yield* run("relayed", fileC, { relays: [relay.addr], listen: [] }, (a) =>
        a.shareAddr("relay").pipe(
          Effect.filterOrFail((addr) => addr.addrs.length > 0),
          Effect.retry(Schedule.spaced("50 millis").pipe(Schedule.upTo("20 seconds"))),
          Effect.orDieWith(() => new Error("no reservation on the relay within 20 s"))
        ))
      relayed = {
        directEntriesPerSec: Math.round(direct.entriesPerSec),
        relayRatio: Number((result.entriesPerSec / direct.entriesPerSec).toFixed(3)),
        connection: Option.getOrElse(result.kind, () => "closed")
      }
    }
    const { cpuMs, entriesPerSec, finished, mainBusyMs, ms, received } = result
    const cpuUsPerEntry = (cpuMs * 1000) / Math.max(1, received)
    fs.rmSync(dir, { recursive: true, force: true })
    return {
      bench: "sync",
      entries,
      diff,
      ms: Math.round(ms),
      entriesPerSec: Math.round(entriesPerSec),
      bytes: finished.traffic.bytesSent + finished.traffic.bytesReceived,
      messages: finished.traffic.messagesSent + finished.traffic.messagesReceived,
      verifyCeilingPerSec: Math.round(verifyCeilingPerSec),
      ratio: Number((entriesPerSec / verifyCeilingPerSec).toFixed(3)),
      // Where the time goes: CPU of the whole process (both nodes, every thread) and of its main thread (both nodes'
      // event loop) per entry received, against the ceiling's CPU per entry. On a machine with `cores` cores the
      // session can at best take (cpuUsPerEntry / cores) per entry, so `cpuBoundRatio` = ceilingCpu / cpu is the ratio
      // reachable with the work as it is (when the ceiling itself fills every core).
      cores: os.availableParallelism(),
      cpuUsPerEntry: Math.round(cpuUsPerEntry),
      mainUsPerEntry: Math.round((mainBusyMs * 1000) / Math.max(1, received)),
      ceilingCpuUsPerEntry: Math.round(ceilingCpuUsPerEntry),
      cpuBoundRatio: Number((ceilingCpuUsPerEntry / cpuUsPerEntry).toFixed(3)),
      // Peak RSS of this process: both nodes and the session. The stores were written, and the ceiling measured, by a
      // child process (its own peak is printed on stderr).
      peakRssMb: peakRssMb(),
      peakRssIncludes: "both nodes, session; not store generation nor the ceiling (child process)",
      ...(relayed === undefined ? {} : { via, ...relayed })
    }
  }).pipe(Effect.scoped)
