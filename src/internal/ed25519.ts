/**
 * Ed25519 (spec 01 §0, §5): node:crypto signs and verifies (≈30× faster than noble), @noble/curves derives public
 * keys and validates points. Verification is strict: S must be canonical (< L), public keys must be canonical, valid,
 * not of small order, and R must not be a small-order point. Non-canonical R encodings fail OpenSSL's byte comparison.
 */
import { ed25519 } from "@noble/curves/ed25519.js"
import * as crypto from "node:crypto"
import { fromHex } from "./bytes.js"

const PKCS8_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex")
const SPKI_PREFIX = Buffer.from("302a300506032b6570032100", "hex")

export type SecretKeyObject = crypto.KeyObject
export type PublicKeyObject = crypto.KeyObject

export const randomSeed = (): Uint8Array => new Uint8Array(crypto.randomBytes(32))

export const publicKeyOf = (seed: Uint8Array): Uint8Array => ed25519.getPublicKey(seed)

export const secretKeyObject = (seed: Uint8Array): SecretKeyObject =>
  crypto.createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, seed]), format: "der", type: "pkcs8" })

/** The canonical encodings of the eight points of small order (the torsion subgroup). */
export const SMALL_ORDER = [
  "0100000000000000000000000000000000000000000000000000000000000000",
  "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "0000000000000000000000000000000000000000000000000000000000000000",
  "0000000000000000000000000000000000000000000000000000000000000080",
  "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
  "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
  "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
  "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85"
].map((h) => fromHex(h)!)

/** Whether the first 32 bytes of `bytes` equal one of {@link SMALL_ORDER} (first and last bytes compared first: hot path). */
const startsSmallOrder = (bytes: Uint8Array): boolean => {
  for (const p of SMALL_ORDER) {
    if (p[0] !== bytes[0] || p[31] !== bytes[31]) continue
    let i = 1
    while (i < 31 && p[i] === bytes[i]) i++
    if (i === 31) return true
  }
  return false
}

export const isSmallOrderEncoding = (bytes: Uint8Array): boolean => bytes.length === 32 && startsSmallOrder(bytes)

/**
 * Validates 32 bytes as a public key: a canonical encoding of a curve point that is not of small order.
 * Returns the node:crypto key object for fast verification, or undefined.
 */
export const publicKeyObject = (bytes: Uint8Array): PublicKeyObject | undefined => {
  if (bytes.length !== 32) return undefined
  try {
    const point = ed25519.Point.fromBytes(bytes, false)
    if (point.isSmallOrder()) return undefined
  } catch {
    return undefined
  }
  return crypto.createPublicKey({ key: Buffer.concat([SPKI_PREFIX, bytes]), format: "der", type: "spki" })
}

/** Group order L, little-endian, for the canonical-S check. */
const L = fromHex("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010")!

/** Whether the 32 bytes of `s` at `at` are a canonical scalar (< L, little-endian). */
const isCanonicalScalarAt = (s: Uint8Array, at: number): boolean => {
  for (let i = 31; i >= 0; i--) {
    if (s[at + i]! < L[i]!) return true
    if (s[at + i]! > L[i]!) return false
  }
  return false
}

export const sign = (key: SecretKeyObject, message: Uint8Array): Uint8Array =>
  new Uint8Array(crypto.sign(null, message, key))

/** The checks of strict verification that need no curve arithmetic: 64 bytes, canonical S, R not of small order. */
export const isStrictSignatureShape = (signature: Uint8Array): boolean =>
  signature.length === 64 && isCanonicalScalarAt(signature, 32) && !startsSmallOrder(signature)

export const verify = (key: PublicKeyObject, message: Uint8Array, signature: Uint8Array): boolean =>
  isStrictSignatureShape(signature) && crypto.verify(null, message, key, signature)
