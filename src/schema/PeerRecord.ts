/**
 * Membership records (spec 05 §15, issue 15 "Membership"): a node's signed statement of where it can be reached, and
 * the two messages of the membership exchange that carry them.
 *
 * A `PeerRecord` is signed by the node it describes (its node id is its Ed25519 public key), so nobody can advertise
 * another node's address; the newest `timestamp` per node wins, so a node restarted on another port replaces its
 * old record. The signature covers `PEER_RECORD_DOMAIN ‖ body`, where body is the record's wire encoding without the
 * signature: postcard is canonical (overlong varints are rejected), so the signed bytes are exactly the bytes read.
 *
 * Wire layout (postcard):
 *
 * | Field | Encoding |
 * |-------|----------|
 * | `nodeId` | 32 bytes |
 * | `timestamp` | varint u64, µs since the Unix epoch |
 * | `addrs` | varint count (1 to {@link MAX_RECORD_ADDRS}), each a varint length (≤ {@link MAX_ADDR_LENGTH}) + UTF-8 |
 * | `signature` | 64 bytes |
 *
 * Every address must be a multiaddr in its canonical string form, exactly `/<ip4|ip6|dns|dns4|dns6>/<host>/tcp/<port>`,
 * optionally followed by `/ws` or `/wss` (WebSockets), and optionally by `/p2p/<relay's peer id>/p2p-circuit` (the node
 * is reached through that relay, issue 17): no other `/p2p/<id>` (the record names the node), no `/unix/` path
 * (libp2p's TCP transport would dial a local socket), no port 0 and no unspecified IP address. Decoding checks all of
 * that and the signature (strict Ed25519); the future-timestamp bound needs the time, so it is {@link checkRecordTime}.
 */
import { multiaddr } from "@multiformats/multiaddr"
import { Effect, Either, Option, ParseResult, Schema } from "effect"
import { concat, equals, latin1, utf8 } from "../internal/bytes.js"
import * as Ed from "../internal/ed25519.js"
import { PostcardError, type Reader, Writer } from "../internal/postcard.js"
import { trusted } from "../internal/trusted.js"
import { decodeWith, encodeWith } from "./Entry.js"
import { NamespaceId, Signature } from "./Keys.js"
import { NodeAddr, NodeId } from "./NodeAddr.js"

/** Domain separation of the record signature: no other signed message of the node can pass for a record. */
export const PEER_RECORD_DOMAIN = utf8("rangedocs-peer-record-v1")
/** Addresses a record may carry. */
export const MAX_RECORD_ADDRS = 8
/** UTF-8 bytes of one address. */
export const MAX_ADDR_LENGTH = 256
/** How far a record's timestamp may be ahead of the receiver's clock: 10 minutes, in µs. */
export const MAX_RECORD_FUTURE_MICROS = 10n * 60n * 1_000_000n
/** Records in one exchange message: a sample of at most 15 plus the sender's own. */
export const MAX_EXCHANGE_RECORDS = 16
/** Largest encoded record: 32 + 10 + 1 + 8 × (2 + 256) + 64 bytes. */
export const MAX_RECORD_SIZE = 32 + 10 + 1 + MAX_RECORD_ADDRS * (2 + MAX_ADDR_LENGTH) + 64
/** Largest exchange message (request or response), with room for its header. */
export const MAX_EXCHANGE_MESSAGE_SIZE = 64 + MAX_EXCHANGE_RECORDS * MAX_RECORD_SIZE

const MAX_U64 = (1n << 64n) - 1n

const utf8Strict = new TextDecoder("utf-8", { fatal: true })

/** The first component of a record's address: an IP address or a DNS name. */
const RECORD_HOSTS: ReadonlySet<string> = new Set(["ip4", "ip6", "dns", "dns4", "dns6"])

/** Why an address cannot go in a record, or undefined when it can. */
export const addrProblem = (addr: string): string | undefined => {
  if (utf8(addr).length > MAX_ADDR_LENGTH) return `address longer than ${MAX_ADDR_LENGTH} bytes`
  let canonical: string
  let parts: ReadonlyArray<{ readonly name: string; readonly value?: string | undefined }>
  try {
    const ma = multiaddr(addr)
    canonical = ma.toString()
    parts = ma.getComponents()
  } catch {
    return "not a multiaddr"
  }
  if (canonical !== addr) return "not a canonical multiaddr"
  const names = parts.map((c) => c.name)
  if (names.length === 0) return "empty multiaddr"
  // `<host>/tcp/<port>[/ws|/wss][/p2p/<relay>/p2p-circuit]`: libp2p's TCP transport would also dial a `/unix/` path,
  // which would let a record point us at a local socket, so nothing else is accepted.
  let rest = parts
  if (names[names.length - 1] === "p2p-circuit") {
    if (names.length < 4 || names[names.length - 2] !== "p2p") return "relay address without the relay's peer id"
    rest = parts.slice(0, -2)
  }
  const restNames = rest.map((c) => c.name)
  if (restNames.includes("p2p-circuit")) return "relay address through a relay"
  if (restNames.includes("p2p")) return "address names a peer"
  if (rest.length === 3) {
    if (rest[2]!.name !== "ws" && rest[2]!.name !== "wss") return "not a host and a TCP port"
    rest = rest.slice(0, 2)
  }
  const [host, tcp] = rest
  if (rest.length !== 2 || !RECORD_HOSTS.has(host!.name) || tcp!.name !== "tcp") return "not a host and a TCP port"
  if (tcp!.value === "0") return "TCP port 0"
  if (host!.value === "0.0.0.0" || host!.value === "::") return "unspecified IP address"
  return undefined
}

/** Relay addresses a record keeps room for, however many direct addresses the node has. */
export const RECORD_RELAY_ADDRS = 4

/**
 * The addresses of `addrs` that may go in a record, at most {@link MAX_RECORD_ADDRS}, duplicates removed: up to
 * {@link RECORD_RELAY_ADDRS} relay addresses, and direct addresses before them filling the rest, in the given order.
 */
export const recordableAddrs = (addrs: ReadonlyArray<string>): ReadonlyArray<string> => {
  const ok = [...new Set(addrs)].filter((a) => addrProblem(a) === undefined)
  const relayed = ok.filter((a) => a.endsWith("/p2p-circuit")).slice(0, RECORD_RELAY_ADDRS)
  const direct = ok.filter((a) => !a.endsWith("/p2p-circuit")).slice(0, MAX_RECORD_ADDRS - relayed.length)
  return [...direct, ...relayed]
}

const RecordAddr = Schema.String.pipe(Schema.filter((a) => {
  const problem = addrProblem(a)
  return problem === undefined || `${problem}: ${a.slice(0, 64)}`
}))

const U64 = Schema.BigIntFromSelf.pipe(Schema.filter((n) => (n >= 0n && n <= MAX_U64) || "not a u64"))

/** A node's signed addresses (see the module doc). Build one with {@link signPeerRecord}; decode with the codec. */
export class PeerRecord extends Schema.Class<PeerRecord>("PeerRecord")({
  nodeId: NodeId,
  timestamp: U64,
  addrs: Schema.Array(RecordAddr).pipe(Schema.minItems(1), Schema.maxItems(MAX_RECORD_ADDRS)),
  signature: Signature
}) {
  get nodeAddr(): NodeAddr {
    return new NodeAddr({ nodeId: this.nodeId, addrs: this.addrs }, true)
  }
}

const fixed = (what: string, bytes: Uint8Array, n: number): Uint8Array => {
  if (bytes.length !== n) throw new PostcardError(`${what} of ${bytes.length} bytes, expected ${n}`)
  return bytes
}

const writeBody = (w: Writer, nodeId: Uint8Array, timestamp: bigint, addrs: ReadonlyArray<string>): void => {
  w.raw(fixed("nodeId", nodeId, 32)).varint64(timestamp).varint(addrs.length)
  for (const a of addrs) w.bytes(utf8(a))
}

/** The bytes a record's signature covers. */
export const signedBytes = (nodeId: Uint8Array, timestamp: bigint, addrs: ReadonlyArray<string>): Uint8Array => {
  const w = new Writer(64 + addrs.length * 32)
  w.raw(PEER_RECORD_DOMAIN)
  writeBody(w, nodeId, timestamp, addrs)
  return w.finish()
}

/**
 * The record of `nodeId` at `timestamp` for the recordable ones among `addrs`, signed with `sign` (the node's key);
 * none when no address can go in a record.
 */
export const signPeerRecord = (
  nodeId: NodeId,
  timestamp: bigint,
  addrs: ReadonlyArray<string>,
  sign: (message: Uint8Array) => Effect.Effect<Uint8Array>
): Effect.Effect<Option.Option<PeerRecord>> => {
  const kept = recordableAddrs(addrs)
  if (kept.length === 0) return Effect.succeed(Option.none())
  return Effect.map(
    sign(signedBytes(nodeId, timestamp, kept)),
    (signature) => Option.some(new PeerRecord({ nodeId, timestamp, addrs: kept, signature: Signature.make(signature) }))
  )
}

/** A record from its fields and a signature made over {@link signedBytes}; fails if anything is out of bounds. */
export const makePeerRecord = (
  fields: { readonly nodeId: NodeId; readonly timestamp: bigint; readonly addrs: ReadonlyArray<string>; readonly signature: Uint8Array }
): PeerRecord => new PeerRecord({ ...fields, signature: Signature.make(fields.signature) })

export const writePeerRecord = (w: Writer, record: PeerRecord): void => {
  writeBody(w, record.nodeId, record.timestamp, record.addrs)
  w.raw(fixed("signature", record.signature, 64))
}

/**
 * Records read and checked lately, by signature, with their bytes: membership messages carry the same records again
 * and again (every shuffle, every join), and checking one costs a curve point decompression, a signature check and a
 * multiaddr parse per address (3.6 % of the CPU of a twenty-node swarm converging in one process, Swarm.test). A
 * record whose bytes equal a checked one's is that record. Bounded: past {@link CHECKED_RECORDS}, the oldest leaves
 * (at most ~5 MB for records of the largest size; records signed with fresh keys only evict, at the cost of a check).
 */
const checkedRecords = new Map<string, { readonly bytes: Uint8Array; readonly record: PeerRecord }>()
const CHECKED_RECORDS = 1024

/**
 * The record at the reader's offset if its bytes equal a checked record's, the reader then past it; otherwise
 * undefined and the reader where it was (the full read decides, with its own errors).
 */
const recallRecord = (r: Reader): PeerRecord | undefined => {
  const start = r.offset
  try {
    r.skip(32)
    r.varint64()
    const count = r.varint(MAX_RECORD_ADDRS)
    for (let i = 0; i < count; i++) r.skip(r.varint(MAX_ADDR_LENGTH))
    const signature = r.skip(64)
    const checked = checkedRecords.get(latin1(r.buf.subarray(signature, signature + 64)))
    if (checked !== undefined && equals(checked.bytes, r.buf.subarray(start, r.offset))) return checked.record
  } catch (e) {
    if (!(e instanceof PostcardError)) throw e
  }
  r.offset = start
  return undefined
}

/** Reads and checks one record: every bound of the module doc and the signature (once per distinct record). */
export const readPeerRecord = (r: Reader): PeerRecord => {
  const recalled = recallRecord(r)
  if (recalled !== undefined) return recalled
  const start = r.offset
  const nodeId = NodeId.make(r.raw(32), true)
  const timestamp = r.varint64()
  const count = r.varint(MAX_RECORD_ADDRS)
  if (count === 0) throw new PostcardError("a record without addresses")
  const addrs: Array<string> = []
  for (let i = 0; i < count; i++) {
    let addr: string
    try {
      addr = utf8Strict.decode(r.bytes(MAX_ADDR_LENGTH))
    } catch (e) {
      if (e instanceof PostcardError) throw e
      throw new PostcardError("address is not UTF-8")
    }
    const problem = addrProblem(addr)
    if (problem !== undefined) throw new PostcardError(`${problem}: ${addr.slice(0, 64)}`)
    addrs.push(addr)
  }
  const body = r.copy(start, r.offset)
  const signature = Signature.make(r.raw(64), true)
  const key = Ed.publicKeyObject(nodeId)
  if (key === undefined) throw new PostcardError("node id is not a valid Ed25519 key")
  if (!Ed.verify(key, concat(PEER_RECORD_DOMAIN, body), signature)) {
    throw new PostcardError("bad record signature")
  }
  const record = trusted(PeerRecord.prototype, { nodeId, timestamp, addrs, signature })
  if (checkedRecords.size >= CHECKED_RECORDS) checkedRecords.delete(checkedRecords.keys().next().value!)
  checkedRecords.set(latin1(signature), { bytes: r.copy(start, r.offset), record })
  return record
}

/** A postcard codec for `to` that refuses input over `max` bytes before reading it. */
const codec = <A, I>(
  to: Schema.Schema<A, I>,
  what: string,
  max: number,
  read: (r: Reader) => A,
  write: (w: Writer, a: A) => void
) =>
  Schema.transformOrFail(Schema.Uint8ArrayFromSelf, Schema.typeSchema(to), {
    strict: true,
    decode: (bytes, _, ast) =>
      bytes.length > max
        ? ParseResult.fail(new ParseResult.Type(ast, bytes, `${what} of ${bytes.length} bytes, max ${max}`))
        : decodeWith(read)(bytes, ast),
    encode: (a, _, ast) => {
      try {
        return ParseResult.succeed(encodeWith(write)(a))
      } catch (e) {
        if (e instanceof PostcardError) return ParseResult.fail(new ParseResult.Type(ast, a, e.message))
        throw e
      }
    }
  })

/** PeerRecord ⇄ postcard bytes; malformed, oversized or badly signed input fails with a ParseError. */
export const PeerRecordFromBytes = codec(PeerRecord, "record", MAX_RECORD_SIZE, readPeerRecord, writePeerRecord)

/** Why a well-signed record is still refused. */
export type RecordTimeProblem = "TooFarInTheFuture"

/** Checks the record's timestamp against the receiver's clock (µs): at most 10 minutes ahead. */
export const checkRecordTime = (record: PeerRecord, nowMicros: bigint): Either.Either<PeerRecord, RecordTimeProblem> =>
  record.timestamp > nowMicros + MAX_RECORD_FUTURE_MICROS ? Either.left("TooFarInTheFuture") : Either.right(record)

export const peerRecordEquals = (a: PeerRecord, b: PeerRecord): boolean =>
  equals(a.nodeId, b.nodeId) && a.timestamp === b.timestamp && equals(a.signature, b.signature) &&
  a.addrs.length === b.addrs.length && a.addrs.every((x, i) => x === b.addrs[i])

// ---------------------------------------------------------------------------------------------------------------
// The membership exchange: one request, one response per stream

/** A member's offer: its own record first, then a sample of the members it knows of `namespace`. */
export class MembersRequest extends Schema.Class<MembersRequest>("MembersRequest")({
  namespace: NamespaceId,
  records: Schema.Array(PeerRecord).pipe(Schema.maxItems(MAX_EXCHANGE_RECORDS))
}) {}

/** The answer of a member of the namespace: its own record, then a sample of the others it knows. */
export class Members extends Schema.TaggedClass<Members>()("Members", {
  records: Schema.Array(PeerRecord).pipe(Schema.maxItems(MAX_EXCHANGE_RECORDS))
}) {}

/** The answer of a node that has not joined the namespace (it tells nothing about it). */
export class NotMember extends Schema.TaggedClass<NotMember>()("NotMember", {}) {}

export const MembersResponse = Schema.Union(Members, NotMember)
export type MembersResponse = typeof MembersResponse.Type

const writeRecords = (w: Writer, records: ReadonlyArray<PeerRecord>): void => {
  if (records.length > MAX_EXCHANGE_RECORDS) throw new PostcardError(`${records.length} records, max ${MAX_EXCHANGE_RECORDS}`)
  w.varint(records.length)
  for (const record of records) writePeerRecord(w, record)
}

const readRecords = (r: Reader): ReadonlyArray<PeerRecord> => {
  const n = r.varint(MAX_EXCHANGE_RECORDS)
  const records: Array<PeerRecord> = []
  for (let i = 0; i < n; i++) records.push(readPeerRecord(r))
  return records
}

export const writeMembersRequest = (w: Writer, m: MembersRequest): void => {
  w.raw(fixed("namespace", m.namespace, 32))
  writeRecords(w, m.records)
}

/**
 * The namespace a MembersRequest names (its first 32 bytes), read without decoding the records or checking their
 * signatures: a server looks it up, and spends verifications only on documents it joined. None when too short.
 */
export const membersRequestNamespace = (bytes: Uint8Array): Option.Option<NamespaceId> =>
  bytes.length < 32 ? Option.none() : Option.some(NamespaceId.make(bytes.slice(0, 32), true))

export const readMembersRequest = (r: Reader): MembersRequest =>
  trusted(MembersRequest.prototype, { namespace: NamespaceId.make(r.raw(32), true), records: readRecords(r) })

export const writeMembersResponse = (w: Writer, m: MembersResponse): void => {
  if (m._tag === "NotMember") {
    w.varint(1)
    return
  }
  w.varint(0)
  writeRecords(w, m.records)
}

export const readMembersResponse = (r: Reader): MembersResponse => {
  const tag = r.varint()
  switch (tag) {
    case 0:
      return trusted(Members.prototype, { records: readRecords(r), _tag: "Members" })
    case 1:
      return trusted(NotMember.prototype, { _tag: "NotMember" })
    default:
      throw new PostcardError(`unknown MembersResponse variant ${tag}`)
  }
}

/** MembersRequest ⇄ postcard bytes; malformed or oversized input, or any bad record, fails with a ParseError. */
export const MembersRequestFromBytes = codec(
  MembersRequest,
  "message",
  MAX_EXCHANGE_MESSAGE_SIZE,
  readMembersRequest,
  writeMembersRequest
)
/** MembersResponse ⇄ postcard bytes; malformed or oversized input, or any bad record, fails with a ParseError. */
export const MembersResponseFromBytes = codec(
  MembersResponse,
  "message",
  MAX_EXCHANGE_MESSAGE_SIZE,
  readMembersResponse,
  writeMembersResponse
)

