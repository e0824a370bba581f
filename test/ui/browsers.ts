/**
 * The browsers the inspector tests drive: Debian's, never a downloaded one. A missing browser is installed with
 * apt-get when the tests run as root (CI); otherwise its tests skip, with the reason returned here.
 */
import { Context, Effect, Either, Layer } from "effect"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { bundleUi } from "../../src/cli/bundle.js"
import * as DocsRpc from "../../src/services/DocsRpc.js"
import type { TestNode } from "../utils/nodes.js"

/** The executable at `executable`, installing Debian's `pkg` first when it is missing and we are root. */
export const findBrowser = (executable: string, pkg: string): Either.Either<string, string> => {
  if (fs.existsSync(executable)) return Either.right(executable)
  if (process.getuid?.() !== 0) return Either.left(`no ${executable} and not root to apt-get install ${pkg}`)
  const apt = (args: ReadonlyArray<string>) =>
    execFileSync("apt-get", args, { stdio: "ignore", env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" }, timeout: 300_000 })
  try {
    // A fresh CI image has no package lists yet.
    apt(["update"])
    apt(["install", "-y", "--no-install-recommends", pkg])
  } catch (cause) {
    return Either.left(`apt-get install ${pkg} failed: ${String(cause).split("\n")[0]}`)
  }
  return fs.existsSync(executable) ? Either.right(executable) : Either.left(`apt-get installed no ${executable}`)
}

/**
 * The inspector page bundled into a temporary directory (removed with the scope) and served with the RPC group by
 * `node` on 127.0.0.1, as `rangedocs start` serves it.
 */
export const serveInspector = (node: TestNode) =>
  Effect.gen(function*() {
    const uiDir = yield* Effect.acquireRelease(
      Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "rangedocs-ui-test-"))),
      (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
    )
    yield* Effect.promise(() => bundleUi({ root: process.cwd(), outdir: uiDir }))
    return yield* Layer.build(DocsRpc.layerServer({ uiDir }).pipe(Layer.provide(Layer.succeedContext(node.context)))).pipe(
      Effect.orDie,
      Effect.map((ctx) => Context.get(ctx, DocsRpc.RpcServerInfo))
    )
  })
