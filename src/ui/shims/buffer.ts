/**
 * The few `Buffer` calls the shared byte helpers (`src/internal/bytes.ts`) make, for the page (injected as the global
 * `Buffer` by `bundleUi`): hex and latin1 decoding, views and `compare`. Anything else throws, so a new use shows up.
 */
const fromHexString = (hex: string): Uint8Array => {
  const out = new Uint8Array(hex.length >> 1)
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16)
  return out
}

const view = (bytes: Uint8Array) => ({
  toString: (encoding: string): string => {
    if (encoding !== "latin1") throw new Error(`Buffer#toString(${encoding}) is not available in the page`)
    let s = ""
    for (const b of bytes) s += String.fromCharCode(b)
    return s
  }
})

export const Buffer = {
  from: (source: string | ArrayBufferLike, encodingOrOffset?: string | number, length?: number) => {
    if (typeof source === "string") {
      if (encodingOrOffset !== "hex") throw new Error("Buffer.from: only hex strings in the page")
      return fromHexString(source)
    }
    const offset = typeof encodingOrOffset === "number" ? encodingOrOffset : 0
    return Object.assign(new Uint8Array(source, offset, length), view(new Uint8Array(source, offset, length)))
  },
  compare: (a: Uint8Array, b: Uint8Array): number => {
    const n = Math.min(a.length, b.length)
    for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! < b[i]! ? -1 : 1
    return a.length === b.length ? 0 : a.length < b.length ? -1 : 1
  },
  isBuffer: (_: unknown): boolean => false
}
