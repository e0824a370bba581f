/**
 * The `rangedocs` CLI end to end, as a user runs it: two `rangedocs start` processes with their own data directories
 * on loopback, driven by client commands run as child processes (no shell). The program is the bundle that
 * `npm run build` makes (`src/cli/bundle.ts`, about 2 s), built once per vitest run (test/cli/harness.ts); one test runs
 * `src/main.ts` through tsx to see which modules a client command loads.
 */
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import * as Command from "@effect/cli/Command"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as fs from "node:fs"
import * as path from "node:path"
import { NamespaceSecret } from "../../src/schema/Keys.js"
import { mayBeSecret, normalizeArgv } from "../../src/cli/Argv.js"
import { commandTree } from "../../src/cli/Cli.js"
import { cleanText } from "../../src/cli/Help.js"
import {
  eventually,
  HEX64,
  lines,
  LOOPBACK,
  makeHarness,
  readUntil,
  type Result,
  ROOT,
  type RunningNode,
  stderrContains,
  stop,
  text
} from "./harness.js"

const h = makeHarness("cli")
const { cli, failsWithOneLine, ok, spawnCli, startNode, tempDir } = h

beforeAll(() => h.bundle(), 60_000)
afterAll(() => h.cleanup(), 60_000)

describe("rangedocs CLI", () => {
  const dirA = tempDir("a")
  const dirB = tempDir("b")
  const A = ["--data-dir", dirA]
  const B = ["--data-dir", dirB]
  let nodeA: RunningNode
  let nodeB: RunningNode
  let doc = ""
  let ticket = ""
  const binary = Uint8Array.from({ length: 256 }, (_, i) => i)

  beforeAll(async () => {
    ;[nodeA, nodeB] = await Promise.all([startNode(dirA), startNode(dirB)])
  }, 90_000)

  it("start prints node id, listen addresses and RPC URL as JSON", () => {
    for (const node of [nodeA, nodeB]) {
      assert.match(node.info.nodeId, HEX64)
      assert.match(node.info.peerId, /^12D3KooW/)
      assert.isAbove(node.info.addrs.length, 0)
      for (const a of node.info.addrs) assert.match(a, /^\/ip4\/127\.0\.0\.1\/tcp\/\d+$/)
      assert.match(node.info.rpc, /^http:\/\/127\.0\.0\.1:\d+\/rpc$/)
    }
    assert.notStrictEqual(nodeA.info.nodeId, nodeB.info.nodeId)
    assert.isTrue(fs.existsSync(path.join(dirA, "rpc.json")))
  })

  it("a second start on the same data directory fails with one line", async () => {
    await failsWithOneLine(["start", ...A, "--listen", LOOPBACK], /already running for .* \(pid \d+\)/)
  }, 30_000)

  it("doc create, set (argument, stdin, --file), get exact bytes, keys", async () => {
    doc = (await ok(["doc", "create", ...A])).trim()
    assert.match(doc, HEX64)
    const file = path.join(tempDir("files"), "value.txt")
    fs.writeFileSync(file, "from a file\n")
    const [hash] = await Promise.all([
      ok(["doc", "set", doc, "greeting", "hello wörld", ...A]),
      ok(["doc", "set", doc, "bin/stdin", ...A], binary),
      ok(["doc", "set", doc, "bin/file", "--file", file, ...A])
    ])
    assert.match(hash.trim(), HEX64)

    const [greeting, bin, all, prefixed, meta] = await Promise.all([
      cli(["doc", "get", doc, "greeting", ...A]),
      cli(["doc", "get", doc, "bin/stdin", ...A]),
      cli(["doc", "keys", doc, ...A]),
      cli(["doc", "keys", doc, "--prefix", "bin/", "--desc", "--limit", "1", ...A]),
      ok(["doc", "get", doc, "bin/file", "--meta", "--json", ...A]),
      failsWithOneLine(["doc", "get", doc, "missing", ...A], /^error: entry not found: missing$/)
    ])
    assert.strictEqual(greeting.code, 0)
    assert.deepStrictEqual(greeting.stdout, Buffer.from("hello wörld"))
    assert.strictEqual(greeting.stderr, "")
    assert.deepStrictEqual(new Uint8Array(bin.stdout), binary)
    assert.deepStrictEqual(lines(all).map((l) => l.split("\t")[0]), ["bin/file", "bin/stdin", "greeting"])
    assert.deepStrictEqual(lines(prefixed).map((l) => l.split("\t")[0]), ["bin/stdin"])
    const entry = JSON.parse(meta) as Record<string, unknown>
    assert.strictEqual(entry["key"], "bin/file")
    assert.strictEqual(entry["len"], 12)
    assert.match(String(entry["author"]), HEX64)
  }, 60_000)

  it("share, then join on the second node: entries and content arrive", async () => {
    ticket = (await ok(["doc", "share", doc, "write", ...A])).trim()
    assert.match(ticket, /^doc[a-z2-7]+$/)
    const joined = (await ok(["doc", "join", ticket, ...B])).trim()
    assert.strictEqual(joined, doc)
    const content = await eventually(async () => {
      const r = await cli(["doc", "get", doc, "bin/stdin", ...B])
      return r.code === 0 ? r.stdout : undefined
    }, "content on B")
    assert.deepStrictEqual(new Uint8Array(content), binary)
    const listed = JSON.parse((await ok(["doc", "list", "--json", ...B])).trim()) as Record<string, unknown>
    assert.deepStrictEqual(listed, { docId: doc, capability: "write" })
  }, 60_000)

  it("watch on the first node prints the second node's write live; exits 0 on SIGINT", async () => {
    const watch = spawnCli(["doc", "watch", doc, "--json", ...A])
    await stderrContains(watch, "watching")
    const seen = readUntil(watch, (l) => {
      const e = JSON.parse(l) as Record<string, unknown>
      return e["event"] === "InsertRemote" && e["key"] === "from-b" ? e : undefined
    })
    await ok(["doc", "set", doc, "from-b", "written on B", ...B])
    const event = await seen
    assert.strictEqual(event["from"], nodeB.info.nodeId)
    assert.strictEqual(event["len"], 12)
    assert.strictEqual(await stop(watch, "SIGINT"), 0)
    const value = await eventually(async () => {
      const r = await cli(["doc", "get", doc, "from-b", ...A])
      return r.code === 0 ? text(r) : undefined
    }, "from-b's content on A")
    assert.strictEqual(value, "written on B")
  }, 60_000)

  it("del prints the removed count and the deletion reaches the other node", async () => {
    assert.strictEqual((await ok(["doc", "del", doc, "bin/", ...A])).trim(), "2")
    await eventually(async () => {
      const keys = lines(await cli(["doc", "keys", doc, ...B])).map((l) => l.split("\t")[0])
      return keys.includes("bin/stdin") ? undefined : keys
    }, "deletion on B")
    const keysB = lines(await cli(["doc", "keys", doc, "--latest", ...B])).map((l) => l.split("\t")[0])
    assert.deepStrictEqual(keysB, ["from-b", "greeting"])
    const tomb = JSON.parse(await ok(["doc", "get", doc, "bin/", "--include-empty", "--meta", "--json", ...B])) as Record<
      string,
      unknown
    >
    assert.strictEqual(tomb["len"], 0)
  }, 60_000)

  it("--json output parses: authors, keys, status, policy, peers, stats", async () => {
    const policyArgs = ["doc", "policy", "set", doc, "nothing-except", "prefix:utf8:bin/", "exact:hex:00ff", "--json", ...B]
    const [authorsOut, keysOut, statusOut, policyOut, peersOut, statsOut] = await Promise.all([
      cli(["author", "list", "--json", ...A]),
      cli(["doc", "keys", doc, "--json", "--sort", "author", ...B]),
      ok(["doc", "status", doc, "--json", ...B]),
      ok(policyArgs),
      cli(["doc", "peers", doc, "--json", ...B]),
      ok(["stats", "--json", ...B])
    ])
    const authors = lines(authorsOut).map((l) => JSON.parse(l) as Record<string, unknown>)
    assert.strictEqual(authors.filter((a) => a["default"] === true).length, 1)
    const keys = lines(keysOut).map((l) => JSON.parse(l) as Record<string, unknown>)
    assert.deepStrictEqual(keys.map((e) => e["key"]).sort(), ["from-b", "greeting"])
    for (const e of keys) assert.match(String(e["hash"]), HEX64)
    const status = JSON.parse(statusOut) as Record<string, unknown>
    assert.strictEqual(status["sync"], true)
    const policy = JSON.parse(policyOut) as Record<string, unknown>
    assert.deepStrictEqual(policy, { policy: "nothing-except", filters: ["prefix:utf8:bin/", "exact:hex:00ff"] })
    assert.deepStrictEqual(JSON.parse(await ok(["doc", "policy", "get", doc, "--json", ...B])), policy)
    const peers = lines(peersOut).map((l) => JSON.parse(l) as Record<string, unknown>)
    assert.deepInclude(peers, { nodeId: nodeA.info.nodeId })
    const stats = JSON.parse(statsOut) as Record<string, number>
    assert.isAbove(stats["sync_entries_received"] ?? 0, 0)
    // For people: grouped, with units and rates; the engine's internals only with --all.
    const [readable, everything] = await Promise.all([ok(["stats", ...B]), ok(["stats", "--all", ...B])])
    assert.match(readable, /^uptime \d/)
    assert.match(readable, /^sync$/m)
    assert.match(readable, /entries received in sync sessions +\d+( {2}\(.*\/s\))?$/m)
    assert.notInclude(readable, "loop iterations")
    assert.include(everything, "live engine loop iterations")
  }, 60_000)

  it("malformed id, ticket, author, filter and argument: one-line error, non-zero exit", async () => {
    const secret = "zz".repeat(32)
    const [, , , , , secretLine] = await Promise.all([
      failsWithOneLine(["doc", "get", "abc", "k", ...A], /^error: invalid document id \(DOC\) 'abc': .*not hex/),
      // 64 hex characters could be a namespace secret: named, not quoted.
      failsWithOneLine(["doc", "keys", "ab".repeat(32), ...A], /^error: invalid document id \(DOC\): .*Ed25519/),
      failsWithOneLine(["doc", "join", "docnotaticket", ...B], /^error: invalid ticket: /),
      failsWithOneLine(["doc", "join", ticket.slice(0, -8), ...B], /^error: invalid ticket: /),
      failsWithOneLine(["author", "default", "--set", "xyz", ...A], /^error: invalid author id 'xyz'/),
      failsWithOneLine(["author", "import", secret, ...A], /^error: invalid author secret: /),
      failsWithOneLine(["doc", "policy", "set", doc, "nothing-except", "suffix:utf8:x", ...A], /^error: invalid filter/),
      failsWithOneLine(["doc", "set", doc, "", "v", ...A], /^error: invalid key: must not be empty$/),
      failsWithOneLine(["--log-level", "loud", "doc", "list", ...A], /^error: invalid --log-level: expected one of all, /),
      cli(["doc", "share", doc, "admin", ...A]).then((r) => assert.notStrictEqual(r.code, 0))
    ])
    assert.notInclude(secretLine, secret)
  }, 60_000)

  it("finding 15.7: a namespace secret or a write ticket pasted as DOC is echoed by no command", async () => {
    const file = path.join(tempDir("secret"), "f.txt")
    fs.writeFileSync(file, "x")
    // A seed parses as a document id when it happens to be a valid point (about half of them): then the node's
    // refusal must not show it either. Both kinds are covered.
    const secrets: Array<string> = []
    for (let i = 0; secrets.length < 2 || i < 8; i++) {
      const s = NamespaceSecret.generate().toSecretHex()
      const parses = await import("../../src/cli/Parse.js").then((m) => Effect.runPromiseExit(m.parseDocId(s)))
      if (secrets.length === 0 && parses._tag === "Failure") secrets.push(s)
      else if (secrets.length === 1 && parses._tag === "Success") secrets.push(s)
      if (secrets.length === 2) break
    }
    assert.strictEqual(secrets.length, 2)
    const writeTicket = (await ok(["doc", "share", doc, "write", ...A])).trim()
    const commands = (d: string): ReadonlyArray<ReadonlyArray<string>> => [
      ["doc", "drop", d],
      ["doc", "set", d, "k", "v"],
      ["doc", "get", d, "k"],
      ["doc", "keys", d],
      ["doc", "del", d, "k"],
      ["doc", "share", d, "read"],
      ["doc", "watch", d],
      ["doc", "import-file", d, "k", file],
      ["doc", "export-file", d, "k", file],
      ["doc", "policy", "get", d],
      ["doc", "policy", "set", d, "nothing-except"],
      ["doc", "peers", d],
      ["doc", "status", d],
      [d, "doc", "list"],
      ["doc", "list", d]
    ]
    // Every command with the secret that parses as a document id (it reaches the command's own request to the node
    // and its refusal); the two that fail to parse (the seed that is no point, the ticket) stop in the argument
    // parser that every DOC goes through: each command gets one of them, in turn (30 processes, not 45).
    const [parses, noPoint] = [secrets[1]!, secrets[0]!]
    const runs = commands("").flatMap((_, i) =>
      [parses, i % 2 === 0 ? noPoint : writeTicket].map((pasted) => ({ pasted, c: commands(pasted)[i]! }))
    )
    const results = await Promise.all(runs.map(({ c, pasted }) => cli([...c, ...A]).then((r) => ({ c, pasted, r }))))
    for (const { c, pasted, r } of results) {
      assert.notStrictEqual(r.code, 0, `rangedocs ${c.join(" ")} succeeded`)
      for (const out of [text(r), r.stderr]) {
        assert.notInclude(out.toLowerCase(), pasted.toLowerCase(), `rangedocs ${c[0]} ${c[1]} echoed the secret`)
      }
      assert.isAbove(r.stderr.length, 0)
    }
    assert.sameMembers([...new Set(results.map((x) => x.pasted))], [parses, noPoint, writeTicket])
  }, 120_000)

  it("author create, default --set, export and import on the other node", async () => {
    const created = (await ok(["author", "create", ...A])).trim()
    assert.match(created, HEX64)
    assert.strictEqual((await ok(["author", "default", "--set", created, ...A])).trim(), created)
    const secret = (await ok(["author", "export", created, ...A])).trim()
    assert.match(secret, HEX64)
    assert.strictEqual((await ok(["author", "import", secret, ...B])).trim(), created)
    await failsWithOneLine(["author", "delete", created, ...A], /^error: Deleting the default author is not supported$/)
  }, 60_000)

  it("a restart keeps documents, authors, default author and identity; start exits 0 on SIGTERM; by default it listens on loopback only", async () => {
    const [authors, docs, def] = await Promise.all([
      ok(["author", "list", ...A]),
      ok(["doc", "list", ...A]),
      ok(["author", "default", ...A])
    ])
    assert.strictEqual(await stop(nodeA.child), 0)
    assert.isFalse(fs.existsSync(path.join(dirA, "rpc.json")))
    await failsWithOneLine(["doc", "list", ...A], /^error: no rangedocs node is running for .*; start one with: rangedocs start/)

    const nodeId = nodeA.info.nodeId
    // Restarted without --listen: the default listens on loopback only, not on the machine's other interfaces.
    nodeA = await startNode(dirA, [])
    assert.strictEqual(nodeA.info.nodeId, nodeId)
    assert.isAbove(nodeA.info.addrs.length, 0)
    for (const a of nodeA.info.addrs) assert.match(a, /^\/ip4\/127\.0\.0\.1\/tcp\/\d+$/)
    const after = await Promise.all([
      ok(["author", "list", ...A]),
      ok(["doc", "list", ...A]),
      ok(["author", "default", ...A]),
      ok(["doc", "get", doc, "greeting", ...A])
    ])
    assert.deepStrictEqual(after, [authors, docs, def, "hello wörld"])
  }, 90_000)

  it("import-file and export-file round-trip a file (relative paths); drop deletes a document", async () => {
    const dir = tempDir("io")
    const content = Buffer.alloc(300_000)
    for (let i = 0; i < content.length; i++) content[i] = (i * 7919) % 251
    fs.writeFileSync(path.join(dir, "in.bin"), content)
    const relative = path.relative(ROOT, path.join(dir, "in.bin"))
    const imported = JSON.parse(await ok(["doc", "import-file", doc, "files/in", relative, "--json", ...A])) as Record<
      string,
      unknown
    >
    assert.strictEqual(imported["size"], content.length)
    const target = path.join(dir, "out", "nested", "out.bin")
    assert.strictEqual((await ok(["doc", "export-file", doc, "files/in", path.relative(ROOT, target), ...A])).trim(), target)
    assert.isTrue(fs.readFileSync(target).equals(content))

    const scratch = (await ok(["doc", "create", ...A])).trim()
    await ok(["doc", "drop", scratch, ...A])
    assert.notInclude(await ok(["doc", "list", ...A]), scratch)
  }, 60_000)

  it("client command with no node running: one line, non-zero exit", async () => {
    const empty = tempDir("none")
    await failsWithOneLine(
      ["doc", "list", "--data-dir", empty],
      new RegExp(`^error: no rangedocs node is running for ${empty}; start one with: rangedocs start --data-dir ${empty}$`)
    )
  }, 60_000)

  it("finding 1: the global options work before, between and after the subcommands", async () => {
    const listed = (await ok(["doc", "list", ...A])).trim()
    assert.include(listed, doc)
    const forms: ReadonlyArray<ReadonlyArray<string>> = [
      [...A, "doc", "list"],
      ["doc", ...A, "list"],
      ["doc", "list", ...A],
      [`--data-dir=${dirA}`, "doc", "list"],
      ["--log-level", "error", ...A, "doc", "list"],
      [...A, "doc", "list", "--log-level=warning"]
    ]
    const outputs = await Promise.all(forms.map((form) => ok(form)))
    forms.forEach((form, i) => assert.strictEqual(outputs[i]!.trim(), listed, form.join(" ")))
    const [before, after, twice, get] = await Promise.all([
      ok(["--json", ...A, "doc", "policy", "get", doc]),
      ok(["doc", "policy", "get", doc, "--json", ...A]),
      // Given twice, the one after the command wins.
      ok(["--data-dir", tempDir("other"), "doc", "list", ...A]),
      ok([...A, "doc", "get", doc, "greeting"])
    ])
    assert.deepStrictEqual(JSON.parse(before), JSON.parse(after))
    assert.strictEqual(twice.trim(), listed)
    assert.strictEqual(get, "hello wörld")
  }, 60_000)

  it("finding 2: a client command never loads libp2p or better-sqlite3 (src/main.ts through tsx, every module traced)", async () => {
    const dir = tempDir("trace")
    const trace = path.join(dir, "loaded.txt")
    fs.writeFileSync(
      path.join(dir, "hooks.mjs"),
      `import { appendFileSync } from "node:fs"
export async function resolve(specifier, context, next) {
  const result = await next(specifier, context)
  appendFileSync(${JSON.stringify(trace)}, result.url + "\\n")
  return result
}
`
    )
    fs.writeFileSync(
      path.join(dir, "register.mjs"),
      `import { register } from "node:module"\nregister(${JSON.stringify(`file://${path.join(dir, "hooks.mjs")}`)})\n`
    )
    const register = ["--import", path.join(dir, "register.mjs")]
    const traced = async (r: Promise<Result>) => {
      fs.rmSync(trace, { force: true })
      const result = await r
      assert.strictEqual(result.code, 0, result.stderr)
      return fs.readFileSync(trace, "utf8").split("\n")
    }
    const heavy = (loaded: ReadonlyArray<string>) =>
      loaded.filter((u) => /\/node_modules\/(libp2p|better-sqlite3|@libp2p\/(tcp|gossipsub|identify))\//.test(u))
    const client = await traced(cli(["doc", "list", ...A], { tsx: true, nodeArgs: register }))
    assert.isTrue(client.some((u) => u.includes("/src/services/DocsRpcClient.ts")), "the trace sees the client's modules")
    assert.deepStrictEqual(heavy(client), [])
    // The trace does see them where they are loaded: the node's network module through tsx, as `start` loads it (not
    // `start` itself: tsx compiling the whole node for it took 6-13 s of the file's time).
    const network = path.join(ROOT, "src", "services", "Network.ts")
    const full = await traced(
      h.run(process.execPath, [...register, "--import", "tsx", "--input-type=module", "-e", `await import(${JSON.stringify(`file://${network}`)})`])
    )
    assert.isAbove(heavy(full).length, 0)
  }, 90_000)

  it("demo runs two nodes in one process and exits 0", async () => {
    const r = await cli(["demo"])
    assert.strictEqual(r.code, 0, r.stderr)
    assert.include(text(r), "B has (3 keys)")
    assert.include(text(r), "A removed 2 entries")
    assert.include(text(r), "done")
  }, 60_000)
})

describe("rangedocs CLI, without a node", () => {
  const ESC = "\u001b["

  it("finding 5: --help piped to a file has no ANSI codes, names the whole command, no word twice; colour only on a terminal without NO_COLOR", async () => {
    const [root, group, nested, start, colored] = await Promise.all([
      cli(["--help"]),
      cli(["doc", "--help"]),
      cli(["doc", "policy", "get", "--help"]),
      cli(["start", "--help"]),
      cli(["doc", "--help"], { env: { NO_COLOR: "1" } })
    ])
    for (const r of [root, group, nested, start, colored]) {
      assert.strictEqual(r.code, 0, r.stderr)
      assert.notInclude(text(r), ESC)
      assert.notMatch(text(r), /[ \t]+$/m)
    }
    assert.include(text(root), "$ rangedocs [--data-dir DIR] [--json] [--log-level LEVEL] <command>")
    assert.include(text(root), "- doc policy get [--data-dir DIR] [--json] <DOC>")
    assert.notInclude(text(root), "doc doc")
    assert.include(text(group), "$ rangedocs doc <command>")
    assert.include(text(nested), "$ rangedocs doc policy get [--data-dir DIR] [--json] <DOC>")
    assert.include(text(start), "[--listen MULTIADDR]...")
    assert.notMatch(text(start), /[^[]--listen MULTIADDR\.\.\./)
  }, 60_000)

  it("finding 5: help on a terminal keeps its colours unless NO_COLOR is set (cleanText)", () => {
    const raw = `${ESC}1mUSAGE${ESC}0m\n\n$ get [--json] <DOC>\n  - doc doc policy get <DOC>   \n --listen MULTIADDR... `
    const context = { path: ["doc", "policy", "get"], name: "rangedocs", args: [] }
    const tty = cleanText(raw, { ...context, color: true })
    assert.include(tty, `${ESC}1mUSAGE`)
    assert.include(tty, "$ rangedocs doc policy get [--json] <DOC>")
    assert.include(tty, "- doc policy get <DOC>")
    assert.include(tty, "[--listen MULTIADDR]...")
    assert.notInclude(cleanText(raw, { ...context, color: false }), ESC)
  })

  it("canary: @effect/cli still prints the quirks Help.ts rewrites (drop a rewrite when its quirk is gone)", () => {
    const leaf = Command.make("get", {}, () => Effect.void)
    const group = Command.make("policy").pipe(Command.withSubcommands([leaf]))
    const doc = Command.make("doc").pipe(Command.withSubcommands([group]))
    const root = Command.make("rangedocs").pipe(Command.withSubcommands([doc]))
    let printed = ""
    const console = {
      log: (...args: ReadonlyArray<unknown>) => Effect.sync(() => void (printed += args.join(" ")))
    }
    return Effect.runPromise(
      Effect.flatMap(Effect.console, (base) =>
        Command.run(root, { name: "rangedocs", version: "0" })(["node", "rangedocs", "--help"]).pipe(
          Effect.withConsole({ ...base, ...console })
        )).pipe(Effect.provide(NodeContext.layer))
    ).then(() => {
      assert.include(printed, "doc doc policy get")
      assert.include(printed, ESC)
    })
  })

  it("normalizeArgv moves global options behind the command path and leaves the rest as given", () => {
    const n = normalizeArgv(["--json", "--data-dir", "d", "doc", "set", "DOC", "k", "--json", "--", "--data-dir"], commandTree)
    assert.deepStrictEqual(n.path, ["doc", "set"])
    assert.deepStrictEqual(n.args, ["doc", "set", "--data-dir", "d", "DOC", "k", "--json", "--", "--data-dir"])
    const l = normalizeArgv(["--log-level=debug", "doc", "--log-level", "error", "list"], commandTree)
    assert.deepStrictEqual([l.args, l.path, l.logLevel], [["doc", "list"], ["doc", "list"], "error"])
    assert.isTrue(mayBeSecret(NamespaceSecret.generate().toSecretHex()))
    assert.isFalse(mayBeSecret("notes/monday"))
    assert.isFalse(mayBeSecret("/tmp/a/rather/long/path/to/some/file/that/exists.txt"))
  })

  it.effect("tests log quietly: the minimum log level comes from RANGEDOCS_LOG_LEVEL (default none)", () =>
    Effect.gen(function*() {
      const logged: Array<unknown> = []
      const capture = Logger.make(({ message }) => void logged.push(message))
      yield* Effect.logWarning("provoked on purpose").pipe(Effect.provide(Logger.replace(Logger.defaultLogger, capture)))
      const level = yield* FiberRef.get(FiberRef.currentMinimumLogLevel)
      if ((process.env["RANGEDOCS_LOG_LEVEL"] ?? "none") === "none") assert.strictEqual(level, LogLevel.None)
      if (LogLevel.greaterThan(level, LogLevel.Warning)) assert.deepStrictEqual(logged, [])
      yield* Effect.logWarning("asked for").pipe(
        Logger.withMinimumLogLevel(LogLevel.Debug),
        Effect.provide(Logger.replace(Logger.defaultLogger, capture))
      )
      assert.strictEqual(logged.length, LogLevel.greaterThan(level, LogLevel.Warning) ? 1 : 2)
    }))
})
