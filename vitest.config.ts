import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // libp2p 3 needs Promise.withResolvers, which Node 20 lacks (STACK.md).
    setupFiles: ["./src/internal/polyfill.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000
  }
})
