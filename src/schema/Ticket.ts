/**
 * `DocTicket`: a capability plus the nodes to sync with (spec 06 §6). String form `doc` + lowercase unpadded base32 of
 *
 *   0x00 (variant) ‖ capability (0x00 ‖ secret | 0x01 ‖ namespace id) ‖ varint n ‖ n × node
 *   node = 32-byte node id ‖ varint m ‖ m × (varint len ‖ binary multiaddr)
 *
 * The capability part is byte-compatible with the reference; nodes carry multiaddrs instead of iroh addresses.
 * A Write ticket contains the namespace secret: its string form is the secret, so it is produced only on request
 * (`ticketToString`), never by toString/toJSON/inspect, and parse errors never quote the input.
 */
import { type Multiaddr, multiaddr } from "@multiformats/multiaddr"
import { Either, ParseResult, Redacted, Schema } from "effect"
import * as Base32 from "../internal/base32.js"
import { equals } from "../internal/bytes.js"
import * as Ed from "../internal/ed25519.js"
import { PostcardError, Reader, Writer } from "../internal/postcard.js"
import { Capability, Read, Write } from "./Capability.js"
import { InvalidTicket } from "./DocsErrors.js"
import { NamespaceId, NamespaceSecret, secretSeed } from "./Keys.js"
import { NodeAddr, NodeId } from "./NodeAddr.js"

export const TICKET_PREFIX = "doc"
/** Decoder limits: far above what `Share` produces (one node, its listen addresses). */
export const MAX_TICKET_NODES = 64
export const MAX_NODE_ADDRS = 64
export const MAX_MULTIADDR_BYTES = 1024
export const MAX_TICKET_LENGTH = 65536

export class DocTicket extends Schema.Class<DocTicket>("DocTicket")({
  capability: Capability,
  nodes: Schema.Array(NodeAddr)
}) {}

/** Which of our addresses go into a shared ticket (spec 06 §6). */
export const AddrInfoOptions = Schema.Literal("Id", "Relay", "Addresses", "RelayAndAddresses")
export type AddrInfoOptions = typeof AddrInfoOptions.Type

/**
 * The CLI's names of {@link AddrInfoOptions} (`doc share --addr`, issue 17): `direct` → Addresses, `relay` → Relay,
 * `both` → RelayAndAddresses, `none` → Id (the node id alone; joiners find the node by mDNS, the address book,
 * membership or their relays).
 */
export const ADDR_MODES = ["direct", "relay", "both", "none"] as const
export type AddrMode = typeof ADDR_MODES[number]

export const addrInfoOptionsOf = (mode: AddrMode): AddrInfoOptions => {
  switch (mode) {
    case "direct":
      return "Addresses"
    case "relay":
      return "Relay"
    case "both":
      return "RelayAndAddresses"
    case "none":
      return "Id"
  }
}

/**
 * What a ticket carries when the sharer names no mode: every address, direct and relayed, so that the ticket works
 * wherever one of them does (a node without relays has no relayed ones, so this is its direct addresses).
 */
export const DEFAULT_ADDR_INFO_OPTIONS: AddrInfoOptions = "RelayAndAddresses"

/** Share a Read or a Write capability. */
export const ShareMode = Schema.Literal("Read", "Write")
export type ShareMode = typeof ShareMode.Type

const isRelayAddr = (addr: string): boolean => multiaddr(addr).getComponents().some((c) => c.name === "p2p-circuit")

/** `Id` → no addresses, `Relay` → only `/p2p-circuit` ones, `Addresses` → only direct ones, `RelayAndAddresses` → all. */
export const filterAddrs = (addr: NodeAddr, options: AddrInfoOptions): NodeAddr => {
  switch (options) {
    case "Id":
      return new NodeAddr({ nodeId: addr.nodeId, addrs: [] })
    case "Relay":
      return new NodeAddr({ nodeId: addr.nodeId, addrs: addr.addrs.filter(isRelayAddr) })
    case "Addresses":
      return new NodeAddr({ nodeId: addr.nodeId, addrs: addr.addrs.filter((a) => !isRelayAddr(a)) })
    case "RelayAndAddresses":
      return addr
  }
}

export const ticketToBytes = (ticket: DocTicket): Uint8Array => {
  const w = new Writer()
  w.varint(0)
  const cap = ticket.capability
  if (cap._tag === "Write") w.varint(0).raw(secretSeed(cap.secret))
  else w.varint(1).raw(cap.id)
  w.varint(ticket.nodes.length)
  for (const node of ticket.nodes) {
    w.raw(node.nodeId).varint(node.addrs.length)
    for (const a of node.addrs) w.bytes(multiaddr(a).bytes)
  }
  return w.finish()
}

/** The ticket string. For a Write ticket this is the namespace secret in disguise: hand it only to its recipient. */
export const ticketToString = (ticket: DocTicket): string => TICKET_PREFIX + Base32.encode(ticketToBytes(ticket))

class Invalid {
  constructor(readonly reason: string) {}
}

const readVarint = (r: Reader, what: string): number => {
  try {
    return r.varint()
  } catch (e) {
    if (e instanceof PostcardError) {
      throw new Invalid(e.message === "unexpected end of input" ? "truncated" : `${what}: ${e.message}`)
    }
    throw e
  }
}

const readRaw = (r: Reader, n: number): Uint8Array => {
  if (r.remaining < n) throw new Invalid("truncated")
  return r.raw(n)
}

const readPublicKey = (r: Reader, what: string): Uint8Array => {
  const bytes = readRaw(r, 32)
  if (Ed.publicKeyObject(bytes) === undefined) throw new Invalid(`${what} is not a valid Ed25519 public key`)
  return bytes
}

const readCapability = (r: Reader): Capability => {
  const kind = readVarint(r, "capability kind")
  if (kind === 0) return new Write({ secret: NamespaceSecret.fromSeed(readRaw(r, 32)) })
  if (kind === 1) return new Read({ id: NamespaceId.make(readPublicKey(r, "namespace id")) })
  throw new Invalid(`unknown capability kind ${kind}`)
}

const readMultiaddr = (r: Reader): string => {
  const len = readVarint(r, "multiaddr length")
  if (len > MAX_MULTIADDR_BYTES) throw new Invalid(`multiaddr of ${len} bytes exceeds ${MAX_MULTIADDR_BYTES}`)
  const bytes = readRaw(r, len)
  let ma: Multiaddr
  try {
    ma = multiaddr(bytes)
  } catch {
    throw new Invalid("undecodable multiaddr")
  }
  // Only the canonical encoding, so a ticket's bytes and its value correspond one to one.
  if (!equals(ma.bytes, bytes)) throw new Invalid("undecodable multiaddr")
  return ma.toString()
}

const readNode = (r: Reader): NodeAddr => {
  const nodeId = NodeId.make(readPublicKey(r, "node id"))
  const count = readVarint(r, "address count")
  if (count > MAX_NODE_ADDRS) throw new Invalid(`${count} addresses exceed ${MAX_NODE_ADDRS}`)
  const addrs: Array<string> = []
  for (let i = 0; i < count; i++) addrs.push(readMultiaddr(r))
  return new NodeAddr({ nodeId, addrs })
}

const decodeTicket = (bytes: Uint8Array): DocTicket => {
  const r = new Reader(bytes)
  const variant = readVarint(r, "variant")
  if (variant !== 0) throw new Invalid(`unknown ticket variant ${variant}`)
  const capability = readCapability(r)
  const count = readVarint(r, "node count")
  if (count > MAX_TICKET_NODES) throw new Invalid(`${count} nodes exceed ${MAX_TICKET_NODES}`)
  const nodes: Array<NodeAddr> = []
  for (let i = 0; i < count; i++) nodes.push(readNode(r))
  if (r.remaining > 0) throw new Invalid(`${r.remaining} trailing bytes`)
  if (nodes.length === 0) throw new Invalid("addressing info cannot be empty")
  return new DocTicket({ capability, nodes })
}

/** Decodes the binary form; refuses an empty node list, as the reference does. */
export const ticketFromBytes = (bytes: Uint8Array): Either.Either<DocTicket, InvalidTicket> => {
  try {
    return Either.right(decodeTicket(bytes))
  } catch (e) {
    if (e instanceof Invalid) return Either.left(new InvalidTicket({ reason: e.reason }))
    throw e
  }
}

/** Parses `doc…`; the base32 part may be in either case, the prefix must be lowercase `doc`. */
export const parseTicket = (s: string): Either.Either<DocTicket, InvalidTicket> => {
  if (!s.startsWith(TICKET_PREFIX)) return Either.left(new InvalidTicket({ reason: `missing "${TICKET_PREFIX}" prefix` }))
  if (s.length > MAX_TICKET_LENGTH) {
    return Either.left(new InvalidTicket({ reason: `longer than ${MAX_TICKET_LENGTH} characters` }))
  }
  return Base32.decode(s.slice(TICKET_PREFIX.length)).pipe(
    Either.mapLeft((reason) => new InvalidTicket({ reason })),
    Either.flatMap(ticketFromBytes)
  )
}

// The failing input is kept Redacted: a Write ticket string is a secret.
const invalid = (ast: Schema.Schema.Any["ast"], input: unknown) => (e: InvalidTicket) =>
  new ParseResult.Type(ast, Redacted.make(input), e.message)

/** Ticket string ⇄ DocTicket. */
export const DocTicketFromString = Schema.transformOrFail(Schema.String, Schema.typeSchema(DocTicket), {
  strict: true,
  decode: (s, _, ast) => Either.mapLeft(parseTicket(s), invalid(ast, s)),
  encode: (t) => ParseResult.succeed(ticketToString(t))
})

/** Ticket bytes (without prefix and base32) ⇄ DocTicket. */
export const DocTicketFromBytes = Schema.transformOrFail(Schema.Uint8ArrayFromSelf, Schema.typeSchema(DocTicket), {
  strict: true,
  decode: (b, _, ast) => Either.mapLeft(ticketFromBytes(b), invalid(ast, b)),
  encode: (t) => ParseResult.succeed(ticketToBytes(t))
})
