/**
 * The browser's stand-in for `src/internal/blake3.ts` (swapped in by `bundleUi`): @noble/hashes instead of the
 * native and wasm hashers, which a page cannot load. The page hashes next to nothing (the schemas' constants).
 */
import { blake3 as nobleBlake3 } from "@noble/hashes/blake3.js"

export const blake3 = (data: Uint8Array): Uint8Array => nobleBlake3(data)

export const incremental = () => {
  const hasher = nobleBlake3.create()
  return {
    update: (data: Uint8Array) => void hasher.update(data),
    digest: (): Uint8Array => hasher.digest()
  }
}

export const EMPTY_HASH: Uint8Array = blake3(new Uint8Array(0))
