/**
 * BLAKE3 on hot paths. hash-wasm is fastest for the short inputs of fingerprints and signing (~0.45 µs for 120 B);
 * the native @napi-rs/blake-hash wins from a few KiB on (GiB/s). Both are checked against @noble/hashes in tests.
 *
 * Both are set up on first use, not when the module loads: every CLI command loads this module (entries are decoded
 * in the client too) and most never hash. Loading the native addon costs ~20 ms (its loader asks
 * `process.report.getReport()` which libc it runs on), and the WebAssembly hasher can only be created asynchronously:
 * until it is ready, short inputs go to the native hasher too (same digest, a little slower per call).
 */
import type * as NativeBlake3 from "@napi-rs/blake-hash"
import { createBLAKE3, type IHasher } from "hash-wasm"
import { createRequire } from "node:module"
import { fromHex } from "./bytes.js"

let native: typeof NativeBlake3 | undefined
const nativeModule = (): typeof NativeBlake3 => {
  if (native === undefined) native = createRequire(import.meta.url)("@napi-rs/blake-hash") as typeof NativeBlake3
  return native
}

let wasm: IHasher | undefined
let wasmReady: Promise<boolean> | undefined
/** Starts creating the WebAssembly hasher (once); resolves with whether it exists (without it, all goes native). */
export const startWasm = (): Promise<boolean> => {
  wasmReady ??= createBLAKE3().then(
    (hasher) => {
      wasm = hasher
      return true
    },
    () => false
  )
  return wasmReady
}

const NATIVE_FROM = 4096

/** The native one-shot hasher, whatever the input's length (exported for its test; `blake3` picks the hasher). */
export const viaNative = (data: Uint8Array): Uint8Array => {
  const out = nativeModule().blake3(Buffer.from(data.buffer, data.byteOffset, data.byteLength))
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength)
}

export const blake3 = (data: Uint8Array): Uint8Array => {
  if (data.length >= NATIVE_FROM) return viaNative(data)
  if (wasm === undefined) {
    void startWasm()
    return viaNative(data)
  }
  wasm.init()
  wasm.update(data)
  return wasm.digest("binary")
}

/** An incremental hasher for streamed content (blobs), native: GiB/s on large updates. One per stream. */
export const incremental = () => {
  const hasher = new (nativeModule().Blake3Hasher)()
  return {
    update: (data: Uint8Array) => void hasher.update(Buffer.from(data.buffer, data.byteOffset, data.byteLength)),
    digest: (): Uint8Array => {
      const out = hasher.digestBuffer()
      return new Uint8Array(out.buffer, out.byteOffset, out.byteLength)
    }
  }
}

/** BLAKE3("") (spec 01 §0); test/schema/Entry.test.ts checks it against the hashers. */
export const EMPTY_HASH: Uint8Array = fromHex("af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262")!
