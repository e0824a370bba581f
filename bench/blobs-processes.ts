/**
 * blobs with `--processes 2` (issue 19, target 5): the provider and the requester each in a process of its own
 * (bench/blobs-node.ts), as deployed: libp2p over loopback TCP with noise and yamux, a disk blob store each. The
 * provider adds a `--size` byte file of random data; the requester downloads it (`BlobTransfer.download`: written to
 * a partial file, hashed, promoted). Ceiling, in the same run but between two more processes of the same program
 * (the raw pair): a plain libp2p stream that carries the same byte count from its provider (one reused block, sent
 * with `Network.send`) to its requester (read with `Network.reader`, the blob path's reader, and dropped). The raw
 * copy used to run between the rangedocs pair itself, so that pair's peak RSS included the raw copy's own
 * (151 / 153–158 MB alone); now each pair's memory is its own. The raw pair runs `--minimal`'s layer (Network
 * with the same libp2p, noise, yamux and stream window; the disk blob store; BlobTransfer) and not the node's
 * documents, gossip and live sync, which a raw copy does not use: their timers and heartbeats would only take CPU
 * from the ceiling and make the ratio easier. `--raw-full` gives the raw pair the node layer instead.
 * Fairness as in the one-process mode: both copies run once on a smaller blob first (warm-up), then `--rounds` rounds
 * of one raw copy and one download back to back, in alternating order; `ratio` is the median of the per-round ratios.
 * Times are taken in the requester, from opening the stream (or calling download) to the last byte (or the blob
 * Complete). CPU per copy of each process of its pair (all threads, and the main thread) from /proc; `cpuRatio` is
 * the median of the rounds' raw-copy CPU over download CPU (both processes of each pair, all threads). Peak RSS per
 * process: VmHWM from /proc/PID/status. The rangedocs pair's over the whole run (`providerPeakRssMb`,
 * `requesterPeakRssMb`; `peakRssMb` is the larger: the target's figures) and during the timed downloads alone
 * (`…BlobPeakRssMb`: VmHWM reset through /proc/PID/clear_refs before each copy); the raw pair's during the timed raw
 * copies (`…RawPeakRssMb`) and over its whole run (`…RawRunPeakRssMb`).
 * The rangedocs pair runs the node program's layer (`persistentNode`, as `rangedocs start` does); `--minimal` runs only
 * Network, the disk blob store and BlobTransfer instead (what the transfer itself costs, without the rest of a node).
 * Flags: `--unbundled` (fork the module files, not the bundle: see `nodeProgram`), `--size`, `--chunk`, `--read-ahead`, `--stream-window` (yamux's, bytes; Network's default otherwise),
 * `--rounds` (default 3), `--raw-full`, `--profile FILE` (CPU profiles of the last round's copies in both processes
 * of their pair: FILE.{raw,blob}.{provider,requester}.cpuprofile), `--node-args "…"` (V8/node flags for all four
 * children after the runner's own, e.g. `--node-args=--cpu-prof`), `--mem` (every process's memory
 * after start-up and at the end, and per copy the largest figures of `process.memoryUsage()` sampled every 20 ms).
 *
 * Measured on the shared 2-core machine (load 7–19, issue 19 note): the wall-clock ratio of one run spans 0.35–2.9
 * for the same code, because the raw copy's rate swings more with the other load (29–155 MiB/s) than the download's;
 * `cpuRatio` stays within 0.42–1.15 and mostly 0.57–0.85. A node process loaded from its module files held 145 MB
 * at rest; bundled as deployed, with the Crypto workers started on first use, 119 MB (an idle `rangedocs start`: 101).
 * On top of that the peaks are ArrayBuffers waiting for a collection, not data held: the requester's reached 79–87 MB during downloads
 * (35–65 during raw copies). Profiles (`--profile`) put the requester's extra time in the GC (360 vs 70 ms per
 * 100 MiB): bytes that wait in yamux up to the 16 MiB stream window outlive two scavenges and only mark-compacts free
 * them (`--node-args=--trace-gc`: six in one second, mutator utilisation down to 0.54). With `--stream-window
 * 2097152` the requester's GC was 23–28 ms and its peak ~198 MB instead of 231–260. The provider's extra time is
 * the disk reads' dispatch (fs/promises and a fiber per read, ~370 ms per 100 MiB in the profile) and encrypting
 * buffers that rotate instead of one hot block; it idles half the copy, waiting for the requester's credit.
 *
 * With the raw copy in its own pair (load 3–10, single runs): the rangedocs pair's peaks were 146–150 / 152–162 MB,
 * the raw pair's 130–137 / 135–162. `--mem` showed the requester's peak is ArrayBuffers (36–49 MB at the peak, ~42
 * still held after the run) that a full collection frees: the raw requester, which drops each buffer at once, held
 * 16–32. They wait while the network loop waits on the disk: a partial-blob write's round trip took ~6 ms under load
 * whatever its size (a bare FileHandle.write of 1 MiB: 0.3 ms), and libp2p's buffers queue meanwhile. A 4 MiB ring
 * written in runs that grow with the latency, the provider's buffers reused once libp2p released them, and pools of
 * both across transfers (tried on branch h24-blobs) brought the peaks to provider 129–130, requester 148–154 MB, but
 * cost CPU: in alternating runs on a quiet machine (load 1.8–2.3) `cpuRatio` 0.634 / 0.663 / 0.705 against 0.72 /
 * 0.759 / 0.73 without them, `ratio` 0.617 / 0.656 / 0.694 against 0.76 / 0.781 / 0.731. They were not kept.
 * With `--node-args=--max-semi-space-size=1` every process holds 111 MB at rest instead of 119 and scavenges often
 * enough that few received buffers are promoted (one run, with the ring: provider 121, requester 134 MB, raw pair
 * 114 / 120); it is the node program's flag for every bench, so it waits on a full re-run of them.
 * `--raw-full` gave 130–240 MiB/s in a slower spell (ratio 0.64, `cpuRatio` 0.61): no sign that the node layer's
 * idle work lowers the ceiling measurably, but `--minimal` is the ceiling that cannot be lowered by it.
 */
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import type { AddrJson } from "./blobs-node.js"
import { MiB, mibPerSec, resetPeakRss } from "./blobs-util.js"
import { nodeProgram } from "./bundle.js"
import { forkChild } from "./ipc.js"
import { cpuOfPid, median, numberFlag, progress, rssOfPid, tempDir } from "./util.js"

const WARM_UP_SIZE = 16 * MiB

export const blobsProcessesBench = (flags: ReadonlyMap<string, string>) =>
  Effect.gen(function*() {
    const size = numberFlag(flags, "size", 100 * MiB)
    const chunk = flags.get("chunk")
    const readAhead = flags.get("read-ahead")
    const streamWindow = flags.get("stream-window")
    const rounds = Math.max(1, numberFlag(flags, "rounds", 3))
    const nodeArgs = (flags.get("node-args") ?? "").split(" ").filter((a) => a !== "")
    const memDetail = flags.get("mem") === "true"
    const minimal = flags.get("minimal") === "true"
    const rawFull = flags.get("raw-full") === "true"
    const dir = yield* Effect.acquireRelease(
      Effect.sync(() => tempDir("rangedocs-bench-blobs-")),
      (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
    )
    const unbundled = flags.get("unbundled") === "true"
    progress(
      `blobs: ${size} bytes, two processes (${unbundled ? "module files" : "bundled"}; ${
        minimal ? "minimal" : "node layer"
      }), raw ceiling in two more (${rawFull ? "node layer" : "minimal"}), ${rounds} rounds after a warm-up, in ${dir}`
    )
    const program = yield* nodeProgram("blobs-node", flags)
    const node = (name: string, minimalLayer: boolean) => {
      const home = path.join(dir, name)
      fs.mkdirSync(home)
      return forkChild(program, name, {
        RANGEDOCS_BLOBS_DIR: home,
        ...(chunk === undefined ? {} : { RANGEDOCS_BLOBS_CHUNK: chunk }),
        ...(readAhead === undefined ? {} : { RANGEDOCS_BLOBS_READ_AHEAD: readAhead }),
        ...(streamWindow === undefined ? {} : { RANGEDOCS_BLOBS_STREAM_WINDOW: streamWindow }),
        ...(minimalLayer ? { RANGEDOCS_BLOBS_MINIMAL: "1" } : {}),
        ...(memDetail ? { RANGEDOCS_BLOBS_MEM: "1" } : {})
      }, nodeArgs)
    }
    /** Two node processes, the requester connected to the provider. */
    const pair = (label: string, prefix: string, minimalLayer: boolean) =>
      Effect.gen(function*() {
        const provider = yield* node(`${prefix}provider`, minimalLayer)
        const requester = yield* node(`${prefix}requester`, minimalLayer)
        const addr = yield* provider.call<AddrJson>("addr")
        yield* requester.call("dial", { addr })
        const mem = () => {
          const p = rssOfPid(provider.pid)
          const r = rssOfPid(requester.pid)
          return `${label} rss provider ${Math.round(p.now)} (peak ${Math.round(p.peak)}), requester ${
            Math.round(r.now)
          } (peak ${Math.round(r.peak)}) MB`
        }
        // Whole-run peaks, kept across the per-copy resets.
        const peak = { p: 0, r: 0 }
        const notePeaks = () => {
          const p = rssOfPid(provider.pid).peak
          const r = rssOfPid(requester.pid).peak
          if (Number.isFinite(p)) peak.p = Math.max(peak.p, p)
          if (Number.isFinite(r)) peak.r = Math.max(peak.r, r)
          return { p, r }
        }
        const memoryUsage = Effect.gen(function*() {
          if (!memDetail) return
          progress(`  ${label} memory (MB): provider ${JSON.stringify(yield* provider.call("mem"))}, requester ${
            JSON.stringify(yield* requester.call("mem"))
          }`)
        })
        progress(`  ${label} up: provider ${provider.pid}, requester ${requester.pid} (${mem()})`)
        return { provider, requester, addr, mem, peak, notePeaks, memoryUsage }
      })
    type Pair = Effect.Effect.Success<ReturnType<typeof pair>>

    const nodes = yield* pair("rangedocs", "", minimal)
    const rawNodes = yield* pair("raw", "raw-", !rawFull)
    yield* nodes.memoryUsage
    yield* rawNodes.memoryUsage
    const mem = () => `${nodes.mem()}; ${rawNodes.mem()}`

    const warmUp = yield* nodes.provider.call<{ hash: string; size: number }>("addRandom", {
      name: "warm-up.bin",
      size: Math.min(size, WARM_UP_SIZE)
    })
    const added = yield* nodes.provider.call<{ hash: string; size: number }>("addRandom", { name: "source.bin", size })
    progress(`  added ${added.size} bytes (${mem()})`)

    /**
     * A copy between the processes of `on`: its wall ms (taken in the requester), each process's CPU ms (all threads,
     * main thread) and peak RSS during the copy alone (VmHWM reset before it, where the kernel allows).
     */
    const timed = (on: Pair, effect: Effect.Effect<{ ms: number }>) =>
      Effect.gen(function*() {
        on.notePeaks()
        const reset = resetPeakRss(on.provider.pid) && resetPeakRss(on.requester.pid)
        if (memDetail) yield* Effect.all([on.provider.call("memPeak"), on.requester.call("memPeak")])
        const p0 = cpuOfPid(on.provider.pid)
        const r0 = cpuOfPid(on.requester.pid)
        const { ms } = yield* effect
        const p1 = cpuOfPid(on.provider.pid)
        const r1 = cpuOfPid(on.requester.pid)
        const peaks = on.notePeaks()
        const detail = memDetail
          ? `, max sampled (MB) provider ${JSON.stringify(yield* on.provider.call("memPeak"))} requester ${
            JSON.stringify(yield* on.requester.call("memPeak"))
          }`
          : ""
        return {
          ms,
          cpuMs: p1.all - p0.all + r1.all - r0.all,
          peaks: reset ? peaks : { p: NaN, r: NaN },
          cpu: `cpu provider ${p1.all - p0.all} ms (main ${p1.main - p0.main}), requester ${r1.all - r0.all} ms (main ${
            r1.main - r0.main
          }), peak rss ${reset ? `${Math.round(peaks.p)} / ${Math.round(peaks.r)} MB` : "n/a"}${detail}`
        }
      })
    const raw = (bytes: number) =>
      timed(rawNodes, rawNodes.requester.call<{ ms: number }>("raw", { addr: rawNodes.addr, size: bytes }))
    const download = (blob: { hash: string; size: number }) =>
      timed(
        nodes,
        nodes.requester.call<{ ms: number }>("download", { hash: blob.hash, size: blob.size, addr: nodes.addr })
      )

    const warmRaw = yield* raw(warmUp.size)
    const warmBlob = yield* download(warmUp)
    progress(`  warm-up (${warmUp.size} bytes): raw ${mibPerSec(warmUp.size, warmRaw.ms).toFixed(1)} MiB/s, blob ${
      mibPerSec(warmUp.size, warmBlob.ms).toFixed(1)
    } MiB/s (${mem()})`)

    const profileFile = flags.get("profile")
    /** Profiles the last round's copy `name` in both processes of `on` with `--profile`. */
    const profileLast = <A>(r: number, name: string, on: Pair, effect: Effect.Effect<A>) =>
      profileFile === undefined || r !== rounds - 1 ? effect : Effect.acquireUseRelease(
        Effect.all([on.provider.call("profileStart"), on.requester.call("profileStart")]),
        () => effect,
        () =>
          Effect.all([
            on.provider.call("profileStop", { file: `${profileFile}.${name}.provider.cpuprofile` }),
            on.requester.call("profileStop", { file: `${profileFile}.${name}.requester.cpuprofile` })
          ]).pipe(Effect.tap(() => progress(`  profiles written to ${profileFile}.${name}.*.cpuprofile`)))
      )

    const raws: Array<number> = []
    const blobPeaks = { p: 0, r: 0 }
    const rawPeaks = { p: 0, r: 0 }
    const maxPeaks = (into: { p: number; r: number }, peaks: { p: number; r: number }) => {
      into.p = Math.max(into.p, peaks.p)
      into.r = Math.max(into.r, peaks.r)
    }
    const blobRates: Array<number> = []
    const blobMs: Array<number> = []
    const ratios: Array<number> = []
    const cpuRatios: Array<number> = []
    for (let r = 0; r < rounds; r++) {
      const rawFirst = r % 2 === 0
      const rawCopy = profileLast(r, "raw", rawNodes, raw(size))
      const first = rawFirst ? yield* rawCopy : undefined
      const blob = yield* profileLast(r, "blob", nodes, download(added))
      const rawResult = first ?? (yield* rawCopy)
      const rawRate = mibPerSec(size, rawResult.ms)
      const rate = mibPerSec(size, blob.ms)
      maxPeaks(rawPeaks, rawResult.peaks)
      maxPeaks(blobPeaks, blob.peaks)
      raws.push(rawRate)
      blobRates.push(rate)
      blobMs.push(blob.ms)
      ratios.push(rate / rawRate)
      cpuRatios.push(rawResult.cpuMs / blob.cpuMs)
      progress(
        `  round ${r + 1} (${rawFirst ? "raw first" : "blob first"}): raw ${rawRate.toFixed(1)} MiB/s (${rawResult.cpu}), blob ${
          rate.toFixed(1)
        } MiB/s in ${Math.round(blob.ms)} ms (${blob.cpu}), ratio ${(rate / rawRate).toFixed(3)} (${mem()})`
      )
    }
    yield* nodes.memoryUsage
    yield* rawNodes.memoryUsage
    nodes.notePeaks()
    rawNodes.notePeaks()
    return {
      bench: "blobs",
      bytes: size,
      ms: Math.round(median(blobMs)),
      mibPerSec: Number(median(blobRates).toFixed(1)),
      rawStreamMibPerSec: Number(median(raws).toFixed(1)),
      ratio: Number(median(ratios).toFixed(3)),
      // CPU of both processes (all threads) of the raw copy over the download's, median of the rounds: what the
      // throughput ratio would be on a machine whose cores are all busy (less sensitive to other load than `ratio`).
      cpuRatio: Number(median(cpuRatios).toFixed(3)),
      // The rangedocs pair's (the raw pair's are the …RawPeakRssMb below).
      peakRssMb: Math.round(Math.max(nodes.peak.p, nodes.peak.r)),
      rounds,
      warmUpBytes: warmUp.size,
      processes: 2,
      rawNodes: rawFull ? "node" : "minimal",
      // Whole run of the rangedocs pair (start-up, adding the blobs, every download).
      providerPeakRssMb: Math.round(nodes.peak.p),
      requesterPeakRssMb: Math.round(nodes.peak.r),
      // Peaks during the timed rounds' downloads alone (VmHWM reset before each).
      providerBlobPeakRssMb: Math.round(blobPeaks.p),
      requesterBlobPeakRssMb: Math.round(blobPeaks.r),
      // The raw pair's, during the timed rounds' raw copies alone, and over its whole run.
      providerRawPeakRssMb: Math.round(rawPeaks.p),
      requesterRawPeakRssMb: Math.round(rawPeaks.r),
      providerRawRunPeakRssMb: Math.round(rawNodes.peak.p),
      requesterRawRunPeakRssMb: Math.round(rawNodes.peak.r)
    }
  }).pipe(Effect.scoped)
