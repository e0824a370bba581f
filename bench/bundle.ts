/**
 * Bundling a bench's node program (the runner side only: a module that a bundled program imports must not import
 * src/cli/bundle.ts, whose main-module check would run inside the bundle).
 */
import { Effect } from "effect"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { nodeProgramOptions } from "../src/cli/bundle.js"

/** The repository's root (benches run from `.bench-dist/bench/`). */
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..")

/**
 * A bench's node program as the deployed `rangedocs` runs: one esbuild bundle with the options of `start`'s build
 * (src/cli/bundle.ts), native addons outside. A node process holds ~30 MB less at rest than when it loads the same
 * code from its thousands of module files (an idle `rangedocs start`: 101 MB RSS, against ~150 for the bench's
 * unbundled node), so memory figures of a process per node come from bundles. `entry` is relative to the repository;
 * the bundle is written to `.bench-dist/bundle/` and its path returned.
 */
export const bundledProgram = (entry: string) =>
  Effect.promise(async () => {
    const outdir = path.join(ROOT, ".bench-dist", "bundle")
    const name = path.basename(entry, path.extname(entry))
    const esbuild = await import("esbuild")
    await esbuild.build({ ...nodeProgramOptions(ROOT), entryPoints: { [name]: path.join(ROOT, entry) }, outdir })
    return path.join(outdir, `${name}.js`)
  })

/**
 * The program of a bench's node processes, `bench/<name>.ts`: bundled (`bundledProgram`), or with `--unbundled` its
 * compiled module file (next to this one in `.bench-dist/bench/`).
 */
export const nodeProgram = (name: string, flags: ReadonlyMap<string, string>) =>
  flags.get("unbundled") === "true"
    ? Effect.succeed(fileURLToPath(new URL(`./${name}.js`, import.meta.url)))
    : bundledProgram(`bench/${name}.ts`)
