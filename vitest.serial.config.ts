import { defineConfig } from "vitest/config"
import { SERIAL_TESTS, SHARED } from "./vitest.shared.js"

// The second pass: the files that need the machine to themselves, one at a time (see vitest.shared.ts).
export default defineConfig({
  test: {
    ...SHARED,
    include: [...SERIAL_TESTS],
    fileParallelism: false
  }
})
