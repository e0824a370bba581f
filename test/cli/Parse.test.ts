/** Command-line values parsed in-process (no node): durations for `start --gc-interval`. */
import { assert, describe, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { parseDuration } from "../../src/cli/Parse.js"

describe("parseDuration", () => {
  it.effect("units, words and 0; anything else is one error line", () =>
    Effect.gen(function*() {
      const ms = (s: string) => Effect.map(parseDuration("--gc-interval", s), Duration.toMillis)
      assert.strictEqual(yield* ms("0"), 0)
      assert.strictEqual(yield* ms("500ms"), 500)
      assert.strictEqual(yield* ms("30s"), 30_000)
      assert.strictEqual(yield* ms("10m"), 600_000)
      assert.strictEqual(yield* ms("1.5h"), 5_400_000)
      assert.strictEqual(yield* ms("2d"), 172_800_000)
      assert.strictEqual(yield* ms("10 minutes"), 600_000)
      for (const bad of ["", "10", "-1m", "1w", "m", "1e3s"]) {
        const exit = yield* Effect.exit(parseDuration("--gc-interval", bad))
        assert.isTrue(Exit.isFailure(exit), bad)
      }
      const error = yield* Effect.flip(parseDuration("--gc-interval", "soon"))
      assert.strictEqual(error.message, "invalid --gc-interval 'soon': expected a duration such as 30s, 10m, 1h or 0")
    }))
})
