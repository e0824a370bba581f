/**
 * Runs the client bundle (`dist/cli/client.cjs`, one CommonJS file) with a V8 code cache, so that a client command does
 * not compile the same megabytes of JavaScript at every start: Node 20 keeps no compile cache of its own (Node 22's
 * `module.enableCompileCache()`), and `vm.Script` accepts and produces V8's cached data only for scripts, not for ES
 * modules. With the cache, `rangedocs doc list` costs about a third less CPU (`npm run bench -- cli`).
 *
 * Where: `$RANGEDOCS_CODE_CACHE` (a directory, or `off`), else `$XDG_CACHE_HOME/rangedocs`, else `~/.cache/rangedocs`.
 * V8 runs whatever cached data it accepts, so the directory must be the user's own: created 0700, and not used when
 * it belongs to someone else or others may write to it. Files are written 0600, whole (a temporary file renamed), and
 * carry a SHA-256 of their kind and payload that is checked before V8 sees it. One file per build (`buildId`, a hash of the
 * bundle): V8 checks its own version and flags but matches sources by length only.
 *
 * A file is written at the exit of a run that found none (or one V8 rejected), and once more by the first command that
 * talks to a node after a file written by `--version` or `--help` (which compile less). Any failure here only means no
 * cache: the command runs as it would without.
 *
 * No imports but Node's own: this module is the first code a command runs.
 */
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import Module from "node:module"
import * as os from "node:os"
import * as path from "node:path"
import * as vm from "node:vm"

/** "RDCC" and a format version. */
const MAGIC = Buffer.of(0x52, 0x44, 0x43, 0x43, 0x01)
const KIND_LIGHT = 0
const KIND_FULL = 1
const HEADER = MAGIC.length + 1 + 32
/** Cache files of other builds older than this are removed when a new file is written. */
const STALE_MS = 7 * 24 * 3600 * 1000

/** The cache directory `env` asks for, or undefined when caching is off. */
export const cacheDirOf = (env: NodeJS.ProcessEnv): string | undefined => {
  const asked = env["RANGEDOCS_CODE_CACHE"]
  if (asked === "off" || asked === "0") return undefined
  if (asked !== undefined && asked !== "") return path.resolve(asked)
  const xdg = env["XDG_CACHE_HOME"]
  if (xdg !== undefined && path.isAbsolute(xdg)) return path.join(xdg, "rangedocs")
  const home = os.homedir()
  return home === "" ? undefined : path.join(home, ".cache", "rangedocs")
}

/** Creates `dir` (0700) if missing; true when it is a directory of this user that no one else may write to. */
export const ownDirectory = (dir: string): boolean => {
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 })
    const st = fs.lstatSync(dir)
    const uid = typeof process.getuid === "function" ? process.getuid() : undefined
    return st.isDirectory() && (uid === undefined || st.uid === uid) && (st.mode & 0o022) === 0
  } catch {
    return false
  }
}

/** A command that never reaches a node (its run compiles only the parser's part of the program). */
export const isLight = (args: ReadonlyArray<string>): boolean =>
  args.length === 0 || args.some((a) => a === "--help" || a === "-h" || a === "--version" || a.startsWith("--completions"))

/** The SHA-256 of the kind and the payload. */
const digest = (kind: number, payload: Uint8Array) => crypto.createHash("sha256").update(Buffer.of(kind)).update(payload).digest()

export const encodeCacheFile = (kind: number, payload: Uint8Array): Buffer =>
  Buffer.concat([MAGIC, Buffer.of(kind), digest(kind, payload), payload])

/** The kind and V8 payload of a cache file's bytes; undefined when they are not a whole, intact file. */
export const decodeCacheFile = (bytes: Buffer): { readonly kind: number; readonly payload: Buffer } | undefined => {
  if (bytes.length <= HEADER || !bytes.subarray(0, MAGIC.length).equals(MAGIC)) return undefined
  const kind = bytes[MAGIC.length]!
  if (kind !== KIND_LIGHT && kind !== KIND_FULL) return undefined
  const payload = bytes.subarray(HEADER)
  return digest(kind, payload).equals(bytes.subarray(MAGIC.length + 1, HEADER)) ? { kind, payload } : undefined
}

const readCache = (file: string) => {
  try {
    return decodeCacheFile(fs.readFileSync(file))
  } catch {
    return undefined
  }
}

const writeCache = (dir: string, file: string, kind: number, payload: Uint8Array) => {
  const temp = `${file}.${process.pid}.tmp`
  try {
    fs.writeFileSync(temp, encodeCacheFile(kind, payload), { mode: 0o600, flag: "wx" })
    fs.renameSync(temp, file)
    const now = Date.now()
    for (const name of fs.readdirSync(dir)) {
      const other = path.join(dir, name)
      if (other !== file && /^client-[0-9a-f]+\.v8cache$/.test(name) && now - fs.statSync(other).mtimeMs > STALE_MS) {
        fs.rmSync(other, { force: true })
      }
    }
  } catch {
    fs.rmSync(temp, { force: true })
  }
}

export interface RunOptions {
  /** The CommonJS bundle. */
  readonly file: string
  /** A hash of the bundle's text, fixed when it was built. */
  readonly buildId: string
  readonly args: ReadonlyArray<string>
  readonly env: NodeJS.ProcessEnv
}

/** Compiles the bundle (with the cache when there is a usable one) and runs it as the main module would run. */
export const runWithCodeCache = (options: RunOptions): void => {
  const dir = cacheDirOf(options.env)
  const usable = dir !== undefined && ownDirectory(dir)
  const cacheFile = usable ? path.join(dir, `client-${options.buildId}.v8cache`) : undefined
  const cached = cacheFile === undefined ? undefined : readCache(cacheFile)
  const kind = isLight(options.args) ? KIND_LIGHT : KIND_FULL

  const source = fs.readFileSync(options.file, "utf8")
  const script = new vm.Script(Module.wrap(source), {
    filename: options.file,
    ...(cached === undefined ? {} : { cachedData: cached.payload }),
    // `import()` of Node's own modules, which the bundle keeps (older Node 20 releases lack the constant).
    ...(vm.constants?.USE_MAIN_CONTEXT_DEFAULT_LOADER === undefined
      ? {}
      : { importModuleDynamically: vm.constants.USE_MAIN_CONTEXT_DEFAULT_LOADER })
  })
  if (cacheFile !== undefined && (cached === undefined || script.cachedDataRejected === true || cached.kind < kind)) {
    // At exit, so that the functions this run compiled lazily are in it too.
    process.once("exit", () => writeCache(dir!, cacheFile, kind, script.createCachedData()))
  }

  const module = new Module(options.file)
  module.filename = options.file
  const wrapper = script.runInThisContext() as (...args: ReadonlyArray<unknown>) => void
  wrapper.call(module.exports, module.exports, Module.createRequire(options.file), module, options.file, path.dirname(options.file))
}
