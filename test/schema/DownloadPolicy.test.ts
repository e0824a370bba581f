import { assert, describe, it } from "@effect/vitest"
import { Either, Schema } from "effect"
import * as fc from "fast-check"
import { fromHex, toHex, utf8 } from "../../src/internal/bytes.js"
import {
  defaultPolicy,
  DownloadPolicyFromBytes,
  EverythingExcept,
  Exact,
  type FilterKind,
  FilterFromString,
  filterToString,
  matches,
  NothingExcept,
  parseFilter,
  Prefix
} from "../../src/schema/DownloadPolicy.js"
import type { DownloadPolicy } from "../../src/schema/DownloadPolicy.js"

const show = (f: FilterKind) => `${f._tag}:${toHex(f.bytes)}`
const showPolicy = (p: DownloadPolicy) => `${p._tag}(${p.filters.map(show).join(",")})`
const bytes = (...xs: Array<number>) => Uint8Array.from(xs)

const arbFilter: fc.Arbitrary<FilterKind> = fc
  .tuple(fc.boolean(), fc.uint8Array({ maxLength: 12 }))
  .map(([prefix, b]) => (prefix ? new Prefix({ bytes: b }) : new Exact({ bytes: b })))
const arbPolicy: fc.Arbitrary<DownloadPolicy> = fc
  .tuple(fc.boolean(), fc.array(arbFilter, { maxLength: 5 }))
  .map(([nothing, filters]) => (nothing ? new NothingExcept({ filters }) : new EverythingExcept({ filters })))

describe("DownloadPolicy", () => {
  it("defaults to EverythingExcept([]), which matches every key", () => {
    assert.strictEqual(showPolicy(defaultPolicy), "EverythingExcept()")
    for (const k of [new Uint8Array(), utf8("a"), bytes(0xff, 0)]) assert.isTrue(matches(defaultPolicy, k))
  })

  it("matches: NothingExcept needs a matching filter, EverythingExcept needs none", () => {
    const memes = new Prefix({ bytes: utf8("memes/") })
    const exact = new Exact({ bytes: utf8("x") })
    const only = new NothingExcept({ filters: [memes, exact] })
    const but = new EverythingExcept({ filters: [memes, exact] })
    const cases: Array<readonly [string, boolean]> = [
      ["memes/futurama", true],
      ["memes/", true],
      ["memes", false],
      ["x", true],
      ["xy", false],
      ["", false],
      ["other", false]
    ]
    for (const [k, hit] of cases) {
      assert.strictEqual(matches(only, utf8(k)), hit, `NothingExcept ${k}`)
      assert.strictEqual(matches(but, utf8(k)), !hit, `EverythingExcept ${k}`)
    }
    assert.isFalse(matches(new NothingExcept({ filters: [] }), utf8("a")))
    const everything = new NothingExcept({ filters: [new Prefix({ bytes: new Uint8Array() })] })
    assert.isTrue(matches(everything, new Uint8Array()))
    assert.isTrue(matches(everything, bytes(0xff)))
    const emptyKey = new NothingExcept({ filters: [new Exact({ bytes: new Uint8Array() })] })
    assert.isTrue(matches(emptyKey, new Uint8Array()))
    assert.isFalse(matches(emptyKey, bytes(0)))
    // Binary prefixes are exact starts-with tests.
    const binary = new NothingExcept({ filters: [new Prefix({ bytes: bytes(1, 0xff) })] })
    assert.isTrue(matches(binary, bytes(1, 0xff, 0)))
    assert.isFalse(matches(binary, bytes(2)))
    assert.isFalse(matches(binary, bytes(2, 0)))
  })

  describe("text form", () => {
    it("prints utf8 when valid, hex otherwise", () => {
      assert.strictEqual(filterToString(new Prefix({ bytes: utf8("memes/futurama") })), "prefix:utf8:memes/futurama")
      assert.strictEqual(filterToString(new Exact({ bytes: utf8("a:b") })), "exact:utf8:a:b")
      assert.strictEqual(filterToString(new Exact({ bytes: new Uint8Array() })), "exact:utf8:")
      assert.strictEqual(filterToString(new Prefix({ bytes: bytes(0xff, 0x00) })), "prefix:hex:ff00")
      assert.strictEqual(filterToString(new Exact({ bytes: bytes(0xc3) })), "exact:hex:c3", "truncated sequence")
      assert.strictEqual(filterToString(new Exact({ bytes: bytes(0xed, 0xa0, 0x80) })), "exact:hex:eda080", "surrogate")
    })

    it("parses both encodings", () => {
      const parse = (s: string) => Either.map(parseFilter(s), show)
      assert.deepStrictEqual(parse("prefix:utf8:memes/futurama"), Either.right(`Prefix:${toHex(utf8("memes/futurama"))}`))
      assert.deepStrictEqual(parse("exact:hex:FF00"), Either.right("Exact:ff00"))
      assert.deepStrictEqual(parse("exact:hex:"), Either.right("Exact:"))
      assert.deepStrictEqual(parse("prefix:utf8:a:b"), Either.right(`Prefix:${toHex(utf8("a:b"))}`))
      assert.strictEqual(show(Schema.decodeSync(FilterFromString)("exact:utf8:é")), `Exact:${toHex(utf8("é"))}`)
      assert.strictEqual(Schema.encodeSync(FilterFromString)(new Prefix({ bytes: bytes(0x80) })), "prefix:hex:80")
    })

    it("reports every parse error", () => {
      const error = (s: string) => {
        const r = parseFilter(s)
        assert.isTrue(Either.isLeft(r), s)
        const viaSchema = Schema.decodeEither(FilterFromString)(s)
        assert.isTrue(Either.isLeft(viaSchema), `${s} via schema`)
        return Either.isLeft(r) ? r.left : ""
      }
      assert.include(error("prefix"), "missing filter kind")
      assert.include(error(""), "missing filter kind")
      assert.include(error("prefix:utf8"), "missing encoding")
      assert.include(error("exact:"), "missing encoding")
      assert.include(error("suffix:utf8:x"), "unknown filter kind")
      assert.include(error("Prefix:utf8:x"), "unknown filter kind")
      assert.include(error("prefix:base64:eA=="), "unknown encoding")
      assert.include(error("prefix:UTF8:x"), "unknown encoding")
      assert.include(error("prefix:hex:zz"), "invalid hex")
      assert.include(error("prefix:hex:abc"), "invalid hex")
      assert.include(error("exact:hex:0x00"), "invalid hex")
    })

    it("print then parse is the identity, including a leading byte-order mark", () => {
      const roundtrip = (f: FilterKind) => {
        const text = filterToString(f)
        const back = parseFilter(text)
        assert.isTrue(Either.isRight(back), text)
        if (Either.isRight(back)) assert.strictEqual(show(back.right), show(f), text)
      }
      roundtrip(new Prefix({ bytes: bytes(0xef, 0xbb, 0xbf, 0x61) }))
      roundtrip(new Exact({ bytes: bytes(0xef, 0xbb, 0xbf) }))
      fc.assert(fc.property(arbFilter, roundtrip), { numRuns: 300 })
      fc.assert(
        fc.property(fc.boolean(), fc.string({ unit: "binary", maxLength: 20 }), (prefix, s) => {
          const b = utf8(s)
          roundtrip(prefix ? new Prefix({ bytes: b }) : new Exact({ bytes: b }))
        }),
        { numRuns: 300 }
      )
    })
  })

  describe("postcard form", () => {
    it("uses the reference's variant indices and length-prefixed bytes", () => {
      const encode = Schema.encodeSync(DownloadPolicyFromBytes)
      assert.strictEqual(toHex(encode(defaultPolicy)), "0100")
      assert.strictEqual(toHex(encode(new NothingExcept({ filters: [] }))), "0000")
      const p = new NothingExcept({ filters: [new Prefix({ bytes: utf8("a") }), new Exact({ bytes: bytes(0xff) })] })
      assert.strictEqual(toHex(encode(p)), "0002" + "000161" + "0101ff")
      const long = new EverythingExcept({ filters: [new Exact({ bytes: new Uint8Array(200).fill(7) })] })
      assert.strictEqual(toHex(encode(long)).slice(0, 10), "010101c801")
    })

    it("decode ∘ encode = identity (property)", () => {
      fc.assert(
        fc.property(arbPolicy, (p) => {
          const encoded = Schema.encodeSync(DownloadPolicyFromBytes)(p)
          const back = Schema.decodeSync(DownloadPolicyFromBytes)(encoded)
          assert.strictEqual(showPolicy(back), showPolicy(p))
          assert.strictEqual(toHex(Schema.encodeSync(DownloadPolicyFromBytes)(back)), toHex(encoded))
        }),
        { numRuns: 300 }
      )
    })

    it("rejects malformed bytes with a ParseError", () => {
      const bad = (hex: string) => Either.isLeft(Schema.decodeEither(DownloadPolicyFromBytes)(fromHex(hex)!))
      const good = "0002000161" + "0101ff"
      assert.isFalse(bad(good))
      for (let n = 0; n < good.length; n += 2) assert.isTrue(bad(good.slice(0, n)), `truncated at ${n / 2}`)
      assert.isTrue(bad(good + "00"), "trailing byte")
      assert.isTrue(bad("0200"), "policy tag 2")
      assert.isTrue(bad("000102" + "0161"), "filter kind 2")
      assert.isTrue(bad("00010005" + "61"), "byte string longer than the input")
      assert.isTrue(bad("8000" + "00"), "overlong tag")
      assert.isTrue(bad("00" + "8000"), "overlong count")
      assert.isTrue(bad("00" + "ffffffff0f"), "count above the limit")
      assert.isTrue(bad("000100" + "ffffffff0f"), "filter length above the limit")
    })
  })
})
