import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

export const progress = (msg: string) => process.stderr.write(`${msg}\n`)

export const numberFlag = (flags: ReadonlyMap<string, string>, name: string, dflt: number): number => {
  const v = flags.get(name)
  return v === undefined ? dflt : Number(v)
}

export const tempDir = (prefix: string) => fs.mkdtempSync(path.join(os.tmpdir(), prefix))

/** Peak resident set size of this process so far, in MB. */
export const peakRssMb = () => Math.round(process.resourceUsage().maxRSS / 1024)

export const randomBytes = (n: number) => {
  const b = new Uint8Array(n)
  for (let i = 0; i < n; i++) b[i] = (Math.random() * 256) | 0
  return b
}
