import { assert, describe, it } from "@effect/vitest"
import { multiaddr } from "@multiformats/multiaddr"
import { Either, Schema } from "effect"
import * as fc from "fast-check"
import { inspect } from "node:util"
import * as Base32 from "../../src/internal/base32.js"
import { concat, fromHex, toHex } from "../../src/internal/bytes.js"
import { Read, Write } from "../../src/schema/Capability.js"
import { NamespaceId, NamespaceSecret, secretSeed } from "../../src/schema/Keys.js"
import { NodeAddr, NodeId, peerIdFromNodeId } from "../../src/schema/NodeAddr.js"
import {
  ADDR_MODES,
  addrInfoOptionsOf,
  DEFAULT_ADDR_INFO_OPTIONS,
  DocTicket,
  DocTicketFromBytes,
  DocTicketFromString,
  filterAddrs,
  MAX_MULTIADDR_BYTES,
  MAX_NODE_ADDRS,
  MAX_TICKET_LENGTH,
  MAX_TICKET_NODES,
  parseTicket,
  ticketFromBytes,
  ticketToBytes,
  ticketToString
} from "../../src/schema/Ticket.js"

const NODE = fromHex("ae58ff8833241ac82d6ff7611046ed67b5072d142c588d0063e942d9a75502b6")!
const NS = new Uint8Array(32).fill(1)
// y = 2^255 - 1 ≥ p: not a canonical point encoding.
const NOT_A_POINT = concat(new Uint8Array(31).fill(0xff), Uint8Array.of(0x7f))

const show = (t: DocTicket): string =>
  JSON.stringify({
    capability: t.capability._tag === "Write" ? `write:${toHex(secretSeed(t.capability.secret))}` : `read:${toHex(t.capability.id)}`,
    nodes: t.nodes.map((n) => ({ id: toHex(n.nodeId), addrs: n.addrs }))
  })

const reason = (s: string): string =>
  Either.match(parseTicket(s), { onLeft: (e) => e.reason, onRight: (t) => `parsed ${show(t)}` })
const reasonOfBytes = (b: Uint8Array): string =>
  Either.match(ticketFromBytes(b), { onLeft: (e) => e.reason, onRight: (t) => `parsed ${show(t)}` })

const readTicket = (addrs: ReadonlyArray<string> = []) =>
  new DocTicket({
    capability: new Read({ id: NamespaceId.make(NS) }),
    nodes: [new NodeAddr({ nodeId: NodeId.make(NODE), addrs })]
  })

/** variant ‖ Read ‖ ns ‖ one node ‖ id: the prefix of every hand-built ticket below. */
const head = concat(Uint8Array.of(0x00, 0x01), NS, Uint8Array.of(0x01), NODE)
const str = (bytes: Uint8Array) => "doc" + Base32.encode(bytes)

describe("DocTicket", () => {
  it("the reference layout (spec 06 §6): Read, one node without addresses", () => {
    const bytes = ticketToBytes(readTicket())
    assert.strictEqual(toHex(bytes), "0001" + toHex(NS) + "01" + toHex(NODE) + "00")
    const s = ticketToString(readTicket())
    // Independently computed (Python's base64.b32encode, lowercased, padding stripped).
    assert.strictEqual(
      s,
      "docaaaqcaibaeaqcaibaeaqcaibaeaqcaibaeaqcaibaeaqcaibaeaqcaibvzmp7cbteqnmqllp65qrarxnm62qoliufrmi2add5fbntj2vak3aa"
    )
    assert.strictEqual(s, "doc" + Base32.encode(bytes))
    assert.match(s, /^doc[a-z2-7]+$/)
    assert.strictEqual(reason(s), `parsed ${show(readTicket())}`)
  })

  it("Write capability is 0x00 followed by the 32-byte secret", () => {
    const secret = NamespaceSecret.fromSeed(new Uint8Array(32).fill(9))
    const t = new DocTicket({ capability: new Write({ secret }), nodes: readTicket().nodes })
    assert.strictEqual(toHex(ticketToBytes(t)), "0000" + "09".repeat(32) + "01" + toHex(NODE) + "00")
    assert.strictEqual(reason(ticketToString(t)), `parsed ${show(t)}`)
  })

  it("addresses: varint count, then each binary multiaddr with a varint length", () => {
    const addrs = ["/ip4/127.0.0.1/tcp/4001", "/ip6/::1/udp/9/quic-v1"]
    const t = readTicket(addrs)
    const [a, b] = addrs.map((x) => multiaddr(x).bytes)
    assert.strictEqual(
      toHex(ticketToBytes(t)),
      toHex(concat(head, Uint8Array.of(2, a!.length), a!, Uint8Array.of(b!.length), b!))
    )
    assert.strictEqual(reason(ticketToString(t)), `parsed ${show(t)}`)
  })

  it("emits lowercase; parses either case of the base32 part", () => {
    const s = ticketToString(readTicket(["/ip4/10.0.0.1/tcp/1"]))
    assert.strictEqual(s, s.toLowerCase())
    assert.strictEqual(reason("doc" + s.slice(3).toUpperCase()), `parsed ${show(readTicket(["/ip4/10.0.0.1/tcp/1"]))}`)
  })

  it("a ticket without nodes can be built and printed, but not parsed", () => {
    const t = new DocTicket({ capability: readTicket().capability, nodes: [] })
    assert.strictEqual(toHex(ticketToBytes(t)), "0001" + toHex(NS) + "00")
    assert.strictEqual(reason(ticketToString(t)), "addressing info cannot be empty")
  })

  describe("rejects", () => {
    const valid = ticketToBytes(readTicket(["/ip4/127.0.0.1/tcp/4001"]))

    it("a wrong or missing prefix", () => {
      const body = ticketToString(readTicket()).slice(3)
      for (const s of ["", "do", "blob" + body, "DOC" + body, "dox" + body, body]) {
        assert.strictEqual(reason(s), `missing "doc" prefix`, s)
      }
    })

    it("bad base32: padding, characters outside the alphabet, impossible lengths, trailing bits", () => {
      const body = ticketToString(readTicket()).slice(3)
      assert.match(reason("doc" + body + "="), /^invalid base32/)
      assert.match(reason("doc" + body.slice(0, -1) + "1"), /^invalid base32 character/)
      assert.match(reason("doc" + body.slice(0, -1) + "0"), /^invalid base32 character/)
      assert.match(reason("doc!" + body.slice(1)), /^invalid base32 character at position 0/)
      assert.strictEqual(reason("doca"), "invalid base32 length 1")
      assert.strictEqual(reason("docab"), "non-zero trailing bits in base32")
      assert.strictEqual(reason("doc"), "truncated")
    })

    it("an unknown variant", () => {
      assert.strictEqual(reasonOfBytes(concat(Uint8Array.of(1), valid.subarray(1))), "unknown ticket variant 1")
      assert.strictEqual(reason(str(Uint8Array.of(0x80, 0x01))), "unknown ticket variant 128")
    })

    it("an unknown capability byte", () => {
      assert.strictEqual(reasonOfBytes(concat(Uint8Array.of(0, 2), valid.subarray(2))), "unknown capability kind 2")
    })

    it("every truncation", () => {
      for (let n = 0; n < valid.length; n++) assert.strictEqual(reasonOfBytes(valid.subarray(0, n)), "truncated", `at ${n}`)
    })

    it("trailing bytes", () => {
      assert.strictEqual(reasonOfBytes(concat(valid, Uint8Array.of(0))), "1 trailing bytes")
      assert.strictEqual(reasonOfBytes(concat(valid, Uint8Array.of(1, 2, 3))), "3 trailing bytes")
    })

    it("undecodable or non-canonical multiaddrs", () => {
      const unknownProtocol = Uint8Array.of(0xff, 0xff, 0x03)
      assert.strictEqual(reasonOfBytes(concat(head, Uint8Array.of(1, 3), unknownProtocol)), "undecodable multiaddr")
      const cutIp4 = Uint8Array.of(0x04, 127, 0, 0)
      assert.strictEqual(reasonOfBytes(concat(head, Uint8Array.of(1, 4), cutIp4)), "undecodable multiaddr")
      const long = new Uint8Array(MAX_MULTIADDR_BYTES + 1)
      assert.strictEqual(
        reasonOfBytes(concat(head, Uint8Array.of(1, 0x81, 0x08), long)),
        `multiaddr of ${MAX_MULTIADDR_BYTES + 1} bytes exceeds ${MAX_MULTIADDR_BYTES}`
      )
    })

    it("node ids and read namespace ids that are not valid public keys", () => {
      const badNode = concat(Uint8Array.of(0, 1), NS, Uint8Array.of(1), NOT_A_POINT, Uint8Array.of(0))
      assert.strictEqual(reasonOfBytes(badNode), "node id is not a valid Ed25519 public key")
      const smallOrder = concat(Uint8Array.of(0, 1), NS, Uint8Array.of(1), new Uint8Array(32), Uint8Array.of(0))
      assert.strictEqual(reasonOfBytes(smallOrder), "node id is not a valid Ed25519 public key")
      const badNs = concat(Uint8Array.of(0, 1), NOT_A_POINT, Uint8Array.of(1), NODE, Uint8Array.of(0))
      assert.strictEqual(reasonOfBytes(badNs), "namespace id is not a valid Ed25519 public key")
      // A Write secret is any 32 bytes.
      const write = concat(Uint8Array.of(0, 0), NOT_A_POINT, Uint8Array.of(1), NODE, Uint8Array.of(0))
      assert.isTrue(Either.isRight(ticketFromBytes(write)))
    })

    it("an empty node list", () => {
      assert.strictEqual(reasonOfBytes(concat(Uint8Array.of(0, 1), NS, Uint8Array.of(0))), "addressing info cannot be empty")
    })

    it("oversized node and address counts, and oversized strings", () => {
      assert.strictEqual(
        reasonOfBytes(concat(Uint8Array.of(0, 1), NS, Uint8Array.of(MAX_TICKET_NODES + 1))),
        `${MAX_TICKET_NODES + 1} nodes exceed ${MAX_TICKET_NODES}`
      )
      assert.strictEqual(
        reasonOfBytes(concat(head, Uint8Array.of(MAX_NODE_ADDRS + 1))),
        `${MAX_NODE_ADDRS + 1} addresses exceed ${MAX_NODE_ADDRS}`
      )
      assert.strictEqual(reason("doc" + "a".repeat(MAX_TICKET_LENGTH)), `longer than ${MAX_TICKET_LENGTH} characters`)
      assert.strictEqual(reasonOfBytes(concat(Uint8Array.of(0, 1), NS, Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0x7f))), "34359738367 nodes exceed 64")
    })
  })

  describe("a Write ticket keeps its secret", () => {
    const secret = NamespaceSecret.fromSeed(new Uint8Array(32).fill(0xab))
    const ticket = new DocTicket({ capability: new Write({ secret }), nodes: readTicket(["/ip4/1.2.3.4/tcp/5"]).nodes })
    const s = ticketToString(ticket)
    const leaks = (text: string) => text.includes("ab".repeat(32)) || text.includes(s.slice(3, 40)) || text.includes("171,171")

    it("out of toString, toJSON and inspect", () => {
      assert.isFalse(leaks(String(ticket)))
      assert.isFalse(leaks(JSON.stringify(ticket)))
      assert.isFalse(leaks(inspect(ticket, { depth: 20 })))
    })

    it("out of parse errors", () => {
      const result = Schema.decodeUnknownEither(DocTicketFromString)(s + "aaaaaaaa")
      assert.isTrue(Either.isLeft(result))
      if (Either.isLeft(result)) {
        assert.include(result.left.message, "invalid ticket: 5 trailing bytes")
        assert.isFalse(leaks(result.left.message))
        assert.isFalse(leaks(JSON.stringify(result.left)))
        assert.isFalse(leaks(inspect(result.left, { depth: 20 })))
      }
      const invalid = parseTicket(s.slice(0, -3))
      assert.isTrue(Either.isLeft(invalid))
      if (Either.isLeft(invalid)) {
        assert.isFalse(leaks(invalid.left.message))
        assert.isFalse(leaks(JSON.stringify(invalid.left)))
      }
    })
  })

  describe("AddrInfoOptions", () => {
    const relay = `/ip4/5.6.7.8/tcp/1/p2p/${peerIdFromNodeId(NodeId.make(NODE)).toString()}/p2p-circuit`
    const direct = ["/ip4/127.0.0.1/tcp/4001", "/ip6/::1/tcp/4001"]
    const addr = new NodeAddr({ nodeId: NodeId.make(NODE), addrs: [direct[0]!, relay, direct[1]!] })
    it("selects which addresses go into a ticket", () => {
      assert.deepStrictEqual(filterAddrs(addr, "Id").addrs, [])
      assert.deepStrictEqual(filterAddrs(addr, "Relay").addrs, [relay])
      assert.deepStrictEqual(filterAddrs(addr, "Addresses").addrs, direct)
      assert.deepStrictEqual(filterAddrs(addr, "RelayAndAddresses").addrs, addr.addrs)
      for (const o of ["Id", "Relay", "Addresses", "RelayAndAddresses"] as const) {
        assert.strictEqual(toHex(filterAddrs(addr, o).nodeId), toHex(NODE))
      }
    })
    it("issue 17: doc share --addr direct|relay|both|none names them; the default carries every address", () => {
      assert.deepStrictEqual(ADDR_MODES.map(addrInfoOptionsOf), ["Addresses", "Relay", "RelayAndAddresses", "Id"])
      assert.deepStrictEqual(filterAddrs(addr, DEFAULT_ADDR_INFO_OPTIONS).addrs, addr.addrs)
      // A node-id-only ticket parses (its node has no addresses; the joiner looks the node up).
      const idOnly = new DocTicket({ capability: new Read({ id: NamespaceId.make(NODE) }), nodes: [filterAddrs(addr, "Id")] })
      const parsed = parseTicket(ticketToString(idOnly))
      assert.isTrue(Either.isRight(parsed) && parsed.right.nodes[0]!.addrs.length === 0)
    })
  })

  describe("round trip", () => {
    const arbKey = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((seed) => NamespaceSecret.fromSeed(seed))
    const arbCapability = fc.oneof(
      arbKey.map((secret) => new Write({ secret })),
      arbKey.map((k) => new Read({ id: k.id }))
    )
    const arbIp4 = fc.ipV4()
    const arbAddr = fc.oneof(
      fc.tuple(arbIp4, fc.constantFrom("tcp", "udp"), fc.nat({ max: 65535 })).map(([ip, p, port]) => `/ip4/${ip}/${p}/${port}`),
      fc.tuple(fc.ipV6(), fc.nat({ max: 65535 })).map(([ip, port]) => multiaddr(`/ip6/${ip}/tcp/${port}`).toString()),
      fc.tuple(fc.domain(), fc.nat({ max: 65535 })).map(([d, port]) => `/dns4/${d}/tcp/${port}`),
      fc.tuple(arbIp4, fc.nat({ max: 65535 })).map(([ip, port]) => `/ip4/${ip}/tcp/${port}/ws`),
      fc.tuple(arbIp4, fc.nat({ max: 65535 }), arbKey).map(([ip, port, k]) =>
        `/ip4/${ip}/tcp/${port}/p2p/${peerIdFromNodeId(NodeId.make(k.id)).toString()}/p2p-circuit`
      )
    )
    const arbNode = fc.tuple(arbKey, fc.array(arbAddr, { maxLength: 4 })).map(([k, addrs]) =>
      new NodeAddr({ nodeId: NodeId.make(k.id), addrs })
    )
    const arbTicket = fc.tuple(arbCapability, fc.array(arbNode, { minLength: 1, maxLength: 4 })).map(([capability, nodes]) =>
      new DocTicket({ capability, nodes })
    )

    it("string and bytes, through the Schemas", () => {
      fc.assert(
        fc.property(arbTicket, (t) => {
          const s = Schema.encodeSync(DocTicketFromString)(t)
          assert.match(s, /^doc[a-z2-7]+$/)
          assert.strictEqual(show(Schema.decodeUnknownSync(DocTicketFromString)(s)), show(t))
          assert.strictEqual(show(Schema.decodeUnknownSync(DocTicketFromString)("doc" + s.slice(3).toUpperCase())), show(t))
          const b = Schema.encodeSync(DocTicketFromBytes)(t)
          assert.strictEqual(show(Schema.decodeUnknownSync(DocTicketFromBytes)(b)), show(t))
        }),
        { numRuns: 150 }
      )
    })
  })
})
