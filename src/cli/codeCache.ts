/**
 * Runs the client bundle (`dist/cli/client.cjs`, one CommonJS file) with a V8 code cache, so that a client command does
 * not compile the same megabytes of JavaScript at every start: Node 20 keeps no compile cache of its own (Node 22's
 * `module.enableCompileCache()`), and `vm.Script` accepts and produces V8's cached data only for scripts, not for ES
 * modules. With the cache, `rangedocs doc list` costs about a third less CPU (`npm run bench -- cli`).
 *
 * Where: `$RANGEDOCS_CODE_CACHE` (a directory, or `off`), else `$XDG_CACHE_HOME/rangedocs`, else `~/.cache/rangedocs`.
 * V8 runs whatever cached data it accepts, so the directory must be the user's own: created 0700, and not used when
 * it belongs to someone else, others may write to it, or a directory above it lets others replace it. The file must
 * be a regular file of the user's that others cannot write (checked on the open file, not followed if a link). Files
 * are written 0600, whole (a temporary file renamed), and carry a SHA-256 of their kind and payload, checked before
 * V8 sees them (it finds torn files; it is no signature: the ownership checks keep others out). One file per build
 * and way of running (`cacheName`). Where there is no uid (Windows), directory modes mean nothing: no cache is used.
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

/** The cache directory `env` asks for, or undefined when caching is off (or no home directory is known). */
export const cacheDirOf = (env: NodeJS.ProcessEnv): string | undefined => {
  const asked = env["RANGEDOCS_CODE_CACHE"]
  if (asked === "off" || asked === "0") return undefined
  if (asked !== undefined && asked !== "") return path.isAbsolute(asked) ? asked : path.resolve(asked)
  const xdg = env["XDG_CACHE_HOME"]
  if (xdg !== undefined && path.isAbsolute(xdg)) return path.join(xdg, "rangedocs")
  let home: string
  try {
    // Throws where HOME is unset and the user has no passwd entry (a container run with an arbitrary uid).
    home = os.homedir()
  } catch {
    return undefined
  }
  return path.isAbsolute(home) ? path.join(home, ".cache", "rangedocs") : undefined
}

const currentUid = (): number | undefined => (typeof process.getuid === "function" ? process.getuid() : undefined)

/** Owned by `uid` (or root) and writable by no one else, unless sticky (as /tmp): no one else can swap what is in it. */
const safeAncestor = (st: fs.Stats, uid: number | undefined) =>
  (uid === undefined || st.uid === uid || st.uid === 0) && ((st.mode & 0o022) === 0 || (st.mode & 0o1000) !== 0)

/**
 * Creates `dir` (0700) if missing; true when it is a directory of this user that no one else may write to, below
 * directories in which no one else can rename it away and put their own in its place.
 */
export const ownDirectory = (dir: string): boolean => {
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 })
    const st = fs.lstatSync(dir)
    const uid = currentUid()
    if (!st.isDirectory() || (uid !== undefined && st.uid !== uid) || (st.mode & 0o022) !== 0) return false
    for (let d = path.dirname(fs.realpathSync(dir));; d = path.dirname(d)) {
      if (!safeAncestor(fs.statSync(d), uid)) return false
      if (d === path.dirname(d)) return true
    }
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

/** Runs `f`, ignoring a failure: for clean-ups whose failure leaves nothing worse than no cache. */
const quietly = (f: () => void) => {
  try {
    f()
  } catch {
    // nothing to do
  }
}

/** The cache file's content: a regular file of this user's that no one else may write to (checked on the open file). */
const readCache = (file: string) => {
  let fd: number | undefined
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | (fs.constants.O_NOFOLLOW ?? 0))
    const st = fs.fstatSync(fd)
    const uid = currentUid()
    if (!st.isFile() || st.nlink !== 1 || (st.mode & 0o022) !== 0 || (uid !== undefined && st.uid !== uid)) return undefined
    return decodeCacheFile(fs.readFileSync(fd))
  } catch {
    return undefined
  } finally {
    if (fd !== undefined) quietly(() => fs.closeSync(fd!))
  }
}

/** This program's cache files and their temporary files (a process killed before its rename leaves one). */
const OURS = /^client-[0-9a-f-]+\.v8cache(\.[0-9a-f]+\.tmp)?$/

const writeCache = (dir: string, file: string, kind: number, payload: Uint8Array) => {
  const temp = `${file}.${crypto.randomBytes(6).toString("hex")}.tmp`
  try {
    fs.writeFileSync(temp, encodeCacheFile(kind, payload), { mode: 0o600, flag: "wx" })
  } catch {
    return
  }
  try {
    fs.renameSync(temp, file)
  } catch {
    return quietly(() => fs.rmSync(temp, { force: true }))
  }
  const now = Date.now()
  for (const name of fs.readdirSync(dir)) {
    const other = path.join(dir, name)
    if (other !== file && OURS.test(name) && now - fs.lstatSync(other).mtimeMs > STALE_MS) fs.rmSync(other, { force: true })
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

/**
 * The cache file's name: the build, the bundle's modification time (an edit in place must not meet an old cache: V8
 * matches sources by length only), and the Node version and flags (V8 rejects a cache made with other flags, and two
 * ways of running the program must not overwrite each other's file at every run).
 */
const cacheName = (options: RunOptions) => {
  const mtime = Math.trunc(fs.statSync(options.file).mtimeMs).toString(16)
  const runtime = crypto.createHash("sha256")
    .update([process.version, ...process.execArgv, options.env["NODE_OPTIONS"] ?? ""].join("\0"))
    .digest("hex")
    .slice(0, 8)
  return `client-${options.buildId}-${mtime}-${runtime}.v8cache`
}

/** The usable cache file and what it holds; nothing when there is none (any failure here only means no cache). */
const lookUp = (options: RunOptions) => {
  try {
    const dir = cacheDirOf(options.env)
    if (dir === undefined || !ownDirectory(dir)) return undefined
    const file = path.join(dir, cacheName(options))
    return { dir, file, cached: readCache(file) }
  } catch {
    return undefined
  }
}

/** Compiles the bundle (with the cache when there is a usable one) and runs it as the main module would run. */
export const runWithCodeCache = (options: RunOptions): void => {
  const found = lookUp(options)
  const kind = isLight(options.args) ? KIND_LIGHT : KIND_FULL

  const source = fs.readFileSync(options.file, "utf8")
  const script = new vm.Script(Module.wrap(source), {
    filename: options.file,
    ...(found?.cached === undefined ? {} : { cachedData: found.cached.payload })
  })
  if (found !== undefined && (found.cached === undefined || script.cachedDataRejected === true || found.cached.kind < kind)) {
    // At exit, so that the functions this run compiled lazily are in it too. Never a failure of the command.
    process.once("exit", () => quietly(() => writeCache(found.dir, found.file, kind, script.createCachedData())))
  }

  const module = new Module(options.file)
  module.filename = options.file
  const wrapper = script.runInThisContext() as (...args: ReadonlyArray<unknown>) => void
  wrapper.call(module.exports, module.exports, Module.createRequire(options.file), module, options.file, path.dirname(options.file))
}
