/**
 * The client commands' V8 code cache (src/cli/codeCache.ts): its file format and directory checks in process, then
 * the built program as child processes: it writes the cache owner-only, reuses it, survives a damaged file, keeps out
 * of a directory others may write to, and writes nothing when asked not to.
 */
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { cacheDirOf, decodeCacheFile, encodeCacheFile, isLight, ownDirectory } from "../../src/cli/codeCache.js"
import { makeHarness } from "./harness.js"

const h = makeHarness("codecache")
beforeAll(() => h.bundle(), 120_000)
afterAll(() => h.cleanup(), 60_000)

describe("code cache file", () => {
  it("decodes what it encodes; any changed or missing byte makes it no cache", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 1, maxLength: 200 }),
        fc.constantFrom(0, 1),
        fc.nat(),
        fc.integer({ min: 1, max: 255 }),
        (payload, kind, at, flip) => {
          const file = encodeCacheFile(kind, payload)
          const back = decodeCacheFile(file)
          assert.isDefined(back)
          assert.strictEqual(back!.kind, kind)
          assert.deepStrictEqual(new Uint8Array(back!.payload), payload)
          const damaged = Buffer.from(file)
          damaged[at % damaged.length]! ^= flip
          assert.isUndefined(decodeCacheFile(damaged))
          assert.isUndefined(decodeCacheFile(file.subarray(0, at % file.length)))
          // The kind is covered too: a file written by `--version` cannot pass for a fuller one.
          const otherKind = Buffer.from(file)
          otherKind[5] = 1 - kind
          assert.isUndefined(decodeCacheFile(otherKind))
        }
      ),
      { numRuns: 300 }
    )
  })

  it("where it goes: RANGEDOCS_CODE_CACHE, off, XDG_CACHE_HOME, ~/.cache", () => {
    assert.strictEqual(cacheDirOf({ RANGEDOCS_CODE_CACHE: "/x/y", XDG_CACHE_HOME: "/c" }), "/x/y")
    assert.isUndefined(cacheDirOf({ RANGEDOCS_CODE_CACHE: "off" }))
    assert.isUndefined(cacheDirOf({ RANGEDOCS_CODE_CACHE: "0" }))
    assert.strictEqual(cacheDirOf({ XDG_CACHE_HOME: "/c" }), "/c/rangedocs")
    assert.match(cacheDirOf({ XDG_CACHE_HOME: "relative" })!, /\.cache\/rangedocs$/)
    assert.isTrue(isLight([]))
    assert.isTrue(isLight(["doc", "--help"]))
    assert.isTrue(isLight(["--version"]))
    assert.isFalse(isLight(["doc", "list"]))
  })

  it("a directory is used only when it is this user's and no one else may write to it", () => {
    const base = h.tempDir("dirs")
    const fresh = path.join(base, "a", "b")
    assert.isTrue(ownDirectory(fresh))
    assert.strictEqual(fs.statSync(fresh).mode & 0o777, 0o700)
    const open = path.join(base, "open")
    fs.mkdirSync(open)
    fs.chmodSync(open, 0o777)
    assert.isFalse(ownDirectory(open))
    if (process.getuid?.() === 0) {
      const theirs = path.join(base, "theirs")
      fs.mkdirSync(theirs, { mode: 0o700 })
      fs.chownSync(theirs, 65534, 65534)
      assert.isFalse(ownDirectory(theirs))
    }
    const file = path.join(base, "file")
    fs.writeFileSync(file, "")
    assert.isFalse(ownDirectory(file))
    // Below a directory others may write to (not sticky, unlike /tmp), ours could be renamed away and replaced.
    assert.isFalse(ownDirectory(path.join(open, "cache")))
    const sticky = path.join(base, "sticky")
    fs.mkdirSync(sticky)
    fs.chmodSync(sticky, 0o1777)
    assert.isTrue(ownDirectory(path.join(sticky, "cache")))
  })
})

describe("rangedocs with a code cache", () => {
  const cacheFiles = (dir: string) => fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith(".v8cache")) : []

  it("writes it owner-only, reuses it, rewrites it once for a command that reaches a node, and replaces a damaged one", async () => {
    const dir = path.join(h.tempDir("cache"), "rangedocs")
    const env = { RANGEDOCS_CODE_CACHE: dir }
    const version = await h.cli(["--version"], { env })
    assert.strictEqual(version.code, 0, version.stderr)
    const [name] = cacheFiles(dir)
    assert.isDefined(name)
    const file = path.join(dir, name!)
    assert.strictEqual(fs.statSync(dir).mode & 0o777, 0o700)
    assert.strictEqual(fs.statSync(file).mode & 0o777, 0o600)
    assert.strictEqual(decodeCacheFile(fs.readFileSync(file))?.kind, 0, "written by --version")

    // Accepted: not written again.
    const written = fs.statSync(file).ino
    assert.strictEqual((await h.cli(["--version"], { env })).code, 0)
    assert.strictEqual(fs.statSync(file).ino, written)

    // A client command (no node runs here: it fails, with its one line) compiles more: the file is written once more.
    const client = await h.cli(["doc", "list", "--data-dir", h.tempDir("nonode")], { env })
    assert.notStrictEqual(client.code, 0)
    assert.strictEqual(client.stderr.trim().split("\n").length, 1, client.stderr)
    assert.strictEqual(decodeCacheFile(fs.readFileSync(file))?.kind, 1)
    const full = fs.statSync(file).ino
    assert.strictEqual((await h.cli(["--version"], { env })).code, 0)
    assert.strictEqual(fs.statSync(file).ino, full, "a lighter command keeps the fuller file")

    // Damaged on disk: ignored, the command runs, the file is written whole again.
    const bytes = fs.readFileSync(file)
    bytes[bytes.length >> 1]! ^= 0xff
    fs.writeFileSync(file, bytes)
    const again = await h.cli(["--version"], { env })
    assert.strictEqual(again.code, 0, again.stderr)
    assert.strictEqual(again.stdout.toString("utf8").trim(), version.stdout.toString("utf8").trim())
    assert.isDefined(decodeCacheFile(fs.readFileSync(file)))
    assert.deepStrictEqual(cacheFiles(dir), [name], "no temporary file left")
    assert.deepStrictEqual(fs.readdirSync(dir), [name])

    // Intact for us but not V8's data: V8 rejects it, so the payload did reach V8; the file is written anew.
    fs.writeFileSync(file, encodeCacheFile(1, crypto.randomBytes(4096)), { mode: 0o600 })
    const rejected = await h.cli(["--version"], { env })
    assert.strictEqual(rejected.code, 0, rejected.stderr)
    assert.isAbove(decodeCacheFile(fs.readFileSync(file))!.payload.length, 4096, "V8's own data again")

    // A cache file that is a link, or another user's, is not read: replaced by a file of our own at exit.
    const elsewhere = path.join(h.tempDir("elsewhere"), "planted")
    fs.copyFileSync(file, elsewhere)
    fs.rmSync(file)
    fs.symlinkSync(elsewhere, file)
    assert.strictEqual((await h.cli(["--version"], { env })).code, 0)
    assert.isFalse(fs.lstatSync(file).isSymbolicLink(), "the link was replaced, not followed")
    if (process.getuid?.() === 0) {
      fs.chownSync(file, 65534, 65534)
      assert.strictEqual((await h.cli(["--version"], { env })).code, 0)
      assert.strictEqual(fs.statSync(file).uid, 0, "another user's file was replaced by ours")
    }
  }, 60_000)

  it("writes nothing when off or when the directory is open to others; the command runs all the same", async () => {
    const open = h.tempDir("open")
    fs.chmodSync(open, 0o777)
    const off = h.tempDir("off")
    for (const env of [{ RANGEDOCS_CODE_CACHE: open }, { RANGEDOCS_CODE_CACHE: "off", XDG_CACHE_HOME: off }]) {
      const r = await h.cli(["--version"], { env })
      assert.strictEqual(r.code, 0, r.stderr)
      assert.match(r.stdout.toString("utf8"), /^\d+\.\d+\.\d+/)
    }
    assert.deepStrictEqual(cacheFiles(open), [])
    assert.deepStrictEqual(fs.readdirSync(off), [])
  }, 60_000)
})
