/** Local stacks without a network: the replica actor over an in-memory or a persistent store, plus the blob store. */
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import { Effect, Layer } from "effect"
import * as path from "node:path"
import type { BlobStoreError } from "../schema/BlobErrors.js"
import { createSecretFile, secretFile } from "../internal/files.js"
import { StoreError } from "../schema/Errors.js"
import * as Blobs from "../services/Blobs.js"
import * as Crypto from "../services/Crypto.js"
import * as Replica from "../services/Replica.js"
import * as Store from "../services/Store.js"

/** The store file inside a data directory (spec 06 §1.1 suggestion). */
export const storeFile = (dataDir: string) => path.join(dataDir, "docs.sqlite")

/**
 * The store holds every author and namespace secret: its file is created 0600 before SQLite opens it (SQLite gives
 * the -wal and -shm files the same mode), and the three are tightened to 0600 if they are looser (one warning each).
 */
const privateStoreFile = (dataDir: string): Effect.Effect<void, StoreError> => {
  const file = storeFile(dataDir)
  return Effect.all([createSecretFile(file), secretFile(`${file}-wal`), secretFile(`${file}-shm`)], {
    discard: true
  }).pipe(Effect.mapError((error) => new StoreError({ method: "open", cause: error.message })))
}

/** `layer`, built once the store file is private. */
const afterPrivateStoreFile = <A, E, R>(dataDir: string, layer: Layer.Layer<A, E, R>) =>
  Layer.unwrapEffect(Effect.as(privateStoreFile(dataDir), layer))

/** Replica + Store on SQLite `:memory:`, signing on a worker pool. */
export const MemoryStore: Layer.Layer<Replica.Replica | Store.Store, StoreError> = Replica.layer.pipe(
  Layer.provideMerge(Store.layerMemory),
  Layer.provide(Crypto.layer())
)

/** Replica + Store in `<dataDir>/docs.sqlite` (the directory must exist), signing on a worker pool. */
export const PersistentStore = (dataDir: string): Layer.Layer<Replica.Replica | Store.Store, StoreError> =>
  afterPrivateStoreFile(
    dataDir,
    Replica.layer.pipe(Layer.provideMerge(Store.layerFile(storeFile(dataDir))), Layer.provide(Crypto.layer()))
  )

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
  afterPrivateStoreFile(
    dataDir,
    Replica.layer.pipe(
      Layer.provideMerge(Layer.merge(Store.layer, Blobs.layer(dataDir, config))),
      Layer.provide(Layer.orDie(SqliteClient.layer({ filename: storeFile(dataDir) }))),
      Layer.provide(Crypto.layer())
    )
  )
