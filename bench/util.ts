import { Effect, RuntimeFlags, RuntimeFlagsPatch, Supervisor } from "effect"
import * as fs from "node:fs"
import * as inspector from "node:inspector"
import * as v8 from "node:v8"
import * as os from "node:os"
import * as path from "node:path"

export const progress = (msg: string) => process.stderr.write(`${msg}\n`)

export const numberFlag = (flags: ReadonlyMap<string, string>, name: string, dflt: number): number => {
  const v = flags.get(name)
  return v === undefined ? dflt : Number(v)
}

/** Peak and current resident set of process `pid` in MB (VmHWM, VmRSS of /proc/PID/status); NaN if unreadable. */
export const rssOfPid = (pid: number) => {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, "utf8")
    const kb = (name: string) => Number(/\d+/.exec(status.split("\n").find((l) => l.startsWith(name)) ?? "")?.[0] ?? NaN)
    return { peak: kb("VmHWM:") / 1024, now: kb("VmRSS:") / 1024 }
  } catch {
    return { peak: NaN, now: NaN }
  }
}

export const tempDir = (prefix: string) => fs.mkdtempSync(path.join(os.tmpdir(), prefix))

/** Peak resident set size of this process so far, in MB. */
export const peakRssMb = () => Math.round(process.resourceUsage().maxRSS / 1024)

export const randomBytes = (n: number) => {
  const b = new Uint8Array(n)
  for (let i = 0; i < n; i++) b[i] = (Math.random() * 256) | 0
  return b
}

export const median = (xs: ReadonlyArray<number>) => {
  const s = [...xs].sort((a, b) => a - b)
  const mid = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}

/**
 * CPU ms (user + system) of process `pid` so far, of all its threads and of its main thread, from /proc on Linux
 * (10 ms resolution); NaN where unreadable. (`process.cpuUsage` counts every thread, libuv's pool and V8's helpers.)
 */
export const cpuOfPid = (pid: number) => {
  const ticks = (file: string) => {
    try {
      const stat = fs.readFileSync(file, "latin1")
      // Fields after the command name, which is in parentheses: utime and stime are the 12th and 13th (clock ticks).
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
      return (Number(fields[11]) + Number(fields[12])) * 10
    } catch {
      return NaN
    }
  }
  return { all: ticks(`/proc/${pid}/stat`), main: ticks(`/proc/${pid}/task/${pid}/stat`) }
}

/** CPU ms of this process's main thread (see {@link cpuOfPid}). */
export const mainThreadCpuMs = (): number => cpuOfPid(process.pid).main

/**
 * With `--profile FILE`, records a CPU profile (node:inspector) of `effect` alone into FILE (a .cpuprofile that
 * Chrome DevTools opens), so setup does not drown the part being measured.
 */
export const profiled = <A, E, R>(
  flags: ReadonlyMap<string, string>,
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, E, R> => {
  const heapFile = flags.get("heap-profile")
  if (heapFile !== undefined) return heapProfiled(heapFile, effect)
  const file = flags.get("profile")
  if (file === undefined) return effect
  const session = new inspector.Session()
  const post = (method: string, params?: object) =>
    Effect.async<unknown>((resume) =>
      session.post(method, params, (err, result) => resume(err ? Effect.die(err) : Effect.succeed(result)))
    )
  return Effect.acquireUseRelease(
    Effect.zipRight(
      Effect.sync(() => session.connect()),
      Effect.zipRight(post("Profiler.enable"), post("Profiler.setSamplingInterval", { interval: 200 })),
    ).pipe(Effect.zipRight(post("Profiler.start"))),
    () => effect,
    () =>
      post("Profiler.stop").pipe(
        Effect.flatMap((result) =>
          Effect.sync(() => {
            fs.writeFileSync(file, JSON.stringify((result as { profile: unknown }).profile))
            session.disconnect()
            progress(`  profile written to ${file}`)
          })
        )
      )
  )
}

/** With `--mem`, logs process.memoryUsage() (MB) to stderr every 500 ms while `effect` runs. */
export const memorySampled = <A, E, R>(
  flags: ReadonlyMap<string, string>,
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, E, R> => {
  if (flags.get("mem") !== "true") return effect
  const t0 = performance.now()
  const mb = (n: number) => Math.round(n / 1048576)
  let snapped = false
  return Effect.acquireUseRelease(
    Effect.sync(() =>
      setInterval(() => {
        const m = process.memoryUsage()
        progress(
          `  mem ${Math.round(performance.now() - t0)} ms: rss ${mb(m.rss)} heapUsed ${mb(m.heapUsed)} heapTotal ${
            mb(m.heapTotal)
          } external ${mb(m.external)} arrayBuffers ${mb(m.arrayBuffers)}`
        )
        const snap = flags.get("snapshot-at-heap-mb")
        if (snap !== undefined && !snapped && m.heapUsed > Number(snap) * 1048576) {
          snapped = true
          progress(`  heap snapshot: ${v8.writeHeapSnapshot()}`)
        }
      }, 500)
    ),
    () => effect,
    (timer) => Effect.sync(() => clearInterval(timer))
  )
}

/**
 * With `--heap-profile FILE`, records a sampling heap profile of `effect` (a .heapprofile for Chrome DevTools),
 * counting objects that were collected too: it shows where garbage is allocated, which a snapshot cannot.
 */
const heapProfiled = <A, E, R>(file: string, effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> => {
  const session = new inspector.Session()
  const post = (method: string, params?: object) =>
    Effect.async<unknown>((resume) =>
      session.post(method, params, (err, result) => resume(err ? Effect.die(err) : Effect.succeed(result)))
    )
  return Effect.acquireUseRelease(
    Effect.sync(() => session.connect()).pipe(
      Effect.zipRight(post("HeapProfiler.enable")),
      Effect.zipRight(post("HeapProfiler.startSampling", {
        samplingInterval: 16384,
        includeObjectsCollectedByMajorGC: true,
        includeObjectsCollectedByMinorGC: true
      }))
    ),
    () => effect,
    () =>
      post("HeapProfiler.stopSampling").pipe(
        Effect.flatMap((result) =>
          Effect.sync(() => {
            fs.writeFileSync(file, JSON.stringify((result as { profile: unknown }).profile))
            session.disconnect()
            progress(`  heap profile written to ${file}`)
          })
        )
      )
  )
}

/**
 * Counts the Effect operations the runtime executes in the fibers started under {@link countingOps}: a figure that,
 * unlike time on a shared machine, does not vary from run to run.
 */
export class OpCounter extends Supervisor.AbstractSupervisor<void> {
  count = 0
  get value() {
    return Effect.void
  }
  override onEffect() {
    this.count++
  }
}

/** Runs `effect` with op supervision on (slower: use only for counting), every fiber it starts counted. */
export const countingOps = <A, E, R>(counter: OpCounter, effect: Effect.Effect<A, E, R>) =>
  effect.pipe(
    Effect.supervised(counter),
    Effect.withRuntimeFlagsPatch(RuntimeFlagsPatch.enable(RuntimeFlags.OpSupervision))
  )
