/**
 * The node's web inspector (issue 18), served by the RPC server from its own origin: `GET /` is the page, `/ui/*` its
 * bundled script and style (built by `npm run build` into `dist/ui/`; nothing from another origin, no CDN).
 *
 * Protection of a server every web page on the machine can reach:
 * - Host check (DNS rebinding): a request must name the server as `127.0.0.1:PORT`, `localhost:PORT` or `[::1]:PORT`
 *   (or the host it was bound to); anything else is refused with 421 before any route runs.
 * - A strict Content-Security-Policy, `nosniff`, `no-referrer` and `frame-ancestors 'none'` on every inspector file.
 * - The page and its assets hold nothing of the node; every request for data is an RPC call, which needs the token.
 *   The token travels in the URL fragment (`#token=…`), which browsers never send to a server.
 *
 * `Watch` (InspectorRpcs) holds the watched document open for as long as its response streams.
 */
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { Effect, Option, Stream } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { InspectorRpcs, MAX_TRANSFERS_LISTED, TransferInFlight } from "../schema/InspectorRpc.js"
import * as BlobTransfer from "./BlobTransfer.js"
import * as Docs from "./DocsApi.js"
import { RPC_PATH } from "./DocsRpcClient.js"

export const CONTENT_SECURITY_POLICY = "default-src 'self'; script-src 'self'; style-src 'self'; " +
  "img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"

export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "content-security-policy": CONTENT_SECURITY_POLICY,
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
  "cache-control": "no-store"
}

/** The files of the built inspector (in `dist/ui/`), by the name they are served under. */
export const UI_FILES: Readonly<Record<string, string>> = {
  "index.html": "text/html; charset=utf-8",
  "app.js": "text/javascript; charset=utf-8",
  "app.css": "text/css; charset=utf-8"
}

/** Where the inspector's files are served: `/` is `index.html`, the others are under this prefix. */
export const UI_PREFIX = "/ui/"

// ---------------------------------------------------------------------------------------------------------------
// Host check

const WILDCARDS = new Set(["0.0.0.0", "::", "[::]", ""])

/**
 * The Host header values a server bound to `host:port` accepts: loopback names, and the bound host itself unless it
 * is a wildcard (then the set is undefined and every Host is accepted: a server opened to the network is reached by
 * names we cannot know; its token still guards every RPC).
 */
export const allowedHosts = (host: string, port: number): ReadonlySet<string> | undefined => {
  if (WILDCARDS.has(host)) return undefined
  const bound = host.includes(":") && !host.startsWith("[") ? `[${host}]` : host
  return new Set([`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`, `${bound.toLowerCase()}:${port}`])
}

/** Whether a request's Host header names this server. */
export const hostAllowed = (header: string | undefined, allowed: ReadonlySet<string> | undefined): boolean =>
  allowed === undefined || (header !== undefined && allowed.has(header.toLowerCase()))

export const misdirected = () =>
  HttpServerResponse.text("misdirected request: this server answers only to 127.0.0.1 or localhost", {
    status: 421,
    headers: SECURITY_HEADERS
  })

// ---------------------------------------------------------------------------------------------------------------
// Serving the files

/**
 * Where the built inspector is: next to the program (`dist/cli/main.js` or its chunks → `dist/ui/`), next to the
 * compiled library (`dist/src/services/` → `dist/ui/`), or, run from the sources, the package's `dist/ui/`.
 */
export const findUiDir = (): Option.Option<string> => {
  const here = path.dirname(fileURLToPath(import.meta.url))
  const candidates = ["../ui", "../../ui", "../../dist/ui", "../../../ui"].map((p) => path.resolve(here, p))
  return Option.fromNullable(candidates.find((dir) => fs.existsSync(path.join(dir, "index.html"))))
}

/** The file name a request path asks for (`/` → index.html), or undefined when it is not an inspector path. */
export const uiFileOf = (url: string): string | undefined => {
  const pathname = url.split("?")[0] ?? ""
  if (pathname === "/" || pathname === "/index.html") return "index.html"
  if (!pathname.startsWith(UI_PREFIX)) return undefined
  const name = pathname.slice(UI_PREFIX.length)
  return Object.hasOwn(UI_FILES, name) ? name : undefined
}

/** The response for inspector file `name` from `uiDir` (None: not built). */
export const serveUiFile = (uiDir: Option.Option<string>, name: string) =>
  Option.match(uiDir, {
    onNone: () =>
      Effect.succeed(HttpServerResponse.text(
        "the inspector is not built: run `npm run build` (it writes dist/ui/)",
        { status: 404, headers: SECURITY_HEADERS }
      )),
    onSome: (dir) =>
      Effect.tryPromise(() => fs.promises.readFile(path.join(dir, name))).pipe(
        Effect.map((bytes) =>
          HttpServerResponse.uint8Array(new Uint8Array(bytes), {
            contentType: UI_FILES[name] ?? "application/octet-stream",
            headers: SECURITY_HEADERS
          })
        ),
        Effect.orElseSucceed(() =>
          HttpServerResponse.text(`inspector file ${name} is missing`, { status: 404, headers: SECURITY_HEADERS })
        )
      )
  })

// ---------------------------------------------------------------------------------------------------------------
// URL

/** The inspector's URL for the RPC server at `rpcUrl`: the origin, with the token in the fragment (never sent). */
export const inspectorUrl = (rpcUrl: string, token: string): string => {
  const base = rpcUrl.endsWith(RPC_PATH) ? rpcUrl.slice(0, -RPC_PATH.length) : rpcUrl
  return `${base}/#token=${encodeURIComponent(token)}`
}

// ---------------------------------------------------------------------------------------------------------------
// RPC handlers

/**
 * The handlers; `Transfers` reads the node's BlobTransfer when the server runs inside a node (`rangedocs start`, the
 * tests' nodes), taken as optional so the RPC server's layer keeps needing only `Docs` (a server without it lists none).
 */
export const inspectorHandlers = InspectorRpcs.toLayer(Effect.gen(function*() {
  const docs = yield* Docs.Docs
  const transfer = yield* Effect.serviceOption(BlobTransfer.BlobTransfer)
  return {
    Transfers: () =>
      Option.match(transfer, {
        onNone: () => Effect.succeed([]),
        onSome: (t) =>
          Effect.map(t.inFlight, (all) =>
            all.slice(0, MAX_TRANSFERS_LISTED).map((p) =>
              new TransferInFlight({
                hash: p.hash,
                bytes: p.bytes,
                started: p.started,
                ...(p.size === undefined ? {} : { size: p.size }),
                ...(p.provider === undefined ? {} : { provider: p.provider })
              })
            ))
      }),
    Watch: ({ docId }) =>
      Stream.unwrapScoped(Effect.gen(function*() {
        yield* Effect.acquireRelease(docs.open(docId), () => Effect.ignore(docs.close(docId)))
        return yield* docs.subscribe(docId)
      }))
  }
}))
