/**
 * What every `rangedocs` command shares: the global options (`--data-dir`, `--json`), the per-user default data
 * directory, one-line errors, argument parsing, output to stdout/stderr, and the RPC client of the running node.
 */
import { Options } from "@effect/cli"
import * as Config from "effect/Config"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as os from "node:os"
import * as path from "node:path"
import { toHex } from "../internal/bytes.js"
import type { ApiError } from "../schema/DocsErrors.js"
import type { Entry } from "../schema/Entry.js"
import type { NamespaceId } from "../schema/Keys.js"
import type { DocsService } from "../services/DocsApi.js"

// ---------------------------------------------------------------------------------------------------------------
// Errors

/** A failure the CLI reports as one line on stderr (exit code 1). Never carries secrets. */
export class CliError extends Data.TaggedError("CliError")<{ readonly message: string }> {}

/** The one line shown for any expected error. */
export const oneLine = (error: unknown): string => {
  const text = (() => {
    if (typeof error === "object" && error !== null) {
      const message = "message" in error && typeof error.message === "string" ? error.message : ""
      if (message !== "") return message
      if ("_tag" in error && typeof error._tag === "string") return error._tag
    }
    return String(error)
  })()
  return text.replace(/\s*\n\s*/g, "; ").trim()
}

// ---------------------------------------------------------------------------------------------------------------
// Global options

/** The per-user data directory: `$XDG_DATA_HOME/rangedocs`, else the platform's usual place. */
export const defaultDataDir = (): string => {
  const xdg = process.env["XDG_DATA_HOME"]
  if (xdg !== undefined && xdg !== "") return path.join(xdg, "rangedocs")
  const home = os.homedir()
  switch (process.platform) {
    case "darwin":
      return path.join(home, "Library", "Application Support", "rangedocs")
    case "win32":
      return path.join(process.env["APPDATA"] ?? path.join(home, "AppData", "Roaming"), "rangedocs")
    default:
      return path.join(home, ".local", "share", "rangedocs")
  }
}

const dataDirOption = Options.text("data-dir").pipe(
  Options.withPseudoName("DIR"),
  Options.withDescription(
    "the node's data directory (default: $RANGEDOCS_DATA_DIR, else a per-user data directory such as ~/.local/share/rangedocs)"
  ),
  Options.optional
)

const jsonOption = Options.boolean("json").pipe(
  Options.withDescription("machine output: one JSON value per line")
)

/** Spread into every command's config. */
export const common = { dataDir: dataDirOption, json: jsonOption } as const

export interface Common {
  readonly dataDir: Option.Option<string>
  readonly json: boolean
}

/** `--data-dir`, else `RANGEDOCS_DATA_DIR`, else the per-user default; always absolute. */
export const resolveDataDir = (options: Common): Effect.Effect<string> =>
  Effect.gen(function*() {
    const fromEnv = yield* Config.option(Config.nonEmptyString("RANGEDOCS_DATA_DIR")).pipe(
      Effect.orElseSucceed(() => Option.none<string>())
    )
    const dir = Option.getOrElse(Option.orElse(options.dataDir, () => fromEnv), defaultDataDir)
    return path.resolve(dir)
  })

// ---------------------------------------------------------------------------------------------------------------
// Output

const write = (stream: NodeJS.WriteStream, data: string | Uint8Array): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    stream.write(data, () => resume(Effect.void))
  })

/** Writes to stdout and waits until the data is handed to the OS (so exiting right after loses nothing). */
export const stdout = (data: string | Uint8Array): Effect.Effect<void> => write(process.stdout, data)
export const stderr = (data: string | Uint8Array): Effect.Effect<void> => write(process.stderr, data)
export const line = (text: string): Effect.Effect<void> => stdout(`${text}\n`)
export const errLine = (text: string): Effect.Effect<void> => stderr(`${text}\n`)

/** JSON with bigints as numbers (strings beyond 2^53) and no undefined fields. */
export const toJson = (value: unknown): string =>
  JSON.stringify(value, (_, v: unknown) => (typeof v === "bigint" ? jsonNumber(v) : v))

export const jsonNumber = (n: bigint): number | string =>
  n <= BigInt(Number.MAX_SAFE_INTEGER) && n >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(n) : n.toString()

/** In JSON mode prints `value` as one line, else the human lines. */
export const emit = (options: Common, value: unknown, human: () => string | ReadonlyArray<string>) =>
  Effect.suspend(() => {
    if (options.json) return line(toJson(value))
    const h = human()
    const lines = typeof h === "string" ? [h] : h
    return lines.length === 0 ? Effect.void : stdout(lines.map((l) => `${l}\n`).join(""))
  })

const utf8Decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true })

/** UTF-8 text when valid (and free of control characters), else undefined. */
export const utf8OrUndefined = (bytes: Uint8Array): string | undefined => {
  try {
    const s = utf8Decoder.decode(bytes)
    return /[\u0000-\u001f\u007f]/.test(s) ? undefined : s
  } catch {
    return undefined
  }
}

/** A key for humans: its UTF-8 text when valid, else `hex:<hex>`. */
export const showKey = (key: Uint8Array): string => utf8OrUndefined(key) ?? `hex:${toHex(key)}`

export const short = (id: Uint8Array): string => toHex(id.subarray(0, 5))

/** An entry as JSON: key (UTF-8 when valid) and keyHex, author, hash, len, timestamp (µs). */
export const entryJson = (entry: Entry) => {
  const key = utf8OrUndefined(entry.id.key)
  return {
    doc: toHex(entry.id.namespace),
    ...(key === undefined ? {} : { key }),
    keyHex: toHex(entry.id.key),
    author: toHex(entry.id.author),
    hash: toHex(entry.record.hash),
    len: jsonNumber(entry.record.len),
    timestamp: jsonNumber(entry.record.timestamp)
  }
}

/** ISO time of a µs timestamp. */
export const showTime = (micros: bigint): string => {
  const ms = Number(micros / 1000n)
  return Number.isFinite(ms) && ms < 8.64e15 ? new Date(ms).toISOString() : micros.toString()
}

export const nonNegative = (what: string, n: Option.Option<number>): Effect.Effect<Option.Option<number>, CliError> =>
  Option.isSome(n) && (n.value < 0 || !Number.isInteger(n.value))
    ? Effect.fail(new CliError({ message: `invalid ${what}: expected a non-negative integer` }))
    : Effect.succeed(n)

// ---------------------------------------------------------------------------------------------------------------
// The running node

/**
 * A command handler that lives in another module, imported when the command runs: parsing a command line, `--help`
 * and `--version` load only the commands' definitions.
 */
export const lazy = <M>(load: () => Promise<M>) =>
<O, E, R>(pick: (m: M) => (options: O) => Effect.Effect<void, E, R>) =>
(options: O): Effect.Effect<void, E, R> => Effect.flatMap(Effect.promise(load), (m) => pick(m)(options))

/**
 * The `Docs` API of the node running for the data directory (over RPC); a CliError when none runs. The RPC client is
 * imported here, on demand: commands that do not talk to a node (`--version`, `--help`) never load it.
 */
export const withClient = <A, E>(
  options: Common,
  f: (api: DocsService) => Effect.Effect<A, E, Scope.Scope>
): Effect.Effect<A, E | CliError> =>
  Effect.gen(function*() {
    const dir = yield* resolveDataDir(options)
    const { connect } = yield* Effect.promise(() => import("../services/DocsRpcClient.js"))
    const api = Effect.mapError(connect(dir), (e) => new CliError({ message: e.reason }))
    return yield* Effect.scoped(Effect.flatMap(api, f))
  })

/** Opens the document for the rest of the scope (one handle on the node, closed at the end). */
export const openScoped = (api: DocsService, id: NamespaceId): Effect.Effect<NamespaceId, ApiError, Scope.Scope> =>
  Effect.acquireRelease(Effect.as(api.open(id), id), () => Effect.ignore(api.close(id)))
