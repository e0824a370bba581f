import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // libp2p 3 needs Promise.withResolvers, which Node 20 lacks (STACK.md). Tests log at RANGEDOCS_LOG_LEVEL
    // (default none: what a test expects it asserts).
    setupFiles: ["./src/internal/polyfill.ts", "./test/utils/quietLogs.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000
  }
})
