/**
 * Command-line arguments parsed as ids, keys, secrets and tickets. An error names the argument and what was
 * expected; it quotes the argument only when it is short and cannot be a secret (`Argv.mayBeSecret`): a namespace
 * secret has the form of a document id, and a write ticket holds one.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import {
  type Author,
  AuthorFromHex,
  type AuthorId,
  AuthorIdFromHex,
  type Hash,
  HashFromHex,
  type NamespaceId,
  NamespaceIdFromHex
} from "../schema/Keys.js"
import { type DocTicket, parseTicket } from "../schema/Ticket.js"
import type { DocsService } from "../services/DocsApi.js"
import { mayBeSecret, redactArgs } from "./Argv.js"
import { CliError } from "./Common.js"

const firstIssue = (error: ParseResult.ParseError): string => {
  const issues = ParseResult.ArrayFormatter.formatErrorSync(error)
  return issues[0]?.message ?? "malformed"
}

/** The error names the argument (`what`) and what was expected; it never shows an input that could be a secret. */
const decodeArg = <A>(schema: Schema.Schema<A, string>, what: string, input: string, quoteShort: boolean) => {
  const quote = quoteShort && input.length <= 80 && !mayBeSecret(input)
  return Either.match(Schema.decodeEither(schema)(input), {
    onLeft: (e) =>
      Effect.fail(
        new CliError({ message: `invalid ${what}${quote ? ` '${input}'` : ""}: ${redactArgs(firstIssue(e), [input])}` })
      ),
    onRight: (a) => Effect.succeed(a)
  })
}

export const parseDocId = (s: string): Effect.Effect<NamespaceId, CliError> =>
  decodeArg(NamespaceIdFromHex, "document id (DOC)", s.trim(), true)
export const parseAuthorId = (s: string): Effect.Effect<AuthorId, CliError> =>
  decodeArg(AuthorIdFromHex, "author id", s, true)
export const parseHash = (s: string): Effect.Effect<Hash, CliError> =>
  decodeArg(HashFromHex, "content hash (HASH)", s.trim(), true)
/** The input is a secret: never quoted in the error. */
export const parseAuthorSecret = (s: string): Effect.Effect<Author, CliError> =>
  decodeArg(AuthorFromHex, "author secret", s.trim(), false)

/** The input may be a Write ticket (a secret): never quoted in the error. */
export const parseTicketArg = (s: string): Effect.Effect<DocTicket, CliError> =>
  Either.match(parseTicket(s.trim()), {
    onLeft: (e) => Effect.fail(new CliError({ message: redactArgs(e.message, [s]) })),
    onRight: Effect.succeed
  })

export const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s)

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }
const UNIT_OF: Record<string, string> = {
  millis: "ms", millisecond: "ms", milliseconds: "ms",
  sec: "s", second: "s", seconds: "s",
  min: "m", minute: "m", minutes: "m",
  hour: "h", hours: "h",
  day: "d", days: "d"
}

/** A duration as `30s`, `10m`, `1.5h`, `2d`, `500ms` or `10 minutes`; `0` alone means none. */
export const parseDuration = (what: string, s: string): Effect.Effect<Duration.Duration, CliError> => {
  const match = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/.exec(s.trim().toLowerCase())
  const unit = match === null ? undefined : match[2] === "" ? (Number(match[1]) === 0 ? "ms" : undefined) : UNIT_OF[match[2]!] ?? match[2]
  const ms = unit === undefined ? undefined : UNIT_MS[unit]
  return match === null || ms === undefined
    ? Effect.fail(new CliError({ message: `invalid ${what} '${s}': expected a duration such as 30s, 10m, 1h or 0` }))
    : Effect.succeed(Duration.millis(Number(match[1]) * ms))
}

/** A key given on the command line (UTF-8); refuses the empty key. */
export const parseKey = (s: string): Effect.Effect<Uint8Array, CliError> =>
  s === "" ? Effect.fail(new CliError({ message: "invalid key: must not be empty" })) : Effect.succeed(utf8(s))

/** `--author`, else the node's default author. */
export const authorOrDefault = (api: DocsService, author: Option.Option<string>) =>
  Option.match(author, { onNone: () => api.authorGetDefault, onSome: parseAuthorId })
