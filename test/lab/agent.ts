/**
 * A lab node: one rangedocs memory node driven over stdin/stdout, for the NAT lab tests (test/lab/lab.ts starts it
 * inside a network namespace). Started as `node --import tsx test/lab/agent.ts '<options JSON>'`; prints
 * `{"ready":{nodeId, peerId}}` once started, then answers each JSON command line `{"id":n,"cmd":…}` with
 * `{"id":n,"ok":…}` or `{"id":n,"error":"…"}`. Logs go to stderr. Ends when stdin closes.
 */
import "../../src/internal/polyfill.js"
import { NodeRuntime } from "@effect/platform-node"
import { Effect, Layer, Logger, LogLevel, Option, Redacted, Schema, Stream } from "effect"
import * as readline from "node:readline"
import { fromHex, toHex } from "../../src/internal/bytes.js"
import * as Node from "../../src/layers/Node.js"
import { NamespaceIdFromHex } from "../../src/schema/Keys.js"
import { NodeIdFromHex, peerIdFromNodeId } from "../../src/schema/NodeAddr.js"
import { Query } from "../../src/schema/Query.js"
import { type AddrInfoOptions, parseTicket, ticketToString } from "../../src/schema/Ticket.js"
import * as Docs from "../../src/services/Docs.js"
import * as Network from "../../src/services/Network.js"

export const AgentOptions = Schema.Struct({
  listen: Schema.optional(Schema.Array(Schema.String)),
  relays: Schema.optional(Schema.Array(Schema.String)),
  relayService: Schema.optional(Schema.Union(Schema.Boolean, Schema.Struct({ maxReservations: Schema.optionalWith(Schema.Number, { exact: true }) }))),
  /** The node's identity seed, hex (fixed for relays, so their peer ids are known before they start). */
  identity: Schema.optional(Schema.String),
  mdns: Schema.optional(Schema.Boolean)
})
export type AgentOptions = typeof AgentOptions.Type

const Command = Schema.parseJson(Schema.Struct({ id: Schema.Number, cmd: Schema.String }, Schema.Record({ key: Schema.String, value: Schema.Unknown })))
type Command = typeof Command.Type

const ADDR_MODES: Readonly<Record<string, AddrInfoOptions>> = {
  direct: "Addresses",
  relay: "Relay",
  both: "RelayAndAddresses",
  none: "Id"
}

const text = (s: string) => new TextEncoder().encode(s)
const str = (b: Uint8Array) => new TextDecoder().decode(b)

const options = Schema.decodeUnknownSync(Schema.parseJson(AgentOptions))(process.argv[2] ?? "{}")
const seed = options.identity === undefined ? undefined : fromHex(options.identity)

const node = Node.memoryNode({
  ...(options.listen === undefined ? {} : { listen: options.listen }),
  ...(options.relays === undefined ? {} : { relays: options.relays }),
  ...(options.relayService === undefined ? {} : { relayService: options.relayService }),
  ...(seed === undefined ? {} : { identity: Redacted.make(seed) }),
  network: { relayCheckInterval: "1 second", ...(options.mdns === undefined ? {} : { mdns: options.mdns }) }
})

const field = (command: Command, name: string): string => {
  const value = command[name]
  if (typeof value !== "string") throw new Error(`${command.cmd}: missing ${name}`)
  return value
}

const program = Effect.gen(function*() {
  const docs = yield* Docs.Docs
  const network = yield* Network.Network
  const author = yield* docs.authorGetDefault
  const docId = (command: Command) => Schema.decodeUnknownSync(NamespaceIdFromHex)(field(command, "doc"))

  const handle = (command: Command): Effect.Effect<unknown, unknown> => {
    switch (command.cmd) {
      case "info":
        return Effect.all({
          nodeId: Effect.succeed(toHex(network.nodeId)),
          addrs: Effect.map(network.addr, (a) => a.addrs),
          relays: network.relays
        })
      case "create":
        return Effect.map(docs.create, (id) => toHex(id))
      case "set":
        return Effect.asVoid(docs.set(docId(command), author, text(field(command, "key")), text(field(command, "value"))))
      case "share": {
        const mode = ADDR_MODES[field(command, "addr")]
        if (mode === undefined) return Effect.fail(`unknown addr mode ${String(command.addr)}`)
        return Effect.map(docs.share(docId(command), "Write", mode), (ticket) => ticketToString(ticket))
      }
      case "join": {
        const ticket = parseTicket(field(command, "ticket"))
        if (ticket._tag === "Left") return Effect.fail(ticket.left.message)
        return Effect.map(Docs.importTicket(docs, ticket.right), (doc) => toHex(doc.id))
      }
      case "get":
        return docs.get(docId(command), Query.singleLatestPerKey()).pipe(
          Stream.mapEffect((entry) =>
            Effect.map(
              Effect.option(docs.readContent(entry.entry.record.hash)),
              (content) => [str(entry.entry.id.key), Option.match(content, { onNone: () => null, onSome: str })] as const
            )
          ),
          Stream.runCollect,
          Effect.map((chunk) => Object.fromEntries(chunk))
        )
      case "kind": {
        const peer = Schema.decodeUnknownSync(NodeIdFromHex)(field(command, "peer"))
        return Effect.map(network.connectionKind(peer), Option.getOrElse(() => "none"))
      }
      case "peerAddrs": {
        const peer = Schema.decodeUnknownSync(NodeIdFromHex)(field(command, "peer"))
        return network.peerAddresses(peer)
      }
      default:
        return Effect.fail(`unknown command ${command.cmd}`)
    }
  }

  process.stdout.write(
    `${JSON.stringify({ ready: { nodeId: toHex(network.nodeId), peerId: peerIdFromNodeId(network.nodeId).toString() } })}\n`
  )
  const lines = readline.createInterface({ input: process.stdin })
  yield* Stream.fromAsyncIterable(lines, (e) => e).pipe(
    Stream.mapEffect((line) =>
      Effect.suspend(() => {
        const command = Schema.decodeUnknownSync(Command)(line)
        return handle(command).pipe(
          Effect.map((ok) => ({ id: command.id, ok: ok ?? null })),
          Effect.catchAllCause((cause) => Effect.succeed({ id: command.id, error: String(cause).slice(0, 2000) })),
          Effect.tap((reply) => Effect.sync(() => process.stdout.write(`${JSON.stringify(reply)}\n`)))
        )
      }), { concurrency: 16, unordered: true }),
    Stream.runDrain,
    Effect.orDie
  )
})

const logs = Layer.merge(
  Logger.replace(Logger.defaultLogger, Logger.withConsoleError(Logger.logfmtLogger)),
  // RANGEDOCS_LAB_LOG_LEVEL=Debug for a run that is being debugged.
  Logger.minimumLogLevel(
    LogLevel.allLevels.find((l) => l.label === process.env.RANGEDOCS_LAB_LOG_LEVEL?.toUpperCase()) ?? LogLevel.Info
  )
)

program.pipe(Effect.provide(node), Effect.provide(logs), Effect.asVoid, NodeRuntime.runMain)
