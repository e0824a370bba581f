/**
 * `npm run bench -- NAME [--flag value]...`: progress on stderr; the last stdout line is one JSON object.
 */
import "../src/internal/polyfill.js"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Effect } from "effect"

const [name, ...rest] = process.argv.slice(2)
const flags = new Map<string, string>()
for (let i = 0; i < rest.length; i++) {
  const a = rest[i]!
  if (!a.startsWith("--")) continue
  // `--name=value` for values that start with "--" themselves (e.g. `--node-args=--max-semi-space-size=32`).
  const eq = a.indexOf("=")
  if (eq > 2) {
    flags.set(a.slice(2, eq), a.slice(eq + 1))
    continue
  }
  const next = rest[i + 1]
  if (next !== undefined && !next.startsWith("--")) {
    flags.set(a.slice(2), next)
    i++
  } else flags.set(a.slice(2), "true")
}

type Bench = (flags: ReadonlyMap<string, string>) => Effect.Effect<object, unknown>
// Loaded on demand, so a bench's memory figures do not include the modules of the others.
const benches: Record<string, () => Promise<Bench>> = {
  blobs: async () => (await import("./blobs.js")).blobsBench,
  cli: async () => (await import("./cli.js")).cliBench,
  insert: async () => (await import("./insert.js")).insertBench,
  flood: async () => (await import("./flood.js")).floodBench,
  live: async () => (await import("./live.js")).liveBench,
  reconcile: async () => (await import("./reconcile.js")).reconcileBench,
  sync: async () => (await import("./sync.js")).syncBench
}

const load = name === undefined ? undefined : benches[name]
if (load === undefined) {
  process.stderr.write(`usage: npm run bench -- <${Object.keys(benches).join("|")}> [--flag value]...\n`)
  process.exit(2)
}
const bench = await load()
NodeRuntime.runMain(
  bench(flags).pipe(Effect.flatMap((result) => Effect.sync(() => process.stdout.write(JSON.stringify(result) + "\n"))))
)
