/**
 * File modes for a data directory that holds secrets (issue 15, finding 7): the directory is 0700, every file holding
 * a secret (the SQLite database and its -wal/-shm, node-key, rpc-token, default-author) is 0600 from its creation,
 * and one that is found looser at start is tightened, with one WARN line naming it (never its content).
 *
 * SQLite gives the -wal and -shm files the mode of the database file, so creating the database file 0600 before
 * SQLite opens it keeps all three private.
 */
import { Data, Effect } from "effect"
import * as fs from "node:fs/promises"

export const PRIVATE_DIR_MODE = 0o700
export const SECRET_FILE_MODE = 0o600

/** A data directory or secret file whose mode could not be read or set. */
export class FileModeError extends Data.TaggedError("FileModeError")<{
  readonly path: string
  readonly reason: string
}> {
  override get message() {
    return `${this.path}: ${this.reason}`
  }
}

const isErrno = (cause: unknown, code: string): boolean =>
  cause instanceof Error && "code" in cause && cause.code === code

const reason = (cause: unknown) => (cause instanceof Error ? cause.message : String(cause))

const octal = (mode: number) => `0${(mode & 0o777).toString(8)}`

/** The permission bits of `file`; undefined when it does not exist. */
const modeOf = (file: string) =>
  Effect.tryPromise({
    try: async () => {
      try {
        return (await fs.stat(file)).mode & 0o777
      } catch (cause) {
        if (isErrno(cause, "ENOENT")) return undefined
        throw cause
      }
    },
    catch: (cause) => new FileModeError({ path: file, reason: reason(cause) })
  })

/** Sets `mode` when `file` grants anything beyond it, with one warning. */
const tighten = (file: string, mode: number, what: string) =>
  Effect.flatMap(modeOf(file), (current) =>
    current === undefined || (current & ~mode) === 0
      ? Effect.void
      : Effect.tryPromise({
        try: () => fs.chmod(file, mode),
        catch: (cause) => new FileModeError({ path: file, reason: `cannot tighten its mode: ${reason(cause)}` })
      }).pipe(
        Effect.zipRight(
          Effect.logWarning(`${what} ${file} was mode ${octal(current)}; tightened to ${octal(mode)}`)
        )
      ))

/** Creates `dir` (and its parents) 0700 when missing; tightens it to 0700 when it exists looser. */
export const privateDir = (dir: string): Effect.Effect<void, FileModeError> =>
  Effect.tryPromise({
    try: () => fs.mkdir(dir, { recursive: true, mode: PRIVATE_DIR_MODE }),
    catch: (cause) => new FileModeError({ path: dir, reason: `cannot create: ${reason(cause)}` })
  }).pipe(Effect.zipRight(tighten(dir, PRIVATE_DIR_MODE, "data directory")))

/** Tightens an existing secret file to 0600 (one warning); nothing when it does not exist. */
export const secretFile = (file: string): Effect.Effect<void, FileModeError> =>
  tighten(file, SECRET_FILE_MODE, "secret file")

/** Creates `file` empty with mode 0600 unless it exists; tightens it when it exists looser. */
export const createSecretFile = (file: string): Effect.Effect<void, FileModeError> =>
  Effect.tryPromise({
    try: async () => {
      try {
        await (await fs.open(file, "wx", SECRET_FILE_MODE)).close()
      } catch (cause) {
        if (!isErrno(cause, "EEXIST")) throw cause
      }
    },
    catch: (cause) => new FileModeError({ path: file, reason: `cannot create: ${reason(cause)}` })
  }).pipe(Effect.zipRight(secretFile(file)))

/**
 * Writes `content` to `file` atomically (a temporary file renamed over it), mode 0600 from the temporary file's
 * creation on.
 */
export const writeSecretFile = (file: string, content: string): Effect.Effect<void, FileModeError> =>
  Effect.tryPromise({
    try: async () => {
      const tmp = `${file}.${process.pid}.tmp`
      await fs.rm(tmp, { force: true })
      const handle = await fs.open(tmp, "wx", SECRET_FILE_MODE)
      try {
        await handle.writeFile(content)
        await handle.sync()
      } finally {
        await handle.close()
      }
      await fs.rename(tmp, file)
    },
    catch: (cause) => new FileModeError({ path: file, reason: `cannot write: ${reason(cause)}` })
  })
