/**
 * The relay supervisor's use of libp2p's address manager (src/services/Network/relays.ts): confirming our circuits
 * must not lift libp2p's bound on the addresses peers report (it stops adding only at exactly the bound, and a
 * confirmation ignores it), so unverified observed addresses are dropped after each confirmation.
 */
import { assert, describe, it } from "@effect/vitest"
import { multiaddr } from "@multiformats/multiaddr"
import { type AddressAnnouncer, trimObserved } from "../../../src/services/Network/relays.js"

/** libp2p's observed-address store as it behaves: `add` stops at exactly 10, `confirm` adds regardless. */
const fakeManager = () => {
  const observed = new Map<string, boolean>()
  const announcer: AddressAnnouncer = {
    confirmObservedAddr: (addr) => void observed.set(addr.toString(), true),
    removeObservedAddr: (addr) => void observed.delete(addr.toString()),
    getAddressesWithMetadata: () =>
      [...observed].map(([a, verified]) => ({ multiaddr: multiaddr(a), verified, type: "observed" }))
  }
  const report = (i: number) => {
    if (observed.size !== 10) observed.set(`/ip4/198.51.100.${i}/tcp/${1000 + i}`, false)
  }
  return { announcer, observed, report }
}

describe("relay circuits in libp2p's address manager", () => {
  it("a confirmed circuit leaves the bound on reported addresses in force", () => {
    const { announcer, observed, report } = fakeManager()
    for (let i = 0; i < 10; i++) report(i)
    const circuit = multiaddr("/ip4/203.0.113.1/tcp/4001/p2p/12D3KooWLdJAwPtyQ5RFnr9wGXsQzpf3P2SeqFbYkqbfVehLu4Ns/p2p-circuit")
    announcer.confirmObservedAddr(circuit)
    trimObserved(announcer)
    for (let i = 10; i < 200; i++) report(i)
    assert.strictEqual(observed.size, 10)
    assert.isTrue(observed.get(circuit.toString()))
  })

  it("verified addresses are kept; only unverified ones make room", () => {
    const { announcer, observed } = fakeManager()
    for (let i = 0; i < 12; i++) announcer.confirmObservedAddr(multiaddr(`/ip4/198.51.100.${i}/tcp/1`))
    observed.set("/ip4/198.51.100.99/tcp/1", false)
    trimObserved(announcer)
    assert.strictEqual(observed.size, 12)
    assert.isFalse(observed.has("/ip4/198.51.100.99/tcp/1"))
  })
})
