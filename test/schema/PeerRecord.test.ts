import { assert, describe, it } from "@effect/vitest"
import { Effect, Either, Option, Schema } from "effect"
import * as fc from "fast-check"
import { concat, utf8 } from "../../src/internal/bytes.js"
import * as Ed from "../../src/internal/ed25519.js"
import { Writer } from "../../src/internal/postcard.js"
import { NamespaceSecret } from "../../src/schema/Keys.js"
import { NodeId } from "../../src/schema/NodeAddr.js"
import {
  checkRecordTime,
  MAX_ADDR_LENGTH,
  MAX_EXCHANGE_RECORDS,
  MAX_RECORD_ADDRS,
  MAX_RECORD_FUTURE_MICROS,
  makePeerRecord,
  Members,
  MembersRequest,
  MembersRequestFromBytes,
  MembersResponseFromBytes,
  NotMember,
  PEER_RECORD_DOMAIN,
  type PeerRecord,
  peerRecordEquals,
  PeerRecordFromBytes,
  RECORD_RELAY_ADDRS,
  recordableAddrs,
  signedBytes,
  signPeerRecord
} from "../../src/schema/PeerRecord.js"

interface Key {
  readonly nodeId: NodeId
  readonly sign: (message: Uint8Array) => Effect.Effect<Uint8Array>
}

const keyOf = (seedByte: number): Key => {
  const seed = new Uint8Array(32).fill(seedByte)
  const secret = Ed.secretKeyObject(seed)
  return { nodeId: NodeId.make(Ed.publicKeyOf(seed)), sign: (m) => Effect.sync(() => Ed.sign(secret, m)) }
}

const X = keyOf(1)
const Y = keyOf(2)

const ADDR = "/ip4/127.0.0.1/tcp/4001"
const RELAY = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"

const recordOf = (key: Key, timestamp: bigint, addrs: ReadonlyArray<string> = [ADDR]): PeerRecord =>
  Option.getOrThrow(Effect.runSync(signPeerRecord(key.nodeId, timestamp, addrs, key.sign)))

/** Raw record bytes, signed by `signer` over exactly what is written (bounds are not checked here). */
const rawRecord = (
  nodeId: Uint8Array,
  timestamp: bigint,
  addrs: ReadonlyArray<Uint8Array>,
  signer: Key = X,
  count = addrs.length
): Uint8Array => {
  const w = new Writer()
  w.raw(nodeId).varint64(timestamp).varint(count)
  for (const a of addrs) w.bytes(a)
  const body = w.finish()
  const signature = Effect.runSync(signer.sign(concat(PEER_RECORD_DOMAIN, body)))
  return concat(body, signature)
}

const encode = Schema.encodeSync(PeerRecordFromBytes)
const decode = Schema.decodeEither(PeerRecordFromBytes)

const fails = (bytes: Uint8Array, why: string) => {
  const result = decode(bytes)
  assert.isTrue(Either.isLeft(result), `expected a failure: ${why}`)
  if (Either.isLeft(result)) assert.strictEqual(result.left._tag, "ParseError")
}

describe("PeerRecord", () => {
  it("round-trips and verifies", () => {
    const record = recordOf(X, 1_700_000_000_000_000n, [ADDR, "/ip6/::1/tcp/4002"])
    const bytes = encode(record)
    const back = decode(bytes)
    assert.isTrue(Either.isRight(back))
    if (Either.isRight(back)) assert.isTrue(peerRecordEquals(back.right, record))
    // The raw form is exactly what signedBytes covers, then the signature.
    assert.deepStrictEqual(
      bytes.subarray(0, bytes.length - 64),
      signedBytes(record.nodeId, record.timestamp, record.addrs).subarray(PEER_RECORD_DOMAIN.length)
    )
  })

  it("any recordable record round-trips", () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
        fc.array(fc.integer({ min: 1, max: 65535 }), { minLength: 1, maxLength: 12 }),
        (timestamp, ports) => {
          const record = recordOf(X, timestamp, ports.map((p) => `/ip4/10.0.0.1/tcp/${p}`))
          assert.isAtMost(record.addrs.length, MAX_RECORD_ADDRS)
          const back = decode(encode(record))
          return Either.isRight(back) && peerRecordEquals(back.right, record)
        }
      ),
      { numRuns: 100 }
    )
  })

  it("a record for node X signed by Y is rejected", () => {
    fails(rawRecord(X.nodeId, 5n, [utf8(ADDR)], Y), "X's record signed by Y")
    // The same bytes signed by X pass.
    assert.isTrue(Either.isRight(decode(rawRecord(X.nodeId, 5n, [utf8(ADDR)], X))))
  })

  it("any changed byte breaks the signature", () => {
    const bytes = encode(recordOf(X, 7n))
    for (const at of [0, 32, 35, bytes.length - 65, bytes.length - 1]) {
      const bad = Uint8Array.from(bytes)
      bad[at] = bad[at]! ^ 1
      fails(bad, `byte ${at} flipped`)
    }
  })

  it("a record read before is recalled only for equal bytes: every changed byte still fails, at any offset in a message", () => {
    const record = recordOf(X, 9n, [ADDR, "/ip4/10.0.0.2/tcp/4003"])
    const bytes = encode(record)
    const first = decode(bytes)
    assert.isTrue(Either.isRight(first))
    // Read again (now recalled): the same record, also when it is not first in its input.
    const again = decode(bytes)
    assert.isTrue(Either.isRight(again) && peerRecordEquals(again.right, record))
    if (Either.isRight(first) && Either.isRight(again)) assert.strictEqual(again.right, first.right, "the record read before")
    const response = Schema.encodeSync(MembersResponseFromBytes)(new Members({ records: [recordOf(Y, 3n), record] }))
    assert.deepStrictEqual(response.subarray(response.length - bytes.length), bytes, "the record ends the message")
    const back = Schema.decodeEither(MembersResponseFromBytes)(response)
    assert.isTrue(Either.isRight(back) && back.right._tag === "Members" && peerRecordEquals(back.right.records[1]!, record))
    // Every flipped byte (body or signature) of the recalled record fails, alone and inside a message.
    for (let at = 0; at < bytes.length; at++) {
      const bad = Uint8Array.from(bytes)
      bad[at] = bad[at]! ^ 0x20
      fails(bad, `byte ${at} flipped after the record was read`)
      const badResponse = Uint8Array.from(response)
      badResponse[response.length - bytes.length + at] = badResponse[response.length - bytes.length + at]! ^ 0x20
      assert.isTrue(Either.isLeft(Schema.decodeEither(MembersResponseFromBytes)(badResponse)), `message, byte ${at}`)
    }
    // A truncated copy fails as before.
    fails(bytes.subarray(0, bytes.length - 1), "truncated after the record was read")
  })

  it("the signature is domain-separated", () => {
    const record = recordOf(X, 7n)
    const w = new Writer()
    w.raw(X.nodeId).varint64(7n).varint(1).bytes(utf8(ADDR))
    const body = w.finish()
    // A signature over the body alone (no domain) is not a record signature.
    const undomained = concat(body, Effect.runSync(X.sign(body)))
    fails(undomained, "signature without the domain")
    assert.isTrue(Either.isRight(decode(encode(record))))
  })

  it("bounds: addresses per record", () => {
    const addrs = Array.from({ length: MAX_RECORD_ADDRS + 1 }, (_, i) => utf8(`/ip4/10.0.0.${i}/tcp/1`))
    assert.isTrue(Either.isRight(decode(rawRecord(X.nodeId, 1n, addrs.slice(0, MAX_RECORD_ADDRS)))))
    fails(rawRecord(X.nodeId, 1n, addrs), "9 addresses")
    fails(rawRecord(X.nodeId, 1n, []), "no address")
    // A huge count is refused before anything is read.
    fails(rawRecord(X.nodeId, 1n, [], X, 1_000_000), "a count of a million")
  })

  it("bounds: address length", () => {
    const long = (n: number) => `/dns4/${"a".repeat(n - "/dns4//tcp/1".length)}/tcp/1`
    assert.strictEqual(utf8(long(MAX_ADDR_LENGTH)).length, MAX_ADDR_LENGTH)
    assert.isTrue(Either.isRight(decode(rawRecord(X.nodeId, 1n, [utf8(long(MAX_ADDR_LENGTH))]))))
    fails(rawRecord(X.nodeId, 1n, [utf8(long(MAX_ADDR_LENGTH + 1))]), "257-byte address")
  })

  it("bounds: addresses must be usable multiaddrs", () => {
    for (
      const bad of [
        "not a multiaddr",
        "/ip4/127.0.0.1/tcp/99999",
        "/ip4/127.0.0.1/tcp/1/p2p-circuit",
        `/ip4/127.0.0.1/tcp/1/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA`,
        "/ip4/127.000.0.1/tcp/1",
        "/unix/var%2Frun%2Fdocker.sock",
        "/ip4/127.0.0.1/tcp/0",
        "/ip4/0.0.0.0/tcp/1",
        "/ip6/::/tcp/1",
        "/ip4/127.0.0.1/udp/1/quic-v1",
        "/ip4/127.0.0.1/tcp/1/ws/ws",
        "/ip4/127.0.0.1/tcp/1/tls",
        `/p2p/${RELAY}/p2p-circuit`,
        `/ip4/127.0.0.1/tcp/1/p2p/${RELAY}/p2p-circuit/p2p/${RELAY}`,
        `/ip4/127.0.0.1/tcp/1/p2p/${RELAY}/p2p-circuit/ip4/1.2.3.4/tcp/1/p2p/${RELAY}/p2p-circuit`,
        `/unix/x/p2p/${RELAY}/p2p-circuit`,
        `/ip4/127.0.0.1/tcp/0/p2p/${RELAY}/p2p-circuit`,
        "/ip4/127.0.0.1",
        ""
      ]
    ) fails(rawRecord(X.nodeId, 1n, [utf8(bad)]), bad)
    fails(rawRecord(X.nodeId, 1n, [Uint8Array.of(0x2f, 0xff, 0xfe)]), "not UTF-8")
    assert.deepStrictEqual(recordableAddrs(["/ip4/1.2.3.4/tcp/1/p2p-circuit", ADDR, ADDR, "junk", "/unix/x"]), [ADDR])
    for (
      const good of [
        "/ip6/::1/tcp/2",
        "/dns/example.com/tcp/3",
        "/dns6/example.com/tcp/4",
        "/ip4/127.0.0.1/tcp/1/ws",
        "/dns4/example.com/tcp/443/wss",
        `/ip4/198.51.100.1/tcp/4001/p2p/${RELAY}/p2p-circuit`,
        `/dns4/relay.example.com/tcp/443/wss/p2p/${RELAY}/p2p-circuit`
      ]
    ) {
      assert.isTrue(Either.isRight(decode(rawRecord(X.nodeId, 1n, [utf8(good)]))), good)
    }
  })

  it("bounds: node id, signature, trailing bytes, truncation, size", () => {
    const bytes = encode(recordOf(X, 9n))
    fails(bytes.subarray(0, bytes.length - 1), "truncated signature")
    fails(concat(bytes, Uint8Array.of(0)), "trailing byte")
    fails(new Uint8Array(0), "empty")
    fails(new Uint8Array(5000), "oversized")
    // A small-order node id is no key.
    const small = Ed.SMALL_ORDER[0]!
    fails(concat(rawRecord(small, 1n, [utf8(ADDR)]).subarray(0, -64), new Uint8Array(64)), "small-order key")
    // A non-canonical S is refused (strict verification).
    const bad = Uint8Array.from(bytes)
    bad.fill(0xff, bad.length - 32)
    fails(bad, "non-canonical S")
  })

  it("timestamps: at most 10 minutes in the future", () => {
    const now = 1_000_000_000_000n
    assert.isTrue(Either.isRight(checkRecordTime(recordOf(X, now + MAX_RECORD_FUTURE_MICROS), now)))
    assert.deepStrictEqual(
      checkRecordTime(recordOf(X, now + MAX_RECORD_FUTURE_MICROS + 1n), now),
      Either.left("TooFarInTheFuture")
    )
    assert.isTrue(Either.isRight(checkRecordTime(recordOf(X, 0n), now)))
  })

  it("issue 17: relay (circuit) and WebSocket addresses go in records; relay ones keep room among many direct ones", () => {
    const direct = Array.from({ length: 10 }, (_, i) => `/ip4/10.0.0.${i + 1}/tcp/1`)
    const circuits = Array.from({ length: 5 }, (_, i) => `/ip4/198.51.100.${i + 1}/tcp/4001/p2p/${RELAY}/p2p-circuit`)
    const kept = recordableAddrs([...direct, ...circuits])
    assert.strictEqual(kept.length, MAX_RECORD_ADDRS)
    assert.deepStrictEqual(kept, [...direct.slice(0, MAX_RECORD_ADDRS - RECORD_RELAY_ADDRS), ...circuits.slice(0, RECORD_RELAY_ADDRS)])
    assert.deepStrictEqual(recordableAddrs([circuits[0]!, ADDR]), [ADDR, circuits[0]!])
    assert.isTrue(Either.isRight(decode(rawRecord(X.nodeId, 1n, [utf8(circuits[0]!), utf8("/ip4/1.2.3.4/tcp/5/ws")]))))
  })

  it("makePeerRecord refuses out-of-bound fields", () => {
    assert.throws(() =>
      makePeerRecord({ nodeId: X.nodeId, timestamp: 1n, addrs: ["/ip4/1.2.3.4/tcp/1/p2p-circuit"], signature: new Uint8Array(64) })
    )
    assert.throws(() => makePeerRecord({ nodeId: X.nodeId, timestamp: 1n, addrs: [], signature: new Uint8Array(64) }))
  })
})

describe("membership exchange messages", () => {
  const ns = NamespaceSecret.generate().id
  const encodeRequest = Schema.encodeSync(MembersRequestFromBytes)
  const decodeRequest = Schema.decodeEither(MembersRequestFromBytes)
  const encodeResponse = Schema.encodeSync(MembersResponseFromBytes)
  const decodeResponse = Schema.decodeEither(MembersResponseFromBytes)

  it("round-trip", () => {
    const records = [recordOf(X, 1n), recordOf(Y, 2n)]
    const req = decodeRequest(encodeRequest(new MembersRequest({ namespace: ns, records })))
    assert.isTrue(Either.isRight(req))
    if (Either.isRight(req)) {
      assert.deepStrictEqual(req.right.namespace, ns)
      assert.isTrue(req.right.records.every((r, i) => peerRecordEquals(r, records[i]!)))
    }
    const res = decodeResponse(encodeResponse(new Members({ records })))
    assert.isTrue(Either.isRight(res) && res.right._tag === "Members" && res.right.records.length === 2)
    const nm = decodeResponse(encodeResponse(new NotMember()))
    assert.isTrue(Either.isRight(nm) && nm.right._tag === "NotMember")
  })

  it("bounds: records per message, bad records, unknown variants", () => {
    const one = encode(recordOf(X, 1n))
    const message = (count: number, records: ReadonlyArray<Uint8Array>) => {
      const w = new Writer()
      w.raw(ns).varint(count)
      for (const r of records) w.raw(r)
      return w.finish()
    }
    const full = Array.from({ length: MAX_EXCHANGE_RECORDS }, () => one)
    assert.isTrue(Either.isRight(decodeRequest(message(MAX_EXCHANGE_RECORDS, full))))
    assert.isTrue(Either.isLeft(decodeRequest(message(MAX_EXCHANGE_RECORDS + 1, [...full, one]))))
    assert.isTrue(Either.isLeft(decodeRequest(message(1_000_000, []))))
    // One badly signed record fails the whole message.
    assert.isTrue(Either.isLeft(decodeRequest(message(2, [one, rawRecord(X.nodeId, 3n, [utf8(ADDR)], Y)]))))
    assert.isTrue(Either.isLeft(decodeResponse(Uint8Array.of(2))))
    assert.isTrue(Either.isLeft(decodeResponse(Uint8Array.of(1, 0))))
    assert.isTrue(Either.isLeft(decodeResponse(new Uint8Array(70_000))))
    assert.throws(() => encodeRequest(new MembersRequest({ namespace: ns, records: [...full.map(() => recordOf(X, 1n)), recordOf(X, 1n)] })))
  })
})
