/**
 * The README's reach commands on loopback, run as written there (issue 17: "the README's reach section is tested"):
 * a relay of one's own (`start --relay-service`), a node reachable through it (`start --relay $RELAY`, whose
 * `node info` then lists a /p2p-circuit address), a relay at its reservation limit (`--relay-max-reservations`)
 * refusing a second node with a clear WARN line, and a ticket from `doc share … --addr relay` (circuit addresses
 * only) by which the README's LAN node gets a document through the relay. A README command this test does not find
 * fails it, so the section and the CLI cannot drift apart.
 */
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { Either } from "effect"
import { parseTicket } from "../../src/schema/Ticket.js"
import { eventually, makeHarness, ROOT } from "../cli/harness.js"

const NAME = "reach"
const h = makeHarness(NAME)
const main = () => h.main()

interface Started {
  readonly child: ChildProcess
  readonly info: { readonly nodeId: string; readonly peerId: string; readonly addrs: ReadonlyArray<string> }
  readonly stderr: () => string
}

const children: Array<ChildProcess> = []

/** `rangedocs --data-dir DIR start ARGS --json`; resolves with its start line. */
const start = (dataDir: string, args: ReadonlyArray<string>): Promise<Started> => spawnStart(["--data-dir", dataDir, "start", ...args])

/** `rangedocs ARGV --json` for a `start` command line; resolves with its start line. */
const spawnStart = (argv: ReadonlyArray<string>): Promise<Started> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [main(), ...argv, "--json"], {
      cwd: ROOT,
      env: { ...process.env, RANGEDOCS_DATA_DIR: "", RANGEDOCS_LOG_LEVEL: "info" },
      stdio: ["pipe", "pipe", "pipe"]
    })
    children.push(child)
    let stdout = ""
    let stderr = ""
    child.stderr!.setEncoding("utf8").on("data", (c: string) => (stderr += c))
    child.stdout!.setEncoding("utf8").on("data", (c: string) => {
      stdout += c
      const line = stdout.split("\n").find((l) => l.startsWith("{"))
      if (line !== undefined) resolve({ child, info: JSON.parse(line), stderr: () => stderr })
    })
    child.once("exit", (code) => reject(new Error(`start exited with ${code}: ${stderr}`)))
  })

/**
 * The command lines of the README's "Reach" section (its `sh` blocks, comments dropped), in order, each as argv after
 * `rangedocs`. The test runs them as written, with three substitutions that keep it on this machine: `./NAME` data
 * directories become the test's own, `0.0.0.0/tcp/PORT` becomes `127.0.0.1/tcp/0`, and `$RELAY`/`$DOC` their values.
 */
const readmeReach = (): ReadonlyArray<string> => {
  const readme = fs.readFileSync(path.join(ROOT, "README.md"), "utf8")
  const from = readme.indexOf("## Reach")
  const section = readme.slice(from, readme.indexOf("\n## ", from + 1))
  return [...section.matchAll(/```sh\n([\s\S]*?)```/g)]
    .flatMap((m) => m[1]!.split("\n"))
    .map((l) => l.replace(/\s+#.*$/, "").trim())
    .filter((l) => l.startsWith("rangedocs "))
}

describe("reach through the CLI (loopback)", () => {
  beforeAll(() => h.bundle(), 60_000)
  afterAll(async () => {
    await Promise.all(children.map((c) => h.stop(c)))
    await h.cleanup()
  })

  it("the README's reach commands: start --relay-service; start --relay: node info lists a /p2p-circuit address; a full relay refuses clearly; a ticket with --addr relay syncs a doc through the relay", async () => {
    const lines = readmeReach()
    const line = (pattern: RegExp) => {
      const found = lines.find((l) => pattern.test(l))
      if (found === undefined) throw new Error(`README's Reach section: no command matching ${pattern}`)
      return found
    }
    const dirs = new Map<string, string>()
    const vars: Record<string, string> = {}
    const argv = (l: string): Array<string> =>
      l.replace(/^rangedocs\s+/, "")
        .replace(/\/ip4\/0\.0\.0\.0\/tcp\/\d+/g, "/ip4/127.0.0.1/tcp/0")
        .replace(/\$(RELAY|DOC)\b/g, (_, name: string) => vars[name] ?? assert.fail(`$${name} used before it is known`))
        .split(/\s+/)
        .map((a) => a.startsWith("./") ? (dirs.get(a) ?? dirs.set(a, h.tempDir(a.slice(2))).get(a)!) : a)

    // The relay (with a limit of one reservation, so that the refusal can be seen), and its address from node info.
    await spawnStart([...argv(line(/ start .*--relay-service/)), "--relay-max-reservations", "1"])
    const relayInfo: { readonly addrs: ReadonlyArray<string> } = JSON.parse(await h.ok(argv(line(/^rangedocs --data-dir \.\/relay node info --json/))))
    vars["RELAY"] = relayInfo.addrs[0]!
    assert.match(vars["RELAY"], /^\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\/12D3Koo/)

    // The home node behind its relay: its node info lists RELAY/p2p-circuit/p2p/<its peer id>.
    const home = await spawnStart(argv(line(/ start --relay \$RELAY/)))
    const homeInfo = argv(line(/--data-dir \.\/home node info$/))
    const circuit = await eventually(async () => {
      const text = await h.ok(homeInfo)
      return text.includes(`${vars["RELAY"]}/p2p-circuit/p2p/${home.info.peerId}`) ? text : undefined
    }, "home lists a circuit address")
    assert.include(circuit, "relay:")

    // The relay holds one reservation at most: a second node is refused, and says why in one WARN line.
    const second = await start(h.tempDir("second"), ["--relay", vars["RELAY"], "--memory"])
    await eventually(
      async () => second.stderr().includes("relay refused a reservation") ? true : undefined,
      "the second node logs the refusal"
    )
    assert.include(second.stderr(), "RESERVATION_REFUSED (the relay is at its reservation limit)")

    // A document of the home node, shared with a ticket whose only path is the relay.
    const homeDir = dirs.get("./home")!
    vars["DOC"] = (await h.ok(["--data-dir", homeDir, "doc", "create"])).trim()
    await h.ok(["--data-dir", homeDir, "doc", "set", vars["DOC"], "greeting", "hello through the relay"])
    const ticket = (await h.ok(argv(line(/doc share \$DOC write --addr relay/)))).trim()
    const parsed = parseTicket(ticket)
    if (Either.isLeft(parsed)) return assert.fail(parsed.left.message)
    const addrs = parsed.right.nodes.flatMap((n) => n.addrs)
    assert.isAbove(addrs.length, 0)
    for (const a of addrs) assert.include(a, "/p2p-circuit", `--addr relay carries only circuit addresses: ${a}`)

    // The README's LAN node (on loopback here) joins by that ticket and gets the entry through the relay.
    await spawnStart(argv(line(/--data-dir \.\/node1 start --listen/)))
    const node1 = dirs.get("./node1")!
    await h.ok(["--data-dir", node1, "doc", "join", ticket])
    await eventually(async () => {
      const r = await h.cli(["--data-dir", node1, "doc", "get", vars["DOC"]!, "greeting"])
      return r.code === 0 && r.stdout.toString().includes("hello through the relay") ? true : undefined
    }, "node1 has the entry")
  }, 120_000)

  it("start refuses relay limits without --relay-service, and a relay address without its peer id", async () => {
    const r = await h.cli(["--data-dir", h.tempDir("bad"), "start", "--relay-max-reservations", "3", "--memory"])
    assert.notStrictEqual(r.code, 0)
    assert.include(r.stderr, "need --relay-service")
    const s = await h.cli(["--data-dir", h.tempDir("bad2"), "start", "--relay", "/ip4/127.0.0.1/tcp/1", "--memory"])
    assert.notStrictEqual(s.code, 0)
    assert.include(s.stderr, "must end in /p2p/<peer id>")
  }, 60_000)
})
