/**
 * Restart end to end through the CLI (issue 15, finding 3): two `rangedocs start` processes share a document; B is
 * stopped, A writes, B is started again with nothing else done: B comes back on its old port and has A's write
 * within 10 s. Child processes and data dirs in a temp dir, all removed at the end.
 */
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import { eventually, makeHarness, type RunningNode } from "./harness.js"

const h = makeHarness("restart")

beforeAll(() => h.bundle(), 60_000)
afterAll(() => h.cleanup(), 60_000)

describe("rangedocs restart", () => {
  it("finding 3: a restarted node listens on its old port and gets the write it missed within 10 s, without any command", async () => {
    const dirA = h.tempDir("a")
    const dirB = h.tempDir("b")
    const A = ["--data-dir", dirA]
    const B = ["--data-dir", dirB]
    const nodeA = await h.startNode(dirA)
    let nodeB: RunningNode = await h.startNode(dirB)

    const doc = (await h.ok(["doc", "create", ...A])).trim()
    await h.ok(["doc", "set", doc, "before", "one", ...A])
    const ticket = (await h.ok(["doc", "share", doc, "write", ...A])).trim()
    assert.strictEqual((await h.ok(["doc", "join", ticket, ...B])).trim(), doc)
    const getB = async (key: string) => {
      const r = await h.cli(["doc", "get", doc, key, ...B])
      return r.code === 0 ? r.stdout.toString("utf8") : undefined
    }
    assert.strictEqual(await eventually(() => getB("before"), "B syncs the first entry"), "one")

    const oldAddrs = nodeB.info.addrs
    assert.strictEqual(await h.stop(nodeB.child), 0)
    await h.ok(["doc", "set", doc, "while-down", "two", ...A])

    nodeB = await h.startNode(dirB)
    assert.deepStrictEqual(nodeB.info.addrs, oldAddrs, "B listens where it listened before")
    const started = Date.now()
    const missed = await eventually(() => getB("while-down"), "B gets the write it missed", 10_000).catch((e: Error) =>
      Promise.reject(new Error(`${e.message}\nA's log:\n${nodeA.stderr().slice(-3000)}\nB's log:\n${nodeB.stderr().slice(-3000)}`))
    )
    assert.strictEqual(missed, "two")
    assert.isBelow(Date.now() - started, 10_000)
    // A's failed dials while B was down: one line per attempt, no stack traces.
    assert.notMatch(nodeA.stderr(), /\n\s+at .*:\d+:\d+/)
  }, 120_000)
})
