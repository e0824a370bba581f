/** Cuts `stream` at the given positions (in no particular order, duplicates and 0/length allowed), as a network read would. */
export const cutAt = (stream: Uint8Array, cuts: ReadonlyArray<number>): Array<Uint8Array> => {
  const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b)
  const chunks: Array<Uint8Array> = []
  let prev = 0
  for (const p of [...points, stream.length]) {
    chunks.push(stream.subarray(prev, p))
    prev = p
  }
  return chunks
}
