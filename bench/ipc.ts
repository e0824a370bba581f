/**
 * A bench's node processes and their runner: commands over the IPC channel of `child_process.fork`
 * (`{ id, cmd, args }` → `{ id, ok, value | error }`; the child's "ready" is id 0). Values travel as JSON, so ids and
 * hashes go as hex. Used by `live` (bench/live-node.ts) and `blobs --processes 2` (bench/blobs-node.ts).
 */
import { Effect, Queue, type Scope } from "effect"
import { fork } from "node:child_process"

interface Request {
  readonly id: number
  readonly cmd: string
  readonly args: Record<string, unknown>
}
type Reply =
  | { readonly id: number; readonly ok: true; readonly value: unknown }
  | { readonly id: number; readonly ok: false; readonly error: string }

/** A forked node process as its runner sees it. */
export interface Child {
  readonly pid: number
  /** Runs `cmd` in the child; a failure there dies here with the child's message. */
  readonly call: <A = unknown>(cmd: string, args?: Record<string, unknown>) => Effect.Effect<A>
}

/**
 * Forks `program` (after the runner's own node flags, then `execArgv`, which can override them) and waits until it is
 * ready. When the scope closes the child gets SIGTERM (so `--cpu-prof` writes its profile) and its exit is awaited,
 * for at most 10 s.
 */
export const forkChild = (program: string, name: string, env: NodeJS.ProcessEnv, execArgv: ReadonlyArray<string>) =>
  Effect.acquireRelease(
    Effect.async<readonly [ReturnType<typeof fork>, Child]>((resume) => {
      const proc = fork(program, [], {
        stdio: ["ignore", 2, 2, "ipc"],
        execArgv: [...process.execArgv, ...execArgv],
        env: { ...process.env, ...env }
      })
      const pending = new Map<number, (reply: Reply) => void>()
      let next = 1
      let ready = false
      const child: Child = {
        pid: proc.pid ?? -1,
        call: <A>(cmd: string, args: Record<string, unknown> = {}) =>
          Effect.async<A>((resumeCall) => {
            const id = next++
            pending.set(id, (reply) =>
              resumeCall(reply.ok ? Effect.succeed(reply.value as A) : Effect.dieMessage(`${name} ${cmd}: ${reply.error}`)))
            proc.send({ id, cmd, args } satisfies Request)
          })
      }
      proc.on("message", (m: unknown) => {
        const reply = m as Reply
        if (reply.id === 0) {
          ready = true
          resume(Effect.succeed([proc, child] as const))
          return
        }
        const done = pending.get(reply.id)
        pending.delete(reply.id)
        done?.(reply)
      })
      proc.on("exit", (code) => {
        for (const done of pending.values()) done({ id: -1, ok: false, error: `${name} exited (${code})` })
        pending.clear()
        if (!ready) resume(Effect.dieMessage(`the ${name} process exited (${code}) before it was ready`))
      })
    }),
    ([proc]) =>
      Effect.async<void>((resume) => {
        if (proc.exitCode !== null || proc.signalCode !== null) return resume(Effect.void)
        proc.once("exit", () => resume(Effect.void))
        proc.kill("SIGTERM")
      }).pipe(Effect.timeout("10 seconds"), Effect.ignore)
  ).pipe(Effect.map(([, child]) => child))

/**
 * The child's side: says it is ready, then runs each command the runner sends with `handle`, concurrently (forked in
 * `scope`), and replies with its value or its failure. Exits the process when the runner goes away.
 */
export const serveRunner = (
  handle: (cmd: string, args: Record<string, unknown>) => Effect.Effect<unknown, unknown>,
  scope: Scope.Scope
) =>
  Effect.gen(function*() {
    const requests = yield* Queue.unbounded<Request>()
    process.on("message", (m: unknown) => Queue.unsafeOffer(requests, m as Request))
    process.on("disconnect", () => process.exit(0))
    const reply = (r: Reply) => Effect.sync(() => process.send?.(r))
    process.send?.({ id: 0, ok: true, value: "ready" } satisfies Reply)
    return yield* Queue.take(requests).pipe(
      Effect.flatMap(({ args, cmd, id }) =>
        handle(cmd, args).pipe(
          Effect.matchCauseEffect({
            onSuccess: (value) => reply({ id, ok: true, value }),
            onFailure: (cause) => reply({ id, ok: false, error: String(cause) })
          }),
          Effect.forkIn(scope)
        )
      ),
      Effect.forever
    )
  })
