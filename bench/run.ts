/**
 * `npm run bench -- NAME [--flag value]...`: progress on stderr; the last stdout line is one JSON object.
 */
import "../src/internal/polyfill.js"
import { NodeRuntime } from "@effect/platform-node"
import { Effect } from "effect"
import { blobsBench } from "./blobs.js"
import { insertBench } from "./insert.js"
import { liveBench } from "./live.js"
import { reconcileBench } from "./reconcile.js"
import { syncBench } from "./sync.js"

const [name, ...rest] = process.argv.slice(2)
const flags = new Map<string, string>()
for (let i = 0; i < rest.length; i++) {
  const a = rest[i]!
  if (!a.startsWith("--")) continue
  const next = rest[i + 1]
  if (next !== undefined && !next.startsWith("--")) {
    flags.set(a.slice(2), next)
    i++
  } else flags.set(a.slice(2), "true")
}

const benches: Record<string, (flags: ReadonlyMap<string, string>) => Effect.Effect<object, unknown>> = {
  blobs: blobsBench,
  insert: insertBench,
  live: liveBench,
  reconcile: reconcileBench,
  sync: syncBench
}

const bench = name === undefined ? undefined : benches[name]
if (bench === undefined) {
  process.stderr.write(`usage: npm run bench -- <${Object.keys(benches).join("|")}> [--flag value]...\n`)
  process.exit(2)
}
NodeRuntime.runMain(
  bench(flags).pipe(Effect.flatMap((result) => Effect.sync(() => process.stdout.write(JSON.stringify(result) + "\n"))))
)
