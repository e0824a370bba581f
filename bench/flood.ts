/**
 * flood (finding 4): the node program (`rangedocs start`) in its own process, and a flooding peer in another
 * (bench/flood-node.ts) that joins with a write ticket and gossips `--puts` validly signed Puts (default 10000) whose
 * content it never serves. Measured: the node's peak RSS (VmHWM, /proc), the slowest `doc list` made through the RPC
 * client while the flood runs (`cliMs`: connect with the data directory's address and token, list, close; the whole
 * `rangedocs doc list` process, whose start dominates on a loaded machine, is reported as `cliProcessMs`), how many of the Puts the node
 * stored (its `new_entries_remote` counter, by gossip or sync; waited for up to `--wait` s, default 120), and how long
 * it takes to exit on SIGTERM once the flooding peer left. Targets: stored = puts, peakRssMb < 400, cliMs < 2000,
 * sigtermMs < 10000.
 *
 * Two regimes, by the machine's load (2026-12-07, H20): quiet, all Puts arrive by gossip (`gossip_put_received` =
 * puts); loaded, ~1,100 arrive by gossip and the rest by sync (`sync_entries_received`, or by sessions the flooder
 * starts). Compare runs of the same regime. The publisher claims content it never has: the node tried 2,200–2,300
 * downloads from it (peak 455 MB) until a peer whose claims fail 16 downloads in a row was distrusted (LiveSync/
 * ContentQueue.ts; now ~47 downloads, `content_claims_ignored` ≈ puts). The rest of the peak is V8's old generation,
 * not live data: `--node-args="--trace-gc-nvp" --node-log=FILE` shows mark-compacts leaving 73–87 MB and the next one
 * at 4× that (V8's growing factor on a machine with a large heap limit); `--heap-growing-percent=100` halves it.
 */
import { Effect, Fiber, Stream } from "effect"
import { type ChildProcess, fork, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import * as Docs from "../src/services/Docs.js"
import * as DocsRpc from "../src/services/DocsRpc.js"
import { numberFlag, progress, rssOfPid } from "./util.js"

const MAIN = fileURLToPath(new URL("../src/main.js", import.meta.url))
const FLOODER = fileURLToPath(new URL("./flood-node.js", import.meta.url))

/** Runs the CLI to its end; its stdout and how long it took. */
const cli = (args: ReadonlyArray<string>) =>
  Effect.async<{ readonly stdout: string; readonly ms: number; readonly code: number | null }>((resume) => {
    const t0 = performance.now()
    const child = spawn(process.execPath, [MAIN, ...args], { stdio: ["ignore", "pipe", "pipe"] })
    let stdout = ""
    child.stdout.setEncoding("utf8").on("data", (c: string) => (stdout += c))
    child.on("close", (code) => resume(Effect.succeed({ stdout, ms: performance.now() - t0, code })))
  })

const json = <A>(stdout: string): A => JSON.parse(stdout.trim().split("\n").pop() ?? "null") as A

/** A reading that failed (NaN: the status file could not be read) does not erase the peak seen so far. */
const maxFinite = (a: number, b: number) => (Number.isFinite(b) ? Math.max(a, b) : a)

const exited = (child: ChildProcess) =>
  Effect.async<void>((resume) => {
    if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
    child.once("exit", () => resume(Effect.void))
  })

export const floodBench = (flags: ReadonlyMap<string, string>) =>
  Effect.gen(function*() {
    const puts = numberFlag(flags, "puts", 10_000)
    const waitS = numberFlag(flags, "wait", 120)
    const dir = yield* Effect.acquireRelease(
      Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "rangedocs-flood-"))),
      (d) => Effect.sync(() => fs.rmSync(d, { recursive: true, force: true }))
    )
    const data = ["--data-dir", dir, "--json"]
    // Extra node flags for the node under test (`--node-args="--heap-prof --import ./x.mjs"`), and a file for its stderr.
    const nodeArgs = (flags.get("node-args") ?? "").split(" ").filter((a) => a !== "")
    const nodeLog = flags.get("node-log")

    const node = yield* Effect.acquireRelease(
      Effect.sync(() =>
        spawn(process.execPath, [...process.execArgv, ...nodeArgs, MAIN, "start", ...data, "--listen", "/ip4/127.0.0.1/tcp/0"], {
          stdio: ["ignore", "pipe", "pipe"]
        })
      ),
      (child) => Effect.sync(() => child.kill("SIGKILL"))
    )
    // The node's stderr and stdout (where V8's --trace-gc writes) go to --node-log; it is up once it printed its JSON line.
    const log = nodeLog === undefined ? undefined : fs.createWriteStream(nodeLog)
    if (log === undefined) node.stderr!.resume()
    else node.stderr!.pipe(log)
    yield* Effect.async<void>((resume) => {
      let out = ""
      let up = false
      node.stdout!.setEncoding("utf8").on("data", (c: string) => {
        log?.write(c)
        if (up) return
        out += c
        const lines = out.split("\n")
        out = lines.pop() ?? ""
        if (lines.some((line) => line.startsWith("{"))) {
          up = true
          resume(Effect.void)
        }
      })
    })
    progress(`node ${node.pid} started`)
    const docId = json<{ docId: string }>((yield* cli(["doc", "create", ...data])).stdout).docId
    const ticket = json<{ ticket: string }>((yield* cli(["doc", "share", ...data, docId, "write"])).stdout).ticket

    let peakRss = 0
    yield* Effect.forkScoped(Effect.forever(Effect.sync(() => {
      peakRss = maxFinite(peakRss, rssOfPid(node.pid!).peak)
    }).pipe(Effect.zipRight(Effect.sleep("200 millis")))))

    const flooder = yield* Effect.acquireRelease(
      Effect.sync(() =>
        fork(FLOODER, [], {
          env: { ...process.env, RANGEDOCS_FLOOD_TICKET: ticket, RANGEDOCS_FLOOD_PUTS: String(puts) },
          stdio: ["ignore", "ignore", "inherit", "ipc"]
        })
      ),
      (child) => Effect.sync(() => child.kill("SIGKILL"))
    )
    const flooded = Effect.async<{ readonly flooded: number; readonly ms: number }>((resume) => {
      flooder.once("message", (m) => resume(Effect.succeed(m as { flooded: number; ms: number })))
    })
    const floodFiber = yield* Effect.fork(flooded)

    // CLI calls while the flood runs and until every Put is stored.
    /** One RPC call through a fresh client, as a CLI command makes it. */
    const rpc = <A>(f: (api: Docs.DocsService) => Effect.Effect<A, unknown>) =>
      Effect.gen(function*() {
        const t0 = performance.now()
        // A call the node does not answer (the client gives up) counts with the time it took.
        const value = yield* Effect.scoped(Effect.flatMap(Docs.Docs, f)).pipe(
          Effect.provide(DocsRpc.layerClientFromDataDir(dir)),
          Effect.option
        )
        return { value, ms: performance.now() - t0 }
      })
    // While the flood runs: a `doc list` through the RPC client every 250 ms, and whole CLI processes one after another.
    let cliMs = 0
    let calls = 0
    let failedCalls = 0
    const rpcCalls = yield* Effect.forkScoped(Effect.forever(Effect.gen(function*() {
      const { ms, value } = yield* rpc((api) => Stream.runDrain(api.list))
      cliMs = Math.max(cliMs, ms)
      calls++
      if (value._tag === "None") failedCalls++
      yield* Effect.sleep("250 millis")
    })))
    let cliProcessMs = 0
    const cliCalls = yield* Effect.forkScoped(Effect.forever(Effect.map(cli(["doc", "list", ...data]), (r) => {
      cliProcessMs = Math.max(cliProcessMs, r.ms)
    })))
    let stored = 0
    /** How the Puts came: gossip taken in, dropped by the bounded intake (or by Gossip's queue), and by sync. */
    let intake: Record<string, number> = {}
    const deadline = performance.now() + waitS * 1000
    while (performance.now() < deadline) {
      const { value: stats } = yield* rpc((api) => api.stats)
      if (stats._tag === "Some") {
        stored = stats.value["new_entries_remote"] ?? 0
        intake = Object.fromEntries(
          [
            "gossip_put_received",
            "gossip_put_dropped",
            "gossip_events_lagged",
            "gossip_ops_dropped",
            "sync_entries_received",
            "gossip_inbound_paused",
            "gossip_inbound_peak_bytes",
            "inbox_replica_waits",
            "inbox_replica_queued",
            "downloads_success",
            "downloads_failure",
            "content_claims_ignored",
            "gossip_lag_resyncs",
            "wanted_overflow",
            "wanted_in_memory"
          ]
            .map((name) => [name, stats.value[name] ?? 0])
        )
      }
      progress(`stored ${stored}/${puts}, slowest doc list ${Math.round(cliMs)} ms over ${calls} calls, ${failedCalls} unanswered (CLI process ${Math.round(cliProcessMs)} ms), rss ${Math.round(rssOfPid(node.pid!).now)} MB`)
      if (stored >= puts) break
      yield* Effect.sleep("1 second")
    }
    yield* Fiber.interrupt(rpcCalls)
    yield* Fiber.interrupt(cliCalls)
    const report = yield* floodFiber.await
    progress(`flooder: ${JSON.stringify(report)}`)

    // The flooding peer leaves; the node must settle, then stop on SIGTERM.
    flooder.kill("SIGTERM")
    yield* Effect.sleep("5 seconds")
    peakRss = maxFinite(peakRss, rssOfPid(node.pid!).peak)
    const t0 = performance.now()
    node.kill("SIGTERM")
    yield* exited(node).pipe(Effect.timeout("30 seconds"), Effect.ignore)
    const sigtermMs = Math.round(performance.now() - t0)
    return {
      bench: "flood",
      puts,
      stored,
      peakRssMb: Math.round(peakRss),
      cliMs: Math.round(cliMs),
      sigtermMs,
      cliProcessMs: Math.round(cliProcessMs),
      rpcCalls: calls,
      rpcUnanswered: failedCalls,
      ...intake
    }
  }).pipe(Effect.scoped)
