/** Capability = Write(NamespaceSecret) | Read(NamespaceId) (spec 01 §2). */
import { Either, Schema } from "effect"
import { NamespaceId, NamespaceSecret, secretSeed } from "./Keys.js"
import { NamespaceMismatch, ReadOnly } from "./Errors.js"

export class Write extends Schema.TaggedClass<Write>()("Write", { secret: NamespaceSecret }) {
  get id(): NamespaceId {
    return this.secret.id
  }
  get kind(): CapabilityKind {
    return "write"
  }
}

export class Read extends Schema.TaggedClass<Read>()("Read", { id: NamespaceId }) {
  get kind(): CapabilityKind {
    return "read"
  }
}

export const Capability = Schema.Union(Write, Read)
export type Capability = typeof Capability.Type

export const CapabilityKind = Schema.Literal("write", "read")
export type CapabilityKind = typeof CapabilityKind.Type

/** Numeric codes of the raw/stored form: Write = 1, Read = 2 (spec 01 §2). */
export const kindCode = (kind: CapabilityKind): number => (kind === "write" ? 1 : 2)
export const kindFromCode = (code: number): CapabilityKind | undefined =>
  code === 1 ? "write" : code === 2 ? "read" : undefined

/** The raw form `(kind u8, 32 bytes)`: the secret seed for Write, the namespace id for Read. */
export const toRaw = (cap: Capability): { readonly kind: number; readonly bytes: Uint8Array } =>
  cap._tag === "Write"
    ? { kind: 1, bytes: secretSeed(cap.secret) }
    : { kind: 2, bytes: cap.id }

export const fromRaw = (kind: number, bytes: Uint8Array): Capability | undefined => {
  if (bytes.length !== 32) return undefined
  if (kind === 1) return new Write({ secret: NamespaceSecret.fromSeed(bytes) })
  if (kind === 2) return new Read({ id: NamespaceId.make(Uint8Array.from(bytes)) })
  return undefined
}

export const secretKey = (cap: Capability): Either.Either<NamespaceSecret, ReadOnly> =>
  cap._tag === "Write" ? Either.right(cap.secret) : Either.left(new ReadOnly({ namespace: cap.id }))

/**
 * Merge `other` into `self` (spec 01 §2): different ids → NamespaceMismatch; only Read → Write upgrades.
 * Returns the resulting capability and whether it changed.
 */
export const merge = (
  self: Capability,
  other: Capability
): Either.Either<{ readonly capability: Capability; readonly upgraded: boolean }, NamespaceMismatch> => {
  if (Buffer.compare(self.id, other.id) !== 0) return Either.left(new NamespaceMismatch({ namespace: self.id }))
  if (self._tag === "Read" && other._tag === "Write") return Either.right({ capability: other, upgraded: true })
  return Either.right({ capability: self, upgraded: false })
}
