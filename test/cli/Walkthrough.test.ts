/**
 * The README's walkthrough ("Two nodes from the command line"), run as written: every command line of its `sh` block
 * goes to bash unchanged, in a fresh directory, with `rangedocs` the program `npm run build` makes (the run's bundle,
 * test/cli/harness.ts). So the README and the CLI cannot drift apart.
 *
 * - `… start …` and `… watch …` run in the background (their own terminals in the README), until the end.
 * - `NAME=$(command)` runs the command and keeps its output for the lines after it, as the shell would.
 * - `# prints: TEXT` is what the command must print; it is run again (up to 30 s) while the nodes sync.
 * - `# appears in the watch`: the key the command sets must show up in the watch's output.
 */
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as path from "node:path"
import { makeHarness, ROOT } from "./harness.js"

const h = makeHarness("walkthrough")
const WORK = h.tempDir("work")

/** The walkthrough's lines: the first `sh` block under its heading. */
export const walkthrough = (readme: string): ReadonlyArray<string> => {
  const section = readme.slice(readme.indexOf("## Two nodes from the command line"))
  const block = /```sh\n([\s\S]*?)```/.exec(section)
  if (block === null) throw new Error("README: no sh block in the walkthrough")
  return block[1]!.split("\n").map((l) => l.trim()).filter((l) => l !== "" && !l.startsWith("#"))
}

interface Line {
  readonly command: string
  readonly comment: string
}

const split = (line: string): Line => {
  const at = line.search(/\s#\s/)
  return at === -1 ? { command: line, comment: "" } : { command: line.slice(0, at).trim(), comment: line.slice(at).trim() }
}

const vars: Record<string, string> = {}

/** bash with `rangedocs` running the built program; the walkthrough's variables in the environment. */
const bash = (command: string) => {
  const script = `rangedocs() { exec node "$RANGEDOCS_MAIN" "$@"; }\n${command}\n`
  const child = h.spawnTracked("bash", ["-c", script], { ...vars, RANGEDOCS_MAIN: h.main() }, WORK)
  child.stdin!.end()
  let out = ""
  let err = ""
  child.stdout!.setEncoding("utf8").on("data", (c: string) => (out += c))
  child.stderr!.setEncoding("utf8").on("data", (c: string) => (err += c))
  const done = new Promise<{ readonly code: number | null; readonly out: string; readonly err: string }>((resolve) =>
    child.once("close", (code) => resolve({ code, out, err }))
  )
  return { child, done, output: () => ({ out, err }) }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Waits until `check` holds; fails when it times out or `alive` (the process awaited) has ended. */
const waitFor = async (what: string, check: () => boolean, ms = 60_000, alive?: ReturnType<typeof bash>) => {
  const deadline = Date.now() + ms
  while (!check()) {
    if (alive !== undefined && alive.child.exitCode !== null) {
      throw new Error(`${what}: it exited (${alive.child.exitCode}): ${alive.output().err}`)
    }
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`)
    await sleep(100)
  }
}

beforeAll(() => h.bundle(), 60_000)
afterAll(() => h.cleanup(), 60_000)

describe("README walkthrough", () => {
  it("finding 1: the walkthrough's commands run as written and print what it says", async () => {
    const lines = walkthrough(fs.readFileSync(path.join(ROOT, "README.md"), "utf8")).map(split)
    assert.isAtLeast(lines.length, 10)
    let watch: ReturnType<typeof bash> | undefined
    for (const { command, comment } of lines) {
      if (/ start( |$)/.test(command)) {
        // Its own terminal. `rangedocs` execs the program, so the signal at the end reaches the node itself.
        const node = bash(command)
        await waitFor(`${command} to run`, () => node.output().out.includes("running; stop with Ctrl-C"), 60_000, node)
        continue
      }
      if (/ watch( |$)/.test(command)) {
        watch = bash(command)
        await waitFor(`${command} to watch`, () => watch!.output().err.includes("watching"), 60_000, watch)
        continue
      }
      const assignment = /^([A-Z_][A-Z0-9_]*)=\$\((.*)\)$/.exec(command)
      const expected = /prints: (.*)$/.exec(comment)?.[1]
      const run = async () => {
        const r = await bash(assignment === null ? command : assignment[2]!).done
        return { ...r, printed: r.out.replace(/\n$/, "") }
      }
      let r = await run()
      const deadline = Date.now() + 30_000
      while (expected !== undefined && (r.code !== 0 || r.printed !== expected) && Date.now() < deadline) {
        await sleep(250)
        r = await run()
      }
      assert.strictEqual(r.code, 0, `${command}: ${r.err}`)
      if (expected !== undefined) assert.strictEqual(r.printed, expected, command)
      if (assignment !== null) {
        assert.notStrictEqual(r.printed, "", command)
        vars[assignment[1]!] = r.printed
      }
      if (comment.includes("appears in the watch")) {
        const key = /doc set \S+ (\S+)/.exec(command)?.[1]
        assert.isDefined(key, command)
        assert.isDefined(watch, "the walkthrough starts the watch before this line")
        await waitFor(`${key} in the watch`, () => watch!.output().out.includes(` ${key} `), 30_000)
      }
    }
    assert.isDefined(watch)
    assert.match(watch!.output().out, /^insert-remote greeting /m)
  }, 180_000)
})
