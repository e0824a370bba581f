/**
 * The command line before @effect/cli sees it (pure functions). @effect/cli takes a command's options only after
 * its name, so `rangedocs --data-dir ./node1 doc create` would fail with "Invalid subcommand"; as in git, docker or
 * iroh, the global options may come before the subcommand too: they are moved behind the command's name here.
 * `--log-level` is taken out wherever it stands (the CLI applies it itself, to every command and the node it runs).
 */

import * as LogLevel from "effect/LogLevel"

/** The command names, nested: a leaf command maps to an empty tree. */
export type Tree = ReadonlyMap<string, Tree>

export const LOG_LEVELS = ["all", "trace", "debug", "info", "warning", "error", "fatal", "none"] as const
export type LogLevelName = (typeof LOG_LEVELS)[number]

export const isLogLevelName = (s: string): s is LogLevelName => (LOG_LEVELS as ReadonlyArray<string>).includes(s)

/** Effect's log level of a `--log-level` / `$RANGEDOCS_LOG_LEVEL` name (the node program and the tests share it). */
export const LOG_LEVEL_OF: Readonly<Record<LogLevelName, LogLevel.LogLevel>> = {
  all: LogLevel.All,
  trace: LogLevel.Trace,
  debug: LogLevel.Debug,
  info: LogLevel.Info,
  warning: LogLevel.Warning,
  error: LogLevel.Error,
  fatal: LogLevel.Fatal,
  none: LogLevel.None
}

/** Global options and whether they take a value. */
const GLOBAL: ReadonlyMap<string, boolean> = new Map([["--data-dir", true], ["--json", false]])

export interface Normalized {
  /** What @effect/cli parses: global options right behind the command path. */
  readonly args: ReadonlyArray<string>
  /** The subcommand path given (`["doc", "policy", "get"]`), as far as it names commands. */
  readonly path: ReadonlyArray<string>
  /** `--log-level`'s value, when given (the last one wins). */
  readonly logLevel: string | undefined
  /** `--help` or `-h` was given. */
  readonly help: boolean
}

/**
 * Moves the global options found before or between the command names to just behind the last command name; the
 * command's own options and arguments stay as given. Everything after `--` is left alone. A global option given
 * again after the command wins (as the last occurrence of an option does elsewhere).
 */
export const normalizeArgv = (args: ReadonlyArray<string>, tree: Tree): Normalized => {
  const end = args.indexOf("--") === -1 ? args.length : args.indexOf("--")
  let logLevel: string | undefined
  const rest: Array<string> = []
  for (let i = 0; i < end; i++) {
    const a = args[i]!
    if (a === "--log-level") {
      logLevel = args[i + 1] ?? ""
      i++
    } else if (a.startsWith("--log-level=")) logLevel = a.slice("--log-level=".length)
    else rest.push(a)
  }
  const path: Array<string> = []
  const hoisted: Array<Array<string>> = []
  const kept: Array<string> = []
  let node = tree
  let walking = true
  let leafEnd = 0
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!
    const name = a.includes("=") ? a.slice(0, a.indexOf("=")) : a
    const takesValue = GLOBAL.get(name)
    if (walking && takesValue !== undefined) {
      if (takesValue && !name.includes("=") && !a.includes("=") && i + 1 < rest.length) {
        hoisted.push([a, rest[i + 1]!])
        i++
      } else hoisted.push([a])
      continue
    }
    const child = walking && !a.startsWith("-") ? node.get(a) : undefined
    if (child !== undefined) {
      path.push(a)
      node = child
      kept.push(a)
      leafEnd = kept.length
      continue
    }
    if (!a.startsWith("-")) walking = false
    kept.push(a)
  }
  const optionName = (a: string) => (a.includes("=") ? a.slice(0, a.indexOf("=")) : a)
  const given = new Set(kept.slice(leafEnd).map(optionName))
  const last = new Map(hoisted.map((option) => [optionName(option[0]!), option]))
  const moved = [...last.entries()].filter(([name]) => !given.has(name)).flatMap(([, option]) => option)
  const normalized = [...kept.slice(0, leafEnd), ...moved, ...kept.slice(leafEnd), ...args.slice(end)]
  return {
    args: normalized,
    path,
    logLevel,
    help: rest.some((a) => a === "--help" || a === "-h")
  }
}

/**
 * Whether a command-line argument could be a secret: hex of 32 bytes or more (a namespace or author secret has the
 * same form as a document id), a ticket (a write ticket holds the namespace secret), or any other long token of
 * letters and digits (base32, base64). Paths and keys with `/` or `.` are not. Errors never show such an argument.
 */
export const mayBeSecret = (arg: string): boolean => {
  const a = arg.trim()
  return /^(?:0x)?[0-9a-fA-F]{64,}$/.test(a) || /^doc[a-z2-7]{16,}$/i.test(a) || /^[A-Za-z0-9+_=-]{40,}$/.test(a)
}

/** `text` with every argument that could be a secret replaced by `<argument>`. */
export const redactArgs = (text: string, args: ReadonlyArray<string>): string => {
  let out = text
  const secrets = args.filter(mayBeSecret).map((a) => a.trim()).sort((a, b) => b.length - a.length)
  for (const s of secrets) {
    if (s.length === 0) continue
    out = out.split(s).join("<argument>")
    // Hex can come back in the other case (ids are printed in lowercase).
    if (/^[0-9a-fA-F]+$/.test(s)) out = out.split(s.toLowerCase()).join("<argument>")
  }
  return out
}
