import { defineConfig } from "vitest/config"
import { BACKGROUND_TESTS, SERIAL_TESTS, SHARED, SlowFirstSequencer } from "./vitest.shared.js"

// The first pass of `npm test`: every test file but the serial ones, two at a time, the slowest first
// (vitest.serial.config.ts runs the rest, and the background files). Named files (`npx vitest run test/layers/Swarm.test.ts`) run whatever they are.
const named = process.argv.slice(2).some((arg) => arg.startsWith("test/") || arg.endsWith(".test.ts"))

export default defineConfig({
  test: {
    ...SHARED,
    include: ["test/**/*.test.ts"],
    exclude: ["**/node_modules/**", ...(named ? [] : [...SERIAL_TESTS, ...BACKGROUND_TESTS])],
    maxWorkers: 2,
    minWorkers: 1,
    sequence: { sequencer: SlowFirstSequencer },
    // One module graph per worker, not one per file: each file no longer loads effect, libp2p and the project anew
    // (9 small files: 14.1 → 7.9 s of CPU). Files share their worker's process, so a test must close what it opens
    // (the brief's rule anyway); the whole pass passed this way. The serial pass keeps isolation.
    isolate: false
  }
})
