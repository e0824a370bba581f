/** Helpers shared by the blobs benchmark (bench/blobs.ts) and its node processes (bench/blobs-node.ts). */
import { Effect } from "effect"
import { randomFillSync } from "node:crypto"
import * as fs from "node:fs"

export const MiB = 1024 * 1024

/** A file of `size` random bytes, written through one reused buffer. */
export const writeRandomFile = (file: string, size: number) =>
  Effect.promise(async () => {
    const handle = await fs.promises.open(file, "w")
    const buf = new Uint8Array(MiB)
    try {
      for (let done = 0; done < size; done += MiB) {
        const n = Math.min(MiB, size - done)
        randomFillSync(buf, 0, n)
        await handle.write(buf, 0, n)
      }
    } finally {
      await handle.close()
    }
  })

export const mibPerSec = (bytes: number, ms: number) => bytes / MiB / (ms / 1000)

/** Resets the peak resident set (VmHWM) of process `pid` to its current size (Linux ≥ 4.0); false if not possible. */
export const resetPeakRss = (pid: number): boolean => {
  try {
    fs.writeFileSync(`/proc/${pid}/clear_refs`, "5")
    return true
  } catch {
    return false
  }
}
