/** Local stacks without a network: the replica actor over an in-memory or a persistent store. */
import { Layer } from "effect"
import * as path from "node:path"
import * as Crypto from "../services/Crypto.js"
import * as Replica from "../services/Replica.js"
import type { StoreError } from "../schema/Errors.js"
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
