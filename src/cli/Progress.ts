/**
 * Progress on stderr for commands that move bytes: shown only on a terminal (`showProgress`), never on a pipe or a
 * file, nor with `--json`. A bar rewrites one line (`\r`); `done` ends it.
 */
import * as Effect from "effect/Effect"
import { stderr } from "./Common.js"

export const MiB = 1024 * 1024

export const showBytes = (n: number): string =>
  n >= MiB ? `${(n / MiB).toFixed(1)} MiB` : `${(n / 1024).toFixed(1)} KiB`

/** Whether to draw progress: stderr is a terminal and the output is for people. */
export const showProgress = (options: { readonly json: boolean }): boolean =>
  process.stderr.isTTY === true && !options.json

/** A bar for `total` bytes, labelled (`label` may be empty); call it with the bytes done so far. */
export const progressBar = (total: number, label = "") => (done: number): Effect.Effect<void> => {
  const width = 30
  const ratio = total > 0 ? Math.min(1, done / total) : 1
  const filled = Math.round(ratio * width)
  return stderr(
    `\r[${"#".repeat(filled)}${"-".repeat(width - filled)}] ${(ratio * 100).toFixed(0).padStart(3)}% ${
      showBytes(done)
    } / ${showBytes(total)}${label === "" ? "" : ` ${label}`}\u001b[K`
  )
}

/** Ends a bar's line. */
export const progressDone: Effect.Effect<void> = stderr("\n")
