/**
 * Where peers can be reached: node id → listen multiaddrs, remembered for the useful peers of documents (spec 05 §5
 * `getSyncPeers`), so a restarted node can dial them again without a new ticket. libp2p's own peer store lives in
 * memory only. `layerFile` keeps the book in `<dataDir>/peers.json` (written atomically), `layerMemory` in memory.
 */
import { Context, Effect, Layer, Option, Schema } from "effect"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { toHex } from "../internal/bytes.js"
import { MultiaddrString, NodeAddr, NodeIdFromHex, type NodeId } from "../schema/NodeAddr.js"

/** Peers remembered at most; the least recently updated are forgotten first. */
export const MAX_PEERS = 1024
/** Addresses kept per peer. */
export const MAX_ADDRS = 16
export const ADDRESS_BOOK_FILE = "peers.json"
/** A larger file is not one we wrote (MAX_PEERS × MAX_ADDRS addresses fit in well under 4 MiB): ignored. */
const MAX_FILE_BYTES = 4 * 1024 * 1024

export interface AddressBookService {
  /** Remembers `addr` (replacing older addresses of that node); nothing is stored for an empty address list. */
  readonly remember: (addr: NodeAddr) => Effect.Effect<void>
  /** The node with its remembered addresses (none remembered → an empty list). */
  readonly lookup: (nodeId: NodeId) => Effect.Effect<NodeAddr>
}

export class AddressBook extends Context.Tag("docs/AddressBook")<AddressBook, AddressBookService>() {}

const BookFile = Schema.parseJson(Schema.Record({ key: Schema.String, value: Schema.Array(Schema.String) }))

const make = (persist: (book: ReadonlyMap<string, ReadonlyArray<string>>) => Effect.Effect<void>, initial: Map<string, ReadonlyArray<string>>) =>
  Effect.gen(function*() {
    const book = initial
    const lock = yield* Effect.makeSemaphore(1)
    const remember = (addr: NodeAddr) =>
      addr.addrs.length === 0 ? Effect.void : lock.withPermits(1)(Effect.suspend(() => {
        const key = toHex(addr.nodeId)
        const addrs = addr.addrs.slice(0, MAX_ADDRS)
        const old = book.get(key)
        if (old !== undefined && old.length === addrs.length && old.every((a, i) => a === addrs[i])) return Effect.void
        book.delete(key)
        book.set(key, addrs)
        while (book.size > MAX_PEERS) book.delete(book.keys().next().value as string)
        return persist(book)
      }))
    const lookup = (nodeId: NodeId) =>
      Effect.sync(() => new NodeAddr({ nodeId, addrs: [...(book.get(toHex(nodeId)) ?? [])] }))
    return AddressBook.of({ remember, lookup })
  })

export const layerMemory: Layer.Layer<AddressBook> = Layer.effect(AddressBook, make(() => Effect.void, new Map()))

const isValidEntry = (key: string, addrs: ReadonlyArray<string>) =>
  Option.isSome(Schema.decodeUnknownOption(NodeIdFromHex)(key)) &&
  addrs.every((a) => Option.isSome(Schema.decodeUnknownOption(MultiaddrString)(a)))

/**
 * The book in `<dataDir>/peers.json`. A missing file is an empty book; an unreadable or malformed one is logged and
 * replaced (it is a cache: losing it only means peers must be given again). Entries that do not parse are dropped.
 */
export const layerFile = (dataDir: string): Layer.Layer<AddressBook> =>
  Layer.effect(
    AddressBook,
    Effect.gen(function*() {
      const file = path.join(dataDir, ADDRESS_BOOK_FILE)
      const text = yield* Effect.tryPromise(async () => {
        const handle = await fs.open(file, "r")
        try {
          return (await handle.stat()).size > MAX_FILE_BYTES ? "" : await handle.readFile("utf8")
        } finally {
          await handle.close()
        }
      }).pipe(Effect.option)
      const initial = new Map<string, ReadonlyArray<string>>()
      if (Option.isSome(text)) {
        const parsed = Schema.decodeUnknownOption(BookFile)(text.value)
        if (Option.isNone(parsed)) yield* Effect.logWarning(`ignoring malformed ${file}`)
        else {
          for (const [key, addrs] of Object.entries(parsed.value)) {
            if (isValidEntry(key, addrs)) initial.set(key.toLowerCase(), addrs.slice(0, MAX_ADDRS))
          }
        }
      }
      const persist = (book: ReadonlyMap<string, ReadonlyArray<string>>) =>
        Effect.tryPromise(async () => {
          // 0700 like every path to the data directory (src/internal/files.ts), should the book create it.
          await fs.mkdir(dataDir, { recursive: true, mode: 0o700 })
          const tmp = `${file}.${process.pid}.tmp`
          await fs.writeFile(tmp, JSON.stringify(Object.fromEntries(book)))
          await fs.rename(tmp, file)
        }).pipe(
          Effect.catchAll((error) =>
            Effect.logWarning(`could not write ${file}: ${error.error instanceof Error ? error.error.message : String(error.error)}`)
          )
        )
      return yield* make(persist, initial)
    })
  )
