/**
 * Builds the `rangedocs` program (`bin`) with esbuild (installed with tsx): `npm run build` runs
 * `node dist/src/cli/bundle.js` after tsc, writing `dist/cli/`. A bundle loads in a fraction of the time of the
 * thousands of module files it replaces. The program is built twice (`launch.ts`, `dist/cli/main.js`, picks one):
 * - `node/main.js` and its chunks, ES modules, for `start` and `demo`: code splitting keeps the node's layers (libp2p,
 *   SQLite) out of everything else;
 * - `client.cjs`, one CommonJS file, for every other command, run with a V8 code cache (`codeCache.ts`): Node 20 can
 *   cache compiled scripts but not ES modules, and compiling was a quarter of a client command's start.
 * Native packages stay outside the bundle. The tests build the same program into a directory of their own.
 */
import type { BuildOptions } from "esbuild"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

export interface BundleOptions {
  /** The package root (where `src/main.ts` and `node_modules` are). */
  readonly root: string
  readonly outdir: string
}

/** Packages loaded from node_modules at run time: native addons, which a bundle cannot hold. */
export const EXTERNAL = ["better-sqlite3", "@napi-rs/*"] as const

/** Parsers of configuration file formats that @effect/cli imports and rangedocs never uses (`noConfigFiles.ts`). */
const NO_CONFIG_FILES = ["yaml", "toml", "ini"]

/** The esbuild options of every build of the program: native packages outside, parsers it never uses stubbed. */
const programOptions = (root: string): BuildOptions => ({
  absWorkingDir: root,
  bundle: true,
  platform: "node",
  target: "node20",
  external: [...EXTERNAL],
  alias: {
    ...Object.fromEntries(NO_CONFIG_FILES.map((name) => [name, "./src/cli/noConfigFiles.ts"])),
    "msgpackr-extract": "./src/cli/noNativeMsgpack.ts"
  },
  // Less to parse at every start. Names stay, for readable errors.
  minifyWhitespace: true,
  minifySyntax: true,
  logLevel: "warning"
})

/** A node program as one ES module build (as `start` runs; the benches' node processes use it too). */
export const nodeProgramOptions = (root: string): BuildOptions => ({
  ...programOptions(root),
  format: "esm",
  // Bundled CommonJS packages call require(), which an ES module lacks.
  banner: {
    js: "import { createRequire as __rangedocsRequire } from 'node:module'; const require = __rangedocsRequire(import.meta.url);"
  }
})

export const bundleCli = async (options: BundleOptions): Promise<string> => {
  const esbuild = await import("esbuild")
  fs.rmSync(options.outdir, { recursive: true, force: true })
  const common = programOptions(options.root)
  const program = path.join(options.root, "src", "main.ts")
  // The node (`start`, `demo`): ES modules, split so that only these commands load libp2p and SQLite.
  await esbuild.build({
    ...nodeProgramOptions(options.root),
    entryPoints: { main: program },
    splitting: true,
    outdir: path.join(options.outdir, "node"),
    chunkNames: "chunks/[name]-[hash]"
  })
  // The client commands: one CommonJS file, which V8 can cache compiled (codeCache.ts). `import.meta.url` (two modules
  // locate files next to the program) becomes the file's URL.
  const client = path.join(options.outdir, "client.cjs")
  await esbuild.build({
    ...common,
    entryPoints: [program],
    format: "cjs",
    // `import()` becomes require(): a script run by vm.Script has no module loader for it on Node < 20.12.
    supported: { "dynamic-import": false },
    outfile: client,
    define: { "import.meta.url": "__rangedocsUrl" },
    banner: { js: "const __rangedocsUrl = require('node:url').pathToFileURL(__filename).href;" }
  })
  // The hashbang (of src/main.ts) is not JavaScript inside the function Node's module wrapper makes of the file.
  const text = fs.readFileSync(client, "utf8").replace(/^#!.*\n/, "")
  fs.writeFileSync(client, text)
  const build = crypto.createHash("sha256").update(text).digest("hex").slice(0, 16)
  // The program users run: picks one of the two (launch.ts).
  const main = path.join(options.outdir, "main.js")
  await esbuild.build({
    ...common,
    entryPoints: [path.join(options.root, "src", "cli", "launch.ts")],
    format: "esm",
    outfile: main,
    define: { RANGEDOCS_CLIENT_BUILD: JSON.stringify(build) }
  })
  fs.chmodSync(main, 0o755)
  return main
}

/**
 * The node's inspector (issue 18) for the browser: `src/ui/main.ts` as one minified ES module with its page and style,
 * written to `outdir` (`dist/ui/`, served by the RPC server). The shared schemas call two node-only modules, swapped
 * here for the page's own (`src/ui/shims/`: @noble for ed25519 point checks and BLAKE3), and `Buffer`, given to the
 * project's own modules (not to packages) for the few calls they make. Any other node: import fails the build, so nothing of the node leaks into the page.
 */
export const bundleUi = async (options: BundleOptions): Promise<{ readonly outdir: string; readonly bytes: number }> => {
  const esbuild = await import("esbuild")
  fs.rmSync(options.outdir, { recursive: true, force: true })
  const shims = path.join(options.root, "src", "ui", "shims")
  const swapped: Record<string, string> = {
    "ed25519.js": path.join(shims, "ed25519.ts"),
    "blake3.js": path.join(shims, "blake3.ts")
  }
  const result = await esbuild.build({
    entryPoints: { app: path.join(options.root, "src", "ui", "main.ts") },
    absWorkingDir: options.root,
    bundle: true,
    platform: "browser",
    format: "esm",
    target: ["chrome120", "firefox120", "safari17"],
    outdir: options.outdir,
    plugins: [{
      name: "rangedocs-browser-shims",
      setup: (build) => {
        build.onResolve({ filter: /\/internal\/(ed25519|blake3)\.js$/ }, (args) => {
          const file = swapped[path.basename(args.path)]
          return file === undefined ? undefined : { path: file }
        })
        // `Buffer` for the project's own modules only: given to a package (msgpackr), it would take the page for Node.
        const bufferShim = JSON.stringify(path.join(shims, "buffer.ts"))
        build.onLoad({ filter: /[\\/]src[\\/](internal|schema)[\\/][^\\/]+\.ts$/ }, async (args) => {
          const source = await fs.promises.readFile(args.path, "utf8")
          if (!/\bBuffer\./.test(source)) return undefined
          return { contents: `import { Buffer } from ${bufferShim}\n${source}`, loader: "ts" }
        })
        build.onResolve({ filter: /^node:/ }, (args) => ({
          errors: [{ text: `${args.path} imported by ${args.importer}: the inspector runs in a browser` }]
        }))
      }
    }],
    minify: true,
    legalComments: "none",
    metafile: true,
    logLevel: "warning"
  })
  for (const file of ["index.html", "app.css"]) {
    fs.copyFileSync(path.join(options.root, "src", "ui", file), path.join(options.outdir, file))
  }
  const bytes = Object.values(result.metafile.outputs).reduce((sum, o) => sum + o.bytes, 0)
  return { outdir: options.outdir, bytes }
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const root = process.cwd()
  await bundleCli({ root, outdir: path.join(root, "dist", "cli") })
  await bundleUi({ root, outdir: path.join(root, "dist", "ui") })
}
