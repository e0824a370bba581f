/**
 * Replica effects that need an open replica look it up when they run, not when they are built: an effect built
 * before `open` succeeds after it, one built while open fails after `close` (task 4 of H14, issue 19).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Layer } from "effect"
import * as Capability from "../../src/schema/Capability.js"
import { NamespaceSecret } from "../../src/schema/Keys.js"
import * as Crypto from "../../src/services/Crypto.js"
import * as Replica from "../../src/services/Replica.js"
import * as Store from "../../src/services/Store.js"

const stack = Replica.layer.pipe(Layer.provide([Store.layerMemory, Crypto.layerInline]))

describe("Replica.getOpen", () => {
  it.effect("looks the open replica up at run time, not when the effect is built", () =>
    Effect.gen(function*() {
      const replica = yield* Replica.Replica
      const secret = NamespaceSecret.generate()
      yield* replica.importNamespace(new Capability.Write({ secret }))
      const ns = secret.id
      // Built while the replica is closed, run after it opened.
      const capability = replica.capability(ns)
      const state = replica.state(ns)
      yield* replica.open(ns, { sync: true })
      const cap = yield* capability
      assert.deepStrictEqual(cap.id, ns)
      assert.isTrue((yield* state).sync)
      // Built while open, run after the close.
      const again = replica.capability(ns)
      yield* replica.close(ns)
      const closed = yield* Effect.exit(again)
      assert.isTrue(Exit.isFailure(closed))
    }).pipe(Effect.provide(stack), Effect.scoped))
})
