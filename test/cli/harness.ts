/**
 * Running the `rangedocs` CLI as child processes (no shell) for end-to-end tests: the sources are bundled once with
 * esbuild (about 2 s) so that a command starts in about half a second. Every child and temp directory is tracked
 * and removed by `cleanup`. (The same approach as test/cli/Cli.test.ts, shared for the other CLI test files.)
 */
import { assert } from "@effect/vitest"
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

export const ROOT = path.resolve(import.meta.dirname, "..", "..")
export const LOOPBACK = "/ip4/127.0.0.1/tcp/0"

export interface Result {
  readonly code: number | null
  readonly stdout: Buffer
  readonly stderr: string
}

export interface StartInfo {
  readonly nodeId: string
  readonly peerId: string
  readonly addrs: ReadonlyArray<string>
  readonly rpc: string
}

export interface RunningNode {
  readonly child: ChildProcess
  readonly info: StartInfo
  /** Everything the node wrote to stderr so far (its log lines). */
  readonly stderr: () => string
}

export const makeHarness = (name: string) => {
  const build = path.join(ROOT, "node_modules", ".cache", `rangedocs-${name}-test-${process.pid}`)
  const main = path.join(build, "main.mjs")
  const children = new Set<ChildProcess>()
  const tempDirs: Array<string> = []

  const bundle = async () => {
    const esbuild = await import("esbuild")
    await esbuild.build({
      entryPoints: [path.join(ROOT, "src", "main.ts")],
      bundle: true,
      platform: "node",
      format: "esm",
      target: "node20",
      outfile: main,
      external: ["better-sqlite3", "@napi-rs/*"],
      banner: {
        js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);"
      },
      logLevel: "error"
    })
  }

  const tempDir = (what: string) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `rangedocs-${name}-${what}-`))
    tempDirs.push(dir)
    return dir
  }

  const spawnCli = (args: ReadonlyArray<string>) => {
    const child = spawn(process.execPath, [main, ...args], {
      cwd: ROOT,
      env: { ...process.env, RANGEDOCS_DATA_DIR: "" },
      stdio: ["pipe", "pipe", "pipe"]
    })
    children.add(child)
    child.once("exit", () => children.delete(child))
    return child
  }

  const cli = (args: ReadonlyArray<string>): Promise<Result> =>
    new Promise((resolve, reject) => {
      const child = spawnCli(args)
      const out: Array<Buffer> = []
      let err = ""
      child.stdout!.on("data", (c: Buffer) => out.push(c))
      child.stderr!.setEncoding("utf8").on("data", (c: string) => (err += c))
      child.on("error", reject)
      child.on("close", (code) => resolve({ code, stdout: Buffer.concat(out), stderr: err }))
      child.stdin!.end("")
    })

  /** Runs a command with `input` piped to its stdin (streamed, as a shell pipe does). */
  const cliPiped = (args: ReadonlyArray<string>, input: NodeJS.ReadableStream): Promise<Result> =>
    new Promise((resolve, reject) => {
      const child = spawnCli(args)
      const out: Array<Buffer> = []
      let err = ""
      child.stdout!.on("data", (c: Buffer) => out.push(c))
      child.stderr!.setEncoding("utf8").on("data", (c: string) => (err += c))
      child.stdin!.on("error", () => {})
      child.on("error", reject)
      child.on("close", (code) => resolve({ code, stdout: Buffer.concat(out), stderr: err }))
      input.pipe(child.stdin!)
    })

  const ok = async (args: ReadonlyArray<string>): Promise<string> => {
    const r = await cli(args)
    assert.strictEqual(r.code, 0, `rangedocs ${args.join(" ")} failed: ${r.stderr}`)
    return r.stdout.toString("utf8")
  }

  /** SIGTERM, then SIGKILL after 20 s; resolves to the exit code. */
  const stop = (child: ChildProcess): Promise<number | null> =>
    new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve(child.exitCode)
      const timer = setTimeout(() => child.kill("SIGKILL"), 20_000)
      child.once("exit", (code) => {
        clearTimeout(timer)
        resolve(code)
      })
      child.kill("SIGTERM")
    })

  /** `rangedocs start --json` on `dataDir`; resolves once it printed its start line. */
  const startNode = (dataDir: string, listen: ReadonlyArray<string> = [LOOPBACK]): Promise<RunningNode> =>
    new Promise((resolve, reject) => {
      const child = spawnCli(["start", "--data-dir", dataDir, ...listen.flatMap((a) => ["--listen", a]), "--json"])
      let stderr = ""
      let stdout = ""
      child.stderr!.setEncoding("utf8").on("data", (c: string) => (stderr += c))
      const timer = setTimeout(() => reject(new Error(`start timed out\nstderr: ${stderr}`)), 60_000)
      const onData = (chunk: Buffer) => {
        stdout += chunk.toString("utf8")
        const line = stdout.split("\n").find((l) => l.startsWith("{"))
        if (line === undefined) return
        clearTimeout(timer)
        child.stdout!.off("data", onData)
        resolve({ child, info: JSON.parse(line) as StartInfo, stderr: () => stderr })
      }
      child.stdout!.on("data", onData)
      child.once("exit", (code) => {
        clearTimeout(timer)
        reject(new Error(`start exited with ${code}\nstderr: ${stderr}`))
      })
    })

  const cleanup = async () => {
    await Promise.all([...children].map(stop))
    fs.rmSync(build, { recursive: true, force: true })
    for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true })
  }

  return { bundle, tempDir, cli, cliPiped, ok, stop, startNode, cleanup }
}

/** Retries `f` until it returns a value (every 100 ms, up to `ms`). */
export const eventually = async <A>(f: () => Promise<A | undefined>, what: string, ms = 30_000): Promise<A> => {
  const deadline = Date.now() + ms
  for (;;) {
    const a = await f()
    if (a !== undefined) return a
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms: ${what}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}
