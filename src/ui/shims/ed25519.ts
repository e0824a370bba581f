/**
 * The browser's stand-in for `src/internal/ed25519.ts` (swapped in by the inspector's bundle, `bundleUi`): the page
 * never signs nor verifies — the node does — but the schemas it decodes check that ids are curve points, which
 * @noble/curves does here as it does on the node. Signing needs node:crypto and fails here.
 */
import { ed25519 } from "@noble/curves/ed25519.js"

export type SecretKeyObject = { readonly _tag: "SecretKeyObject" }
export type PublicKeyObject = { readonly _tag: "PublicKeyObject" }

const unavailable = (what: string): never => {
  throw new Error(`${what} is not available in the browser`)
}

export const randomSeed = (): Uint8Array => crypto.getRandomValues(new Uint8Array(32))

export const publicKeyOf = (seed: Uint8Array): Uint8Array => ed25519.getPublicKey(seed)

export const secretKeyObject = (_seed: Uint8Array): SecretKeyObject => unavailable("signing")

/** Not needed in the page (the node checks signatures). */
export const SMALL_ORDER: ReadonlyArray<Uint8Array> = []

export const isSmallOrderEncoding = (bytes: Uint8Array): boolean => {
  try {
    return ed25519.Point.fromBytes(bytes, false).isSmallOrder()
  } catch {
    return false
  }
}

export const publicKeyObject = (bytes: Uint8Array): PublicKeyObject | undefined => {
  if (bytes.length !== 32) return undefined
  try {
    return ed25519.Point.fromBytes(bytes, false).isSmallOrder() ? undefined : { _tag: "PublicKeyObject" }
  } catch {
    return undefined
  }
}

export const sign = (_key: SecretKeyObject, _message: Uint8Array): Uint8Array => unavailable("signing")

export const isStrictSignatureShape = (signature: Uint8Array): boolean => signature.length === 64

export const verify = (_key: PublicKeyObject, _message: Uint8Array, _signature: Uint8Array): boolean =>
  unavailable("verifying")
