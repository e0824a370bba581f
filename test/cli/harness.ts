/**
 * Running the `rangedocs` CLI as child processes (no shell) for end-to-end tests. The program is the bundle that
 * `npm run build` makes (`src/cli/bundle.ts`, about 2 s), built once per vitest run into a directory inside the
 * repository (so the bundle resolves node_modules) that test/globalSetup.ts names, and shared by every file of the run
 * (outside such a run, once per file into a directory of its own); a command can also run `src/main.ts` through tsx.
 * Every child and temp directory is tracked and removed by `cleanup`.
 */
import { assert } from "@effect/vitest"
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { inject } from "vitest"
import { bundleCli } from "../../src/cli/bundle.js"

export const ROOT = path.resolve(import.meta.dirname, "..", "..")
export const LOOPBACK = "/ip4/127.0.0.1/tcp/0"
export const HEX64 = /^[0-9a-f]{64}$/

export interface Result {
  readonly code: number | null
  readonly stdout: Buffer
  readonly stderr: string
}

export const text = (r: Result) => r.stdout.toString("utf8")
export const lines = (r: Result) => text(r).split("\n").filter((l) => l !== "")

export interface StartInfo {
  readonly nodeId: string
  readonly peerId: string
  readonly addrs: ReadonlyArray<string>
  readonly rpc: string
  readonly dataDir: string
}

export interface RunningNode {
  readonly child: ChildProcess
  readonly info: StartInfo
  /** Everything the node wrote to stderr so far (its log lines). */
  readonly stderr: () => string
}

export interface SpawnOptions {
  /** Runs `src/main.ts` through tsx instead of the bundle. */
  readonly tsx?: boolean
  readonly env?: NodeJS.ProcessEnv
  /** Node options before the program (e.g. `--import` of a loader hook). */
  readonly nodeArgs?: ReadonlyArray<string>
}

/** Waits for `child` to exit; SIGKILL after `ms`. Resolves to the exit code. */
export const exitOf = (child: ChildProcess, ms = 20_000): Promise<number | null> =>
  new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve(child.exitCode)
    const timer = setTimeout(() => child.kill("SIGKILL"), ms)
    child.once("exit", (code) => {
      clearTimeout(timer)
      resolve(code)
    })
  })

/** `signal` (SIGTERM), then SIGKILL if it does not exit within 20 s; resolves to the exit code. */
export const stop = (child: ChildProcess, signal: NodeJS.Signals = "SIGTERM"): Promise<number | null> => {
  const exited = exitOf(child)
  if (child.exitCode === null && child.signalCode === null) child.kill(signal)
  return exited
}

/** Reads `child`'s stdout line by line until `match` returns a value. */
export const readUntil = <A>(child: ChildProcess, match: (line: string) => A | undefined, ms = 30_000): Promise<A> =>
  new Promise((resolve, reject) => {
    let buffer = ""
    const timer = setTimeout(() => {
      cleanup()
      reject(new Error(`timed out; output so far:\n${buffer}`))
    }, ms)
    const onData = (chunk: Buffer) => {
      buffer += chunk.toString("utf8")
      for (const l of buffer.split("\n").slice(0, -1)) {
        const found = match(l)
        if (found !== undefined) {
          cleanup()
          return resolve(found)
        }
      }
    }
    const onExit = () => {
      cleanup()
      reject(new Error(`exited before the expected output; output:\n${buffer}`))
    }
    const cleanup = () => {
      clearTimeout(timer)
      child.stdout!.off("data", onData)
      child.off("exit", onExit)
    }
    child.stdout!.on("data", onData)
    child.once("exit", onExit)
  })

/** Waits until `child`'s stderr contains `needle`. */
export const stderrContains = (child: ChildProcess, needle: string, ms = 30_000): Promise<void> =>
  new Promise((resolve, reject) => {
    let buffer = ""
    const timer = setTimeout(() => reject(new Error(`timed out waiting for "${needle}" on stderr:\n${buffer}`)), ms)
    child.stderr!.on("data", (chunk: Buffer) => {
      buffer += chunk.toString("utf8")
      if (buffer.includes(needle)) {
        clearTimeout(timer)
        resolve()
      }
    })
  })

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

/**
 * The run's shared bundle in `dir` (see test/globalSetup.ts): the first file to ask builds it, holding `dir.lock` (an
 * atomic mkdir) and writing the program's path into it when done; the others wait for that path. A failed build
 * releases the lock and fails that file; the files waiting then fail too, each with the reason.
 */
const sharedBundle = async (dir: string): Promise<string> => {
  const lock = `${dir}.lock`
  const done = path.join(lock, "main")
  // node_modules/.cache does not exist in a fresh clone.
  fs.mkdirSync(path.dirname(lock), { recursive: true })
  try {
    fs.mkdirSync(lock)
  } catch (e) {
    if (!(e instanceof Error && "code" in e && e.code === "EEXIST")) throw e
    const deadline = Date.now() + 120_000
    for (;;) {
      if (fs.existsSync(done)) return fs.readFileSync(done, "utf8")
      if (!fs.existsSync(lock)) throw new Error(`the shared CLI bundle in ${dir} failed to build (see the file that built it)`)
      if (Date.now() > deadline) throw new Error(`timed out waiting for the shared CLI bundle in ${dir}`)
      await new Promise((r) => setTimeout(r, 50))
    }
  }
  try {
    const main = await bundleCli({ root: ROOT, outdir: dir })
    fs.writeFileSync(`${done}.tmp`, main)
    fs.renameSync(`${done}.tmp`, done)
    return main
  } catch (e) {
    fs.rmSync(lock, { recursive: true, force: true })
    throw e
  }
}

export const makeHarness = (name: string) => {
  const build = path.join(ROOT, "node_modules", ".cache", `rangedocs-${name}-test-${process.pid}`)
  let main = path.join(build, "main.js")
  const children = new Set<ChildProcess>()
  const tempDirs: Array<string> = []

  const bundle = async () => {
    // Undefined outside a run with test/globalSetup.ts (another config).
    const shared: string | undefined = inject("cliBundleDir")
    if (shared === undefined) {
      main = await bundleCli({ root: ROOT, outdir: build })
      return
    }
    main = await sharedBundle(shared)
    // The file's own directory names the shared bundle too, for tests that find the program there (ReachCli.test).
    fs.rmSync(build, { recursive: true, force: true })
    fs.symlinkSync(path.dirname(main), build, "dir")
  }

  const tempDir = (what: string) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `rangedocs-${name}-${what}-`))
    tempDirs.push(dir)
    return dir
  }

  /** The command line that runs the program (for `script` and the like). */
  const argv = (args: ReadonlyArray<string>, options: SpawnOptions = {}): Array<string> => [
    ...(options.nodeArgs ?? []),
    ...(options.tsx === true ? ["--import", "tsx", path.join(ROOT, "src", "main.ts")] : [main]),
    ...args
  ]

  /** Spawns any program (in `cwd`, default the repository), tracked so that `cleanup` stops it. */
  const spawnTracked = (command: string, args: ReadonlyArray<string>, env: NodeJS.ProcessEnv = {}, cwd = ROOT) => {
    const child = spawn(command, args, {
      cwd,
      // The program's V8 code cache (src/cli/codeCache.ts) next to the run's bundle, not in the user's ~/.cache.
      env: { ...process.env, RANGEDOCS_DATA_DIR: "", RANGEDOCS_CODE_CACHE: path.join(path.dirname(main), "code-cache"), ...env },
      stdio: ["pipe", "pipe", "pipe"]
    })
    children.add(child)
    child.once("exit", () => children.delete(child))
    return child
  }

  const spawnCli = (args: ReadonlyArray<string>, options: SpawnOptions = {}) =>
    spawnTracked(process.execPath, argv(args, options), options.env)

  const collect = (child: ChildProcess): Promise<Result> =>
    new Promise((resolve, reject) => {
      const out: Array<Buffer> = []
      let err = ""
      child.stdout!.on("data", (c: Buffer) => out.push(c))
      child.stderr!.setEncoding("utf8").on("data", (c: string) => (err += c))
      child.on("error", reject)
      child.on("close", (code) => resolve({ code, stdout: Buffer.concat(out), stderr: err }))
    })

  /** Runs any program to its end (in the repository, stdin closed), tracked as the CLI's processes are. */
  const run = (command: string, args: ReadonlyArray<string>): Promise<Result> => {
    const child = spawnTracked(command, args)
    const result = collect(child)
    child.stdin!.end()
    return result
  }

  /** Runs a command to its end (stdin: `input`, then closed). */
  const cli = (
    args: ReadonlyArray<string>,
    options: SpawnOptions & { readonly input?: Uint8Array | string } = {}
  ): Promise<Result> => {
    const child = spawnCli(args, options)
    const result = collect(child)
    child.stdin!.end(options.input ?? "")
    return result
  }

  /** Runs a command with `input` piped to its stdin (streamed, as a shell pipe does). */
  const cliPiped = (args: ReadonlyArray<string>, input: NodeJS.ReadableStream): Promise<Result> => {
    const child = spawnCli(args)
    const result = collect(child)
    child.stdin!.on("error", () => {})
    input.pipe(child.stdin!)
    return result
  }

  /**
   * Runs a command on a terminal (a pseudo-terminal from util-linux `script`): stdout and stderr both arrive, mixed,
   * as `stdout`. Undefined where `script` is missing.
   */
  const cliOnTerminal = (args: ReadonlyArray<string>): Promise<Result> | undefined => {
    if (!fs.existsSync("/usr/bin/script")) return undefined
    const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`
    const command = [process.execPath, ...argv(args)].map(quote).join(" ")
    const child = spawnTracked("/usr/bin/script", ["-qefc", command, "/dev/null"])
    const result = collect(child)
    child.stdin!.end()
    return result
  }

  /** Runs a command that must succeed; returns its stdout as text. */
  const ok = async (args: ReadonlyArray<string>, input?: Uint8Array | string): Promise<string> => {
    const r = await cli(args, input === undefined ? {} : { input })
    assert.strictEqual(r.code, 0, `rangedocs ${args.join(" ")} failed: ${r.stderr}`)
    return text(r)
  }

  /** A command that must fail with exactly one line on stderr (no stack trace, no cause dump); returns that line. */
  const failsWithOneLine = async (args: ReadonlyArray<string>, pattern: RegExp, options: SpawnOptions = {}) => {
    const r = await cli(args, options)
    assert.notStrictEqual(r.code, 0, `expected failure: ${args.join(" ")}`)
    const errLines = r.stderr.trim().split("\n")
    assert.strictEqual(errLines.length, 1, `expected one line on stderr, got:\n${r.stderr}`)
    assert.match(errLines[0]!, pattern)
    assert.notMatch(r.stderr, /\bat .*:\d+:\d+/)
    assert.strictEqual(r.stdout.length, 0)
    return errLines[0]!
  }

  /** `rangedocs start --json` on `dataDir`, listening on `listen` (none given: the program's default). */
  const startNode = async (
    dataDir: string,
    listen: ReadonlyArray<string> = [LOOPBACK],
    extra: ReadonlyArray<string> = [],
    options: SpawnOptions = {}
  ): Promise<RunningNode> => {
    const child = spawnCli(
      ["start", "--data-dir", dataDir, ...listen.flatMap((a) => ["--listen", a]), ...extra, "--json"],
      options
    )
    let stderr = ""
    child.stderr!.setEncoding("utf8").on("data", (c: string) => (stderr += c))
    const info = await readUntil(child, (l) => (l.startsWith("{") ? (JSON.parse(l) as StartInfo) : undefined), 60_000)
      .catch((e: Error) => Promise.reject(new Error(`${e.message}\nstderr: ${stderr}`)))
    return { child, info, stderr: () => stderr }
  }

  const cleanup = async () => {
    await Promise.all([...children].map((c) => stop(c)))
    fs.rmSync(build, { recursive: true, force: true })
    for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true })
  }

  return {
    bundle,
    main: () => main,
    tempDir,
    spawnTracked,
    spawnCli,
    run,
    cli,
    cliPiped,
    cliOnTerminal,
    ok,
    failsWithOneLine,
    startNode,
    stop,
    cleanup
  }
}
