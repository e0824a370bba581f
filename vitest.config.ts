import { defineConfig } from "vitest/config"
import { SERIAL_TESTS, SHARED } from "./vitest.shared.js"

// The first pass of `npm test`: every test file but the serial ones, two at a time (vitest.serial.config.ts runs
// the rest). Named files (`npx vitest run test/layers/Swarm.test.ts`) run whatever they are.
const named = process.argv.slice(2).some((arg) => arg.startsWith("test/") || arg.endsWith(".test.ts"))

export default defineConfig({
  test: {
    ...SHARED,
    include: ["test/**/*.test.ts"],
    exclude: ["**/node_modules/**", ...(named ? [] : SERIAL_TESTS)],
    maxWorkers: 2,
    minWorkers: 1
  }
})
