/**
 * `npm run bench -- cli [--runs N]`: how long a user waits for a command. Builds the program as `npm run build` does
 * (the esbuild bundle, into a directory of its own), starts a node with an in-memory store, then times, in turns so
 * that the machine's load falls on all alike: `node -e 0` (the floor), `rangedocs --version` and
 * `rangedocs doc list` against the running node, each as a fresh process run to its exit (wall time, medians of N).
 * Ratios are to `node -e 0` of the same run. Targets (issue 16): version ≤ 4, doc list ≤ 6. The client commands run
 * with their V8 code cache (src/cli/codeCache.ts) in the run's directory: the first turn, which writes it, is reported
 * apart (`firstVersionMs`, `firstDocListMs`) and left out of the medians.
 */
import { Effect } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { bundleCli } from "../src/cli/bundle.js"
import { median, numberFlag, progress, tempDir } from "./util.js"

const ROOT = process.cwd()
const NAMES = ["node", "version", "docList"] as const
const V8_FLAG = "--max-semi-space-size=4"

/** Wall time of a process from spawn to exit, in ms; fails on a non-zero exit. */
const timed = (args: ReadonlyArray<string>, env: NodeJS.ProcessEnv): Promise<number> =>
  new Promise((resolve, reject) => {
    const start = process.hrtime.bigint()
    const child = spawn(process.execPath, args, { stdio: ["ignore", "ignore", "pipe"], env })
    let err = ""
    child.stderr.setEncoding("utf8").on("data", (c: string) => (err += c))
    child.once("error", reject)
    child.once("close", (code) => {
      const ms = Number(process.hrtime.bigint() - start) / 1e6
      if (code === 0) resolve(ms)
      else reject(new Error(`node ${args.join(" ")} exited ${code}: ${err}`))
    })
  })

const startNode = (main: string, dataDir: string): Promise<ChildProcess> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [V8_FLAG, main, "start", "--memory", "--json", "--data-dir", dataDir], {
      stdio: ["ignore", "pipe", "inherit"]
    })
    let out = ""
    child.stdout!.setEncoding("utf8").on("data", (c: string) => {
      out += c
      if (out.includes("\n")) resolve(child)
    })
    child.once("exit", (code) => reject(new Error(`the node exited (${code}) before it ran`)))
  })

const stop = (child: ChildProcess) =>
  new Promise<void>((resolve) => {
    if (child.exitCode !== null) return resolve()
    child.once("exit", () => resolve())
    child.kill("SIGTERM")
  })

export const cliBench = (flags: ReadonlyMap<string, string>) =>
  Effect.promise(async () => {
    const runs = numberFlag(flags, "runs", 10)
    const outdir = path.join(ROOT, "node_modules", ".cache", `rangedocs-bench-cli-${process.pid}`)
    const dataDir = tempDir("rangedocs-bench-cli-")
    progress("building the bundle")
    const main = await bundleCli({ root: ROOT, outdir })
    // No data directory from the caller; the V8 code cache in the run's own directory.
    const env = { ...process.env, RANGEDOCS_DATA_DIR: "", RANGEDOCS_CODE_CACHE: path.join(outdir, "code-cache") }
    const node = await startNode(main, dataDir)
    try {
      const commands = {
        node: ["-e", "0"],
        version: [V8_FLAG, main, "--version"],
        docList: [V8_FLAG, main, "doc", "list", "--data-dir", dataDir]
      } as const
      // The first turn is not in the medians: it reads the files from disk and writes the code cache (reported apart).
      const first: Partial<Record<keyof typeof commands, number>> = {}
      for (const name of NAMES) first[name] = await timed(commands[name], env)
      const times: Record<keyof typeof commands, Array<number>> = { node: [], version: [], docList: [] }
      for (let i = 0; i < runs; i++) {
        for (const name of NAMES) times[name].push(await timed(commands[name], env))
        progress(`run ${i + 1}/${runs}: node ${times.node[i]!.toFixed(0)} ms, --version ${times.version[i]!.toFixed(0)} ms, doc list ${times.docList[i]!.toFixed(0)} ms`)
      }
      const nodeMs = median(times.node)
      const versionMs = median(times.version)
      const docListMs = median(times.docList)
      const round = (x: number, digits = 1) => Number(x.toFixed(digits))
      return {
        bench: "cli",
        nodeMs: round(nodeMs),
        versionMs: round(versionMs),
        docListMs: round(docListMs),
        versionRatio: round(versionMs / nodeMs, 2),
        docListRatio: round(docListMs / nodeMs, 2),
        firstVersionMs: round(first.version!),
        firstDocListMs: round(first.docList!)
      }
    } finally {
      await stop(node)
      fs.rmSync(outdir, { recursive: true, force: true })
      fs.rmSync(dataDir, { recursive: true, force: true })
    }
  })
