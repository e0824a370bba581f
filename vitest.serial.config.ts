import { defineConfig } from "vitest/config"
import { SERIAL_TESTS, SHARED } from "./vitest.shared.js"

// The second pass: the files that need the machine to themselves, one at a time (see vitest.shared.ts).
export default defineConfig({
  test: {
    ...SHARED,
    include: [...SERIAL_TESTS],
    fileParallelism: false,
    // One worker and one module graph for the pass's files, as in the parallel pass (vitest.config.ts): each file
    // loaded effect, libp2p and the project anew ("collect" 21–27 s of the pass's wall time).
    isolate: false
  }
})
