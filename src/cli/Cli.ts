/**
 * The `rangedocs` command line (@effect/cli): `start` runs a node; `author`, `doc`, `blob`, `node` and `stats` talk to the node
 * running for the data directory over RPC; `demo` runs two nodes in this process. Every expected failure ends as one
 * line on stderr and exit code 1 (`runCli`).
 *
 * A client command loads only what it needs: `start` and `demo` (libp2p, SQLite, the node layers) are imported only
 * when the command line names them or asks for the full help, and the RPC client only when a command talks to a node
 * (`Common.withClient`). The bundle built by `npm run build` (`src/cli/bundle.ts`) keeps these imports apart.
 */
import * as Command from "@effect/cli/Command"
import * as Descriptor from "@effect/cli/CommandDescriptor"
import * as Options from "@effect/cli/Options"
import * as ValidationError from "@effect/cli/ValidationError"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as HashSet from "effect/HashSet"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { toHex } from "../internal/bytes.js"
import { peerIdFromNodeId } from "../schema/NodeAddr.js"
import { authorCommand, authorSubcommands } from "./Author.js"
import { blobCommand, blobSubcommands } from "./Blob.js"
import { isLogLevelName, LOG_LEVEL_OF, LOG_LEVELS, normalizeArgv, redactArgs, type Tree } from "./Argv.js"
import * as Metrics from "../internal/metrics.js"
import { CliError, common, emit, errLine, oneLine, withClient } from "./Common.js"
import { docCommand, docSubcommands, policySubcommands } from "./Doc.js"
import { useColor, withCleanConsole } from "./Help.js"
import { uiCommand } from "./Ui.js"

export const VERSION = "0.1.0"
const NAME = "rangedocs"

const all = Options.boolean("all").pipe(
  Options.withDescription("also the engine's internal counters and those still at zero")
)

const stats = Command.make("stats", { ...common, all }, (options) =>
  withClient(options, (api) =>
    Effect.gen(function*() {
      const counters = yield* api.stats
      const uptime = ((yield* api.nodeStatus).uptimeMs ?? 0) / 1000
      // --json: every counter by name, as the node reports them (the same figures /metrics serves).
      yield* emit(options, counters, () => Metrics.reportText(Metrics.report(counters, uptime, options.all), uptime))
    }))).pipe(
    Command.withDescription("the node's figures, grouped, with units and average rates (--all: internals too)")
  )

const nodeInfo = Command.make("info", common, (options) =>
  withClient(options, (api) =>
    Effect.gen(function*() {
      const info = yield* api.nodeStatus
      const peerId = peerIdFromNodeId(info.nodeId).toString()
      const addrs = info.addrs.map((a) => `${a}/p2p/${peerId}`)
      // Open documents answer `status`; the others fail with ReplicaNotOpen.
      const docs = yield* Stream.runCollect(api.list)
      const states = yield* Effect.forEach(docs, (d) => Effect.option(api.status(d.id)), { concurrency: 4 })
      const open = states.filter(Option.isSome)
      const live = open.filter((s) => s.value.sync).length
      const rpc = Option.getOrElse(info.rpcAddress, () => "")
      const uptime = info.uptimeMs === undefined ? undefined : Math.round(info.uptimeMs / 1000)
      yield* emit(
        options,
        {
          nodeId: toHex(info.nodeId),
          peerId,
          addrs,
          rpc,
          version: VERSION,
          ...(uptime === undefined ? {} : { uptimeSeconds: uptime }),
          documents: docs.length,
          open: open.length,
          live,
          relays: info.relays ?? [],
          peers: (info.peers ?? []).map((p) => ({ nodeId: toHex(p.nodeId), via: p.via }))
        },
        () => [
          `node id:   ${toHex(info.nodeId)}`,
          `peer id:   ${peerId}`,
          `addresses: ${addrs.length === 0 ? "(none)" : addrs.join("\n           ")}`,
          `rpc:       ${rpc}`,
          `version:   ${VERSION}`,
          ...(uptime === undefined ? [] : [`uptime:    ${uptime} s`]),
          `documents: ${docs.length} (${open.length} open, ${live} live)`,
          ...(info.relays ?? []).map((r) => `relay:     ${r.relay} ${r.status}${r.reason === undefined ? "" : ` (${r.reason})`}`),
          ...(info.peers ?? []).map((p) => `peer:      ${toHex(p.nodeId)} ${p.via}`)
        ]
      )
    }))).pipe(Command.withDescription("the node's id, dialable addresses (…/p2p/<peer id>), RPC URL, version, uptime, documents, relays and connected peers (direct or relayed)"))

const nodeCommand = Command.make("node").pipe(
  Command.withDescription("the running node"),
  Command.withSubcommands([nodeInfo])
)

const DESCRIPTION = "multi-dimensional key-value documents that sync peer to peer. Global options, before or after " +
  "the command: --data-dir DIR (the node's data directory), --json (machine output), --log-level LEVEL"

const CONFIG = { name: NAME, version: VERSION }

/** The commands that only talk to a running node. */
const CLIENT_COMMANDS = ["author", "blob", "doc", "node", "stats", "ui"]
const clientCli = Command.run(
  Command.make(NAME).pipe(Command.withDescription(DESCRIPTION), Command.withSubcommands([authorCommand, docCommand, blobCommand, nodeCommand, stats, uiCommand])),
  CONFIG
)

/** The full command line, with `start` and `demo` (which load the node). */
const fullCli = Effect.promise(async () => {
  const [{ startCommand }, { demoCommand }] = await Promise.all([import("./Start.js"), import("./Demo.js")])
  return Command.run(
    Command.make(NAME).pipe(
      Command.withDescription(DESCRIPTION),
      Command.withSubcommands([startCommand, authorCommand, docCommand, blobCommand, nodeCommand, stats, uiCommand, demoCommand])
    ),
    CONFIG
  )
})

const names = (commands: ReadonlyArray<{ readonly descriptor: Descriptor.Command<unknown> }>): Array<string> =>
  commands.flatMap((c) => [...HashSet.values(Descriptor.getNames(c.descriptor))])
const leaves = (commands: ReadonlyArray<{ readonly descriptor: Descriptor.Command<unknown> }>): Tree =>
  new Map(names(commands).map((n) => [n, new Map()]))

/** Every command name, nested as the commands are. */
export const commandTree: Tree = new Map<string, Tree>([
  ["start", new Map()],
  ["author", leaves(authorSubcommands)],
  ["doc", new Map([...leaves(docSubcommands), ["policy", leaves(policySubcommands)]])],
  ["blob", leaves(blobSubcommands)],
  ["node", new Map([["info", new Map()]])],
  ["stats", new Map()],
  ["ui", new Map()],
  ["demo", new Map()]
])

/** The exit code of a finished CLI run: 0, or 1 after a failure (interruption by a signal counts as success). */
export const exitCode = (exit: Exit.Exit<unknown, unknown>): number =>
  Exit.isSuccess(exit) || Cause.isInterruptedOnly(exit.cause) ? 0 : 1


/** `--log-level`, else `$RANGEDOCS_LOG_LEVEL`, else info. */
const logLevel = (given: string | undefined): Effect.Effect<LogLevel.LogLevel, string> => {
  const fromEnv = process.env["RANGEDOCS_LOG_LEVEL"]
  const [name, source] = given !== undefined
    ? [given, "--log-level"]
    : fromEnv !== undefined && fromEnv !== ""
    ? [fromEnv, "RANGEDOCS_LOG_LEVEL"]
    : ["info", ""]
  const lower = name.toLowerCase()
  return isLogLevelName(lower)
    ? Effect.succeed(LOG_LEVEL_OF[lower])
    : Effect.fail(`invalid ${source}: expected one of ${LOG_LEVELS.join(", ")}`)
}

/**
 * Runs the CLI on `argv` (`process.argv`). Failures print one line on stderr and fail (so the exit code is 1):
 * argument errors were already printed by @effect/cli; other errors show their message; defects show their message
 * prefixed "internal error". No stack traces or causes, and no argument that could be a secret.
 */
export const runCli = (argv: ReadonlyArray<string>) =>
  Effect.suspend(() => {
    const given = argv.slice(2)
    const normalized = normalizeArgv(given, commandTree)
    const report = (text: string) => errLine(redactArgs(text, given))
    const first = normalized.path[0]
    const client = first !== undefined
      ? CLIENT_COMMANDS.includes(first)
      : given.includes("--version") && !normalized.help
    return Effect.gen(function*() {
      const level = yield* logLevel(normalized.logLevel).pipe(Effect.mapError((message) => new CliError({ message })))
      const cli = client ? clientCli : yield* fullCli
      return yield* cli([...argv.slice(0, 2), ...normalized.args]).pipe(
        Logger.withMinimumLogLevel(level),
        (effect) =>
          withCleanConsole(effect, {
            path: normalized.path,
            name: NAME,
            color: useColor(process.stdout, process.env),
            errorColor: useColor(process.stderr, process.env),
            args: given
          })
      )
    }).pipe(
      Effect.catchAllCause((cause) => {
        if (Cause.isInterruptedOnly(cause)) return Effect.failCause(cause)
        const failure = Cause.failureOption(cause)
        const printed = Option.match(failure, {
          onSome: (e) => ValidationError.isValidationError(e) ? Effect.void : report(`error: ${oneLine(e)}`),
          onNone: () =>
            report(`internal error: ${oneLine(Option.getOrElse(Option.map(Cause.dieOption(cause), (d) => d), () => "unknown"))}`)
        })
        return Effect.zipRight(printed, Effect.failCause(cause))
      })
    )
  })
