/**
 * Raw gossipsub latency: the baseline of the live benchmark (`gossipP50Ms`). Starts `nodes` libp2p nodes on loopback
 * (the same Network layer and gossipsub settings as rangedocs, no Gossip service, no Op codec), connects them all
 * to each other on one topic, and times publish → `message` event at every other node for `messages` payloads of
 * `payloadSize` bytes, one at a time (the next is published once every node got the previous one).
 */
import "../src/internal/polyfill.js"
import { Context, type Duration, Effect, Layer, Schedule } from "effect"
import type { NetworkError } from "../src/schema/NetworkErrors.js"
import * as Network from "../src/services/Network.js"
import { GossipRouter, type GossipRouterService } from "../src/services/Network/router.js"
import { randomBytes } from "./util.js"

export interface RawLatencyOptions {
  /** 2 or 3 (default 2); node 0 publishes, the others receive. */
  readonly nodes?: number
  readonly payloadSize: number
  /** Measured messages (default 200), after a warm-up until every node receives. */
  readonly messages?: number
}

export interface RawLatency {
  readonly nodes: number
  readonly payloadSize: number
  /** One sample per message and receiving node. */
  readonly samples: number
  readonly p50Ms: number
  readonly p99Ms: number
  readonly meanMs: number
}

const quantile = (sorted: ReadonlyArray<number>, q: number): number =>
  sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!

const round = (ms: number) => Math.round(ms * 1000) / 1000

export const measureRawLatency = (options: RawLatencyOptions): Effect.Effect<RawLatency, NetworkError> =>
  Effect.scoped(Effect.gen(function*() {
    const count = Math.max(2, options.nodes ?? 2)
    const messages = options.messages ?? 200
    const size = Math.max(4, options.payloadSize)
    const topic = `rangedocs-bench/raw/${Buffer.from(randomBytes(8)).toString("hex")}`
    // Raw gossipsub through the internal router tag (the bench-only path to it).
    const nodes: Array<{ readonly network: Network.NetworkService; readonly pubsub: GossipRouterService["pubsub"] }> = []
    for (let i = 0; i < count; i++) {
      const context = yield* Layer.build(Network.layer())
      nodes.push({ network: Context.get(context, Network.Network), pubsub: Context.get(context, GossipRouter).pubsub })
    }
    for (const node of nodes) node.pubsub.subscribe(topic)
    for (let i = 1; i < count; i++) {
      for (let j = 0; j < i; j++) yield* Effect.orDie(nodes[i]!.network.dial(yield* nodes[j]!.network.addr))
    }

    // Message i carries i in its first 4 bytes; received[i] counts the nodes that got it.
    const sentAt = new Map<number, number>()
    const samples: Array<number> = []
    let received = new Map<number, number>()
    let wake: (() => void) | undefined
    let warm = false
    const receivers = nodes.slice(1).map((node) => node.pubsub)
    const onMessage = (event: { readonly detail: { readonly topic: string; readonly data: Uint8Array } }) => {
      const at = performance.now()
      if (event.detail.topic !== topic) return
      const data = event.detail.data
      const i = new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(0)
      const t0 = sentAt.get(i)
      if (warm && t0 !== undefined) samples.push(at - t0)
      const n = (received.get(i) ?? 0) + 1
      received.set(i, n)
      if (n === receivers.length) wake?.()
    }
    yield* Effect.acquireRelease(
      Effect.sync(() => receivers.forEach((p) => p.addEventListener("message", onMessage))),
      () => Effect.sync(() => receivers.forEach((p) => p.removeEventListener("message", onMessage)))
    )

    const publisher = nodes[0]!.pubsub
    let seq = 0
    /** Publishes one payload and waits until every receiver has it (or `timeout` passes: then false). */
    const roundTrip = (timeout: Duration.DurationInput) =>
      Effect.gen(function*() {
        const i = seq++
        const payload = randomBytes(size)
        new DataView(payload.buffer).setUint32(0, i)
        const all = Effect.async<void>((resume) => {
          wake = () => resume(Effect.void)
          return Effect.sync(() => {
            wake = undefined
          })
        })
        sentAt.set(i, performance.now())
        yield* Effect.promise(() => publisher.publish(topic, payload))
        if ((received.get(i) ?? 0) === receivers.length) return true
        return yield* Effect.timeoutTo(all, { duration: timeout, onTimeout: () => false, onSuccess: () => true })
      })

    // Warm-up: meshes and streams are ready once a message reaches everyone; then a few more.
    yield* roundTrip("200 millis").pipe(
      Effect.filterOrFail((ok) => ok),
      Effect.retry(Schedule.spaced("50 millis").pipe(Schedule.upTo("15 seconds"))),
      Effect.orDie
    )
    for (let k = 0; k < 20; k++) yield* roundTrip("1 second")
    warm = true
    received = new Map()
    for (let k = 0; k < messages; k++) yield* roundTrip("2 seconds")

    const sorted = [...samples].sort((a, b) => a - b)
    return {
      nodes: count,
      payloadSize: size,
      samples: sorted.length,
      p50Ms: round(quantile(sorted, 0.5)),
      p99Ms: round(quantile(sorted, 0.99)),
      meanMs: round(sorted.reduce((s, x) => s + x, 0) / Math.max(1, sorted.length))
    }
  }))
