/**
 * Bundling a bench's node program (the runner side only: a module that a bundled program imports must not import
 * src/cli/bundle.ts, whose main-module check would run inside the bundle).
 */
import { Effect } from "effect"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { EXTERNAL } from "../src/cli/bundle.js"

/** The repository's root (benches run from `.bench-dist/bench/`). */
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..")

/**
 * A bench's node program as the deployed `rangedocs` runs: one esbuild bundle (`npm run build`, src/cli/bundle.ts),
 * native addons outside. A node process holds ~30 MB less at rest than when it loads the same code from its thousands
 * of module files (an idle `rangedocs start`: 101 MB RSS, against ~150 for the bench's unbundled node), so memory
 * figures of a process per node come from bundles. `entry` is relative to the repository; the bundle is written to
 * `.bench-dist/bundle/` and its path returned.
 */
export const bundledProgram = (entry: string) =>
  Effect.promise(async () => {
    const outdir = path.join(ROOT, ".bench-dist", "bundle")
    const name = path.basename(entry, path.extname(entry))
    const esbuild = await import("esbuild")
    await esbuild.build({
      entryPoints: { [name]: path.join(ROOT, entry) },
      absWorkingDir: ROOT,
      bundle: true,
      platform: "node",
      format: "esm",
      target: "node20",
      outdir,
      external: [...EXTERNAL],
      // Bundled CommonJS packages call require(), which an ES module lacks.
      banner: {
        js: "import { createRequire as __benchRequire } from 'node:module'; const require = __benchRequire(import.meta.url);"
      },
      minifyWhitespace: true,
      minifySyntax: true,
      logLevel: "warning"
    })
    return path.join(outdir, `${name}.js`)
  })
