/**
 * The examples run as child processes: `embedded.ts` as a user runs it, `node --import tsx examples/embedded.ts`;
 * `rpc-client.ts` (twice) bundled from the same sources (see `bundled`).
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import { Chunk, Effect, Layer, Option, Schema, Stream } from "effect"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { equals, utf8 } from "../../src/internal/bytes.js"
import { NamespaceIdFromHex } from "../../src/schema/Keys.js"
import { NodeIdFromHex } from "../../src/schema/NodeAddr.js"
import { parseTicket } from "../../src/schema/Ticket.js"
import * as DocsRpc from "../../src/services/DocsRpc.js"
import { startPersistentNode } from "../utils/nodes.js"

const root = fileURLToPath(new URL("../..", import.meta.url))

interface Run {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/**
 * An example as one ES module of the project's code, packages left to Node (esbuild, `packages: "external"`), in a
 * directory inside the repository so that they resolve. The same program as through tsx, without tsx's loader hooks
 * on every module of the process (about 3 s of CPU per run); `embedded.ts` runs through tsx as the examples say.
 */
const bundleDir = path.join(root, "node_modules", ".cache", `rangedocs-examples-${process.pid}`)
const bundles = new Map<string, Promise<string>>()
const bundled = (file: string) => {
  let built = bundles.get(file)
  if (built === undefined) {
    const outfile = path.join(bundleDir, file.replace(/\.ts$/, ".mjs"))
    built = import("esbuild").then((esbuild) =>
      esbuild.build({
        entryPoints: [path.join(root, "examples", file)],
        bundle: true,
        packages: "external",
        platform: "node",
        format: "esm",
        target: "node20",
        outfile,
        logLevel: "warning"
      })
    ).then(() => outfile)
    bundles.set(file, built)
  }
  return built
}
afterAll(() => fs.rmSync(bundleDir, { recursive: true, force: true }))

/** Runs an example to its end (killed if the test is interrupted or it takes longer than 40 s). */
const runExample = (
  file: string,
  args: ReadonlyArray<string> = [],
  env: Record<string, string> = {},
  via: "tsx" | "bundle" = "tsx"
) =>
  Effect.flatMap(
    via === "tsx"
      ? Effect.succeed(["--import", "tsx", path.join("examples", file)])
      : Effect.map(Effect.promise(() => bundled(file)), (program) => [program]),
    (program) => runProgram(program, args, env)
  )

const runProgram = (program: ReadonlyArray<string>, args: ReadonlyArray<string>, env: Record<string, string>) =>
  Effect.async<Run>((resume) => {
    const child = spawn(process.execPath, [...program, ...args], {
      cwd: root,
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => void (stdout += chunk))
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => void (stderr += chunk))
    child.on("close", (code) => resume(Effect.succeed({ code, stdout, stderr })))
    return Effect.sync(() => void child.kill("SIGKILL"))
  }).pipe(Effect.timeoutFail({ duration: "40 seconds", onTimeout: () => new Error(`${program.join(" ")} did not exit`) }), Effect.orDie)

const lines = (run: Run) => run.stdout.trim().split("\n")

const tempDir = Effect.acquireRelease(
  Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "rangedocs-example-"))),
  (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
)

describe("examples", () => {
  it.live("embedded.ts embeds a node, writes, shares, reads back and exits", () =>
    Effect.gen(function*() {
      const run = yield* runExample("embedded.ts")
      assert.strictEqual(run.code, 0, run.stderr)
      const out = lines(run)
      assert.match(out[0]!, /^document [0-9a-f]{64}$/)
      const ticketLine = out.find((l) => l.startsWith("ticket: "))
      assert.isDefined(ticketLine, run.stdout)
      const ticket = parseTicket(ticketLine!.slice("ticket: ".length))
      assert.isTrue(ticket._tag === "Right", "the printed ticket parses")
      if (ticket._tag === "Right") {
        const cap = ticket.right.capability
        assert.isTrue(cap._tag === "Read" && Schema.encodeSync(NamespaceIdFromHex)(cap.id) === out[0]!.slice(9))
        assert.isAbove(ticket.right.nodes[0]!.addrs.length, 0, "the ticket carries addresses")
      }
      assert.include(out, "greeting = hello from an embedded node")
      assert.include(out, "notes/1 = documents sync peer to peer")
    }))

  it.scopedLive("rpc-client.ts drives a running node given its data directory", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const node = yield* startPersistentNode(dir)
      yield* Layer.build(DocsRpc.layerServer({ dataDir: dir }).pipe(Layer.provide(Layer.succeedContext(node.context))))
      const before = yield* node.docs.create

      const run = yield* runExample("rpc-client.ts", [], { RANGEDOCS_DATA_DIR: dir }, "bundle")
      assert.strictEqual(run.code, 0, run.stderr)
      const out = lines(run)
      const hex = Schema.encodeSync(NamespaceIdFromHex)
      assert.strictEqual(out[0], `node ${Schema.encodeSync(NodeIdFromHex)((yield* node.network.addr).nodeId)}`)
      assert.strictEqual(out[1], "1 document(s)")
      assert.strictEqual(out[2], `  ${hex(before)} write`)
      assert.match(out[3]!, /^created [0-9a-f]{64}$/)
      assert.strictEqual(out[4], "hello = world")

      // The document and entry are on the node.
      const created = Schema.decodeSync(NamespaceIdFromHex)(out[3]!.slice("created ".length))
      const ids = Chunk.toArray(yield* Stream.runCollect(node.docs.list)).map((d) => d.id)
      assert.isTrue(ids.some((id) => equals(id, created)))
      yield* node.docs.open(created)
      const entry = yield* node.docs.getExact(created, utf8("hello"), yield* node.docs.authorGetDefault, false)
      assert.isTrue(Option.isSome(entry))
      if (Option.isSome(entry)) assert.strictEqual(new TextDecoder().decode(yield* node.docs.readContent(entry.value.contentHash)), "world")
    }))

  it.scopedLive("rpc-client.ts without a running node says so in one line and fails", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const run = yield* runExample("rpc-client.ts", [dir], {}, "bundle")
      assert.notStrictEqual(run.code, 0)
      assert.strictEqual(run.stdout, "")
      assert.strictEqual(run.stderr.trim(), `no rangedocs node is running for ${dir}; start one with: rangedocs start --data-dir ${dir}`)
    }))
})
