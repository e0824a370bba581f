/** Local stacks without a network: the replica actor over an in-memory or a persistent store, plus the blob store. */
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import { Layer } from "effect"
import * as path from "node:path"
import type { BlobStoreError } from "../schema/BlobErrors.js"
import type { StoreError } from "../schema/Errors.js"
import * as Blobs from "../services/Blobs.js"
import * as Crypto from "../services/Crypto.js"
import * as Replica from "../services/Replica.js"
import * as Store from "../services/Store.js"

/** The store file inside a data directory (spec 06 §1.1 suggestion). */
export const storeFile = (dataDir: string) => path.join(dataDir, "docs.sqlite")

/** Replica + Store on SQLite `:memory:`, signing on a worker pool. */
export const MemoryStore: Layer.Layer<Replica.Replica | Store.Store, StoreError> = Replica.layer.pipe(
  Layer.provideMerge(Store.layerMemory),
  Layer.provide(Crypto.layer())
)

/** Replica + Store in `<dataDir>/docs.sqlite` (the directory must exist), signing on a worker pool. */
export const PersistentStore = (dataDir: string): Layer.Layer<Replica.Replica | Store.Store, StoreError> =>
  Replica.layer.pipe(Layer.provideMerge(Store.layerFile(storeFile(dataDir))), Layer.provide(Crypto.layer()))

/** `MemoryStore` plus blobs in memory. */
export const MemoryStorage = (
  config?: Blobs.BlobsConfig
): Layer.Layer<Replica.Replica | Store.Store | Blobs.Blobs, StoreError> =>
  Layer.merge(MemoryStore, Blobs.layerMemory(config))

/**
 * Replica + Store + Blobs of a data directory (which must exist): the store's tables and the blob index share one
 * SQLite connection on `<dataDir>/docs.sqlite`, blob content lives in `<dataDir>/blobs`.
 */
export const PersistentStorage = (
  dataDir: string,
  config?: Blobs.BlobsConfig
): Layer.Layer<Replica.Replica | Store.Store | Blobs.Blobs, StoreError | BlobStoreError> =>
  Replica.layer.pipe(
    Layer.provideMerge(Layer.merge(Store.layer, Blobs.layer(dataDir, config))),
    Layer.provide(Layer.orDie(SqliteClient.layer({ filename: storeFile(dataDir) }))),
    Layer.provide(Crypto.layer())
  )
