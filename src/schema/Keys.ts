/** Keys and ids (spec 01 §1). Ids are any 32 bytes; parsing their text form also requires a valid curve point. */
import { ParseResult, Redacted, Schema } from "effect"
import { fromHex, toHex } from "../internal/bytes.js"
import * as Ed from "../internal/ed25519.js"

export const Bytes32 = Schema.Uint8ArrayFromSelf.pipe(
  Schema.filter((b) => b.length === 32 || `expected 32 bytes, got ${b.length}`)
)

export const AuthorId = Bytes32.pipe(Schema.brand("AuthorId"))
export type AuthorId = typeof AuthorId.Type

export const NamespaceId = Bytes32.pipe(Schema.brand("NamespaceId"))
export type NamespaceId = typeof NamespaceId.Type

/** A BLAKE3 hash (spec 01 §0). */
export const Hash = Bytes32.pipe(Schema.brand("Hash"))
export type Hash = typeof Hash.Type

/** An Ed25519 signature (64 bytes). */
export const Signature = Schema.Uint8ArrayFromSelf.pipe(
  Schema.filter((b) => b.length === 64 || `expected 64 bytes, got ${b.length}`),
  Schema.brand("Signature")
)
export type Signature = typeof Signature.Type

/** Short form of an id: the first 10 hex characters (spec 01 §1). */
export const fmtShort = (id: Uint8Array): string => toHex(id.subarray(0, 5))

const hexBytes32 = (what: string, s: string, ast: Schema.Schema.Any["ast"], requirePoint: boolean) => {
  const bytes = fromHex(s)
  if (bytes === undefined) return ParseResult.fail(new ParseResult.Type(ast, s, `${what}: not hex`))
  if (bytes.length !== 32) {
    return ParseResult.fail(new ParseResult.Type(ast, s, `${what}: expected 32 bytes, got ${bytes.length}`))
  }
  if (requirePoint && Ed.publicKeyObject(bytes) === undefined) {
    return ParseResult.fail(new ParseResult.Type(ast, s, `${what}: not a valid Ed25519 public key`))
  }
  return ParseResult.succeed(bytes)
}

const idFromHex = <A extends Uint8Array>(what: string, to: Schema.Schema<A, Uint8Array>) =>
  Schema.transformOrFail(Schema.String, to, {
    strict: true,
    decode: (s, _, ast) => hexBytes32(what, s, ast, true),
    encode: (b) => ParseResult.succeed(toHex(b))
  })

/** Lowercase hex of 32 bytes; decoding accepts either case and requires a valid, non-small-order curve point. */
export const AuthorIdFromHex = idFromHex("AuthorId", AuthorId)
export const NamespaceIdFromHex = idFromHex("NamespaceId", NamespaceId)
export const HashFromHex = Schema.transformOrFail(Schema.String, Hash, {
  strict: true,
  decode: (s, _, ast) => hexBytes32("Hash", s, ast, false),
  encode: (b) => ParseResult.succeed(toHex(b))
})

const derived = new WeakMap<object, { readonly publicKey: Uint8Array; readonly signingKey: Ed.SecretKeyObject }>()
const derive = (owner: object, seed: Redacted.Redacted<Uint8Array>) => {
  let d = derived.get(owner)
  if (d === undefined) {
    const raw = Redacted.value(seed)
    d = { publicKey: Ed.publicKeyOf(raw), signingKey: Ed.secretKeyObject(raw) }
    derived.set(owner, d)
  }
  return d
}

const Seed = Schema.RedactedFromSelf(Bytes32)

/** An author's secret key (spec 01 §1). Its seed is Redacted: it never shows in logs, errors or JSON. */
export class Author extends Schema.Class<Author>("Author")({ seed: Seed }) {
  static generate(): Author {
    return Author.fromSeed(Ed.randomSeed())
  }
  static fromSeed(seed: Uint8Array): Author {
    return new Author({ seed: Redacted.make(Uint8Array.from(seed)) })
  }
  get id(): AuthorId {
    return AuthorId.make(derive(this, this.seed).publicKey)
  }
  /** Hex of the secret seed: the export form (spec 01 §1). Handle with care. */
  toSecretHex(): string {
    return toHex(Redacted.value(this.seed))
  }
}

/** A namespace's secret key: the write capability of a document (spec 01 §1). */
export class NamespaceSecret extends Schema.Class<NamespaceSecret>("NamespaceSecret")({ seed: Seed }) {
  static generate(): NamespaceSecret {
    return NamespaceSecret.fromSeed(Ed.randomSeed())
  }
  static fromSeed(seed: Uint8Array): NamespaceSecret {
    return new NamespaceSecret({ seed: Redacted.make(Uint8Array.from(seed)) })
  }
  get id(): NamespaceId {
    return NamespaceId.make(derive(this, this.seed).publicKey)
  }
  toSecretHex(): string {
    return toHex(Redacted.value(this.seed))
  }
}

/** The node:crypto signing key of an author or namespace secret (derived once per instance). */
export const signingKey = (secret: Author | NamespaceSecret): Ed.SecretKeyObject => derive(secret, secret.seed).signingKey

export const secretSeed = (secret: Author | NamespaceSecret): Uint8Array => Redacted.value(secret.seed)

const secretFromHex = <A extends Author | NamespaceSecret, I>(
  what: string,
  make: (seed: Uint8Array) => A,
  to: Schema.Schema<A, I>
) =>
  Schema.transformOrFail(Schema.String, Schema.typeSchema(to), {
    strict: true,
    decode: (s, _, ast) => ParseResult.map(hexBytes32(what, s, ast, false), make),
    encode: (a) => ParseResult.succeed(a.toSecretHex())
  })

/** Text forms of secrets: hex of the seed. Parsing accepts any 32 bytes (spec 01 §1). */
export const AuthorFromHex = secretFromHex("Author", Author.fromSeed, Author)
export const NamespaceSecretFromHex = secretFromHex("NamespaceSecret", NamespaceSecret.fromSeed, NamespaceSecret)

/** Decode a text id, or fail with a ParseError (for CLI and API callers). */
export const parseAuthorId = Schema.decodeUnknown(AuthorIdFromHex)
export const parseNamespaceId = Schema.decodeUnknown(NamespaceIdFromHex)

const secretFromBytes = <A extends Author | NamespaceSecret, I>(
  what: string,
  make: (seed: Uint8Array) => A,
  to: Schema.Schema<A, I>
) =>
  Schema.transformOrFail(Schema.Uint8ArrayFromSelf, Schema.typeSchema(to), {
    strict: true,
    decode: (b, _, ast) =>
      b.length === 33 && b[0] === 0x20
        ? ParseResult.succeed(make(b.subarray(1)))
        : ParseResult.fail(new ParseResult.Type(ast, b, `${what}: expected 0x20 followed by 32 bytes`)),
    encode: (a) => {
      const out = new Uint8Array(33)
      out[0] = 0x20
      out.set(Redacted.value(a.seed), 1)
      return ParseResult.succeed(out)
    }
  })

/** Postcard forms of secrets: a length-prefixed byte string, `0x20 ‖ seed` (spec 01 §1). */
export const AuthorFromBytes = secretFromBytes("Author", Author.fromSeed, Author)
export const NamespaceSecretFromBytes = secretFromBytes("NamespaceSecret", NamespaceSecret.fromSeed, NamespaceSecret)
