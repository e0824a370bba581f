/**
 * Once per vitest run (both configs): names the directory where the CLI tests share one bundle of the program
 * (`test/cli/harness.ts`, `sharedBundle`). Nothing is built here: the first test file that needs the bundle builds
 * it there (about 2 s) and the others wait for it and reuse it, so a run of files that never spawn the CLI pays
 * nothing and a run with seven CLI files bundles once, not seven times. The directory goes at the end of the run.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import type { TestProject } from "vitest/node"

declare module "vitest" {
  export interface ProvidedContext {
    /** Where the run's shared CLI bundle is built (by the first file that asks for it). */
    readonly cliBundleDir: string
  }
}

const ROOT = path.resolve(import.meta.dirname, "..")

export default function setup(project: TestProject) {
  const dir = path.join(ROOT, "node_modules", ".cache", `rangedocs-bundle-${process.pid}`)
  // A run killed before its teardown leaves its directory; a later run with the same pid must not take that bundle.
  const remove = () => {
    for (const d of [dir, `${dir}.lock`]) fs.rmSync(d, { recursive: true, force: true })
  }
  remove()
  project.provide("cliBundleDir", dir)
  return remove
}
