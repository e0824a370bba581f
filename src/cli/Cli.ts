/**
 * The `rangedocs` command line (@effect/cli): `start` runs a node; `author`, `doc` and `stats` talk to the node
 * running for the data directory over RPC; `demo` runs two nodes in this process. Every expected failure ends as one
 * line on stderr and exit code 1 (`runCli`).
 */
import { Command, ValidationError } from "@effect/cli"
import { Cause, Effect, Exit, Option } from "effect"
import { authorCommand } from "./Author.js"
import { common, emit, errLine, oneLine, withClient } from "./Common.js"
import { demoCommand } from "./Demo.js"
import { docCommand } from "./Doc.js"
import { startCommand } from "./Start.js"

const stats = Command.make("stats", common, (options) =>
  withClient(options, (api) =>
    Effect.gen(function*() {
      const counters = yield* api.stats
      const names = Object.keys(counters).sort()
      const width = Math.max(0, ...names.map((n) => n.length))
      yield* emit(options, counters, () => names.map((n) => `${n.padEnd(width)}  ${counters[n]}`))
    }))).pipe(Command.withDescription("the node's counters (sync sessions, entries and bytes in and out, …)"))

export const command = Command.make("rangedocs").pipe(
  Command.withDescription("multi-dimensional key-value documents that sync peer to peer"),
  Command.withSubcommands([startCommand, authorCommand, docCommand, stats, demoCommand])
)

export const VERSION = "0.1.0"

const cli = Command.run(command, { name: "rangedocs", version: VERSION })

/** The exit code of a finished CLI run: 0, or 1 after a failure (interruption by a signal counts as success). */
export const exitCode = (exit: Exit.Exit<unknown, unknown>): number =>
  Exit.isSuccess(exit) || Cause.isInterruptedOnly(exit.cause) ? 0 : 1

/**
 * Runs the CLI on `argv` (`process.argv`). Failures print one line on stderr and fail (so the exit code is 1):
 * argument errors were already printed by @effect/cli; other errors show their message; defects show their message
 * prefixed "internal error". No stack traces or causes.
 */
export const runCli = (argv: ReadonlyArray<string>) =>
  cli(argv).pipe(
    Effect.catchAllCause((cause) => {
      if (Cause.isInterruptedOnly(cause)) return Effect.failCause(cause)
      const failure = Cause.failureOption(cause)
      const report = Option.match(failure, {
        onSome: (e) => ValidationError.isValidationError(e) ? Effect.void : errLine(`error: ${oneLine(e)}`),
        onNone: () =>
          errLine(`internal error: ${oneLine(Option.getOrElse(Option.map(Cause.dieOption(cause), (d) => d), () => "unknown"))}`)
      })
      return Effect.zipRight(report, Effect.failCause(cause))
    })
  )
