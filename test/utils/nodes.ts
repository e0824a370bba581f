/** Whole nodes for tests: memory or persistent stacks on 127.0.0.1, built in the caller's scope. */
import { Context, Effect, Exit, Layer, Scope, Stream } from "effect"
import { memoryNode, type NodeOptions, type NodeServices, persistentNode } from "../../src/layers/Node.js"
import * as Docs from "../../src/services/Docs.js"
import type { LiveEvent } from "../../src/schema/LiveEvent.js"
import * as Network from "../../src/services/Network.js"

export interface TestNode {
  readonly context: Context.Context<NodeServices>
  readonly docs: Docs.DocsService
  readonly network: Network.NetworkService
}

const FAST: NodeOptions = { listen: ["/ip4/127.0.0.1/tcp/0"] }

const fromLayer = (layer: Layer.Layer<NodeServices, unknown>) =>
  Effect.gen(function*() {
    const context = yield* Layer.build(layer).pipe(Effect.orDie)
    return { context, docs: Context.get(context, Docs.Docs), network: Context.get(context, Network.Network) }
  })

export const startMemoryNode = (options: NodeOptions = {}): Effect.Effect<TestNode, never, Scope.Scope> =>
  fromLayer(memoryNode({ ...FAST, ...options }))

export const startPersistentNode = (dataDir: string, options: NodeOptions = {}): Effect.Effect<TestNode, never, Scope.Scope> =>
  fromLayer(persistentNode(dataDir, { ...FAST, ...options }))

/** Starts a node in its own scope, so the test can stop it (close the scope) while others go on. */
export const startStoppable = (start: Effect.Effect<TestNode, never, Scope.Scope>) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const node = yield* Scope.extend(start, scope)
    return { node, stop: Scope.close(scope, Exit.void) }
  })


/** Records every event of `events` in the background (for the scope); read `seen` or wait with `until`. */
export const record = (events: Stream.Stream<LiveEvent, unknown>) =>
  Effect.gen(function*() {
    const seen: Array<LiveEvent> = []
    yield* Effect.forkScoped(Stream.runForEach(events, (event) => Effect.sync(() => void seen.push(event))))
    const until = <A extends LiveEvent>(predicate: (event: LiveEvent) => event is A, ms = 15_000) =>
      Effect.map(
        eventually(Effect.sync(() => seen.some(predicate)), ms, "awaited event"),
        () => seen.find(predicate) as A
      )
    return { seen, until }
  })

/** Polls `check` until it returns true, failing after `ms`. */
export const eventually = <E, R>(
  check: Effect.Effect<boolean, E, R>,
  ms = 15_000,
  what = "condition"
): Effect.Effect<void, E, R> => {
  // Created at the call, so that its stack points at the caller's line.
  const failure = new Error(`${what} not met within ${ms} ms`)
  return Effect.gen(function*() {
    const deadline = Date.now() + ms
    while (!(yield* check)) {
      if (Date.now() > deadline) return yield* Effect.die(failure)
      yield* Effect.sleep(25)
    }
  })
}
