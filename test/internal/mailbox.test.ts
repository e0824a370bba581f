import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Mailbox } from "effect"
import { takeOrInterrupt } from "../../src/internal/mailbox.js"

describe("takeOrInterrupt", () => {
  it.effect("takes messages in order, waiting for the next one", () =>
    Effect.gen(function*() {
      const mailbox = yield* Mailbox.make<number>()
      yield* mailbox.offer(1)
      yield* mailbox.offer(2)
      assert.strictEqual(yield* takeOrInterrupt(mailbox), 1)
      assert.strictEqual(yield* takeOrInterrupt(mailbox), 2)
      const waiting = yield* Effect.fork(takeOrInterrupt(mailbox))
      yield* Effect.yieldNow()
      yield* mailbox.offer(3)
      assert.strictEqual(yield* Fiber.join(waiting), 3)
    }))

  it.effect("a mailbox ended with messages left delivers them, then interrupts the taker", () =>
    Effect.gen(function*() {
      const mailbox = yield* Mailbox.make<number>()
      yield* mailbox.offer(1)
      yield* mailbox.end
      assert.strictEqual(yield* takeOrInterrupt(mailbox), 1)
      const exit = yield* Effect.exit(takeOrInterrupt(mailbox))
      assert.isTrue(Exit.isInterrupted(exit))
    }))

  it.effect("a taker waiting when the mailbox is shut down is interrupted", () =>
    Effect.gen(function*() {
      const mailbox = yield* Mailbox.make<number>()
      const waiting = yield* Effect.fork(takeOrInterrupt(mailbox))
      yield* Effect.yieldNow()
      yield* mailbox.shutdown
      const exit = yield* Fiber.await(waiting)
      assert.isTrue(Exit.isInterrupted(exit))
    }))
})
