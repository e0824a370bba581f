/**
 * The inspector in Firefox (issue 18: "works in current Chromium and Firefox"): Debian's firefox-esr driven by
 * puppeteer-core over WebDriver BiDi (playwright-core's own Firefox needs its patched build, and its BiDi channel
 * calls `emulation.setMediaFeaturesOverride`, which Firefox ESR 153 does not know). The Chromium file
 * (`inspector.test.ts`) goes through every view; this one checks in Firefox what a Firefox user meets first: the URL
 * opens on the documents and moves the token to sessionStorage, a document lists its entries and previews one, a
 * write appears without a reload, a narrow window needs no sideways scrolling, nothing was refused by the
 * Content-Security-Policy, and without the token the page shows "not authorised".
 *
 * Without /usr/bin/firefox-esr (installed here when missing and we are root) the tests skip with one line saying why.
 */
import { Effect, Either, Exit, Redacted, Scope } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import puppeteer, { type Browser, type Page } from "puppeteer-core"
import { afterAll, assert, beforeAll, describe, it } from "vitest"
import { toHex } from "../../src/internal/bytes.js"
import type { AuthorId, NamespaceId } from "../../src/schema/Keys.js"
import * as DocsRpc from "../../src/services/DocsRpc.js"
import { inspectorUrl } from "../../src/services/Inspector.js"
import { findBrowser, serveInspector } from "./browsers.js"
import { startMemoryNode, type TestNode } from "../utils/nodes.js"

const FIREFOX = "/usr/bin/firefox-esr"
const ARTIFACTS = path.resolve("test-artifacts", "ui")


const browserPath = findBrowser(FIREFOX, "firefox-esr")
if (Either.isLeft(browserPath)) console.warn(`inspector Firefox tests skipped: ${browserPath.left}`)

const text = (s: string) => new TextEncoder().encode(s)

interface World {
  readonly node: TestNode
  readonly server: DocsRpc.ServerInfo
  readonly author: AuthorId
  readonly doc: NamespaceId
}

const setup = Effect.gen(function*() {
  const node = yield* startMemoryNode()
  const server = yield* serveInspector(node)
  const author = yield* node.docs.authorGetDefault
  const doc = yield* node.docs.create
  yield* node.docs.set(doc, author, text("hello"), text("world"))
  return { node, server, author, doc } satisfies World
})

describe.skipIf(Either.isLeft(browserPath))("inspector in Firefox", () => {
  const scope = Effect.runSync(Scope.make())
  let world: World
  let browser: Browser
  let page: Page
  const pageErrors: Array<string> = []
  const url = () => inspectorUrl(world.server.url, Redacted.value(world.server.token))

  beforeAll(async () => {
    fs.mkdirSync(ARTIFACTS, { recursive: true })
    world = await Effect.runPromise(Scope.extend(setup, scope))
    browser = await puppeteer.launch({ browser: "firefox", executablePath: Either.getOrThrow(browserPath), headless: true })
    page = await browser.newPage()
    await page.setViewport({ width: 1100, height: 800 })
    page.setDefaultTimeout(10_000)
    page.on("pageerror", (error) => pageErrors.push(String(error)))
    page.on("console", (message) => {
      if (message.type() === "error") pageErrors.push(message.text())
    })
  }, 120_000)

  afterAll(async () => {
    await browser?.close()
    await Effect.runPromise(Scope.close(scope, Exit.void))
  })

  it("the URL opens on the node's documents; the token leaves the address bar for sessionStorage", async () => {
    await page.goto(url())
    await page.waitForSelector(`tr[data-doc="${toHex(world.doc)}"]`)
    assert.notInclude(page.url(), "token")
    assert.strictEqual(
      await page.evaluate("sessionStorage.getItem('rangedocs-token')"),
      Redacted.value(world.server.token)
    )
    await page.screenshot({ path: path.join(ARTIFACTS, "firefox-documents.png") })
  })

  it("a document lists its entries and previews one; a write appears without a reload", async () => {
    await page.click(`button[aria-label="open document ${toHex(world.doc)}"]`)
    await page.waitForSelector('tr[data-key="hello"]')
    await page.click('tr[data-key="hello"] button::-p-text(preview)')
    await page.waitForSelector('#preview[data-kind="text"]')
    assert.include(await page.$eval("#preview", (e) => e.textContent ?? ""), "world")
    await Effect.runPromise(world.node.docs.set(world.doc, world.author, text("live-write"), text("from elsewhere")))
    await page.waitForSelector('tr[data-key="live-write"]', { timeout: 2000 })
    await page.screenshot({ path: path.join(ARTIFACTS, "firefox-entries.png") })
  })

  it("on a narrow window the page needs no sideways scrolling", async () => {
    await page.setViewport({ width: 380, height: 800 })
    const width = await page.evaluate("document.documentElement.scrollWidth")
    assert.isAtMost(Number(width), 380, "the page fits the window")
    await page.setViewport({ width: 1100, height: 800 })
  })

  it("the page logged no error, no Content-Security-Policy refusal among them", () => {
    assert.deepStrictEqual(pageErrors, [])
  })

  it("without the token the page shows \"not authorised\" and nothing of the node", async () => {
    const stranger = await browser.newPage()
    await stranger.goto(`${new URL(world.server.url).origin}/`)
    await stranger.waitForSelector("#not-authorised")
    assert.include(await stranger.$eval("#not-authorised", (e) => e.textContent ?? ""), "not authorised")
    assert.strictEqual((await stranger.$$("tr[data-doc]")).length, 0)
    await stranger.close()
  })
})
