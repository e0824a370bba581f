/**
 * The package as another project gets it (issue 16, finding 4): `npm pack`, installed into a temporary Effect project
 * with its peers, type-checked against the published `.d.ts` files and run. The packed files are `dist/`, which
 * `npm ci` builds (`prepare`); the test builds it when it is missing. The install takes what `npm ci` left in npm's
 * cache and asks the registry only for what is missing there; it skips install scripts, and better-sqlite3's native
 * addon is copied from this checkout (the same version: compiling it again would take a minute).
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import { execFile } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { promisify } from "node:util"

const ROOT = path.resolve(import.meta.dirname, "..", "..")
const manifest = JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8")) as {
  readonly version: string
  readonly dependencies: Record<string, string>
  readonly peerDependencies: Record<string, string>
  readonly devDependencies: Record<string, string>
}
const work = fs.mkdtempSync(path.join(os.tmpdir(), "rangedocs-pack-"))
afterAll(() => fs.rmSync(work, { recursive: true, force: true }))

/** Runs a command without blocking the test worker (vitest's worker must keep answering its runner). */
const run = async (command: string, args: ReadonlyArray<string>, cwd: string): Promise<string> =>
  (await promisify(execFile)(command, [...args], { cwd, encoding: "utf8", timeout: 150_000, maxBuffer: 16 << 20 }))
    .stdout

const walk = (dir: string): Array<string> =>
  fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(path.join(dir, e.name)) : [path.join(dir, e.name)]
  )

/** The packages named by `import … from "…"` in the library's type declarations (not the CLI's, which is no API). */
const packagesInTypes = (dist: string): Set<string> => {
  const names = new Set<string>()
  const library = walk(dist).filter((f) =>
    f.endsWith(".d.ts") && !f.startsWith(path.join(dist, "cli") + path.sep) && f !== path.join(dist, "main.d.ts"))
  for (const file of library) {
    for (const m of fs.readFileSync(file, "utf8").matchAll(/from "((?:@[^"/]+\/)?[^"./][^"/]*)/g)) names.add(m[1]!)
  }
  return names
}

/** Every installed copy of `name` below `dir`'s node_modules (nested ones included). */
const copiesOf = (dir: string, name: string): Array<string> =>
  walk(path.join(dir, "node_modules"))
    .filter((f) => f.endsWith(path.join("node_modules", name, "package.json")))

const PROGRAM = `import { NodeRuntime } from "@effect/platform-node"
import { Console, Effect, Option } from "effect"
import { Docs, Node } from "rangedocs"

const text = (s: string) => new TextEncoder().encode(s)
const program = Effect.gen(function*() {
  const docs = yield* Docs.Docs
  const author = yield* docs.authorGetDefault
  const doc = yield* Docs.createDoc(docs)
  yield* doc.setBytes(author, text("greeting"), text("hello from a packed rangedocs"))
  const entry = yield* doc.getExact(author, text("greeting"))
  const content = yield* docs.readContent(Option.getOrThrow(entry).record.hash)
  yield* Console.log(new TextDecoder().decode(content))
})
program.pipe(Effect.scoped, Effect.provide(Node.memoryNode()), NodeRuntime.runMain)
`

describe("the npm package", () => {
  it("every Effect package its types name is a peer dependency with a range, pinned for development", async () => {
    if (!fs.existsSync(path.join(ROOT, "dist", "src", "index.d.ts"))) await run("npm", ["run", "build"], ROOT)
    const named = [...packagesInTypes(path.join(ROOT, "dist", "src"))].filter((n) => n === "effect" || n.startsWith("@effect/"))
    assert.include(named, "effect")
    for (const name of named) {
      assert.isDefined(manifest.peerDependencies[name], `${name} is named by the types: a peer dependency`)
      assert.isUndefined(manifest.dependencies[name], `${name} must not also be a dependency (a second copy)`)
      assert.match(manifest.peerDependencies[name]!, /^\^/, `${name}: a range`)
      assert.strictEqual(`^${manifest.devDependencies[name]}`, manifest.peerDependencies[name], `${name}: developed against`)
    }
    assert.isUndefined(manifest.dependencies["effect"])
  })

  it("packed, installed into an Effect project with its peers: one copy of effect, the program type-checks and runs", async () => {
    if (!fs.existsSync(path.join(ROOT, "dist", "src", "index.js"))) await run("npm", ["run", "build"], ROOT)
    const packed = JSON.parse(await run("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", work], ROOT)) as Array<{
      readonly filename: string
    }>
    const tarball = path.join(work, packed[0]!.filename)
    const app = path.join(work, "app")
    fs.mkdirSync(app)
    // The user's own dependencies: the peers at the versions we develop against, and node's types.
    const peers = Object.fromEntries(Object.keys(manifest.peerDependencies).map((n) => [n, manifest.devDependencies[n]!]))
    fs.writeFileSync(
      path.join(app, "package.json"),
      JSON.stringify({
        name: "embedder",
        private: true,
        type: "module",
        dependencies: { rangedocs: `file:${tarball}`, ...peers, "@types/node": manifest.devDependencies["@types/node"] }
      })
    )
    fs.writeFileSync(
      path.join(app, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          target: "ES2022",
          module: "NodeNext",
          moduleResolution: "NodeNext",
          strict: true,
          skipLibCheck: true,
          outDir: "out",
          types: ["node"]
        },
        files: ["main.ts"]
      })
    )
    fs.writeFileSync(path.join(app, "main.ts"), PROGRAM)
    await run("npm", ["install", "--prefer-offline", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"], app)
    assert.strictEqual(copiesOf(app, "effect").length, 1, "one copy of effect")
    const addon = path.join("build", "Release", "better_sqlite3.node")
    fs.mkdirSync(path.join(app, "node_modules", "better-sqlite3", "build", "Release"), { recursive: true })
    fs.copyFileSync(path.join(ROOT, "node_modules", "better-sqlite3", addon), path.join(app, "node_modules", "better-sqlite3", addon))
    await run(process.execPath, [path.join(ROOT, "node_modules", "typescript", "bin", "tsc"), "-p", "tsconfig.json"], app)
    const out = await run(process.execPath, [path.join(app, "out", "main.js")], app)
    assert.strictEqual(out.trim(), "hello from a packed rangedocs")
  }, 240_000)
})
