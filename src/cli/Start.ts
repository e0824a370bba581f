/**
 * `rangedocs start`: runs a node for a data directory until SIGINT/SIGTERM, serving the Docs API over RPC (loopback,
 * token in `<dataDir>/rpc-token`, address in `<dataDir>/rpc.json`). One node per data directory: `<dataDir>/node.lock`
 * holds the running node's pid.
 */
import { Command, Options } from "@effect/cli"
import { Context, Duration, Effect, Layer, Option, type Scope } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { toHex } from "../internal/bytes.js"
import { privateDir } from "../internal/files.js"
import { memoryNode, persistentNode } from "../layers/Node.js"
import { peerIdFromNodeId } from "../schema/NodeAddr.js"
import * as Docs from "../services/Docs.js"
import * as DocsRpc from "../services/DocsRpc.js"
import * as Telemetry from "../services/Telemetry.js"
import {
  DEFAULT_LISTEN,
  DEFAULT_RELAY_DATA_LIMIT,
  DEFAULT_RELAY_DURATION_LIMIT,
  DEFAULT_RELAY_MAX_RESERVATIONS,
  type RelayServiceConfig
} from "../services/Network.js"
import { CliError, type Common, common, emit, errLine, nonNegative, resolveDataDir } from "./Common.js"
import { parseDuration } from "./Parse.js"

export const LOCK_FILE = "node.lock"

const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    // EPERM: the process exists but belongs to someone else.
    return e instanceof Error && "code" in e && e.code === "EPERM"
  }
}

const readPid = (file: string): number | undefined => {
  try {
    const pid = Number.parseInt(fs.readFileSync(file, "utf8").trim(), 10)
    return Number.isInteger(pid) && pid > 0 ? pid : undefined
  } catch {
    return undefined
  }
}

const tryLock = (file: string): "locked" | { readonly heldBy: number } | "stale" => {
  try {
    const fd = fs.openSync(file, "wx", 0o600)
    try {
      fs.writeSync(fd, `${process.pid}\n`)
    } finally {
      fs.closeSync(fd)
    }
    return "locked"
  } catch (e) {
    if (!(e instanceof Error && "code" in e && e.code === "EEXIST")) throw e
    const pid = readPid(file)
    return pid !== undefined && pid !== process.pid && isAlive(pid) ? { heldBy: pid } : "stale"
  }
}

/** Holds `<dataDir>/node.lock` for the scope; fails when a live process holds it. */
export const lockDataDir = (dataDir: string): Effect.Effect<void, CliError, Scope.Scope> => {
  const file = path.join(dataDir, LOCK_FILE)
  return Effect.acquireRelease(
    Effect.try({
      try: () => {
        for (let attempt = 0; attempt < 3; attempt++) {
          const r = tryLock(file)
          if (r === "locked") return
          if (r !== "stale") {
            return { heldBy: r.heldBy }
          }
          fs.rmSync(file, { force: true })
        }
        throw new Error("could not take the lock")
      },
      catch: (e) => new CliError({ message: `cannot lock ${file}: ${e instanceof Error ? e.message : String(e)}` })
    }).pipe(
      Effect.flatMap((held) =>
        held === undefined
          ? Effect.void
          : Effect.fail(
            new CliError({
              message: `a rangedocs node is already running for ${dataDir} (pid ${held.heldBy}); stop it first`
            })
          )
      )
    ),
    () => Effect.sync(() => fs.rmSync(file, { force: true }))
  )
}

const listen = Options.text("listen").pipe(
  Options.withPseudoName("MULTIADDR"),
  Options.withDescription(
    "a multiaddr to listen on (repeatable; default /ip4/127.0.0.1/tcp/0, this machine only; " +
      "/ip4/0.0.0.0/tcp/0 adds the LAN)"
  ),
  Options.repeated
)
const relay = Options.text("relay").pipe(
  Options.withPseudoName("MULTIADDR"),
  Options.withDescription(
    "a relay to be reachable through from behind a NAT, ending in /p2p/<peer id> (repeatable): the node keeps a " +
      "reservation on each and announces their /p2p-circuit addresses"
  ),
  Options.repeated
)
const relayService = Options.boolean("relay-service").pipe(
  Options.withDescription("relay connections for other nodes (circuit relay v2); listen beyond loopback to be useful")
)
const relayMaxReservations = Options.integer("relay-max-reservations").pipe(
  Options.withPseudoName("N"),
  Options.withDescription(`with --relay-service: reservations held at once (default ${DEFAULT_RELAY_MAX_RESERVATIONS})`),
  Options.optional
)
const relayDataLimit = Options.integer("relay-data-limit-mib").pipe(
  Options.withPseudoName("MIB"),
  Options.withDescription(
    `with --relay-service: MiB one relayed connection may carry (default ${DEFAULT_RELAY_DATA_LIMIT / 1048576n})`
  ),
  Options.optional
)
const relayDurationLimit = Options.integer("relay-duration-limit").pipe(
  Options.withPseudoName("SECONDS"),
  Options.withDescription(
    `with --relay-service: seconds one relayed connection may stay open (default ${
      Duration.toSeconds(DEFAULT_RELAY_DURATION_LIMIT)
    })`
  ),
  Options.optional
)
const noMdns = Options.boolean("no-mdns").pipe(
  Options.withDescription("do not look for nodes on the LAN by mDNS (on by default when listening beyond loopback)")
)
const rpcPort = Options.integer("rpc-port").pipe(
  Options.withPseudoName("PORT"),
  Options.withDescription("the RPC port on 127.0.0.1 (default: a free port chosen at start)"),
  Options.optional
)
const gcInterval = Options.text("gc-interval").pipe(
  Options.withPseudoName("DURATION"),
  Options.withDescription(
    "delete the blobs no document references this often (e.g. 10m, 1h; default: never on its own; `blob gc` runs it now)"
  ),
  Options.optional
)
const memory = Options.boolean("memory").pipe(
  Options.withDescription("keep documents, blobs and identity in memory (RPC files still go to the data directory)")
)

const run = (options: Common & {
  readonly listen: ReadonlyArray<string>
  readonly relay: ReadonlyArray<string>
  readonly relayService: boolean
  readonly relayMaxReservations: Option.Option<number>
  readonly relayDataLimit: Option.Option<number>
  readonly relayDurationLimit: Option.Option<number>
  readonly noMdns: boolean
  readonly rpcPort: Option.Option<number>
  readonly gcInterval: Option.Option<string>
  readonly memory: boolean
}) =>
  Effect.scoped(Effect.gen(function*() {
    const dataDir = yield* resolveDataDir(options)
    const port = yield* nonNegative("--rpc-port", options.rpcPort)
    if (Option.isSome(port) && port.value > 65535) {
      return yield* new CliError({ message: "invalid --rpc-port: expected 0..65535" })
    }
    // 0700, tightened when looser: the directory holds the node's secrets (issue 15, finding 7).
    yield* privateDir(dataDir).pipe(Effect.mapError((error) => new CliError({ message: error.message })))
    yield* lockDataDir(dataDir)
    const maxReservations = yield* nonNegative("--relay-max-reservations", options.relayMaxReservations)
    const dataLimit = yield* nonNegative("--relay-data-limit-mib", options.relayDataLimit)
    const durationLimit = yield* nonNegative("--relay-duration-limit", options.relayDurationLimit)
    const limits: RelayServiceConfig = {
      ...(Option.isSome(maxReservations) ? { maxReservations: maxReservations.value } : {}),
      ...(Option.isSome(dataLimit) ? { dataLimit: BigInt(dataLimit.value) * 1048576n } : {}),
      ...(Option.isSome(durationLimit) ? { durationLimit: Duration.seconds(durationLimit.value) } : {})
    }
    if (!options.relayService && Object.keys(limits).length > 0) {
      return yield* new CliError({ message: "--relay-max-reservations and the relay limits need --relay-service" })
    }
    const gc = Option.isSome(options.gcInterval) ? yield* parseDuration("--gc-interval", options.gcInterval.value) : undefined
    const nodeOptions = {
      listen: options.listen.length === 0 ? DEFAULT_LISTEN : options.listen,
      ...(gc === undefined ? {} : { blobs: { gcInterval: gc } }),
      ...(options.relay.length === 0 ? {} : { relays: options.relay }),
      ...(options.relayService ? { relayService: limits } : {}),
      ...(options.noMdns ? { network: { mdns: false } } : {})
    }
    const node = options.memory ? memoryNode(nodeOptions) : persistentNode(dataDir, nodeOptions)
    const server = DocsRpc.layerServer({ dataDir, ...(Option.isSome(port) ? { port: port.value } : {}) })
    // OTEL_EXPORTER_OTLP_ENDPOINT set: spans, metrics and logs to that collector (the exporter below the node).
    const context = yield* Layer.build(server.pipe(Layer.provideMerge(node), Layer.provide(Telemetry.layerFromEnv()))).pipe(
      // The HTTP server's listen error arrives without its message (EADDRINUSE and the like).
      Effect.catchIf(
        (e) => e._tag === "DocsError" && e.message.trim() === "RPC server:",
        () =>
          Effect.fail(
            new CliError({
              message: `cannot serve RPC on 127.0.0.1${Option.isSome(port) ? `:${port.value}` : ""}: is the port in use?`
            })
          )
      )
    )
    const docs = Context.get(context, Docs.Docs)
    const rpc = Context.get(context, DocsRpc.RpcServerInfo)
    const info = yield* docs.nodeStatus
    const nodeId = toHex(info.nodeId)
    const relative = path.relative(process.cwd(), dataDir)
    const shownDir = relative !== "" && !relative.startsWith("..") && !path.isAbsolute(relative) ? `./${relative}` : dataDir
    yield* emit(
      options,
      {
        nodeId,
        peerId: peerIdFromNodeId(info.nodeId).toString(),
        addrs: info.addrs,
        rpc: rpc.url,
        dataDir,
        memory: options.memory,
        pid: process.pid
      },
      () => [
        `node id:   ${nodeId}`,
        `listening: ${info.addrs.length === 0 ? "(no addresses)" : info.addrs.join("\n           ")}`,
        `rpc:       ${rpc.url}`,
        `data dir:  ${dataDir}${options.memory ? " (documents in memory)" : ""}`,
        "running; stop with Ctrl-C",
        `next, in another terminal: rangedocs --data-dir ${shownDir} doc create   (rangedocs --help lists every command)`
      ]
    )
    return yield* Effect.never.pipe(
      Effect.onInterrupt(() => options.json ? Effect.void : errLine("shutting down"))
    )
  }))

export const startCommand = Command.make(
  "start",
  {
    ...common,
    listen,
    relay,
    relayService,
    relayMaxReservations,
    relayDataLimit,
    relayDurationLimit,
    noMdns,
    rpcPort,
    gcInterval,
    memory
  },
  run
).pipe(Command.withDescription("run a node for the data directory until SIGINT/SIGTERM"))
