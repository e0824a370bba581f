/**
 * What @effect/cli 0.77 prints (help, usage errors), made fit for a terminal, a pipe or a file. It writes through
 * Effect's `Console`, so the CLI runs with a `Console` that passes every line through `cleanText`:
 * - no ANSI codes unless stdout is a terminal and NO_COLOR is unset (@effect/cli always colours);
 * - its listing of commands nested three deep repeats the middle name (`doc doc policy get`);
 * - a command's usage shows its own name only (`$ get …`, `$ doc`): it shows the whole command path;
 * - a repeated option reads as required (`--listen MULTIADDR...`): it is shown optional, as it is;
 * - no argument that could be a secret is echoed (`Received unknown argument: '<secret>'`).
 * `test/cli/Cli.test.ts` has a canary for each quirk: when @effect/cli fixes one, its rewrite can go.
 */
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import { redactArgs } from "./Argv.js"

// eslint-disable-next-line no-control-regex
const ANSI = /\u001b\[[0-9;]*[A-Za-z]/g

export interface TextContext {
  /** The command path given (`["doc", "policy"]`). */
  readonly path: ReadonlyArray<string>
  /** The program's name, shown at the start of a usage line. */
  readonly name: string
  readonly color: boolean
  /** The command line, for redaction. */
  readonly args: ReadonlyArray<string>
}

/** Colour only on a terminal, and not when NO_COLOR is set to anything non-empty (no-color.org). */
export const useColor = (stream: { readonly isTTY?: boolean }, env: NodeJS.ProcessEnv): boolean =>
  stream.isTTY === true && (env["NO_COLOR"] ?? "") === ""

export const cleanText = (text: string, context: TextContext): string => {
  let out = context.color ? text : text.replace(ANSI, "")
  out = out.replace(/^(\s*- )(\S+) \2 /gm, "$1$2 ")
  out = out.replace(/(^|[\s[])(--[a-z][a-z-]* [A-Z][A-Z_]*)\.\.\.(?=\s|$)/gm, (m, before: string, option: string) =>
    before === "[" ? m : `${before}[${option}]...`)
  if (context.path.length > 0) {
    const parents = context.path.slice(0, -1).join(" ")
    const leaf = context.path[context.path.length - 1]!
    out = out.replace(/^\$ (\S+)(.*)$/gm, (m, name: string, rest: string) => {
      if (name !== leaf) return m
      const group = rest.trim() === "" ? " <command>" : rest
      return `$ ${context.name} ${parents === "" ? "" : `${parents} `}${name}${group}`
    })
  } else {
    out = out.replace(/^\$ (\S+)(.*)$/gm, (m, name: string, rest: string) =>
      name === context.name && rest.trim() === "" ? `$ ${name} [--data-dir DIR] [--json] [--log-level LEVEL] <command>` : m)
  }
  // @effect/cli pads table rows to the widest one.
  out = out.replace(/[ \t]+$/gm, "")
  return redactArgs(out, context.args)
}

const cleanArgs = (args: ReadonlyArray<unknown>, context: TextContext): ReadonlyArray<unknown> =>
  args.map((a) => (typeof a === "string" ? cleanText(a, context) : a))

/**
 * Runs `effect` with a `Console` whose `log` (stdout) and `error` (stderr) go through `cleanText`, each coloured only
 * when its own stream may be (`errorColor` for stderr).
 */
export const withCleanConsole = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  context: TextContext & { readonly errorColor: boolean }
) =>
  Effect.flatMap(Effect.console, (base) => {
    const console: Console.Console = {
      ...base,
      log: (...args) => base.log(...cleanArgs(args, context)),
      error: (...args) => base.error(...cleanArgs(args, { ...context, color: context.errorColor }))
    }
    return Effect.withConsole(effect, console)
  })
