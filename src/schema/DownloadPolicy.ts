/** Which content a replica downloads (spec 03 §3): NothingExcept(filters) | EverythingExcept(filters). */
import { Either, ParseResult, Schema } from "effect"
import { equals, fromHex, startsWith, toHex } from "../internal/bytes.js"
import { PostcardError, Reader, Writer } from "../internal/postcard.js"
import { decodeWith, encodeWith } from "./Entry.js"

export class Prefix extends Schema.TaggedClass<Prefix>()("Prefix", { bytes: Schema.Uint8ArrayFromSelf }) {}
export class Exact extends Schema.TaggedClass<Exact>()("Exact", { bytes: Schema.Uint8ArrayFromSelf }) {}
export const FilterKind = Schema.Union(Prefix, Exact)
export type FilterKind = typeof FilterKind.Type

export class NothingExcept extends Schema.TaggedClass<NothingExcept>()("NothingExcept", {
  filters: Schema.Array(FilterKind)
}) {}
export class EverythingExcept extends Schema.TaggedClass<EverythingExcept>()("EverythingExcept", {
  filters: Schema.Array(FilterKind)
}) {}
export const DownloadPolicy = Schema.Union(NothingExcept, EverythingExcept)
export type DownloadPolicy = typeof DownloadPolicy.Type

/** Download everything (spec 03 §3). */
export const defaultPolicy: DownloadPolicy = new EverythingExcept({ filters: [] })

export const filterMatches = (f: FilterKind, key: Uint8Array): boolean =>
  f._tag === "Prefix" ? startsWith(key, f.bytes) : equals(key, f.bytes)

export const matches = (policy: DownloadPolicy, key: Uint8Array): boolean => {
  const any = policy.filters.some((f) => filterMatches(f, key))
  return policy._tag === "NothingExcept" ? any : !any
}

// Text form `<kind>:<encoding>:<data>` (spec 03 §3).

// ignoreBOM keeps a leading U+FEFF in the text, so printing then parsing gives back the same bytes.
const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true })

export const filterToString = (f: FilterKind): string => {
  const kind = f._tag === "Prefix" ? "prefix" : "exact"
  try {
    return `${kind}:utf8:${decoder.decode(f.bytes)}`
  } catch {
    return `${kind}:hex:${toHex(f.bytes)}`
  }
}

export const parseFilter = (s: string): Either.Either<FilterKind, string> => {
  const i = s.indexOf(":")
  if (i < 0) return Either.left("missing filter kind, either \"prefix:\" or \"exact:\"")
  const kind = s.slice(0, i)
  const rest = s.slice(i + 1)
  const j = rest.indexOf(":")
  if (j < 0) return Either.left("missing encoding: either \"hex:\" or \"utf8:\"")
  const encoding = rest.slice(0, j)
  const data = rest.slice(j + 1)
  let bytes: Uint8Array | undefined
  if (encoding === "utf8") bytes = new TextEncoder().encode(data)
  else if (encoding === "hex") {
    bytes = fromHex(data)
    if (bytes === undefined) return Either.left(`invalid hex: ${data}`)
  } else return Either.left(`unknown encoding: ${encoding}`)
  if (kind === "prefix") return Either.right(new Prefix({ bytes }))
  if (kind === "exact") return Either.right(new Exact({ bytes }))
  return Either.left(`unknown filter kind: ${kind}`)
}

/** A filter ⇄ its text form, for the CLI and config. */
export const FilterFromString = Schema.transformOrFail(Schema.String, Schema.typeSchema(FilterKind), {
  strict: true,
  decode: (s, _, ast) => Either.mapLeft(parseFilter(s), (msg) => new ParseResult.Type(ast, s, msg)),
  encode: (f) => ParseResult.succeed(filterToString(f))
})

// Postcard form, as the reference persists it: NothingExcept 0, EverythingExcept 1; Prefix 0, Exact 1.

const MAX_FILTERS = 4096
const MAX_FILTER_BYTES = 1 << 16

export const writePolicy = (w: Writer, p: DownloadPolicy): void => {
  w.varint(p._tag === "NothingExcept" ? 0 : 1).varint(p.filters.length)
  for (const f of p.filters) w.varint(f._tag === "Prefix" ? 0 : 1).bytes(f.bytes)
}

export const readPolicy = (r: Reader): DownloadPolicy => {
  const tag = r.varint(1)
  const n = r.varint(MAX_FILTERS)
  const filters: Array<FilterKind> = []
  for (let i = 0; i < n; i++) {
    const k = r.varint(1)
    const bytes = r.bytes(MAX_FILTER_BYTES)
    filters.push(k === 0 ? new Prefix({ bytes }) : new Exact({ bytes }))
  }
  if (tag !== 0 && tag !== 1) throw new PostcardError("bad policy tag")
  return tag === 0 ? new NothingExcept({ filters }) : new EverythingExcept({ filters })
}

export const DownloadPolicyFromBytes = Schema.transformOrFail(
  Schema.Uint8ArrayFromSelf,
  Schema.typeSchema(DownloadPolicy),
  {
    strict: true,
    decode: (bytes, _, ast) => decodeWith(readPolicy)(bytes, ast),
    encode: (p) => ParseResult.succeed(encodeWith(writePolicy)(p))
  }
)
