/**
 * Internal: WARN lines for remote-caused failures, rate-limited. A hostile peer can cause a failure per stream or
 * per gossip message at its own pace; each would be one WARN line, so a peer could fill the log. Here each kind of
 * warning (its message) is logged at most once per interval; the ones in between are counted, and the next line
 * carries that count as `suppressed`. The services' counters still count every failure.
 */
import { Clock, Duration, Effect } from "effect"

/** At most one WARN line per message per this interval. */
export const REMOTE_WARNING_INTERVAL: Duration.Duration = Duration.seconds(10)

export type RemoteWarning = (message: string, annotations?: Record<string, unknown>) => Effect.Effect<void>

/**
 * A logger of remote-caused warnings for one service instance. Its state is one entry per distinct message: pass
 * fixed messages and put what varies (peer, reason) in `annotations`.
 */
export const makeRemoteWarnings = (interval: Duration.DurationInput = REMOTE_WARNING_INTERVAL): RemoteWarning => {
  const gap = Duration.toMillis(Duration.decode(interval))
  const last = new Map<string, { readonly at: number; suppressed: number }>()
  return (message, annotations = {}) =>
    Effect.flatMap(Clock.currentTimeMillis, (now) => {
      const entry = last.get(message)
      if (entry !== undefined && now - entry.at < gap) {
        entry.suppressed++
        return Effect.void
      }
      last.set(message, { at: now, suppressed: 0 })
      const suppressed = entry?.suppressed ?? 0
      return Effect.logWarning(message).pipe(
        Effect.annotateLogs(suppressed > 0 ? { ...annotations, suppressed } : annotations)
      )
    })
}
