import { defineConfig } from "vitest/config"
import { BACKGROUND_TESTS, BackgroundSequencer, SERIAL_TESTS, SerialSequencer, SHARED } from "./vitest.shared.js"

// The serial passes: the files that need the machine to themselves, one at a time (see vitest.shared.ts); with
// RANGEDOCS_TEST_PASS=background, the files that only compute (test/run.sh runs them at the lowest priority).
const background = process.env["RANGEDOCS_TEST_PASS"] === "background"

export default defineConfig({
  test: {
    ...SHARED,
    include: background ? [...BACKGROUND_TESTS] : [...SERIAL_TESTS],
    fileParallelism: false,
    sequence: { sequencer: background ? BackgroundSequencer : SerialSequencer },
    setupFiles: [...SHARED.setupFiles, "./test/utils/fileDone.ts"],
    // One worker and one module graph for the pass's files, as in the parallel pass (vitest.config.ts): each file
    // loaded effect, libp2p and the project anew ("collect" 21–27 s of the pass's wall time).
    isolate: false
  }
})
