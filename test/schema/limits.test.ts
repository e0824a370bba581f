/**
 * Issue 15, finding 6: every bound on what a peer or a user makes us decode or store, tested just below and just
 * above (constants.ts documents each). Above a bound the input is refused with a typed error where the count or
 * length is read.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Either, Layer, Schema } from "effect"
import { blake3 } from "../../src/internal/blake3.js"
import { concat } from "../../src/internal/bytes.js"
import { Writer } from "../../src/internal/postcard.js"
import { PublicKeyCache, validateEntry } from "../../src/internal/signing.js"
import * as Capability from "../../src/schema/Capability.js"
import { MAX_INIT_PARTS, MAX_KEY_LENGTH, MAX_PARTS, MAX_VALUES } from "../../src/schema/constants.js"
import { DecodeLimitExceeded, readSignedEntry, readWhole, type SignedEntry, writeSignedEntry } from "../../src/schema/Entry.js"
import { Author, Hash, NamespaceSecret } from "../../src/schema/Keys.js"
import { makeMessage, makeRange, makeRangeFingerprint, Message, Range, RangeFingerprint, RangeItem } from "../../src/schema/Message.js"
import { OpFromBytes, Put } from "../../src/schema/Op.js"
import { Init, readSyncMessage, Sync, SyncMessageFromBytes } from "../../src/schema/SyncMessage.js"
import * as Crypto from "../../src/services/Crypto.js"
import * as Replica from "../../src/services/Replica.js"
import * as Store from "../../src/services/Store.js"
import { entryAt, withFields } from "../utils/entries.js"

const ns = NamespaceSecret.fromSeed(new Uint8Array(32).fill(3))
const author = Author.fromSeed(new Uint8Array(32).fill(4))
const whole = concat(ns.id, new Uint8Array(32))
const keyOf = (n: number) => new Uint8Array(n).fill(0x6b)
const withKey = (n: number): SignedEntry => entryAt(ns, author, keyOf(n), 1n)
const readEntry = readWhole(readSignedEntry)
const readMessage = readWhole(readSyncMessage)
const encode = Schema.encodeSync(SyncMessageFromBytes)

/** The limit a decoder refused, or "ok" / "malformed" for other outcomes. */
const verdict = <A>(r: Either.Either<A, { readonly message: string }>): string =>
  Either.isRight(r) ? "ok" : r.left instanceof DecodeLimitExceeded ? r.left.limit : "malformed"

/** A `Sync` (or `Init`) message header followed by a part count and nothing else. */
const countOnly = (tag: "init" | "sync", parts: number) => {
  const w = new Writer()
  if (tag === "init") w.varint(0).raw(ns.id)
  else w.varint(1)
  return w.varint(parts).finish()
}

const fingerprints = (n: number) =>
  new Message({
    parts: Array.from({ length: n }, () =>
      new RangeFingerprint({ range: new Range({ x: whole, y: whole }), fingerprint: new Uint8Array(32) }))
  })

describe("finding 6: decoding bounds", () => {
  it("an entry key of MAX_KEY_LENGTH bytes decodes; one byte more is refused (keyLength)", () => {
    const w = (e: SignedEntry) => {
      const out = new Writer()
      writeSignedEntry(out, e)
      return out.finish()
    }
    assert.strictEqual(verdict(readEntry(w(withKey(MAX_KEY_LENGTH)))), "ok")
    assert.strictEqual(verdict(readEntry(w(withKey(MAX_KEY_LENGTH + 1)))), "keyLength")
    assert.strictEqual(verdict(readEntry(w(withKey(1 << 20)))), "keyLength")
  })

  it("a 1 MiB key is refused by gossip decoding (Op)", () => {
    const ok = Schema.encodeSync(OpFromBytes)(new Put({ entry: withKey(MAX_KEY_LENGTH) }))
    assert.isTrue(Either.isRight(Schema.decodeEither(OpFromBytes)(ok)))
    const long = Schema.encodeSync(OpFromBytes)(new Put({ entry: withKey(1 << 20) }))
    const r = Schema.decodeEither(OpFromBytes)(long)
    assert.isTrue(Either.isLeft(r))
    if (Either.isLeft(r)) assert.include(r.left.message, "keyLength")
  })

  it("a range bound with a key of MAX_KEY_LENGTH bytes decodes; one byte more is refused", () => {
    const bound = (n: number) =>
      new Sync({ message: makeMessage([makeRangeFingerprint(makeRange(concat(whole, keyOf(n)), whole), new Uint8Array(32))]) }, true)
    assert.strictEqual(verdict(readMessage(encode(bound(MAX_KEY_LENGTH)))), "ok")
    assert.strictEqual(verdict(readMessage(encode(bound(MAX_KEY_LENGTH + 1)))), "keyLength")
  })

  it("an Init of MAX_INIT_PARTS parts decodes; one more is refused (initParts), as is the 200k-range Init", () => {
    const init = (n: number) => encode(new Init({ namespace: ns.id, message: fingerprints(n) }))
    assert.strictEqual(verdict(readMessage(init(MAX_INIT_PARTS))), "ok")
    assert.strictEqual(verdict(readMessage(init(MAX_INIT_PARTS + 1))), "initParts")
    const started = process.hrtime.bigint()
    assert.strictEqual(verdict(readMessage(countOnly("init", 200_000))), "initParts")
    assert.isBelow(Number(process.hrtime.bigint() - started) / 1e6, 50)
    // A Sync message may carry more parts.
    assert.strictEqual(verdict(readMessage(encode(new Sync({ message: fingerprints(MAX_INIT_PARTS + 1) })))), "ok")
  })

  it("a Sync message announcing MAX_PARTS parts is read on; one more is refused (parts) before any is read", () => {
    // At the bound the reader goes on and meets the end of the input: malformed, not over a limit.
    assert.strictEqual(verdict(readMessage(countOnly("sync", MAX_PARTS))), "malformed")
    assert.strictEqual(verdict(readMessage(countOnly("sync", MAX_PARTS + 1))), "parts")
  })

  it("a RangeItem announcing MAX_VALUES values is read on; one more is refused (values)", () => {
    const item = (values: number) => {
      const w = new Writer()
      w.varint(1).varint(1).varint(1).bytes(whole).bytes(whole).varint(values)
      return w.finish()
    }
    assert.strictEqual(verdict(readMessage(item(MAX_VALUES))), "malformed")
    assert.strictEqual(verdict(readMessage(item(MAX_VALUES + 1))), "values")
    // The bound holds across the parts of one message.
    const two = new Writer()
    two.varint(1).varint(2)
    two.varint(1).bytes(whole).bytes(whole).varint(1)
    writeSignedEntry(two, withKey(1))
    two.varint(0).bool(false)
    two.varint(1).bytes(whole).bytes(whole).varint(MAX_VALUES)
    assert.strictEqual(verdict(readMessage(two.finish())), "values")
    // A real message of a few values decodes.
    const real = new Sync({
      message: new Message({
        parts: [new RangeItem({ range: new Range({ x: whole, y: whole }), values: [[withKey(3), "Missing"]], haveLocal: false })]
      })
    })
    assert.strictEqual(verdict(readMessage(encode(real))), "ok")
  })
})

describe("finding 6: key length on every path", () => {
  it("validateEntry refuses a key over MAX_KEY_LENGTH, local and remote, with KeyTooLong", () => {
    const keys = new PublicKeyCache()
    for (const origin of ["local", "remote"] as const) {
      assert.isUndefined(validateEntry(keys, 10n, ns.id, withKey(MAX_KEY_LENGTH), origin))
      const refused = validateEntry(keys, 10n, ns.id, withKey(MAX_KEY_LENGTH + 1), origin)
      assert.strictEqual(refused?._tag, "KeyTooLong")
      if (refused?._tag === "KeyTooLong") {
        assert.strictEqual(refused.length, MAX_KEY_LENGTH + 1)
        assert.strictEqual(refused.max, MAX_KEY_LENGTH)
      }
    }
    // Checked before the signatures: a long key with a broken signature is refused for its length.
    const forged = withFields(withKey(1 << 20), { authorSignature: new Uint8Array(64) })
    assert.strictEqual(validateEntry(keys, 10n, ns.id, forged, "remote")?._tag, "KeyTooLong")
  })

  it.scoped("a 1 MiB key is refused on local insert with KeyTooLong; a key at the bound is stored", () =>
    Effect.gen(function*() {
      const ctx = yield* Layer.build(
        Replica.layer.pipe(Layer.provideMerge(Store.layerMemory), Layer.provide(Crypto.layerInline))
      )
      const replica = Context.get(ctx, Replica.Replica)
      yield* replica.importNamespace(new Capability.Write({ secret: ns }))
      const authorId = yield* replica.importAuthor(author)
      yield* replica.open(ns.id, {})
      const hash = Hash.make(blake3(Uint8Array.of(1)))
      const error = yield* Effect.flip(replica.insertLocal(ns.id, authorId, keyOf(1 << 20), hash, 1n))
      assert.strictEqual(error._tag, "KeyTooLong")
      yield* replica.insertLocal(ns.id, authorId, keyOf(MAX_KEY_LENGTH), hash, 1n)
    }))
})
