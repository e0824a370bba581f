/** Signing and validating entries (spec 01 §5, §8). Pure functions plus a bounded memo of validated public keys. */
import { MAX_KEY_LENGTH } from "../schema/constants.js"
import {
  BadSignature,
  InvalidEmptyEntry,
  InvalidNamespace,
  KeyTooLong,
  TooFarInTheFuture,
  type ValidationFailure
} from "../schema/Errors.js"
import { Entry, EntrySignature, SignedEntry, signingBytes } from "../schema/Entry.js"
import { type Author, type NamespaceId, type NamespaceSecret, Signature, signingKey } from "../schema/Keys.js"
import { equals, latin1 } from "./bytes.js"
import * as Ed from "./ed25519.js"

/** 10 minutes in µs (spec 01 §8). */
export const MAX_TIMESTAMP_FUTURE_SHIFT = 600_000_000n

/** An entry with signatures computed elsewhere (the worker pool); the caller vouches for them. */
export const withSignatures = (entry: Entry, authorSig: Uint8Array, namespaceSig: Uint8Array): SignedEntry =>
  new SignedEntry(
    {
      signature: new EntrySignature(
        {
          author: Signature.make(authorSig, { disableValidation: true }),
          namespace: Signature.make(namespaceSig, { disableValidation: true })
        },
        true
      ),
      entry
    },
    true
  )

export const signEntry = (namespace: NamespaceSecret, author: Author, entry: Entry): SignedEntry => {
  const bytes = signingBytes(entry)
  return withSignatures(entry, Ed.sign(signingKey(author), bytes), Ed.sign(signingKey(namespace), bytes))
}

/**
 * Validated public keys by their 32 bytes: each author or namespace key is decompressed and checked once (the
 * reference's PublicKeyStore). Invalid keys are remembered too. Least recently inserted keys are evicted past capacity.
 */
export class PublicKeyCache {
  private readonly keys = new Map<string, Ed.PublicKeyObject | null>()
  constructor(private readonly capacity = 65_536) {}
  get(bytes: Uint8Array): Ed.PublicKeyObject | undefined {
    const k = latin1(bytes)
    let v = this.keys.get(k)
    if (v === undefined) {
      v = Ed.publicKeyObject(bytes) ?? null
      if (this.keys.size >= this.capacity) this.keys.delete(this.keys.keys().next().value!)
      this.keys.set(k, v)
    }
    return v ?? undefined
  }
}

/** Strict verification of both signatures: namespace first, then author (spec 01 §5). */
export const verifySignedEntry = (keys: PublicKeyCache, e: SignedEntry): "ok" | "key" | "signature" => {
  const ns = keys.get(e.entry.id.namespace)
  const author = keys.get(e.entry.id.author)
  if (ns === undefined || author === undefined) return "key"
  const bytes = signingBytes(e.entry)
  if (!Ed.verify(ns, bytes, e.signature.namespace)) return "signature"
  if (!Ed.verify(author, bytes, e.signature.author)) return "signature"
  return "ok"
}

/**
 * validateEntry of spec 01 §8, in its order (namespace, signature unless local, future timestamp), plus the
 * empty/len consistency check on every path (spec 01 §13 decision 2) and the key length bound (`MAX_KEY_LENGTH`,
 * checked before the signatures: a long key costs its whole length to verify).
 */
export const validateEntry = (
  keys: PublicKeyCache,
  now: bigint,
  expected: NamespaceId,
  e: SignedEntry,
  origin: "local" | "remote"
): ValidationFailure | undefined => {
  const { id, record } = e.entry
  if (!equals(id.namespace, expected)) {
    return new InvalidNamespace({ namespace: expected, got: id.namespace })
  }
  if (id.key.length > MAX_KEY_LENGTH) {
    return new KeyTooLong({ namespace: id.namespace, length: id.key.length, max: MAX_KEY_LENGTH })
  }
  if (origin === "remote") {
    const v = verifySignedEntry(keys, e)
    if (v !== "ok") return new BadSignature({ namespace: id.namespace, author: id.author, reason: v })
  }
  if (record.timestamp > now + MAX_TIMESTAMP_FUTURE_SHIFT) {
    return new TooFarInTheFuture({ namespace: id.namespace, timestamp: record.timestamp, now })
  }
  if (!record.isValidEmpty) return new InvalidEmptyEntry({ namespace: id.namespace })
  return undefined
}
