import * as path from "node:path"
import { BaseSequencer, type TestSpecification } from "vitest/node"

/**
 * The test suite runs in passes (`npm test` = `test/run.sh`): most files on two workers, then the files below one at
 * a time in two streams: the swarm (alone), then the timer tests and the browsers; beside them once the swarm is
 * done, the NAT lab, which mostly waits, then the relay tests through the CLI, in a process of their own; and the
 * type check.
 * These measure timing (TestClock steps against real nodes), run many nodes or processes at once (a 20-node swarm,
 * network namespaces, a browser), or need the machine to themselves to mean what they assert.
 */
export const SERIAL_TESTS: ReadonlyArray<string> = [
  "test/layers/Swarm.test.ts",
  "test/services/LiveSync/Timers.test.ts",
  "test/services/LiveSync/Retry.test.ts",
  "test/services/LiveSync/EventOrder.test.ts",
  "test/services/LiveSync/FloodInbox.test.ts",
  "test/ui/**/*.test.ts",
  "test/lab/**/*.test.ts",
  "test/layers/ReachCli.test.ts"
]

/**
 * Files that assert nothing about time (computation: stores, codecs, property tests, the replica's actor; and the
 * package test, `npm pack` and `npm install` with generous timeouts), run from the start to the end of `npm test` at
 * the lowest priority (`nice -n 19`, test/run.sh): they take the CPU that the other files leave while they wait on
 * nodes, timers, networks and browsers, instead of lengthening the parallel pass. One at a time, in this order (the
 * package test first: its processes take longest).
 */
export const BACKGROUND_TESTS: ReadonlyArray<string> = [
  "test/package/**/*.test.ts",
  "test/services/Store.test.ts",
  "test/services/Membership/View.test.ts",
  "test/services/StorePaging.test.ts",
  "test/internal/fingerprintTree.test.ts",
  "test/schema/SyncMessage.test.ts",
  "test/internal/reconcile.test.ts",
  "test/schema/Ticket.test.ts",
  "test/services/Ranger.test.ts",
  "test/schema/DownloadPolicy.test.ts",
  "test/schema/Rpc.test.ts",
  "test/schema/Entry.test.ts",
  "test/schema/Op.test.ts",
  "test/schema/PeerRecord.test.ts",
  "test/schema/AuthorHeads.test.ts",
  "test/schema/limits.test.ts",
  "test/internal/framing.test.ts",
  "test/internal/msgpackStream.test.ts",
  "test/services/LiveSync/SyncState.test.ts",
  "test/services/LiveSync/ContentQueue.test.ts",
  "test/services/Replica.test.ts",
  "test/services/Crypto.test.ts",
  "test/internal/mailbox.test.ts",
  "test/internal/metrics.test.ts",
  "test/internal/slots.test.ts",
  "test/internal/base32.test.ts",
  "test/internal/bytes.test.ts",
  "test/internal/ed25519.test.ts",
  "test/internal/blake3.test.ts",
  "test/schema/DocsErrors.test.ts"
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
  "test/cli/Blob.test.ts",
  "test/services/LiveSync.test.ts",
  "test/services/BlobTransfer.test.ts",
  "test/cli/StartFlags.test.ts",
  "test/examples/examples.test.ts",
  "test/cli/Walkthrough.test.ts",
  "test/cli/Restart.test.ts",
  "test/services/Network.test.ts"
]

/** Where `file` (relative to the root) stands in `patterns` (paths, or a directory's `…/**` glob); past the end if none. */
const rankIn = (patterns: ReadonlyArray<string>, file: string): number => {
  const glob = "**/*.test.ts"
  const at = patterns.findIndex((p) => (p.endsWith(glob) ? file.startsWith(p.slice(0, -glob.length)) : p === file))
  return at === -1 ? patterns.length : at
}

/** A sequencer that runs the files named in `patterns` first, in that order, then the others in vitest's order. */
const orderedBy = (patterns: ReadonlyArray<string>) =>
  class extends BaseSequencer {
    override async sort(files: Array<TestSpecification>): Promise<Array<TestSpecification>> {
      const rank = (spec: TestSpecification) =>
        rankIn(patterns, path.relative(spec.project.config.root, spec.moduleId).split(path.sep).join("/"))
      return (await super.sort(files))
        .map((spec, i) => ({ spec, i, rank: rank(spec) }))
        .sort((a, b) => a.rank - b.rank || a.i - b.i)
        .map(({ spec }) => spec)
    }
  }

export const BackgroundSequencer: typeof BaseSequencer = orderedBy(BACKGROUND_TESTS)
/** The serial pass's order: the swarm first (test/run.sh starts the lab when it is done), then as listed. */
export const SerialSequencer: typeof BaseSequencer = orderedBy(SERIAL_TESTS)
export const SlowFirstSequencer: typeof BaseSequencer = orderedBy(SLOW_FIRST)

export const SHARED = {
  // libp2p 3 needs Promise.withResolvers, which Node 20 lacks (STACK.md). Tests log at RANGEDOCS_LOG_LEVEL
  // (default none: what a test expects it asserts).
  setupFiles: ["./src/internal/polyfill.ts", "./test/utils/quietLogs.ts"],
  // Names the directory of the run's one CLI bundle, which the CLI test files share (test/cli/harness.ts).
  globalSetup: ["./test/globalSetup.ts"],
  testTimeout: 60_000,
  hookTimeout: 60_000
}
