/**
 * Mailboxes on the write path. Effect's Queue and PubSub keep their items and their waiting takers in linked lists
 * whose unlinked nodes still point to the next ones: once one node has been promoted to V8's old generation (it sat
 * in the list during two scavenges), that dead node keeps the next one alive through the scavenges, and so on, so
 * every later item, with everything it references, is promoted and stays until a mark-compact. Measured on the live
 * path (bench/live.ts with `--node-args=--trace-gc-nvp`): ~1 MB promoted per scavenge per node. Effect's Mailbox keeps
 * arrays and sets instead; this module adds what the actors need on top of it.
 */
import { Cause, Chunk, Effect, type Mailbox } from "effect"

/** The next message; once the mailbox is done (shut down or ended) and empty, the taker is interrupted, as a Queue's is. */
export const takeOrInterrupt = <A, E>(mailbox: Mailbox.ReadonlyMailbox<A, E>): Effect.Effect<A, E> =>
  Effect.catchTag(mailbox.take, "NoSuchElementException", () => Effect.interrupt)

/**
 * Every message queued now, in order (waits for at least one): a consumer's batch. Fails with NoSuchElementException
 * once the mailbox is done and empty.
 */
export const takeAvailable = <A, E>(
  mailbox: Mailbox.ReadonlyMailbox<A, E>
): Effect.Effect<ReadonlyArray<A>, E | Cause.NoSuchElementException> =>
  Effect.flatMap(mailbox.takeAll, ([messages]) =>
    messages.length === 0
      ? Effect.fail(new Cause.NoSuchElementException())
      : Effect.succeed(Chunk.toReadonlyArray(messages)))
