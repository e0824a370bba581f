/**
 * Workarounds of @libp2p/gossipsub internals (the pinned 17.1.1), kept in this one module. Each names its upstream
 * cause and has a canary test (test/services/GossipsubAdapter.test.ts) that fails once the quirk is gone, so that the
 * workaround can be deleted then.
 *
 * Lost outbound stream. gossipsub opens its one outbound stream to a peer when a connection opens
 * (`onPeerConnected`, registered as a libp2p topology) and never again while the peer stays connected: if that stream
 * ends (reset by the peer, or a reconnection that raced the old connection's close, which leaves the closed stream
 * in `streamsOutbound`), every message to the peer is dropped without a trace until it disconnects. Seen in tests: a
 * restarted node never got its neighbor's gossip. Upstream: `GossipSub.onPeerConnected` / `createOutboundStream`
 * (src/gossipsub.ts) only run on connect; an outbound stream's close just deletes it from `streamsOutbound`.
 */
import { type GossipSub, type TopicValidatorFn, TopicValidatorResult } from "@libp2p/gossipsub"
import type { Connection, PeerId } from "@libp2p/interface"
import type { GossipRouterService } from "../Network/router.js"

/** The parts of gossipsub's router the repair reads; checked at run time, so a version without them turns it off. */
interface GossipsubInternals {
  readonly peers?: unknown
  readonly streamsOutbound?: unknown
  readonly onPeerConnected?: unknown
}
interface OutboundStreams {
  readonly get: (id: string) => { readonly rawStream?: { readonly status?: string } } | undefined
  readonly delete: (id: string) => boolean
}

/** What the repair needs of the router, or undefined when this gossipsub does not have it (a newer version). */
const internalsOf = (pubsub: GossipSub) => {
  const internals = pubsub as unknown as GossipsubInternals
  if (
    !(internals.peers instanceof Map) || !(internals.streamsOutbound instanceof Map) ||
    typeof internals.onPeerConnected !== "function"
  ) return undefined
  return {
    peers: internals.peers as ReadonlyMap<string, unknown>,
    outbound: internals.streamsOutbound as unknown as OutboundStreams,
    open: (internals.onPeerConnected as (peerId: PeerId, connection: Connection) => void).bind(pubsub)
  }
}

/** True when the router has the internals the repair works on (the canary checks this first). */
export const repairSupported = (pubsub: GossipSub): boolean => internalsOf(pubsub) !== undefined

/**
 * A check to run every few seconds: connected gossipsub peers whose outbound stream is closed, or missing at two
 * checks in a row (it is missing for a moment while gossipsub opens it), get a new one the way gossipsub opens it on
 * a connection. Returns how many streams a run reopened. Undefined when this gossipsub lacks the internals.
 */
export const makeStreamRepair = (router: GossipRouterService): (() => number) | undefined => {
  const internals = internalsOf(router.pubsub)
  if (internals === undefined) return undefined
  const { open, outbound, peers } = internals
  let missing = new Set<string>()
  return () => {
    let repaired = 0
    const missingNow = new Set<string>()
    const checked = new Set<string>()
    for (const connection of router.connections()) {
      const id = connection.remotePeer.toString()
      if (connection.status !== "open" || checked.has(id) || !peers.has(id)) continue
      checked.add(id)
      const stream = outbound.get(id)
      if (stream !== undefined && stream.rawStream?.status === "open") continue
      if (stream === undefined && !missing.has(id)) {
        missingNow.add(id)
        continue
      }
      if (stream !== undefined) outbound.delete(id)
      repaired++
      open(connection.remotePeer, connection)
    }
    missing = missingNow
    return repaired
  }
}

/** Test support: gossipsub's outbound stream to `peer`, as the canary and the repair test break it. */
export const outboundStream = (pubsub: GossipSub, peer: PeerId): TestOutboundStream | undefined => {
  const internals = pubsub as unknown as GossipsubInternals
  if (!(internals.streamsOutbound instanceof Map)) return undefined
  const value: unknown = internals.streamsOutbound.get(peer.toString())
  return value as TestOutboundStream | undefined
}

/** What the tests read of an outbound stream: its status, what waits unsent (the inbound bound's test), abort. */
export interface TestOutboundStream {
  readonly rawStream: {
    readonly status?: string
    readonly writeBufferLength: number
    readonly abort: (error: Error) => void
  }
}

/**
 * Unpaced intake. gossipsub reads each peer's stream in a `for await` loop and, by default, starts handling an RPC
 * without waiting for it (`awaitRpcHandler: false`), so a backlog of buffered RPCs — a peer flooding a topic — is
 * decoded and every message's signature verified in one run of the microtask queue: the event loop, and with it the
 * RPC server and every timer, stalls for as long as the backlog lasts (seen: one 2.8 s block under the flood bench,
 * `npm run bench -- flood`). Upstream: `GossipSub.pipePeerReadStream` / `handleReceivedRpc` (src/gossipsub.ts) never
 * yield to the event loop. The pacing: Network makes gossipsub await each RPC and each message
 * (`awaitRpcHandler`, `awaitRpcMessageHandler`), and this pacer, the first step of every joined topic's validator
 * (`neighborsOnlyValidator` below), accepts every message and lets one turn of the event loop pass after each
 * {@link MESSAGES_PER_TURN} of them (about 2 ms of signature checks). Backpressure then reaches the sender through
 * the stream's flow control instead of a backlog.
 */
export const MESSAGES_PER_TURN = 16

/** The validator (one per node: the count spans its topics and peers). */
export const makePacer = (): TopicValidatorFn => {
  let handled = 0
  const accept = (resolve: (result: TopicValidatorResult) => void) => resolve(TopicValidatorResult.Accept)
  return () => {
    if (++handled < MESSAGES_PER_TURN) return TopicValidatorResult.Accept
    handled = 0
    return new Promise<TopicValidatorResult>((resolve) => setImmediate(accept, resolve))
  }
}

/** A message as gossipsub hands it to a topic validator (signature checked). */
type ValidatedMessage = Parameters<TopicValidatorFn>[1]

/**
 * Neighbours-only messages. gossipsub relays every valid message it receives to its mesh peers, so a message meant
 * for the publisher's direct neighbours (ContentReady, SyncReport: the reference's `broadcast_neighbors`) reached the
 * whole swarm, and every node that heard of a download or a sync from a node it was not connected to dialled it to
 * fetch or sync (spec 05 §8 maps them to a plain publish). gossipsub has no hop limit, but a message its topic
 * validator `Ignore`s is neither delivered nor relayed nor held for IHAVE, and its sender is not penalised
 * (`PeerScore.rejectMessage`). So this validator hands such messages to `deliver` itself, after the signature check
 * and the pacing, and answers Ignore: the publisher's flood publish (`floodPublish`, Network.ts) reaches each
 * neighbour, and it stops there. Other messages are paced and accepted as before. One cost remains: gossipsub sends
 * IDONTWANT to its mesh for a message of 512 bytes or more before validating it, so a large SyncReport still makes
 * each neighbour send its mesh peers a few bytes for a message none of them would relay.
 */
export const neighborsOnlyValidator = (
  pace: TopicValidatorFn,
  isNeighborsOnly: (data: Uint8Array) => boolean,
  deliver: (message: ValidatedMessage, propagationSource: PeerId) => void,
  onError: (message: ValidatedMessage, propagationSource: PeerId, error: unknown) => void
): TopicValidatorFn => {
  // gossipsub takes a validator that throws for Ignore, without a trace: a delivery that throws is reported here.
  const deliverHere = (message: ValidatedMessage, source: PeerId, paced: TopicValidatorResult) => {
    if (paced !== TopicValidatorResult.Accept) return paced
    try {
      deliver(message, source)
    } catch (error) {
      onError(message, source, error)
    }
    return TopicValidatorResult.Ignore
  }
  return (source, message) => {
    const paced = pace(source, message)
    if (!isNeighborsOnly(message.data)) return paced
    return paced instanceof Promise
      ? paced.then((result) => deliverHere(message, source, result))
      : deliverHere(message, source, paced)
  }
}

/**
 * Unbounded inbound stream. gossipsub reads a peer's stream through `pipe` (`InboundStream` → `pipePeerReadStream`),
 * which turns a libp2p 3 stream into a source with `messageStreamToDuplex`: every `message` event is copied into an
 * unbounded pushable, and yamux grants the sender new credit as soon as a frame has been dispatched to that event,
 * whether or not gossipsub has read it (`handleData` → `sendWindowUpdate`). The pacing above makes gossipsub read
 * slowly, so a flooding peer's whole burst waited in the pushable: under the flood bench the sender was done in ~5 s
 * while the node held its 10k Puts for a minute (peak RSS 475 MB). Upstream: `pipe` / `messageStreamToDuplex`
 * (@libp2p/utils 7.4, src/stream-utils.ts), `InboundStream` (@libp2p/gossipsub 17, src/stream.ts),
 * `YamuxStream.handleData` / `sendWindowUpdate` (@chainsafe/libp2p-yamux 8, src/stream.ts).
 *
 * The bound: gossipsub gets, instead of each inbound stream, a source over it (not an event target, so `pipe`
 * iterates it) that pauses the stream (yamux stops granting credit) while more than {@link INBOUND_HIGH_WATER} bytes
 * were read and not yet taken by gossipsub, and resumes it once gossipsub took them; and the stream's yamux window is
 * kept at yamux's initial {@link INBOUND_WINDOW} (yamux grows a busy stream's window up to the muxer's 16 MiB, all of
 * which a paused sender may still use). So a peer's gossip held by this node is at most INBOUND_HIGH_WATER +
 * 2 × INBOUND_WINDOW bytes (what was read, what arrived on credit while paused, one dispatch of it) plus the RPC
 * gossipsub is handling; the rest waits at the sender. The canary (test/services/GossipsubAdapter.test.ts) shows a
 * bare router letting a sender empty its whole buffer into a receiver that handles nothing.
 */
export const INBOUND_HIGH_WATER = 64 * 1024
/** yamux's initial (and smallest) stream window; the sender's credit on a gossipsub stream never exceeds it. */
export const INBOUND_WINDOW = 256 * 1024

/** What the inbound bound counts (read by Gossip's stats). */
export interface InboundCounters {
  /** Times a peer's gossipsub stream was paused because gossipsub had not taken what was read. */
  paused: number
  /** Most bytes read from one stream and not yet taken by gossipsub. */
  peakBytes: number
}

/** The parts of a libp2p 3 stream the bounded iterator uses (an `AbstractMessageStream`). */
export interface ReadableStream {
  readonly readStatus: string
  readonly status: string
  pause(): void
  resume(): void
  close(options?: unknown): Promise<void>
  abort(error: Error): void
  addEventListener(type: string, listener: (event: Event) => void): void
  removeEventListener(type: string, listener: (event: Event) => void): void
}

export interface Chunk {
  readonly byteLength: number
}

const isChunk = (data: unknown): data is Chunk =>
  typeof data === "object" && data !== null && "byteLength" in data && typeof data.byteLength === "number"

/**
 * An async iterator of `stream`'s data with backpressure: the stream is paused while more than `highWaterMark`
 * bytes wait, and resumed when the consumer took them. A pause from inside `resume()`'s synchronous dispatch would be
 * undone at the yamux level (see Network.reader), so it waits until `resume()` returned. Ends as libp2p's own
 * iterator does: at the end of the readable side, and with the error of a close that has one.
 */
export const boundedIterator = (
  stream: ReadableStream,
  highWaterMark: number,
  counters: InboundCounters
): AsyncIterableIterator<Chunk> => {
  let queue: Array<Chunk | undefined> = []
  let head = 0
  let buffered = 0
  let resuming = false
  let ended = false
  let failure: unknown = undefined
  let wake: (() => void) | undefined
  const notify = () => {
    const w = wake
    wake = undefined
    w?.()
  }
  const readable = () => stream.readStatus === "readable"
  const pause = () => {
    if (resuming || buffered <= highWaterMark || !readable()) return
    stream.pause()
    counters.paused++
  }
  const onMessage = (event: Event) => {
    const data: unknown = "data" in event ? event.data : undefined
    if (!isChunk(data)) return
    queue.push(data)
    buffered += data.byteLength
    if (buffered > counters.peakBytes) counters.peakBytes = buffered
    pause()
    notify()
  }
  const onEnd = () => {
    ended = true
    notify()
  }
  const onClose = (event: Event) => {
    const error: unknown = "error" in event ? event.error : undefined
    if (error !== undefined) failure ??= error
    ended = true
    notify()
  }
  const detach = () => {
    stream.removeEventListener("message", onMessage)
    stream.removeEventListener("end", onEnd)
    stream.removeEventListener("close", onClose)
  }
  stream.addEventListener("message", onMessage)
  stream.addEventListener("end", onEnd)
  // `end` comes once the last byte was dispatched, also after a FIN that arrived while paused (libp2p's own iterator
  // ends at the FIN and loses what was paused); a reset or abort closes with an error.
  stream.addEventListener("close", onClose)
  const done = (): IteratorResult<Chunk> => {
    detach()
    if (failure !== undefined) throw failure
    return { done: true, value: undefined }
  }
  const next = async (): Promise<IteratorResult<Chunk>> => {
    for (;;) {
      if (head < queue.length) {
        const value = queue[head]!
        queue[head++] = undefined
        // Taken slots are dropped once they are most of the array (a consumer that never quite catches up would
        // otherwise grow it, while the bytes it holds stay bounded).
        if (head === queue.length) {
          queue = []
          head = 0
        } else if (head >= 1024 && head * 2 >= queue.length) {
          queue = queue.slice(head)
          head = 0
        }
        buffered -= value.byteLength
        if (stream.readStatus === "paused" && buffered <= highWaterMark / 2) {
          resuming = true
          try {
            stream.resume()
          } finally {
            resuming = false
          }
          pause()
        }
        return { done: false, value }
      }
      if (ended || failure !== undefined) return done()
      await new Promise<void>((resolve) => (wake = resolve))
    }
  }
  const iterator: AsyncIterableIterator<Chunk> = {
    next,
    return: async () => {
      queue = []
      buffered = 0
      ended = true
      detach()
      return { done: true, value: undefined }
    },
    [Symbol.asyncIterator]: () => iterator
  }
  return iterator
}

const isReadableStream = (stream: unknown): stream is ReadableStream =>
  typeof stream === "object" && stream !== null && "readStatus" in stream && "pause" in stream &&
  typeof stream.pause === "function" && "resume" in stream && typeof stream.resume === "function" &&
  "addEventListener" in stream && typeof stream.addEventListener === "function" && "close" in stream &&
  typeof stream.close === "function" && "abort" in stream && typeof stream.abort === "function"

/** Keeps a yamux stream's receive window at `window` (yamux grows it up to the muxer's maximum while data flows). */
const capWindow = (stream: object, window: number) => {
  if ("maxStreamWindowSize" in stream && typeof stream.maxStreamWindowSize === "number") {
    Object.assign(stream, { maxStreamWindowSize: Math.min(stream.maxStreamWindowSize, window) })
  }
}

/**
 * Bounds what gossipsub reads ahead from each peer's inbound stream (see {@link INBOUND_HIGH_WATER}): wraps the
 * router's `createInboundStream`, so streams opened from now on get the bounded iterator and the small window.
 * Returns the function that undoes it, or undefined when this gossipsub lacks the internals (then nothing is done).
 */
export const boundInbound = (
  pubsub: GossipSub,
  counters: InboundCounters,
  highWaterMark: number = INBOUND_HIGH_WATER
): (() => void) | undefined => {
  const internals = pubsub as unknown as { createInboundStream?: unknown }
  const original = internals.createInboundStream
  if (typeof original !== "function") return undefined
  const wrapped = function(this: unknown, peerId: unknown, stream: unknown) {
    if (!isReadableStream(stream)) return original.call(this, peerId, stream)
    capWindow(stream, INBOUND_WINDOW)
    // Not an event target, so gossipsub's `pipe` iterates it instead of listening to the stream itself.
    const source = {
      [Symbol.asyncIterator]: () => boundedIterator(stream, highWaterMark, counters),
      close: (options?: unknown) => stream.close(options),
      abort: (error: Error) => stream.abort(error)
    }
    return original.call(this, peerId, source)
  }
  Object.assign(internals, { createInboundStream: wrapped })
  return () => {
    if (internals.createInboundStream === wrapped) Object.assign(internals, { createInboundStream: original })
  }
}

/** True when the router has the internal `boundInbound` wraps (the canary checks this first). */
export const inboundBoundSupported = (pubsub: GossipSub): boolean =>
  typeof (pubsub as unknown as { createInboundStream?: unknown }).createInboundStream === "function"
