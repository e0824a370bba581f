/**
 * Internal: the listen ports a node had last time, so that a restarted node comes back where its peers (and their
 * address books) expect it. `<dataDir>/listen-ports.json` maps each configured listen multiaddr whose TCP port is 0
 * to the port it was bound to; at the next start that port is tried first (see `Network.layerPersistent`).
 */
import { multiaddr, type Multiaddr } from "@multiformats/multiaddr"
import { Effect, Option, Schema } from "effect"
import * as fs from "node:fs/promises"
import * as path from "node:path"

export const LISTEN_PORTS_FILE = "listen-ports.json"
/** A larger file is not ours: ignored. */
const MAX_FILE_BYTES = 64 * 1024

const Port = Schema.Int.pipe(Schema.between(1, 65535))
const PortsFile = Schema.parseJson(Schema.Record({ key: Schema.String, value: Port }))

export type RecordedPorts = Readonly<Record<string, number>>

const components = (addr: string) => {
  try {
    return multiaddr(addr).getComponents()
  } catch {
    return undefined
  }
}

const render = (parts: ReadonlyArray<{ readonly name: string; readonly value?: string }>) =>
  parts.map((c) => (c.value === undefined ? `/${c.name}` : `/${c.name}/${c.value}`)).join("")

/** `/ip4/H/tcp/0…` → its host component; undefined unless the address is IP + TCP port 0. */
const tcpPortZero = (addr: string) => {
  const parts = components(addr)
  if (parts === undefined || parts.length < 2) return undefined
  const [ip, tcp] = parts
  if ((ip!.name !== "ip4" && ip!.name !== "ip6") || tcp!.name !== "tcp" || tcp!.value !== "0") return undefined
  return { family: ip!.name, host: ip!.value ?? "", parts }
}

const isWildcard = (host: string) => host === "0.0.0.0" || host === "::"

/** The listen addresses to try first: each `tcp/0` address with a recorded port gets that port. */
export const preferredListen = (listen: ReadonlyArray<string>, recorded: RecordedPorts): ReadonlyArray<string> =>
  listen.map((addr) => {
    const zero = tcpPortZero(addr)
    const port = Object.hasOwn(recorded, addr) ? recorded[addr] : undefined
    if (zero === undefined || port === undefined) return addr
    return render(zero.parts.map((c, i) => (i === 1 ? { name: c.name, value: String(port) } : c)))
  })

/** For each `tcp/0` listen address, the port it was bound to (found among the node's listen multiaddrs). */
export const boundPorts = (listen: ReadonlyArray<string>, bound: ReadonlyArray<Multiaddr>): RecordedPorts => {
  const out: Record<string, number> = {}
  const boundParts = bound.map((ma) => ma.getComponents())
  for (const addr of listen) {
    const zero = tcpPortZero(addr)
    if (zero === undefined) continue
    for (const parts of boundParts) {
      const [ip, tcp] = parts
      if (ip === undefined || tcp === undefined || ip.name !== zero.family || tcp.name !== "tcp") continue
      if (!isWildcard(zero.host) && ip.value !== zero.host) continue
      const port = Number(tcp.value)
      if (Number.isInteger(port) && port > 0 && port <= 65535) {
        out[addr] = port
        break
      }
    }
  }
  return out
}

/** The ports recorded in `<dataDir>/listen-ports.json`; none when missing. A malformed file is ignored (logged). */
export const readPorts = (dataDir: string): Effect.Effect<RecordedPorts> => {
  const file = path.join(dataDir, LISTEN_PORTS_FILE)
  return Effect.tryPromise(async () => {
    const handle = await fs.open(file, "r")
    try {
      const { size } = await handle.stat()
      if (size > MAX_FILE_BYTES) return undefined
      return await handle.readFile("utf8")
    } finally {
      await handle.close()
    }
  }).pipe(
    Effect.option,
    Effect.flatMap((text) => {
      if (Option.isNone(text)) return Effect.succeed({})
      const parsed = text.value === undefined ? Option.none() : Schema.decodeUnknownOption(PortsFile)(text.value)
      return Option.match(parsed, {
        onNone: () => Effect.as(Effect.logWarning(`ignoring malformed ${file}`), {}),
        onSome: (ports): Effect.Effect<RecordedPorts> => Effect.succeed(ports)
      })
    })
  )
}

/** Records `ports` in `<dataDir>/listen-ports.json` (atomically); a failure is logged, the node runs on. */
export const writePorts = (dataDir: string, ports: RecordedPorts): Effect.Effect<void> => {
  const file = path.join(dataDir, LISTEN_PORTS_FILE)
  return Effect.tryPromise(async () => {
    const tmp = `${file}.${process.pid}.tmp`
    await fs.writeFile(tmp, JSON.stringify(ports), { mode: 0o600 })
    await fs.rename(tmp, file)
  }).pipe(
    Effect.catchAll((error) => Effect.logWarning(`could not write ${file}: ${String(error.error)}`))
  )
}
