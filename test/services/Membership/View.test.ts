/**
 * The pure membership core. The properties simulate a swarm: every node runs its own view, decisions are carried out
 * at once over an ideal network (a connect to a live member links the two nodes and both see NeighborUp; to a dead
 * node it fails), and after every join, leave or restart each live node ticks for a few rounds. Randomness comes
 * from the generated seed, so a failing run replays exactly.
 */
import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import { NodeAddr, NodeId } from "../../../src/schema/NodeAddr.js"
import { makePeerRecord, type PeerRecord } from "../../../src/schema/PeerRecord.js"
import * as View from "../../../src/services/Membership/View.js"

const prng = View.seededRandom

const nodeId = (n: number) => NodeId.make(Uint8Array.from({ length: 32 }, (_, i) => (i === 0 ? n & 0xff : i === 1 ? n >> 8 : 7)))

/** The core never checks signatures (the codec does): a dummy one will do. */
const recordOf = (n: number, timestamp: bigint, port = 1000 + n): PeerRecord =>
  makePeerRecord({ nodeId: nodeId(n), timestamp, addrs: [`/ip4/127.0.0.1/tcp/${port}`], signature: new Uint8Array(64) })

const config: View.ViewConfig = { ...View.DEFAULT_VIEW_CONFIG, maxPassive: 24 }

interface Node {
  readonly n: number
  readonly key: string
  view: View.View
  record: PeerRecord
}

/** A swarm of views over an ideal network. */
class Swarm {
  readonly nodes = new Map<string, Node>()
  readonly links = new Set<string>()
  now = 0
  maxSample = 0
  constructor(readonly random: View.Random, readonly cfg: View.ViewConfig = config) {}

  private linkKey(a: string, b: string) {
    return a < b ? `${a}|${b}` : `${b}|${a}`
  }

  private apply(node: Node, event: View.Event) {
    const queue: Array<[Node, View.Event]> = [[node, event]]
    while (queue.length > 0) {
      const [at, ev] = queue.shift()!
      if (!this.nodes.has(at.key)) continue
      const { decisions, view } = View.step(at.view, ev, this.now, this.random)
      at.view = view
      for (const decision of decisions) {
        this.maxSample = Math.max(this.maxSample, decision.sample.length)
        const peerId = decision._tag === "Connect" ? decision.addr.nodeId : decision.peer
        const peer = this.nodes.get(View.keyOf(peerId))
        if (peer === undefined) {
          queue.push([at, { _tag: "ConnectFailed", peer: peerId, forget: false }])
          continue
        }
        // A connect dials the address the decision names: an old record of a restarted node misses it.
        if (decision._tag === "Connect" && decision.addr.addrs[0] !== peer.record.addrs[0]) {
          queue.push([at, { _tag: "ConnectFailed", peer: peerId, forget: false }])
          continue
        }
        queue.push([peer, { _tag: "Records", from: nodeId(at.n), records: [at.record, ...decision.sample] }])
        const reply = View.sample(peer.view, this.random, nodeId(at.n))
        this.maxSample = Math.max(this.maxSample, reply.length)
        queue.push([at, { _tag: "Records", from: nodeId(peer.n), records: [peer.record, ...reply] }])
        const link = this.linkKey(at.key, peer.key)
        if (!this.links.has(link)) {
          this.links.add(link)
          queue.push([at, { _tag: "NeighborUp", peer: nodeId(peer.n) }])
          queue.push([peer, { _tag: "NeighborUp", peer: nodeId(at.n) }])
        }
      }
    }
  }

  join(n: number, timestamp: bigint, bootstrap: ReadonlyArray<number>, port?: number) {
    const node: Node = {
      n,
      key: View.keyOf(nodeId(n)),
      view: View.empty(nodeId(n), this.cfg),
      record: recordOf(n, timestamp, port)
    }
    this.nodes.set(node.key, node)
    const addrs = bootstrap.map((b) => this.nodes.get(View.keyOf(nodeId(b)))!.record.nodeAddr)
    this.apply(node, { _tag: "Join", bootstrap: addrs })
  }

  leave(n: number) {
    const key = View.keyOf(nodeId(n))
    this.nodes.delete(key)
    for (const link of [...this.links]) {
      const [a, b] = link.split("|")
      if (a !== key && b !== key) continue
      this.links.delete(link)
      const other = this.nodes.get(a === key ? b! : a!)
      if (other !== undefined) this.apply(other, { _tag: "NeighborDown", peer: nodeId(n) })
    }
  }

  settle(rounds: number) {
    for (let i = 0; i < rounds; i++) {
      this.now += 2_000
      const order = [...this.nodes.values()]
      for (let j = order.length - 1; j > 0; j--) {
        const k = this.random(j + 1)
        ;[order[j], order[k]] = [order[k]!, order[j]!]
      }
      for (const node of order) this.apply(node, { _tag: "Tick" })
    }
  }

  connected(): boolean {
    const keys = [...this.nodes.keys()]
    if (keys.length <= 1) return true
    const adj = new Map<string, Array<string>>(keys.map((k) => [k, []]))
    for (const link of this.links) {
      const [a, b] = link.split("|") as [string, string]
      adj.get(a)?.push(b)
      adj.get(b)?.push(a)
    }
    const seen = new Set([keys[0]!])
    const stack = [keys[0]!]
    while (stack.length > 0) {
      for (const next of adj.get(stack.pop()!) ?? []) {
        if (!seen.has(next)) {
          seen.add(next)
          stack.push(next)
        }
      }
    }
    return seen.size === keys.length
  }

  checkBounds() {
    for (const node of this.nodes.values()) {
      const v = node.view
      assert.isAtMost(v.active.size, v.config.maxActive, "active bounded")
      assert.isAtMost(v.known.size, v.config.maxPassive, "records bounded")
      // Ours: up to maxActive by fill and replacement, plus the bootstrap of the one join. Others' exchanges add to
      // `connecting` only while active + connecting < maxActive.
      assert.isAtMost(v.ours.size, v.config.maxActive + v.config.maxBootstrap, "ours bounded")
      assert.isAtMost(v.connecting.size, 2 * v.config.maxActive + v.config.maxBootstrap, "connects bounded")
      assert.isAtMost(v.failures.size, v.config.maxPassive + v.config.maxBootstrap, "failures bounded")
      assert.isFalse(v.known.has(v.self), "no record of itself")
      for (const key of v.ours) assert.isTrue(v.active.has(key) || v.connecting.has(key), "ours are active or connecting")
      for (const key of v.active.keys()) {
        assert.isTrue(this.links.has(this.linkKey(node.key, key)), "an active member is a linked node")
      }
    }
    assert.isAtMost(this.maxSample, this.cfg.sampleSize, "exchange samples bounded")
  }
}

type Op =
  | { readonly _tag: "join"; readonly via: number }
  | { readonly _tag: "leave"; readonly which: number }
  | { readonly _tag: "restart"; readonly which: number }

const arbOp: fc.Arbitrary<Op> = fc.oneof(
  { weight: 3, arbitrary: fc.nat().map((via) => ({ _tag: "join" as const, via })) },
  { weight: 1, arbitrary: fc.nat().map((which) => ({ _tag: "leave" as const, which })) },
  { weight: 1, arbitrary: fc.nat().map((which) => ({ _tag: "restart" as const, which })) }
)

/** Runs `ops` from a swarm of `initial` nodes joined one by one, checking after every op and its settling. */
const run = (seed: number, initial: number, ops: ReadonlyArray<Op>, cfg: View.ViewConfig = config) => {
  const swarm = new Swarm(prng(seed), cfg)
  let next = 0
  let clock = 1n
  const alive = () => [...swarm.nodes.values()].map((n) => n.n)
  const pick = (i: number) => alive()[i % alive().length]!
  for (let i = 0; i < initial; i++) {
    swarm.join(next, clock++, i === 0 ? [] : [pick(swarm.random(1 << 30))])
    next++
    swarm.settle(1)
  }
  swarm.settle(3)
  assert.isTrue(swarm.connected(), "connected after the initial joins")
  swarm.checkBounds()
  for (const op of ops) {
    switch (op._tag) {
      case "join":
        swarm.join(next++, clock++, [pick(op.via)])
        break
      case "leave":
        if (alive().length > 2) swarm.leave(pick(op.which))
        break
      case "restart": {
        // The same node id on another port with a newer record; it comes back through one of its old neighbours.
        if (alive().length < 2) break
        const which = pick(op.which)
        const node = swarm.nodes.get(View.keyOf(nodeId(which)))!
        const friends = [...node.view.active.values()].map((id) => id[0]! | (id[1]! << 8))
        swarm.leave(which)
        const via = friends.filter((f) => swarm.nodes.has(View.keyOf(nodeId(f))))
        swarm.join(which, clock++, via.length > 0 ? via.slice(0, 1) : [pick(op.which + 1)], 20_000 + Number(clock))
        break
      }
    }
    swarm.settle(4)
    assert.isTrue(swarm.connected(), `connected after ${op._tag}`)
    swarm.checkBounds()
  }
  return swarm
}

describe("Membership view", () => {
  it("finding 1: N1 and N2 join through N0 only; they become neighbours, and stay connected when N0 leaves", () => {
    const swarm = new Swarm(prng(1))
    swarm.join(0, 1n, [])
    swarm.join(1, 2n, [0])
    swarm.join(2, 3n, [0])
    // N2 learnt N1 from N0's answer and connected to it at once, before any shuffle.
    assert.isTrue(swarm.links.has([View.keyOf(nodeId(1)), View.keyOf(nodeId(2))].sort().join("|")))
    swarm.leave(0)
    assert.isTrue(swarm.connected())
    assert.strictEqual(swarm.links.size, 1)
  })

  it("a neighbour that goes down is replaced from the records, even at the target degree", () => {
    const me = nodeId(0)
    let v = View.empty(me, { ...config, targetDegree: 2 })
    const random = prng(3)
    const connects = (step: View.Step) => step.decisions.flatMap((d) => d._tag === "Connect" ? [d.addr.nodeId[0]!] : [])
    const learnt = View.step(v, { _tag: "Records", from: nodeId(9), records: [1, 2, 3].map((n) => recordOf(n, 1n)) }, 0, random)
    const chosen = connects(learnt)
    assert.strictEqual(chosen.length, 2, "connects up to the target degree")
    v = learnt.view
    for (const n of chosen) v = View.step(v, { _tag: "NeighborUp", peer: nodeId(n) }, 0, random).view
    assert.strictEqual(View.step(v, { _tag: "Tick" }, 0, random).decisions.filter((d) => d._tag === "Connect").length, 0, "nothing to do at the target degree")
    const [spare] = [1, 2, 3].filter((n) => !chosen.includes(n))
    assert.deepStrictEqual(connects(View.step(v, { _tag: "NeighborDown", peer: nodeId(chosen[0]!) }, 0, random)), [spare])
  })

  it("eclipse: neighbours that connected on their own cannot fill the view and stop us connecting or replacing", () => {
    const random = prng(11)
    let v = View.empty(nodeId(0), config)
    // maxActive nodes connect to us and subscribe on their own.
    for (let n = 100; n < 100 + config.maxActive; n++) v = View.step(v, { _tag: "NeighborUp", peer: nodeId(n) }, 0, random).view
    assert.strictEqual(v.active.size, config.maxActive)
    // We still connect to members we know, up to the target degree...
    const s = View.step(v, { _tag: "Records", from: nodeId(9), records: [1, 2, 3, 4, 5].map((n) => recordOf(n, 1n)) }, 0, random)
    const chosen = s.decisions.flatMap((d) => d._tag === "Connect" ? [d.addr.nodeId[0]!] : [])
    assert.strictEqual(chosen.length, config.targetDegree)
    v = s.view
    // ...each of ours displaces one that came on its own from the view...
    for (const n of chosen) v = View.step(v, { _tag: "NeighborUp", peer: nodeId(n) }, 0, random).view
    assert.strictEqual(v.active.size, config.maxActive)
    assert.isTrue(chosen.every((n) => v.active.has(View.keyOf(nodeId(n)))))
    // ...and one of ours that leaves is replaced.
    const down = View.step(v, { _tag: "NeighborDown", peer: nodeId(chosen[0]!) }, 0, random)
    assert.strictEqual(down.decisions.filter((d) => d._tag === "Connect").length, 1)
  })

  it("the newest record per node wins; an older one is ignored", () => {
    let v = View.empty(nodeId(0))
    const random = prng(4)
    v = View.step(v, { _tag: "Records", from: nodeId(1), records: [recordOf(1, 5n, 1)] }, 0, random).view
    v = View.step(v, { _tag: "Records", from: nodeId(1), records: [recordOf(1, 9n, 2)] }, 0, random).view
    v = View.step(v, { _tag: "Records", from: nodeId(1), records: [recordOf(1, 7n, 3)] }, 0, random).view
    assert.deepStrictEqual(v.known.get(View.keyOf(nodeId(1)))?.addrs, ["/ip4/127.0.0.1/tcp/2"])
    // Our own record is never kept.
    v = View.step(v, { _tag: "Records", from: nodeId(1), records: [recordOf(0, 1n)] }, 0, random).view
    assert.isFalse(v.known.has(v.self))
  })

  it("failed connects back off exponentially, then the record is forgotten; a node that is no member at once", () => {
    const cfg = { ...config, targetDegree: 2, retryBackoff: 1000, maxFailures: 3 }
    let v = View.empty(nodeId(0), cfg)
    const random = prng(5)
    const connectsAt = (now: number) => {
      const s = View.step(v, { _tag: "Tick" }, now, random)
      v = s.view
      return s.decisions.filter((d) => d._tag === "Connect").length
    }
    // Records from a third node: we connect to node 1.
    let s = View.step(v, { _tag: "Records", from: nodeId(9), records: [recordOf(1, 1n)] }, 0, random)
    assert.deepStrictEqual(s.decisions.map((d) => d._tag), ["Connect"])
    v = View.step(s.view, { _tag: "ConnectFailed", peer: nodeId(1), forget: false }, 0, random).view
    assert.strictEqual(connectsAt(999), 0)
    assert.strictEqual(connectsAt(1000), 1)
    v = View.step(v, { _tag: "ConnectFailed", peer: nodeId(1), forget: false }, 1000, random).view
    assert.strictEqual(connectsAt(2999), 0)
    assert.strictEqual(connectsAt(3000), 1)
    v = View.step(v, { _tag: "ConnectFailed", peer: nodeId(1), forget: false }, 3000, random).view
    assert.strictEqual(v.known.size, 0)
    s = View.step(v, { _tag: "Tick" }, 4000, random)
    s = View.step(s.view, { _tag: "Records", from: nodeId(2), records: [recordOf(2, 1n)] }, 4000, random)
    v = View.step(s.view, { _tag: "ConnectFailed", peer: nodeId(2), forget: true }, 4000, random).view
    assert.strictEqual(v.known.size, 0)
  })

  it("a node that sent us records is expected as a neighbour, not connected back", () => {
    const random = prng(9)
    const s = View.step(View.empty(nodeId(0)), { _tag: "Records", from: nodeId(1), records: [recordOf(1, 1n)] }, 0, random)
    assert.deepStrictEqual(s.decisions, [])
    assert.isTrue(s.view.connecting.has(View.keyOf(nodeId(1))))
  })

  it("a connect without its NeighborUp times out", () => {
    const cfg = { ...config, targetDegree: 1, connectTimeout: 5000 }
    const random = prng(6)
    let v = View.step(View.empty(nodeId(0), cfg), { _tag: "Records", from: nodeId(1), records: [recordOf(1, 1n)] }, 0, random).view
    assert.strictEqual(v.connecting.size, 1)
    v = View.step(v, { _tag: "Tick" }, 4999, random).view
    assert.strictEqual(v.connecting.size, 1)
    v = View.step(v, { _tag: "Tick" }, 5000, random).view
    assert.isTrue(v.failures.has(View.keyOf(nodeId(1))))
  })

  it("an isolated node dials its bootstrap again on a tick", () => {
    const random = prng(7)
    const boot = new NodeAddr({ nodeId: nodeId(1), addrs: ["/ip4/127.0.0.1/tcp/1"] })
    let s = View.step(View.empty(nodeId(0)), { _tag: "Join", bootstrap: [boot] }, 0, random)
    assert.strictEqual(s.decisions.length, 1)
    s = View.step(s.view, { _tag: "ConnectFailed", peer: nodeId(1), forget: false }, 0, random)
    s = View.step(s.view, { _tag: "Tick" }, 1, random)
    assert.deepStrictEqual(s.decisions.map((d) => d._tag), ["Connect"])
  })

  it("a join again dials only the new bootstrap nodes and keeps the list bounded", () => {
    const random = prng(10)
    const addr = (n: number) => new NodeAddr({ nodeId: nodeId(n), addrs: [`/ip4/127.0.0.1/tcp/${n}`] })
    let s = View.step(View.empty(nodeId(0), { ...config, maxBootstrap: 3 }), { _tag: "Join", bootstrap: [addr(1)] }, 0, random)
    s = View.step(s.view, { _tag: "Join", bootstrap: [addr(1), addr(2), addr(0)] }, 0, random)
    assert.deepStrictEqual(s.decisions.map((d) => d._tag === "Connect" ? d.addr.nodeId[0] : -1), [2])
    s = View.step(s.view, { _tag: "Join", bootstrap: [addr(3), addr(4)] }, 0, random)
    assert.deepStrictEqual(s.view.bootstrap.map((a) => a.nodeId[0]), [3, 4, 1])
  })

  it("records are bounded: a flood of new nodes evicts only idle records", () => {
    const random = prng(8)
    let v = View.empty(nodeId(0), { ...config, maxPassive: 10 })
    v = View.step(v, { _tag: "Records", from: nodeId(1), records: [1, 2].map((n) => recordOf(n, 1n)) }, 0, random).view
    for (const n of [1, 2]) v = View.step(v, { _tag: "NeighborUp", peer: nodeId(n) }, 0, random).view
    for (let batch = 0; batch < 20; batch++) {
      const records = Array.from({ length: 16 }, (_, i) => recordOf(100 + batch * 16 + i, 1n))
      v = View.step(v, { _tag: "Records", from: nodeId(1), records }, 0, random).view
      assert.isAtMost(v.known.size, 10)
    }
    assert.isTrue(v.known.has(View.keyOf(nodeId(1))) && v.known.has(View.keyOf(nodeId(2))))
    assert.isAtMost(v.active.size + v.connecting.size, v.config.maxActive)
  })

  it("config validation", () => {
    assert.isUndefined(View.configProblem(View.DEFAULT_VIEW_CONFIG))
    assert.isDefined(View.configProblem({ ...config, targetDegree: 0 }))
    assert.isDefined(View.configProblem({ ...config, maxActive: 3 }))
    assert.isDefined(View.configProblem({ ...config, maxPassive: 8 }))
    assert.isDefined(View.configProblem({ ...config, sampleSize: 16 }))
  })

  it("property: random joins, leaves and restarts keep the overlay connected and every view bounded", () => {
    fc.assert(
      fc.property(fc.integer(), fc.integer({ min: 1, max: 12 }), fc.array(arbOp, { maxLength: 25 }), (seed, initial, ops) => {
        run(seed, initial, ops)
      }),
      { numRuns: 150 }
    )
  })

  it("property: a swarm shrinking under churn stays connected (target degree 2)", () => {
    const cfg = { ...config, targetDegree: 2, maxActive: 4 }
    const churn: fc.Arbitrary<Op> = fc.oneof(
      { weight: 3, arbitrary: fc.nat().map((which) => ({ _tag: "leave" as const, which })) },
      { weight: 1, arbitrary: fc.nat().map((which) => ({ _tag: "restart" as const, which })) }
    )
    fc.assert(
      fc.property(fc.integer(), fc.integer({ min: 6, max: 16 }), fc.array(churn, { minLength: 4, maxLength: 14 }), (seed, initial, ops) => {
        run(seed, initial, ops, cfg)
      }),
      { numRuns: 80 }
    )
  })

  it("property: with the target degree at 2, the overlay survives the loss of any one node", () => {
    const cfg = { ...config, targetDegree: 2, maxActive: 4 }
    fc.assert(
      fc.property(fc.integer(), fc.integer({ min: 3, max: 20 }), (seed, size) => {
        const swarm = run(seed, size, [], cfg)
        for (const node of [...swarm.nodes.values()]) {
          const copy = new Swarm(prng(seed ^ node.n), cfg)
          for (const [k, v] of swarm.nodes) copy.nodes.set(k, { ...v })
          for (const link of swarm.links) copy.links.add(link)
          copy.now = swarm.now
          copy.leave(node.n)
          copy.settle(4)
          assert.isTrue(copy.connected(), `connected after node ${node.n} left`)
        }
      }),
      { numRuns: 40 }
    )
  })
})
