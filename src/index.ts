/** rangedocs: the public entry. Each module is re-exported as a namespace. */
export * as AuthorHeads from "./schema/AuthorHeads.js"
export * as Capability from "./schema/Capability.js"
export * as DownloadPolicy from "./schema/DownloadPolicy.js"
export * as Entry from "./schema/Entry.js"
export * as Errors from "./schema/Errors.js"
export * as Events from "./schema/Events.js"
export * as Keys from "./schema/Keys.js"
export * as Message from "./schema/Message.js"
export * as NetworkErrors from "./schema/NetworkErrors.js"
export * as NodeAddr from "./schema/NodeAddr.js"
export * as Query from "./schema/Query.js"
export * as SyncMessage from "./schema/SyncMessage.js"

export * as Crypto from "./services/Crypto.js"
export * as Network from "./services/Network.js"
export * as Ranger from "./services/Ranger.js"
export * as Replica from "./services/Replica.js"
export * as Store from "./services/Store.js"

export * as Reconcile from "./internal/reconcile.js"

export * as Stores from "./layers/Stores.js"
