/**
 * The frame payload of a sync session (spec 04 §4): `Init { namespace, message }` (0), `Sync(message)` (1),
 * `Abort { reason }` (2), with its postcard codec. The reconciliation Message inside is the codec of Message.ts.
 */
import { ParseResult, Schema } from "effect"
import { PostcardError, type Reader, type Writer } from "../internal/postcard.js"
import { decodeWith, encodeWith } from "./Entry.js"
import { NamespaceId } from "./Keys.js"
import { Message, readMessage, writeMessage } from "./Message.js"

/** Why an acceptor refuses a session (spec 04 §4.2); postcard indices 0, 1, 2. */
export const AbortReason = Schema.Literal("NotFound", "AlreadySyncing", "InternalServerError")
export type AbortReason = typeof AbortReason.Type
export const ABORT_REASONS: ReadonlyArray<AbortReason> = ["NotFound", "AlreadySyncing", "InternalServerError"]

/** The initiator's first message: the namespace to sync and the initial reconciliation message. */
export class Init extends Schema.TaggedClass<Init>()("Init", { namespace: NamespaceId, message: Message }) {}

/** Every later message of either side (a newtype variant on the wire: just the Message). */
export class Sync extends Schema.TaggedClass<Sync>()("Sync", { message: Message }) {}

/** The acceptor's refusal, its first and last message. */
export class Abort extends Schema.TaggedClass<Abort>()("Abort", { reason: AbortReason }) {}

export const SyncMessage = Schema.Union(Init, Sync, Abort)
export type SyncMessage = typeof SyncMessage.Type

export const writeSyncMessage = (w: Writer, m: SyncMessage): void => {
  switch (m._tag) {
    case "Init":
      // A class instance is not re-validated on encode; a wrong length here would shift every later byte.
      if (m.namespace.length !== 32) throw new PostcardError(`namespace of ${m.namespace.length} bytes, expected 32`)
      w.varint(0).raw(m.namespace)
      writeMessage(w, m.message)
      return
    case "Sync":
      w.varint(1)
      writeMessage(w, m.message)
      return
    case "Abort":
      w.varint(2).varint(ABORT_REASONS.indexOf(m.reason))
      return
  }
}

export const readSyncMessage = (r: Reader): SyncMessage => {
  const tag = r.varint()
  switch (tag) {
    case 0: {
      // A fixed-size array in postcard: 32 raw bytes, no length prefix.
      const namespace = NamespaceId.make(r.raw(32))
      // Read before the accept decision: an Init is bounded to a few parts (an honest one has exactly one).
      return new Init({ namespace, message: readMessage(r, "initParts") }, true)
    }
    case 1:
      return new Sync({ message: readMessage(r) }, true)
    case 2: {
      const index = r.varint()
      const reason = ABORT_REASONS[index]
      if (reason === undefined) throw new PostcardError(`unknown AbortReason variant ${index}`)
      return new Abort({ reason }, true)
    }
    default:
      throw new PostcardError(`unknown SyncMessage variant ${tag}`)
  }
}

/** SyncMessage ⇄ postcard bytes (spec 04 §4); malformed input (including trailing bytes) fails with a ParseError. */
export const SyncMessageFromBytes = Schema.transformOrFail(Schema.Uint8ArrayFromSelf, Schema.typeSchema(SyncMessage), {
  strict: true,
  decode: (bytes, _, ast) => decodeWith(readSyncMessage)(bytes, ast),
  encode: (m, _, ast) => {
    try {
      return ParseResult.succeed(encodeWith(writeSyncMessage)(m))
    } catch (e) {
      if (e instanceof PostcardError) return ParseResult.fail(new ParseResult.Type(ast, m, e.message))
      throw e
    }
  }
})
