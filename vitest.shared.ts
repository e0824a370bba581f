/**
 * The test suite runs in two passes (`npm test`): most files on two workers, then the files below one at a time.
 * These measure timing (TestClock steps against real nodes), run many nodes or processes at once (a 20-node swarm,
 * network namespaces, a browser), or need the machine to themselves to mean what they assert.
 */
export const SERIAL_TESTS: ReadonlyArray<string> = [
  "test/layers/Swarm.test.ts",
  "test/services/LiveSync/Timers.test.ts",
  "test/services/LiveSync/Retry.test.ts",
  "test/services/LiveSync/EventOrder.test.ts",
  "test/services/LiveSync/FloodInbox.test.ts",
  "test/layers/ReachCli.test.ts",
  "test/lab/**/*.test.ts",
  "test/ui/**/*.test.ts"
]

export const SHARED = {
  // libp2p 3 needs Promise.withResolvers, which Node 20 lacks (STACK.md). Tests log at RANGEDOCS_LOG_LEVEL
  // (default none: what a test expects it asserts).
  setupFiles: ["./src/internal/polyfill.ts", "./test/utils/quietLogs.ts"],
  // Names the directory of the run's one CLI bundle, which the CLI test files share (test/cli/harness.ts).
  globalSetup: ["./test/globalSetup.ts"],
  testTimeout: 60_000,
  hookTimeout: 60_000
}
