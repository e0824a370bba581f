/**
 * blobs with `--processes 2` (issue 19, target 5): the provider and the requester each in a process of its own
 * (bench/blobs-node.ts), as deployed: libp2p over loopback TCP with noise and yamux, a disk blob store each. The
 * provider adds a `--size` byte file of random data; the requester downloads it (`BlobTransfer.download`: written to
 * a partial file, hashed, promoted). Ceiling, in the same run and between the same two processes on the same
 * connection: a plain libp2p stream that carries the same byte count from the provider (one reused block, sent with
 * `Network.send`) to the requester (read with `Network.reader`, the blob path's reader, and dropped).
 *
 * Fairness as in the one-process mode: both copies run once on a smaller blob first (warm-up), then `--rounds` rounds
 * of one raw copy and one download back to back, in alternating order; `ratio` is the median of the per-round ratios.
 * Times are taken in the requester, from opening the stream (or calling download) to the last byte (or the blob
 * Complete). CPU per copy of each process (all threads, and the main thread) from /proc; `cpuRatio` is the median of
 * the rounds' raw-copy CPU over download CPU (both processes, all threads). Peak RSS per process: VmHWM from
 * /proc/PID/status over the whole run (`providerPeakRssMb`, `requesterPeakRssMb`; `peakRssMb` is the larger), and
 * during the timed copies alone (`…BlobPeakRssMb`, `…RawPeakRssMb`: VmHWM reset through /proc/PID/clear_refs before
 * each copy).
 * Each process runs the node program's layer (`persistentNode`, as `rangedocs start` does); `--minimal` runs only
 * Network, the disk blob store and BlobTransfer instead (what the transfer itself costs, without the rest of a node).
 * Flags: `--unbundled` (fork the module files, not the bundle: see `nodeProgram`), `--size`, `--chunk`, `--read-ahead`, `--stream-window` (yamux's, bytes; Network's default otherwise),
 * `--rounds` (default 3), `--profile FILE` (CPU profiles of the last
 * round's copies in both processes: FILE.{raw,blob}.{provider,requester}.cpuprofile), `--node-args "…"` (V8/node
 * flags for both children after the runner's own, e.g. `--node-args=--cpu-prof`), `--mem` (both processes' memory
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
    const dir = yield* Effect.acquireRelease(
      Effect.sync(() => tempDir("rangedocs-bench-blobs-")),
      (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
    )
    const unbundled = flags.get("unbundled") === "true"
    progress(`blobs: ${size} bytes, two processes (${unbundled ? "module files" : "bundled"}), ${rounds} rounds after a warm-up, in ${dir}`)
    const program = yield* nodeProgram("blobs-node", flags)
    const node = (name: string) => {
      const home = path.join(dir, name)
      fs.mkdirSync(home)
      return forkChild(program, name, {
        RANGEDOCS_BLOBS_DIR: home,
        ...(chunk === undefined ? {} : { RANGEDOCS_BLOBS_CHUNK: chunk }),
        ...(readAhead === undefined ? {} : { RANGEDOCS_BLOBS_READ_AHEAD: readAhead }),
        ...(streamWindow === undefined ? {} : { RANGEDOCS_BLOBS_STREAM_WINDOW: streamWindow }),
        ...(flags.get("minimal") === "true" ? { RANGEDOCS_BLOBS_MINIMAL: "1" } : {}),
        ...(memDetail ? { RANGEDOCS_BLOBS_MEM: "1" } : {})
      }, nodeArgs)
    }
    const memDetail = flags.get("mem") === "true"
    const provider = yield* node("provider")
    const requester = yield* node("requester")
    const mem = () => {
      const p = rssOfPid(provider.pid)
      const r = rssOfPid(requester.pid)
      return `rss provider ${Math.round(p.now)} (peak ${Math.round(p.peak)}), requester ${Math.round(r.now)} (peak ${
        Math.round(r.peak)
      }) MB`
    }
    if (flags.get("mem") === "true") {
      progress(`  memory (MB): provider ${JSON.stringify(yield* provider.call("mem"))}, requester ${
        JSON.stringify(yield* requester.call("mem"))
      }`)
    }
    progress(`  nodes up: provider ${provider.pid}, requester ${requester.pid} (${mem()})`)
    const addr = yield* provider.call<AddrJson>("addr")
    yield* requester.call("dial", { addr })

    const warmUp = yield* provider.call<{ hash: string; size: number }>("addRandom", {
      name: "warm-up.bin",
      size: Math.min(size, WARM_UP_SIZE)
    })
    const added = yield* provider.call<{ hash: string; size: number }>("addRandom", { name: "source.bin", size })
    progress(`  added ${added.size} bytes (${mem()})`)

    // Whole-run peaks, kept across the per-copy resets below.
    let providerPeak = 0
    let requesterPeak = 0
    const notePeaks = () => {
      const p = rssOfPid(provider.pid).peak
      const r = rssOfPid(requester.pid).peak
      if (Number.isFinite(p)) providerPeak = Math.max(providerPeak, p)
      if (Number.isFinite(r)) requesterPeak = Math.max(requesterPeak, r)
      return { p, r }
    }
    /**
     * A copy's wall ms (taken in the requester), each process's CPU ms (all threads, main thread) and peak RSS during
     * the copy alone (VmHWM reset before it, where the kernel allows).
     */
    const timed = (effect: Effect.Effect<{ ms: number }>) =>
      Effect.gen(function*() {
        notePeaks()
        const reset = resetPeakRss(provider.pid) && resetPeakRss(requester.pid)
        if (memDetail) yield* Effect.all([provider.call("memPeak"), requester.call("memPeak")])
        const p0 = cpuOfPid(provider.pid)
        const r0 = cpuOfPid(requester.pid)
        const { ms } = yield* effect
        const p1 = cpuOfPid(provider.pid)
        const r1 = cpuOfPid(requester.pid)
        const peaks = notePeaks()
        const detail = memDetail
          ? `, max sampled (MB) provider ${JSON.stringify(yield* provider.call("memPeak"))} requester ${
            JSON.stringify(yield* requester.call("memPeak"))
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
    const raw = (bytes: number) => timed(requester.call<{ ms: number }>("raw", { addr, size: bytes }))
    const download = (blob: { hash: string; size: number }) =>
      timed(requester.call<{ ms: number }>("download", { hash: blob.hash, size: blob.size, addr }))

    const warmRaw = yield* raw(warmUp.size)
    const warmBlob = yield* download(warmUp)
    progress(`  warm-up (${warmUp.size} bytes): raw ${mibPerSec(warmUp.size, warmRaw.ms).toFixed(1)} MiB/s, blob ${
      mibPerSec(warmUp.size, warmBlob.ms).toFixed(1)
    } MiB/s (${mem()})`)

    const profileFile = flags.get("profile")
    /** Profiles the last round's copy `name` in both processes with `--profile`. */
    const profileLast = <A>(r: number, name: string, effect: Effect.Effect<A>) =>
      profileFile === undefined || r !== rounds - 1 ? effect : Effect.acquireUseRelease(
        Effect.all([provider.call("profileStart"), requester.call("profileStart")]),
        () => effect,
        () =>
          Effect.all([
            provider.call("profileStop", { file: `${profileFile}.${name}.provider.cpuprofile` }),
            requester.call("profileStop", { file: `${profileFile}.${name}.requester.cpuprofile` })
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
      const rawCopy = profileLast(r, "raw", raw(size))
      const first = rawFirst ? yield* rawCopy : undefined
      const blob = yield* profileLast(r, "blob", download(added))
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
    if (flags.get("mem") === "true") {
      progress(`  memory (MB): provider ${JSON.stringify(yield* provider.call("mem"))}, requester ${
        JSON.stringify(yield* requester.call("mem"))
      }`)
    }
    notePeaks()
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
      peakRssMb: Math.round(Math.max(providerPeak, requesterPeak)),
      rounds,
      warmUpBytes: warmUp.size,
      processes: 2,
      providerPeakRssMb: Math.round(providerPeak),
      requesterPeakRssMb: Math.round(requesterPeak),
      // Peaks during the timed rounds' copies alone (VmHWM reset before each; NaN → null where it cannot be reset).
      providerBlobPeakRssMb: Math.round(blobPeaks.p),
      requesterBlobPeakRssMb: Math.round(blobPeaks.r),
      providerRawPeakRssMb: Math.round(rawPeaks.p),
      requesterRawPeakRssMb: Math.round(rawPeaks.r)
    }
  }).pipe(Effect.scoped)
