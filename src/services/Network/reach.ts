/**
 * Internal: what a node needs to be reached from other networks (issue 17). Pure helpers on multiaddrs (which
 * addresses are relayed, which are loopback, which go in a ticket), the relay service's limits, and the hand-made
 * circuit relay v2 RESERVE probe the relay supervisor uses to say why a relay grants no reservation.
 *
 * How relays are kept (see `Network.makeNode`): for each configured relay the node listens on one `/p2p-circuit`
 * address (libp2p's relay discovery then reserves a slot on any connected peer that speaks the hop protocol), and
 * a supervisor keeps a connection to every configured relay, redialling it when it goes. libp2p reserves on a
 * relay when identify reports the hop protocol on a new connection, and gives a slot back (looking for another
 * connected relay) when the connection to the relay closes: that is the move to another configured relay.
 */
import type { Multiaddr } from "@multiformats/multiaddr"
import { multiaddr } from "@multiformats/multiaddr"
import { Duration } from "effect"

/** The circuit relay v2 hop protocol (a relay serves it; reservations and relayed dials go through it). */
export const HOP_PROTOCOL = "/libp2p/circuit/relay/0.2.0/hop"

/** How a peer is reached: over its own addresses, or through a relay. */
export type ConnectionKind = "direct" | "relayed"

/** Which of our addresses go in a ticket: `direct` (our own), `relay` (circuit addresses), both, or none (node id only). */
export type AddrMode = "direct" | "relay" | "both" | "none"

/** Limits of a relay service (`start --relay-service`); each has a default that carries a whole sync. */
export interface RelayServiceConfig {
  /** Reservations held at once; default {@link DEFAULT_RELAY_MAX_RESERVATIONS}. A further one is refused. */
  readonly maxReservations?: number
  /** How long a reservation lasts before its holder must refresh it; default 2 h (libp2p's). */
  readonly reservationTtl?: Duration.DurationInput
  /** How long one relayed connection may stay open; default {@link DEFAULT_RELAY_DURATION_LIMIT}. */
  readonly durationLimit?: Duration.DurationInput
  /** Bytes one relayed connection may carry (both ways); default {@link DEFAULT_RELAY_DATA_LIMIT}. */
  readonly dataLimit?: bigint
}

/** libp2p's default is 15; a relay of a small group serves more. */
export const DEFAULT_RELAY_MAX_RESERVATIONS = 128
/** libp2p's default (2 min) ends a live sync in the middle; a relayed connection is a real path here, as in iroh. */
export const DEFAULT_RELAY_DURATION_LIMIT: Duration.Duration = Duration.hours(24)
/** libp2p's default (128 KiB) does not carry one blob; 16 GiB carries a document and its content. */
export const DEFAULT_RELAY_DATA_LIMIT = 16n * 1024n * 1024n * 1024n
export const DEFAULT_RELAY_RESERVATION_TTL: Duration.Duration = Duration.hours(2)
/** How often the relay supervisor looks at each configured relay. */
export const DEFAULT_RELAY_CHECK_INTERVAL: Duration.Duration = Duration.seconds(5)

const MAX_RESERVATIONS_LIMIT = 65536

/** The relay service's options for libp2p, or the reason they are wrong. */
export const relayServerInit = (config: RelayServiceConfig): { readonly problem: string } | {
  readonly init: {
    readonly reservations: {
      readonly maxReservations: number
      readonly reservationTtl: number
      readonly applyDefaultLimit: true
      readonly defaultDurationLimit: number
      readonly defaultDataLimit: bigint
    }
  }
} => {
  const maxReservations = config.maxReservations ?? DEFAULT_RELAY_MAX_RESERVATIONS
  if (!Number.isSafeInteger(maxReservations) || maxReservations < 1 || maxReservations > MAX_RESERVATIONS_LIMIT) {
    return { problem: `relayService.maxReservations must be an integer from 1 to ${MAX_RESERVATIONS_LIMIT}, got ${maxReservations}` }
  }
  const ms = (name: string, value: Duration.DurationInput) => {
    const d = Duration.decodeUnknown(value)
    const n = d._tag === "Some" ? Duration.toMillis(d.value) : Number.NaN
    return Number.isFinite(n) && n >= 1000 && n <= 2 ** 31 - 1 ? n : `relayService.${name} must be from 1 s to 24.8 days`
  }
  const ttl = ms("reservationTtl", config.reservationTtl ?? DEFAULT_RELAY_RESERVATION_TTL)
  if (typeof ttl === "string") return { problem: ttl }
  const duration = ms("durationLimit", config.durationLimit ?? DEFAULT_RELAY_DURATION_LIMIT)
  if (typeof duration === "string") return { problem: duration }
  const data = config.dataLimit ?? DEFAULT_RELAY_DATA_LIMIT
  if (data < 1024n || data > 2n ** 63n - 1n) return { problem: "relayService.dataLimit must be from 1 KiB to 2^63 − 1 bytes" }
  return {
    init: {
      reservations: {
        maxReservations,
        reservationTtl: ttl,
        applyDefaultLimit: true,
        defaultDurationLimit: duration,
        defaultDataLimit: data
      }
    }
  }
}

const names = (addr: string | Multiaddr): ReadonlyArray<string> | undefined => {
  try {
    return (typeof addr === "string" ? multiaddr(addr) : addr).getComponents().map((c) => c.name)
  } catch {
    return undefined
  }
}

/** True for an address through a relay (it holds `/p2p-circuit`). */
export const isRelayed = (addr: string | Multiaddr): boolean => names(addr)?.includes("p2p-circuit") === true

const LOOPBACK_HOSTS: ReadonlySet<string> = new Set(["localhost"])

/** True for a loopback host (127.0.0.0/8, ::1, localhost): such an address reaches this machine only. */
export const isLoopbackHost = (host: string): boolean =>
  host.startsWith("127.") || host === "::1" || LOOPBACK_HOSTS.has(host.toLowerCase())

/** The host of an IP or DNS address, undefined for anything else (a bare `/p2p-circuit`, a unix socket). */
export const hostOf = (addr: string): string | undefined => {
  try {
    const first = multiaddr(addr).getComponents()[0]
    if (first === undefined) return undefined
    return ["ip4", "ip6", "dns", "dns4", "dns6"].includes(first.name) ? first.value : undefined
  } catch {
    return undefined
  }
}

/** True when a listen address reaches beyond this machine (a LAN or wider): mDNS is then on by default. */
export const listensBeyondLoopback = (listen: ReadonlyArray<string>): boolean =>
  listen.some((a) => {
    const host = hostOf(a)
    return host !== undefined && !isLoopbackHost(host)
  })

/** The addresses of `addrs` a ticket carries in `mode`. */
export const addrsForMode = (addrs: ReadonlyArray<string>, mode: AddrMode): ReadonlyArray<string> => {
  switch (mode) {
    case "none":
      return []
    case "relay":
      return addrs.filter((a) => isRelayed(a))
    case "direct":
      return addrs.filter((a) => !isRelayed(a))
    case "both":
      return addrs
  }
}

/**
 * The peer id of a relay's multiaddr (its last `/p2p/` component), or the reason it is not a relay address: it must
 * name a transport address and the relay's peer id, and must not itself be relayed.
 */
export const relayPeerOf = (addr: string): { readonly peer: string } | { readonly problem: string } => {
  let ma: Multiaddr
  try {
    ma = multiaddr(addr)
  } catch {
    return { problem: `not a multiaddr: ${addr.slice(0, 200)}` }
  }
  const parts = ma.getComponents()
  if (parts.some((c) => c.name === "p2p-circuit")) return { problem: `a relay address cannot be relayed: ${addr}` }
  const last = parts[parts.length - 1]
  if (parts.length < 2 || last?.name !== "p2p" || last.value === undefined) {
    return { problem: `a relay address must end in /p2p/<peer id>: ${addr}` }
  }
  return { peer: last.value }
}

// ---------------------------------------------------------------------------------------------------------------
// The RESERVE probe: circuit relay v2's HopMessage, encoded by hand (its protobuf codec is not exported).

/** circuit relay v2 status codes (the `Status` enum of the spec). */
export const RELAY_STATUS: Readonly<Record<number, string>> = {
  100: "OK",
  200: "RESERVATION_REFUSED",
  201: "RESOURCE_LIMIT_EXCEEDED",
  202: "PERMISSION_DENIED",
  203: "CONNECTION_FAILED",
  204: "NO_RESERVATION",
  400: "MALFORMED_MESSAGE",
  401: "UNEXPECTED_MESSAGE"
}

/** A length-prefixed `HopMessage { type: RESERVE }`. */
export const RESERVE_REQUEST = Uint8Array.of(2, 0x08, 0x00)
/** The largest answer read (a reservation with a few addresses and a voucher is well under it). */
export const MAX_HOP_ANSWER = 8 * 1024

const readVarint = (bytes: Uint8Array, at: number): { readonly value: number; readonly next: number } | undefined => {
  let value = 0
  let shift = 0
  for (let i = at; i < bytes.length && i < at + 10; i++) {
    const b = bytes[i]!
    value += (b & 0x7f) * 2 ** shift
    if ((b & 0x80) === 0) return { value, next: i + 1 }
    shift += 7
  }
  return undefined
}

/** A decoded answer to RESERVE: its status and, when granted, the reservation's expiry (Unix seconds). */
export interface HopAnswer {
  readonly status: number
  readonly expire?: number
}

const fields = (
  bytes: Uint8Array,
  from: number,
  end: number,
  visit: (field: number, value: number | Uint8Array) => void
): boolean => {
  let at = from
  while (at < end) {
    const tag = readVarint(bytes, at)
    if (tag === undefined) return false
    at = tag.next
    const field = Math.floor(tag.value / 8)
    const wire = tag.value % 8
    if (wire === 0) {
      const v = readVarint(bytes, at)
      if (v === undefined || v.next > end) return false
      visit(field, v.value)
      at = v.next
    } else if (wire === 2) {
      const l = readVarint(bytes, at)
      if (l === undefined || l.next + l.value > end) return false
      visit(field, bytes.subarray(l.next, l.next + l.value))
      at = l.next + l.value
    } else return false
  }
  return at === end
}

/** Decodes a length-prefixed HopMessage answer: `"incomplete"` while more bytes are needed, or `"malformed"`. */
export const parseHopAnswer = (bytes: Uint8Array): HopAnswer | "incomplete" | "malformed" => {
  const len = readVarint(bytes, 0)
  if (len === undefined) return bytes.length >= 10 ? "malformed" : "incomplete"
  if (len.value > MAX_HOP_ANSWER) return "malformed"
  const end = len.next + len.value
  if (bytes.length < end) return "incomplete"
  let status: number | undefined
  let expire: number | undefined
  const ok = fields(bytes, len.next, end, (field, value) => {
    if (field === 5 && typeof value === "number") status = value
    if (field === 3 && typeof value !== "number") {
      fields(value, 0, value.length, (f, v) => {
        if (f === 1 && typeof v === "number") expire = v
      })
    }
  })
  if (!ok || status === undefined) return "malformed"
  return expire === undefined ? { status } : { status, expire }
}

/** A relay status for people: its name and, for a refusal, what it usually means. */
export const describeRelayStatus = (status: number): string => {
  const name = RELAY_STATUS[status] ?? `status ${status}`
  if (status === 200) return `${name} (the relay is at its reservation limit)`
  if (status === 201) return `${name} (the relay is out of resources)`
  if (status === 202) return `${name} (the relay does not serve this node)`
  return name
}
