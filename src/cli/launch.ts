#!/usr/bin/env -S node --max-semi-space-size=4
/**
 * The `rangedocs` program as installed (`dist/cli/main.js`, bundled by `src/cli/bundle.ts`): it picks one of two
 * builds of the same program (`src/main.ts`).
 *
 * - `start` and `demo` run the node: the ES module build with its chunks (`dist/cli/node/`), which loads libp2p and
 *   SQLite only for these commands and holds the least memory for a long-running process.
 * - Every other command is a client (or prints help): the single-file CommonJS build (`dist/cli/client.cjs`) run with
 *   a V8 code cache (`codeCache.ts`), so that it starts without compiling the program again.
 *
 * Both builds are the whole program: a word taken for a command by mistake (`doc set DOC start …`) only picks the
 * other build. The shebang's V8 flag is explained in `src/main.ts`.
 */
import { fileURLToPath } from "node:url"
import { runWithCodeCache } from "./codeCache.js"

/** A hash of client.cjs, set by the bundler (`define`). */
declare const RANGEDOCS_CLIENT_BUILD: string

const args = process.argv.slice(2)
if (args.some((a) => a === "start" || a === "demo")) {
  const node: string = new URL("./node/main.js", import.meta.url).href
  await import(node)
} else {
  runWithCodeCache({
    file: fileURLToPath(new URL("./client.cjs", import.meta.url)),
    buildId: RANGEDOCS_CLIENT_BUILD,
    args,
    env: process.env
  })
}
