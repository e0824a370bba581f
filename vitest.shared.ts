import * as path from "node:path"
import { BaseSequencer, type TestSpecification } from "vitest/node"

/**
 * The test suite runs in passes (`npm test` = `test/run.sh`): most files on two workers, then the files below one at
 * a time (the swarm alone; the NAT lab, which mostly waits, beside the others and the type check).
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
  // `npm pack` and `npm install` into a temporary project: about a core for ~20 s, run after the lab, in its stream.
  "test/package/**/*.test.ts",
  "test/ui/**/*.test.ts"
]

/**
 * The parallel pass's slowest files (seconds each on 2 quiet cores), started first so that no long file starts last
 * and leaves one worker idle at the end. Vitest orders by the durations it cached in the last run (a fresh checkout,
 * as in CI, has none and orders by file size, which put Upload.test, 60 s in 8 kB, near the end); this list comes
 * before either, then vitest's order.
 */
export const SLOW_FIRST: ReadonlyArray<string> = [
  "test/cli/Cli.test.ts",
  "test/cli/Upload.test.ts",
  "test/services/Replica.test.ts",
  "test/cli/Blob.test.ts",
  "test/services/LiveSync.test.ts",
  "test/services/BlobTransfer.test.ts",
  "test/cli/StartFlags.test.ts",
  "test/examples/examples.test.ts",
  "test/cli/Walkthrough.test.ts",
  "test/cli/Restart.test.ts",
  "test/services/Network.test.ts",
  "test/services/Store.test.ts"
]

export class SlowFirstSequencer extends BaseSequencer {
  override async sort(files: Array<TestSpecification>): Promise<Array<TestSpecification>> {
    const ordered = await super.sort(files)
    const rank = (spec: TestSpecification) => {
      const at = SLOW_FIRST.indexOf(path.relative(spec.project.config.root, spec.moduleId).split(path.sep).join("/"))
      return at === -1 ? SLOW_FIRST.length : at
    }
    return ordered
      .map((spec, i) => ({ spec, i, rank: rank(spec) }))
      .sort((a, b) => a.rank - b.rank || a.i - b.i)
      .map(({ spec }) => spec)
  }
}

export const SHARED = {
  // libp2p 3 needs Promise.withResolvers, which Node 20 lacks (STACK.md). Tests log at RANGEDOCS_LOG_LEVEL
  // (default none: what a test expects it asserts).
  setupFiles: ["./src/internal/polyfill.ts", "./test/utils/quietLogs.ts"],
  // Names the directory of the run's one CLI bundle, which the CLI test files share (test/cli/harness.ts).
  globalSetup: ["./test/globalSetup.ts"],
  testTimeout: 60_000,
  hookTimeout: 60_000
}
