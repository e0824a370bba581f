/**
 * The README's reach commands on loopback, through the real CLI (issue 17): a relay of one's own
 * (`start --relay-service`), a node reachable through it (`start --relay MULTIADDR`, whose `node info --json` then
 * lists a dialable /p2p-circuit address), a relay at its reservation limit (`--relay-max-reservations`) refusing a
 * second node with a clear WARN line, and a document synced by a third node through the relay only.
 */
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { Either } from "effect"
import { NodeAddr } from "../../src/schema/NodeAddr.js"
import { DocTicket, parseTicket, ticketToString } from "../../src/schema/Ticket.js"
import { eventually, makeHarness, ROOT } from "../cli/harness.js"

const NAME = "reach"
const h = makeHarness(NAME)
/**
 * The harness's bundle (see makeHarness; main.mjs or main.js as the harness names it): `start` is spawned here with
 * the reach flags, which the harness's startNode does not take.
 */
const BUILD = path.join(ROOT, "node_modules", ".cache", `rangedocs-${NAME}-test-${process.pid}`)
const main = () => ["main.mjs", "main.js"].map((f) => path.join(BUILD, f)).find((f) => fs.existsSync(f)) ?? "main.js"

interface Started {
  readonly child: ChildProcess
  readonly info: { readonly nodeId: string; readonly peerId: string; readonly addrs: ReadonlyArray<string> }
  readonly stderr: () => string
}

const children: Array<ChildProcess> = []

/** `rangedocs --data-dir DIR start ARGS --json`; resolves with its start line. */
const start = (dataDir: string, args: ReadonlyArray<string>): Promise<Started> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [main(), "--data-dir", dataDir, "start", ...args, "--json"], {
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

const info = async (dataDir: string): Promise<{ readonly addrs: ReadonlyArray<string> }> =>
  JSON.parse(await h.ok(["--data-dir", dataDir, "node", "info", "--json"]))

describe("reach through the CLI (loopback)", () => {
  beforeAll(() => h.bundle(), 60_000)
  afterAll(async () => {
    await Promise.all(children.map((c) => h.stop(c)))
    await h.cleanup()
  })

  it("start --relay-service; start --relay: node info lists a /p2p-circuit address; a full relay refuses clearly; a doc syncs through the relay", async () => {
    const relayDir = h.tempDir("relay")
    const relay = await start(relayDir, ["--listen", "/ip4/127.0.0.1/tcp/0", "--relay-service", "--relay-max-reservations", "1"])
    const relayAddr = `${relay.info.addrs[0]}/p2p/${relay.info.peerId}`

    const homeDir = h.tempDir("home")
    // The home node listens nowhere but the relay: others reach it only through its reservation.
    await start(homeDir, ["--relay", relayAddr, "--memory"])
    const circuit = await eventually(async () => {
      const addrs = (await info(homeDir)).addrs.filter((a) => a.includes("/p2p-circuit/"))
      return addrs.length > 0 ? addrs[0] : undefined
    }, "home lists a circuit address")
    assert.match(circuit, new RegExp(`^${relayAddr}/p2p-circuit/p2p/12D3Koo`))

    // The relay holds one reservation at most: a second node is refused, and says why in one WARN line.
    const second = await start(h.tempDir("second"), ["--relay", relayAddr, "--memory"])
    await eventually(
      async () => second.stderr().includes("relay refused a reservation") ? true : undefined,
      "the second node logs the refusal"
    )
    assert.include(second.stderr(), "RESERVATION_REFUSED (the relay is at its reservation limit)")

    // A third node joins a document of the home node by a ticket whose only address is through the relay.
    const doc = (await h.ok(["--data-dir", homeDir, "doc", "create"])).trim()
    await h.ok(["--data-dir", homeDir, "doc", "set", doc, "greeting", "hello through the relay"])
    const shared = (await h.ok(["--data-dir", homeDir, "doc", "share", doc, "read"])).trim()
    // The ticket `doc share DOC read --addr relay` prints (once the CLI has the flag): the home node through the
    // relay, nothing else.
    const parsed = parseTicket(shared)
    if (Either.isLeft(parsed)) return assert.fail(parsed.left.message)
    const viaRelay = new NodeAddr({ nodeId: parsed.right.nodes[0]!.nodeId, addrs: [`${relayAddr}/p2p-circuit`] })
    const ticket = ticketToString(new DocTicket({ capability: parsed.right.capability, nodes: [viaRelay] }))
    const thirdDir = h.tempDir("third")
    await start(thirdDir, ["--memory"])
    await h.ok(["--data-dir", thirdDir, "doc", "join", ticket])
    await eventually(async () => {
      const r = await h.cli(["--data-dir", thirdDir, "doc", "get", doc, "greeting"])
      return r.code === 0 && r.stdout.toString().includes("hello through the relay") ? true : undefined
    }, "the third node has the entry")
    // The third node reached the home node through the relay: node info shows no direct connection (the peer
    // store of the third node has only the circuit address of the ticket and what identify told it).
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
