/**
 * Issue 17 in a real NAT (test/lab/natlab.sh): three relays on the "internet" (198.51.100.1, ports 4001–4003; the
 * third holds one reservation at most), home 1 behind a NAT that keeps source ports with a LAN neighbour, home 2
 * behind a NAT that randomises them. Every node is a real process inside its namespace (test/lab/agent.ts), all
 * started in parallel for the one lab all tests share; the lab is torn down in afterAll, also on failure. Needs root
 * and network namespaces; elsewhere the tests skip with one line saying why.
 */
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { fromHex } from "../../src/internal/bytes.js"
import { publicKeyOf } from "../../src/internal/ed25519.js"
import { NodeId, peerIdFromNodeId } from "../../src/schema/NodeAddr.js"
import { type Agent, down, labPrefix, skipReason, startAgent, until, up } from "./lab.js"

const reason = skipReason()
if (reason !== undefined) console.log(reason)

const prefix = labPrefix()
const ns = (name: string) => `${prefix}-${name}`
/** Fixed relay identities, so the homes can be started together with the relays. */
const RELAY_SEEDS = ["11", "22", "33"].map((b) => b.repeat(32))

const agents: Array<Agent> = []
const track = async (p: Promise<Agent>) => {
  const a = await p
  agents.push(a)
  return a
}

interface Info {
  readonly nodeId: string
  readonly addrs: ReadonlyArray<string>
  readonly relays: ReadonlyArray<{ readonly relay: string; readonly status: string; readonly reason?: string }>
}

const isInfo = (u: unknown): u is Info =>
  typeof u === "object" && u !== null && "addrs" in u && Array.isArray(u.addrs) && "relays" in u && Array.isArray(u.relays)

const info = async (a: Agent): Promise<Info> => {
  const i = await a.call("info")
  if (!isInfo(i)) throw new Error(`bad info from ${a.name}: ${JSON.stringify(i)}`)
  return i
}

const str = async (p: Promise<unknown>): Promise<string> => {
  const v = await p
  if (typeof v !== "string") throw new Error(`expected a string, got ${JSON.stringify(v)}`)
  return v
}

const entries = async (a: Agent, doc: string): Promise<Record<string, unknown>> => {
  const v = await a.call("get", { doc })
  if (typeof v !== "object" || v === null) throw new Error(`bad entries ${JSON.stringify(v)}`)
  return Object.fromEntries(Object.entries(v))
}

/** Waits until `a` has `key` = `value` (entry and content) in `doc`. */
const hasEntry = (a: Agent, doc: string, key: string, value: string, withinMs = 30_000) =>
  until(`${a.name} has ${key}=${value}`, async () => ((await entries(a, doc))[key] === value ? true : undefined), withinMs)

const circuits = (i: Info) => i.addrs.filter((x) => x.includes("/p2p-circuit"))

let relays: ReadonlyArray<Agent> = []
let relayAddrs: ReadonlyArray<string> = []
let home1: Agent
let home2: Agent
let lan1: Agent
/** Asks relay3 (one slot) for a reservation, as home1 does: one of them is refused. */
let late: Agent

describe.skipIf(reason !== undefined)("issue 17 in a NAT lab", () => {
  beforeAll(async () => {
    const t0 = Date.now()
    up(prefix)
    // The relays' identities are fixed, so their peer ids are known and every node starts at once.
    relayAddrs = RELAY_SEEDS.map((seed, i) =>
      `/ip4/198.51.100.1/tcp/${4001 + i}/p2p/${peerIdFromNodeId(NodeId.make(publicKeyOf(fromHex(seed)!))).toString()}`
    )
    const home = (name: string, relayList: ReadonlyArray<string>) =>
      track(startAgent(ns(name === "late" ? "home2" : name), name, { listen: ["/ip4/0.0.0.0/tcp/0"], relays: relayList }))
    const started = await Promise.all([
      ...RELAY_SEEDS.map((identity, i) =>
        track(startAgent(ns("pub"), `relay${i + 1}`, {
          identity,
          listen: [`/ip4/198.51.100.1/tcp/${4001 + i}`],
          relayService: i === 2 ? { maxReservations: 1 } : true
        }))
      ),
      home("home1", relayAddrs),
      home("home2", relayAddrs.slice(0, 2)),
      home("lan1", []),
      home("late", [relayAddrs[2]!])
    ])
    relays = started.slice(0, 3)
    ;[home1, home2, lan1, late] = [started[3]!, started[4]!, started[5]!, started[6]!]
    console.log(`NAT lab: up with seven nodes in ${Date.now() - t0} ms`)
  }, 150_000)

  afterAll(() => {
    for (const a of agents) a.kill()
    down(prefix)
  })

  it("finding 1: two homes behind NATs sync through the relay: join by ticket, entries and content both ways, live updates, within 30 s", async () => {
    const started = Date.now()
    await until("home1 holds reservations on relay1 and relay2", async () =>
      circuits(await info(home1)).length >= 2 ? true : undefined)
    await until("home2 holds reservations on both its relays", async () =>
      circuits(await info(home2)).length === 2 ? true : undefined)
    const doc = await str(home1.call("create"))
    await home1.call("set", { doc, key: "from-home1", value: "written behind NAT 1" })
    const ticket = await str(home1.call("share", { doc, addr: "relay" }))
    await str(home2.call("join", { ticket }))
    await hasEntry(home2, doc, "from-home1", "written behind NAT 1")
    await home2.call("set", { doc, key: "from-home2", value: "written behind NAT 2" })
    await hasEntry(home1, doc, "from-home2", "written behind NAT 2")
    await home1.call("set", { doc, key: "live", value: "a live update" })
    await hasEntry(home2, doc, "live", "a live update")
    const elapsed = Date.now() - started
    assert.isBelow(elapsed, 30_000, `took ${elapsed} ms`)
  }, 60_000)

  it("finding 2: hole punching — says whether the homes' connection became direct (NAT 1 keeps ports, NAT 2 randomises) or the relay carries it", async () => {
    const kind = await str(home2.call("kind", { peer: home1.nodeId }))
    const back = await str(home1.call("kind", { peer: home2.nodeId }))
    console.log(
      `NAT lab: home2 → home1 is ${kind}, home1 → home2 is ${back}. ` +
        (kind === "direct"
          ? "DCUtR punched through (NAT 1 keeps source ports)."
          : "The relay carries the sync: NAT 2 randomises source ports, and libp2p's DCUtR only tries public " +
            "addresses (the documentation ranges count as private), so no hole punching is attempted.")
    )
    assert.include(["direct", "relayed"], kind)
    assert.include(["direct", "relayed"], back)
  }, 30_000)

  it("finding 3: LAN: a home1 node and its neighbour find each other by mDNS and sync with a node-id-only ticket", async () => {
    const doc = await str(home1.call("create"))
    await home1.call("set", { doc, key: "lan", value: "found by mDNS" })
    const ticket = await str(home1.call("share", { doc, addr: "none" }))
    await str(lan1.call("join", { ticket }, 30_000))
    await hasEntry(lan1, doc, "lan", "found by mDNS")
    await lan1.call("set", { doc, key: "neighbour", value: "back over the LAN" })
    await hasEntry(home1, doc, "neighbour", "back over the LAN")
    assert.strictEqual(await str(lan1.call("kind", { peer: home1.nodeId })), "direct")
  }, 60_000)

  it("finding 4: a relay at its reservation limit refuses clearly; when a relay goes away the homes keep syncing through another", async () => {
    // relay3 has one slot, and home1 and the late node both want it: one holds it, the other is refused and says why.
    const t = Date.now()
    const [holder, refused] = await until("relay3 grants its one slot and refuses the other node", async () => {
      const states = await Promise.all([home1, late].map(async (a) => {
        const state = (await info(a)).relays.find((r) => r.relay === relayAddrs[2])
        return { a, state }
      }))
      const held = states.find((x) => x.state?.status === "reserved")
      const other = states.find((x) => x.state?.status === "refused")
      return held !== undefined && other !== undefined ? [held, other] as const : undefined
    })
    assert.include(refused.state?.reason, "RESERVATION_REFUSED (the relay is at its reservation limit)")
    assert.include(refused.a.log(), "relay refused a reservation")
    console.log(`NAT lab: relay3 (one slot) went to ${holder.a.name} and refused ${refused.a.name} (${Date.now() - t} ms)`)

    // The failover needs the other relay in place on both sides before relay1 goes: home1 reachable through relay2
    // (the ticket carries its circuits), home2 too (for the reply).
    const holds = (i: Info, relay: string) => circuits(i).some((c) => c.startsWith(relay))
    await until("home1 and home2 hold reservations on relay1 and relay2", async () => {
      const [i1, i2] = await Promise.all([info(home1), info(home2)])
      return relayAddrs.slice(0, 2).every((r) => holds(i1, r) && holds(i2, r)) ? true : undefined
    })
    const doc = await str(home1.call("create"))
    await home1.call("set", { doc, key: "before", value: "relay1 up" })
    const ticket = await str(home1.call("share", { doc, addr: "relay" }))
    await str(home2.call("join", { ticket }))
    await hasEntry(home2, doc, "before", "relay1 up")
    const t0 = Date.now()
    relays[0]!.kill()
    await until("home1 no longer announces relay1", async () =>
      circuits(await info(home1)).some((c) => c.startsWith(relayAddrs[0]!)) ? undefined : true)
    const t1 = Date.now()
    await home1.call("set", { doc, key: "after", value: "relay1 gone" })
    // home1 cannot dial home2 (it never learns home2's circuit through relay2): the write reaches home2 through the
    // connection home2 opens to home1 through relay2, which home1 uses as it is (libp2p's dial never reuses a limited
    // connection). 0.2–1.6 s in 15 runs beside two busy cores. The issue bounds no time: the window takes in the sync
    // retry after 64 s (backoff 1, 2, 4, … s; 127 s after the write at the latest).
    await hasEntry(home2, doc, "after", "relay1 gone", 150_000).catch(async (e: unknown) => {
      // What each home knew when it did not recover (for the next one to read).
      const [i1, i2] = await Promise.all([info(home1), info(home2)]).catch(() => [undefined, undefined])
      console.log(`NAT lab: failover failed. home1 ${JSON.stringify(i1)}\nhome2 ${JSON.stringify(i2)}\n` +
        `home2's log (end):\n${home2.log().slice(-4000)}\nhome1's log (end):\n${home1.log().slice(-4000)}`)
      throw e
    })
    const t2 = Date.now()
    await home2.call("set", { doc, key: "reply", value: "through relay2" })
    await hasEntry(home1, doc, "reply", "through relay2", 90_000)
    console.log(
      `NAT lab: relay1 gone → home1 stopped announcing it in ${t1 - t0} ms; the next write reached home2 in ` +
        `${t2 - t1} ms, the reply came back in ${Date.now() - t2} ms (${await str(home2.call("kind", { peer: home1.nodeId }))})`
    )
  }, 400_000)
})
