/**
 * Internal: a WebSocket client for @libp2p/websockets on Node 20, which has no global `WebSocket` (Node 22 has one).
 * The transport listens through the `ws` package but dials with the global; without it a dial to a `/ws` address fails
 * with "WebSocket is not defined". `ws` (a dependency of @libp2p/websockets) provides a standard one. Installed when the
 * first node starts, only where the global is missing; never replaces an existing one.
 */
import { createRequire } from "node:module"

export const ensureWebSocket = (): void => {
  if (typeof globalThis.WebSocket === "function") return
  const require = createRequire(import.meta.url)
  const mod: unknown = require("ws")
  const client = typeof mod === "object" && mod !== null && "WebSocket" in mod ? mod.WebSocket : mod
  if (typeof client !== "function") return
  Object.defineProperty(globalThis, "WebSocket", { configurable: true, writable: true, value: client })
}
