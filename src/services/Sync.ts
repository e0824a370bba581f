/**
 * Direct sync sessions over libp2p (spec 04 §5–§8, §13): one stream of `SYNC_PROTOCOL` = one namespace. The
 * initiator (`syncWith`) dials, sends `Init`, then answers `Sync` messages until one side has nothing more to say;
 * the acceptor (registered on the Network when the layer starts) asks an accept-decision callback, then runs the
 * same loop. Frames are 4-byte big-endian length prefixed (internal/framing.ts), payloads are `SyncMessage`s.
 *
 * Closing (spec 04 §8): a side that is done half-closes its write side, then reads the rest of the inbound side,
 * which must be empty. The close handshake runs after a successful loop and after an `Abort` (both sides); after a
 * protocol error, a timeout or a broken stream the stream is aborted instead (a polite close would only wait for
 * the timeout again). Only the stream is ever closed, never the libp2p connection.
 *
 * Limits on accepted sessions: at most `maxSessionsPerPeer` per remote node and `maxSessions` in total; a session
 * over either cap is refused with `Abort { InternalServerError }` after its `Init` arrives (the acceptor never
 * speaks first). `AlreadySyncing` is deliberately not used for this: initiators drop it silently as the loser of a
 * concurrent-dial tie-break (spec 04 §7), while "busy" is a failure worth reporting and retrying.
 *
 * Hostile input (issue 15): messages are bounded where they are decoded (constants.ts: parts, parts of an Init, values,
 * key length; over one → SyncLimitExceeded). Invalid values are dropped and counted by the Ranger and the session goes
 * on; a peer past the bound of invalid values ends with TooManyInvalidEntries and is cooled down: for
 * `INVALID_PEER_COOLDOWN_MS` no session with it is started (PeerCoolingDown) or accepted (its streams are aborted
 * unread). A failed inbound session is logged here as one WARN line (peer and namespace short ids, error tag and
 * reason; the cause only at DEBUG) and its stream aborted: the Network never sees the failure.
 */
import { Cause, Clock, Context, Duration, Effect, Either, Exit, Layer, Metric, Option, Schema, Scope, Stream } from "effect"
import { latin1 } from "../internal/bytes.js"
import { Slots } from "../internal/slots.js"
import { FrameDecoder, FrameError, frameParts } from "../internal/framing.js"
import { DecodeLimitExceeded, readWhole } from "../schema/Entry.js"
import { fmtShort, type NamespaceId } from "../schema/Keys.js"
import type { Message } from "../schema/Message.js"
import type { NodeAddr, NodeId } from "../schema/NodeAddr.js"
import {
  DEFAULT_MAX_FRAME,
  INVALID_PEER_COOLDOWN_MS,
  MAX_COOLED_PEERS,
  MAX_INIT_SIZE,
  MAX_MESSAGE_SIZE,
  SYNC_PROTOCOL
} from "../schema/constants.js"
import {
  type AcceptError,
  type ConnectError,
  PeerCoolingDown,
  RemoteAbort,
  SyncCloseError,
  SyncConnectError,
  SyncLimitExceeded,
  SyncProtocolError,
  SyncRejected,
  TooManyInvalidEntries
} from "../schema/SyncErrors.js"
import {
  Abort,
  type AbortReason,
  COMPACT_FINGERPRINT_BYTES,
  COMPACT_SYNC_PROTOCOL,
  CompactSyncMessageFromBytes,
  Init,
  readCompactSyncMessage,
  readSyncMessage,
  Sync as SyncMsg,
  type SyncMessage,
  SyncMessageFromBytes
} from "../schema/SyncMessage.js"
import * as Network from "./Network.js"
import * as Ranger from "./Ranger.js"
import * as Replica from "./Replica.js"

/** Default inactivity timeout of one read (spec 04 §11 suggestion). */
export const DEFAULT_READ_TIMEOUT: Duration.Duration = Duration.seconds(30)
export const DEFAULT_MAX_SESSIONS_PER_PEER = 4
export const DEFAULT_MAX_SESSIONS = 64

/** The acceptor's decision (spec 04 §4.3): `"Allow"` or the reason sent in `Abort`. */
export type AcceptOutcome = "Allow" | AbortReason

export type AcceptDecision = (namespace: NamespaceId, peer: NodeId) => Effect.Effect<AcceptOutcome>

export interface SyncConfig {
  /** Inactivity timeout of every read (a frame, or the drain after closing); default {@link DEFAULT_READ_TIMEOUT}. */
  readonly readTimeout?: Duration.DurationInput
  /** Largest frame payload we accept; default `DEFAULT_MAX_FRAME` (64 MiB). */
  readonly maxFrame?: number
  readonly maxSessionsPerPeer?: number
  readonly maxSessions?: number
  /** How long a peer that sent too many invalid values is cooled down; default `INVALID_PEER_COOLDOWN_MS` (10 min). */
  readonly cooldown?: Duration.DurationInput
}

/** Who decides on inbound sessions, and hears how they ended. */
export interface AcceptHandlers {
  /**
   * Decides whether to accept an `Init` (spec 04 §4.3, §7: the concurrent-dial tie-break is the caller's, who knows
   * which sessions run). A defect or failure of the callback counts as `"InternalServerError"`.
   */
  readonly accept: AcceptDecision
  /** Called with the result of every accepted stream once it ended (not on interruption). */
  readonly onAccepted?: (result: Exit.Exit<SyncFinished, AcceptError>) => Effect.Effect<void>
}

export interface Timings {
  /** Initiator: dial + stream open; acceptor: ≈ 0. */
  readonly connectMs: number
  /** Total elapsed minus `connectMs` (the close handshake included). */
  readonly processMs: number
}

/** Frames and bytes of a session, each direction, 4-byte headers included. */
export interface Traffic {
  readonly messagesSent: number
  readonly messagesReceived: number
  readonly bytesSent: number
  readonly bytesReceived: number
}

/** A completed session (spec 04 §9). */
export interface SyncFinished {
  readonly namespace: NamespaceId
  /** The remote node. */
  readonly peer: NodeId
  readonly outcome: Ranger.SyncOutcome
  readonly timings: Timings
  readonly traffic: Traffic
}

export interface SyncService {
  /** Runs one session as initiator with `peer` on `namespace` (spec 04 §5). Interruption aborts the stream. */
  readonly syncWith: (namespace: NamespaceId, peer: NodeAddr | NodeId) => Effect.Effect<SyncFinished, ConnectError>
  /**
   * Serves `SYNC_PROTOCOL` with `handlers` until the caller's scope closes: one server at a time (a second call while
   * one serves is a defect).
   */
  readonly serve: (handlers: AcceptHandlers) => Effect.Effect<void, never, Scope.Scope>
  /** Accepts iff the replica is open with sync enabled, else `NotFound` (no tie-break: no session state here). */
  readonly defaultDecision: AcceptDecision
}

export class Sync extends Context.Tag("docs/Sync")<Sync, SyncService>() {}

// ---------------------------------------------------------------------------------------------------------------
// Session I/O

/** Where a session is, for errors: the remote and, once known, the namespace. */
interface Where {
  readonly peer: NodeId
  namespace: NamespaceId | undefined
}

const fields = (where: Where) => ({
  peer: where.peer,
  ...(where.namespace === undefined ? {} : { namespace: where.namespace })
})

const protocolError = (where: Where, reason: string) => new SyncProtocolError({ ...fields(where), reason })
const closeError = (where: Where, reason: string) => new SyncCloseError({ ...fields(where), reason })
/** A replica or ranger failure during a session, reported as a protocol error of that session. */
const sessionFailed = (where: Where) => (error: { readonly _tag: string; readonly message: string }) =>
  protocolError(where, `${error._tag}: ${error.message}`)

/** `session.process`, its errors as the session's: too many invalid values become TooManyInvalidEntries. */
const processIn = (session: Ranger.Session, where: Where) => (message: Message) =>
  session.process(message).pipe(
    Effect.catchTag("InvalidEntriesFromPeer", (e) =>
      Effect.flatMap(session.outcome, (outcome) =>
        Effect.fail(
          new TooManyInvalidEntries({ ...fields(where), invalid: e.count, received: outcome.numRecv, first: e.first })
        ))),
    Effect.mapError((e) => (e._tag === "TooManyInvalidEntries" ? e : sessionFailed(where)(e)))
  )

const describe = (cause: unknown): string =>
  cause instanceof FrameError ? cause.message : cause instanceof Error ? cause.message : String(cause)

interface Io {
  /** The next message; none at the remote's end of stream (a truncated frame is an error). */
  readonly next: Effect.Effect<Option.Option<SyncMessage>, SyncProtocolError | SyncLimitExceeded>
  readonly send: (message: SyncMessage) => Effect.Effect<void, SyncProtocolError>
  /** Half-closes our side, then reads the remote's side to its end, requiring no further bytes. */
  readonly close: Effect.Effect<void, SyncCloseError>
  /** Frames and bytes (headers included) exchanged so far. */
  readonly traffic: () => Traffic
}

/**
 * The two wire forms of a session: spec 04's (`SYNC_PROTOCOL`, the reference's Message codec) and ours
 * (`COMPACT_SYNC_PROTOCOL`: the same frames, Messages in SyncMessage.ts's compact codec, fingerprints of 16 bytes).
 */
interface Wire {
  readonly protocol: string
  readonly encode: (message: SyncMessage) => Effect.Effect<Uint8Array, { readonly message: string }>
  /** A frame's message: read by the postcard reader directly, so that a decoding limit stays a typed error. */
  readonly read: ReturnType<typeof readWhole<SyncMessage>>
  readonly session: Ranger.SessionOptions
}
const REFERENCE_WIRE: Wire = {
  protocol: SYNC_PROTOCOL,
  encode: Schema.encode(SyncMessageFromBytes),
  read: readWhole(readSyncMessage),
  session: {}
}
const COMPACT_WIRE: Wire = {
  protocol: COMPACT_SYNC_PROTOCOL,
  encode: Schema.encode(CompactSyncMessageFromBytes),
  read: readWhole(readCompactSyncMessage),
  session: { fingerprintBytes: COMPACT_FINGERPRINT_BYTES }
}

/** The remote does not speak the protocol we asked for (libp2p's multistream-select said no). */
const isUnsupportedProtocol = (reason: string) => reason.startsWith("UnsupportedProtocolError")

const decodeFrame = (
  wire: Wire,
  where: Where,
  frame: Uint8Array
): Effect.Effect<SyncMessage, SyncProtocolError | SyncLimitExceeded> =>
  Either.match(wire.read(frame), {
    onRight: Effect.succeed,
    onLeft: (e) =>
      Effect.fail(
        e instanceof DecodeLimitExceeded
          ? new SyncLimitExceeded({ ...fields(where), limit: e.limit, max: e.max, got: e.got })
          : protocolError(where, `malformed message: ${e.message}`)
      )
  })

interface Settings {
  readonly readTimeout: Duration.Duration
  readonly maxFrame: number
}

/**
 * The session's frames. `firstFrameMax` bounds the first frame's payload (the acceptor's Init), checked at its length
 * prefix: a larger first frame is refused before any of it is buffered.
 */
const makeIo = (
  stream: Network.Stream,
  wire: Wire,
  settings: Settings,
  where: Where,
  firstFrameMax?: number
): Effect.Effect<Io, never, Scope.Scope> =>
  Effect.gen(function*() {
    const pull = yield* Stream.toPull(Network.receive(stream))
    const decoder = new FrameDecoder(settings.maxFrame)
    let ended = false
    let messagesSent = 0
    let messagesReceived = 0
    let bytesSent = 0
    let bytesReceived = 0

    /** One chunk, or none at the end of stream; `reason` on a broken stream or after the inactivity timeout. */
    const pullOnce: Effect.Effect<Option.Option<ReadonlyArray<Uint8Array>>, string> = pull.pipe(
      Effect.map((chunk): Option.Option<ReadonlyArray<Uint8Array>> => Option.some(Array.from(chunk))),
      Effect.catchAll(Option.match({
        onNone: () => Effect.succeed(Option.none<ReadonlyArray<Uint8Array>>()),
        onSome: (error) => Effect.fail(error.reason)
      })),
      Effect.timeoutFail({
        duration: settings.readTimeout,
        onTimeout: () => `no data for ${Duration.format(settings.readTimeout)}`
      })
    )

    const frames = <A>(f: () => A) => Effect.try({ try: f, catch: (cause) => protocolError(where, describe(cause)) })

    // The first frame's length prefix, gathered from the first bytes until all four are in (then undefined).
    let header: Array<number> | undefined = firstFrameMax === undefined ? undefined : []
    const firstMax = firstFrameMax ?? MAX_MESSAGE_SIZE
    /** The first frame's announced length when it is over `firstFrameMax`. */
    const firstOver = (bytes: Uint8Array): number | undefined => {
      if (header === undefined) return undefined
      for (let i = 0; i < bytes.length && header.length < 4; i++) header.push(bytes[i]!)
      if (header.length < 4) return undefined
      const length = header[0]! * 0x1000000 + (header[1]! << 16) + (header[2]! << 8) + header[3]!
      header = undefined
      return length > firstMax ? length : undefined
    }
    const push = (bytes: Uint8Array): Effect.Effect<void, SyncProtocolError | SyncLimitExceeded> => {
      const over = firstOver(bytes)
      return over === undefined
        ? frames(() => decoder.push(bytes))
        : Effect.fail(new SyncLimitExceeded({ ...fields(where), limit: "initSize", max: firstMax, got: over }))
    }

    const next: Effect.Effect<Option.Option<SyncMessage>, SyncProtocolError | SyncLimitExceeded> = Effect.gen(function*() {
      for (;;) {
        const frame = yield* frames(() => decoder.next())
        if (frame !== undefined) {
          messagesReceived++
          bytesReceived += frame.length + 4
          return Option.some(yield* decodeFrame(wire, where, frame))
        }
        if (ended) {
          yield* frames(() => decoder.end())
          return Option.none()
        }
        const chunk = yield* pullOnce.pipe(Effect.mapError((reason) => protocolError(where, reason)))
        if (Option.isNone(chunk)) ended = true
        else for (const bytes of chunk.value) yield* push(bytes)
      }
    })

    const send = (message: SyncMessage) =>
      Effect.gen(function*() {
        const payload = yield* wire.encode(message).pipe(
          Effect.mapError((error) => protocolError(where, `cannot encode ${message._tag}: ${error.message}`))
        )
        const [header, body] = yield* frames(() => frameParts(payload, MAX_MESSAGE_SIZE))
        messagesSent++
        bytesSent += payload.length + 4
        yield* Network.send(stream, header).pipe(
          Effect.zipRight(Network.send(stream, body)),
          Effect.mapError((error) => protocolError(where, error.reason))
        )
      })

    const drain: Effect.Effect<void, SyncCloseError> = Effect.gen(function*() {
      // Fails at the first extra byte: a peer that keeps talking cannot hold the session open.
      let extra = decoder.buffered
      while (!ended && extra === 0) {
        const chunk = yield* pullOnce.pipe(Effect.mapError((reason) => closeError(where, reason)))
        if (Option.isNone(chunk)) ended = true
        else for (const bytes of chunk.value) extra += bytes.length
      }
      if (extra > 0) return yield* closeError(where, `${extra} unexpected bytes after the end of the session`)
    })

    const close = Network.closeWrite(stream).pipe(
      Effect.mapError((error) => closeError(where, error.reason)),
      Effect.zipRight(drain)
    )

    return { next, send, close, traffic: () => ({ messagesSent, messagesReceived, bytesSent, bytesReceived }) }
  })

/** What a session can fail with while it exchanges messages. */
type TalkError = SyncProtocolError | SyncLimitExceeded | TooManyInvalidEntries | RemoteAbort

/**
 * The reconciliation loop: `receive` reads the next `Sync`, processes it and sends the reply, until a side has nothing
 * to send or the remote's stream ends; `reply` sends a reply first. `onOther` rejects every other message.
 *
 * Written without generators so that nothing outlives its use: while waiting for the peer, neither the message we
 * sent nor the one we answered is referenced (a message carries up to a budget's worth of decoded entries).
 */
const conversation = (
  io: Io,
  session: Ranger.Session,
  where: Where,
  onOther: (message: Init | Abort) => SyncProtocolError | RemoteAbort
) => {
  const process = processIn(session, where)
  const receive: Effect.Effect<void, TalkError> = Effect.flatMap(io.next, (next) => {
    if (Option.isNone(next)) return Effect.void
    const message = next.value
    if (message._tag !== "Sync") return Effect.fail(onOther(message))
    return Effect.flatMap(process(message.message), reply)
  })
  const reply = (message: Message | undefined): Effect.Effect<void, TalkError> => {
    if (message === undefined) return Effect.void
    let pending: Message | undefined = message
    const send = Effect.suspend(() => {
      const out = new SyncMsg({ message: pending! })
      pending = undefined
      return io.send(out)
    })
    return Effect.zipRight(send, receive)
  }
  return { receive, reply, process }
}

/** The run's result unless the close handshake failed (its error takes precedence, spec 04 §5). */
const thenClose = <A, E>(io: Io, run: Exit.Exit<A, E>): Effect.Effect<A, E | SyncCloseError> =>
  Effect.flatMap(
    Effect.exit(io.close),
    (closed): Effect.Effect<A, E | SyncCloseError> => (Exit.isFailure(closed) ? Effect.failCause(closed.cause) : run)
  )

/**
 * Peers cooled down after too many invalid values, until a time (epoch ms, the Clock's). Bounded: past `capacity`
 * the expired entries go, then the one that expires soonest.
 */
export class CoolDowns {
  private readonly until = new Map<string, number>()
  constructor(readonly capacity: number = MAX_COOLED_PEERS) {}
  /** The end of the peer's cool-down if it is cooling down at `now`. */
  get(peer: NodeId, now: number): number | undefined {
    const key = latin1(peer)
    const until = this.until.get(key)
    if (until === undefined) return undefined
    if (until > now) return until
    this.until.delete(key)
    return undefined
  }
  add(peer: NodeId, until: number, now: number): void {
    const key = latin1(peer)
    if (!this.until.has(key) && this.until.size >= this.capacity) {
      for (const [k, t] of this.until) if (t <= now) this.until.delete(k)
      if (this.until.size >= this.capacity) {
        let soonest: string | undefined
        let at = Number.POSITIVE_INFINITY
        for (const [k, t] of this.until) {
          if (t < at) {
            at = t
            soonest = k
          }
        }
        if (soonest !== undefined) this.until.delete(soonest)
      }
    }
    this.until.set(key, Math.max(until, this.until.get(key) ?? 0))
  }
  get size(): number {
    return this.until.size
  }
}

// Metrics (Effect's registry): remote-caused session failures by error tag, peers cooled down.
const failedSessions = Metric.counter("rangedocs_sync_failed_sessions", { incremental: true })
const cooledPeers = Metric.counter("rangedocs_sync_peers_cooled_down", { incremental: true })

/** The error's reason in a few words (ids are in the log line's annotations). */
const reasonOf = (error: AcceptError): string => {
  switch (error._tag) {
    case "SyncLimitExceeded":
      return `${error.limit} ${error.got} exceeds ${error.max}`
    case "TooManyInvalidEntries":
      return `${error.invalid} invalid of ${error.received} values (first: ${error.first})`
    case "PeerCoolingDown":
      return `cooling down until ${new Date(error.untilMs).toISOString()}`
    default:
      return error.reason
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Service

export const make = (config: SyncConfig = {}) =>
  Effect.gen(function*() {
    const network = yield* Network.Network
    const ranger = yield* Ranger.Ranger
    const replica = yield* Replica.Replica
    const settings: Settings = {
      readTimeout: Duration.decode(config.readTimeout ?? DEFAULT_READ_TIMEOUT),
      maxFrame: config.maxFrame ?? DEFAULT_MAX_FRAME
    }
    if (!Number.isInteger(settings.maxFrame) || settings.maxFrame < 0 || settings.maxFrame > MAX_MESSAGE_SIZE) {
      return yield* Effect.dieMessage(`Sync: maxFrame must be an integer in [0, ${MAX_MESSAGE_SIZE}]`)
    }
    const maxPerPeer = config.maxSessionsPerPeer ?? DEFAULT_MAX_SESSIONS_PER_PEER
    const maxTotal = config.maxSessions ?? DEFAULT_MAX_SESSIONS
    const cooldownMs = Duration.toMillis(config.cooldown ?? Duration.millis(INVALID_PEER_COOLDOWN_MS))
    const coolDowns = new CoolDowns()

    /** Fails with PeerCoolingDown while the peer is cooling down. */
    const checkCooling = (where: Where) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        const until = coolDowns.get(where.peer, now)
        return until === undefined ? Effect.void : Effect.fail(new PeerCoolingDown({ ...fields(where), untilMs: until }))
      })
    /** A peer that sent too many invalid values is cooled down. */
    const coolOnInvalid = (error: unknown) =>
      error instanceof TooManyInvalidEntries
        ? Effect.flatMap(Clock.currentTimeMillis, (now) =>
          Effect.sync(() => coolDowns.add(error.peer, now + cooldownMs, now)).pipe(
            Effect.zipRight(Metric.increment(cooledPeers))
          ))
        : Effect.void

    const defaultDecision: AcceptDecision = (ns) =>
      replica.state(ns).pipe(
        Effect.map((state): AcceptOutcome => (state.sync ? "Allow" : "NotFound")),
        Effect.catchTag("ReplicaNotOpen", () => Effect.succeed<AcceptOutcome>("NotFound"))
      )
    const syncWith = Effect.fn("Sync.syncWith")(function*(namespace: NamespaceId, peer: NodeAddr | NodeId) {
      const nodeId = peer instanceof Uint8Array ? peer : peer.nodeId
      const where: Where = { peer: nodeId, namespace }
      yield* checkCooling(where)
      return yield* Effect.scoped(Effect.gen(function*() {
        // Checked before dialing: a replica that is not open for sync fails without touching the network. (Options
        // of the compact wire: a compact ranger compares 16 fingerprint bytes on either wire.)
        const session = yield* ranger.session(namespace, nodeId, (ranger.compact ? COMPACT_WIRE : REFERENCE_WIRE).session)
          .pipe(Effect.mapError(sessionFailed(where)))
        const start = yield* Clock.currentTimeMillis
        // Our compact protocol first when our messages are meant for it; a peer that does not speak it (the
        // reference, an older node) gets spec 04's on a second stream.
        const open = (wire: Wire) =>
          Effect.map(
            network.openStream(peer, wire.protocol).pipe(
              Effect.mapError((error) => new SyncConnectError({ ...fields(where), reason: error.reason }))
            ),
            (stream) => [stream, wire] as const
          )
        const [stream, wire] = yield* (ranger.compact
          ? open(COMPACT_WIRE).pipe(
            Effect.catchIf((e) => isUnsupportedProtocol(e.reason), () => open(REFERENCE_WIRE))
          )
          : open(REFERENCE_WIRE))
        const connected = yield* Clock.currentTimeMillis
        const io = yield* makeIo(stream, wire, settings, where)
        const run = yield* Effect.exit(Effect.gen(function*() {
          const initial = yield* session.initialMessage.pipe(
            Effect.mapError(sessionFailed(where))
          )
          yield* io.send(new Init({ namespace, message: initial }))
          yield* conversation(io, session, where, (other) =>
            other._tag === "Abort"
              ? new RemoteAbort({ ...fields(where), reason: other.reason })
              : protocolError(where, "unexpected init message")).receive
        }))
        // After a broken session the stream is aborted (by openStream's finalizer) rather than closed politely.
        if (Exit.isFailure(run)) {
          const failure = Cause.failureOption(run.cause)
          if (Option.isNone(failure) || failure.value._tag !== "RemoteAbort") return yield* Effect.failCause(run.cause)
        }
        yield* thenClose(io, run)
        const end = yield* Clock.currentTimeMillis
        return {
          namespace,
          peer: nodeId,
          outcome: yield* session.outcome,
          timings: { connectMs: connected - start, processMs: end - connected },
          traffic: io.traffic()
        } satisfies SyncFinished
      })).pipe(Effect.tapError(coolOnInvalid))
    })

    // -- acceptor

    const slots = new Slots(maxPerPeer, maxTotal)
    /** Takes a slot for the stream's lifetime; false when over a cap (the slot is then not held). */
    const reserve = (peer: string) =>
      Effect.acquireRelease(Effect.sync(() => slots.tryTake(peer)), (held) =>
        Effect.sync(() => {
          if (held) slots.release(peer)
        }))

    const accept = (
      decide: AcceptDecision,
      stream: Network.Stream,
      remote: NodeId,
      wire: Wire
    ): Effect.Effect<SyncFinished, AcceptError> =>
      Effect.scoped(Effect.gen(function*() {
        const start = yield* Clock.currentTimeMillis
        const where: Where = { peer: remote, namespace: undefined }
        // A peer cooling down is not read at all.
        yield* checkCooling(where)
        const held = yield* reserve(latin1(remote))
        const io = yield* makeIo(stream, wire, settings, where, Math.min(MAX_INIT_SIZE, settings.maxFrame))
        const first = yield* io.next
        if (Option.isNone(first)) return yield* protocolError(where, "stream closed before init message")
        const init = first.value
        if (init._tag === "Sync") return yield* protocolError(where, "unexpected sync message before init")
        if (init._tag === "Abort") return yield* protocolError(where, "unexpected sync abort message")
        const namespace = init.namespace
        where.namespace = namespace
        const decision: AcceptOutcome = held
          ? yield* Effect.suspend(() => decide(namespace, remote)).pipe(
            Effect.catchAllCause((cause) =>
              Effect.as(Effect.logWarning("accept decision failed", cause), "InternalServerError" as const)
            )
          )
          : "InternalServerError"
        const outcome = decision
        if (outcome !== "Allow") {
          const sent = yield* Effect.exit(io.send(new Abort({ reason: outcome })))
          if (Exit.isFailure(sent)) return yield* Effect.failCause(sent.cause)
          return yield* thenClose(io, Exit.fail(new SyncRejected({ ...fields(where), reason: outcome })))
        }
        const session = yield* ranger.session(namespace, remote, wire.session).pipe(
          Effect.mapError(sessionFailed(where))
        )
        const { process, reply } = conversation(io, session, where, (other) =>
          protocolError(where, other._tag === "Init" ? "double init message" : "unexpected sync abort message"))
        // The Init's message is processed in the same chain: its reply is not kept once sent.
        yield* Effect.flatMap(process(init.message), reply).pipe(
          Effect.catchTag("RemoteAbort", (e) => protocolError(where, `unexpected abort ${e.reason}`))
        )
        yield* io.close
        const end = yield* Clock.currentTimeMillis
        return {
          namespace,
          peer: remote,
          outcome: yield* session.outcome,
          timings: { connectMs: 0, processMs: end - start },
          traffic: io.traffic()
        } satisfies SyncFinished
      })).pipe(
        Effect.tapError(coolOnInvalid),
        Effect.withSpan("Sync.accept"),
        Effect.annotateLogs({ service: "Sync", remote: fmtShort(remote) })
      )

    /**
     * How a failed inbound session ends: the stream is aborted, and one log line says why — WARN for remote-caused
     * failures (no stack, no cause: a remote peer must not be able to bloat the log), DEBUG for refusals we decided
     * (a refusal after its close handshake, a peer cooling down); the full cause only at DEBUG.
     */
    const failed = (stream: Network.Stream, remote: NodeId, error: AcceptError, cause: Cause.Cause<AcceptError>) =>
      Effect.gen(function*() {
        if (error._tag !== "SyncRejected") {
          // After a broken session the stream is reset (the Network would close it politely after a success).
          yield* Effect.sync(() => stream.abort(new Error(error._tag)))
        }
        const annotations = {
          service: "Sync",
          peer: fmtShort(remote),
          namespace: error.namespace === undefined ? "-" : fmtShort(error.namespace),
          error: error._tag,
          reason: reasonOf(error)
        }
        if (error._tag === "SyncRejected" || error._tag === "PeerCoolingDown") {
          return yield* Effect.logDebug("sync session refused").pipe(Effect.annotateLogs(annotations))
        }
        yield* Metric.increment(Metric.tagged(failedSessions, "error", error._tag))
        yield* Effect.logWarning("sync session failed").pipe(Effect.annotateLogs(annotations))
        yield* Effect.logDebug("sync session failed", cause).pipe(Effect.annotateLogs(annotations))
      })

    let serving = false
    const serve = (handlers: AcceptHandlers) =>
      Effect.gen(function*() {
        if (serving) return yield* Effect.dieMessage("Sync.serve: the sync protocol is served already")
        yield* Effect.acquireRelease(Effect.sync(() => {
          serving = true
        }), () =>
          Effect.sync(() => {
            serving = false
          }))
        const onAccepted = handlers.onAccepted
        // Typed failures end here (logged once, the stream aborted); only defects and interruption reach the Network.
        // Both wire forms, whatever our own mode: the session limits (slots, cool-downs) are shared.
        for (const wire of [COMPACT_WIRE, REFERENCE_WIRE]) {
          yield* network.handle(wire.protocol, (stream, remote) =>
            accept(handlers.accept, stream, remote, wire).pipe(
              Effect.onExit((exit) =>
                onAccepted === undefined || Exit.isInterrupted(exit) ? Effect.void : onAccepted(exit)
              ),
              Effect.asVoid,
              Effect.catchAllCause((cause) =>
                Either.match(Cause.failureOrCause(cause), {
                  onLeft: (error) => failed(stream, remote, error, cause),
                  onRight: Effect.failCause
                })
              )
            ))
        }
      })

    return Sync.of({ syncWith, serve, defaultDecision })
  })

/** The Sync service: sessions as initiator. It serves no one until {@link SyncService.serve} is called. */
export const layer = (config: SyncConfig = {}): Layer.Layer<Sync, never, Network.Network | Ranger.Ranger | Replica.Replica> =>
  Layer.scoped(Sync, make(config))

/**
 * The Sync service serving the protocol while the layer lives, with `handlers` or the default decision (accept iff
 * the replica is open for sync): a node without the live engine, and tests of the protocol alone.
 */
export const layerServing = (
  config: SyncConfig = {},
  handlers: Partial<AcceptHandlers> = {}
): Layer.Layer<Sync, never, Network.Network | Ranger.Ranger | Replica.Replica> =>
  Layer.scoped(
    Sync,
    Effect.tap(make(config), (sync) =>
      sync.serve({
        accept: handlers.accept ?? sync.defaultDecision,
        ...(handlers.onAccepted === undefined ? {} : { onAccepted: handlers.onAccepted })
      }))
  )
