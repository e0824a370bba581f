/**
 * Blobs and directories through the CLI (issue 16): `blob list | get | export | gc`, `doc import DIR --prefix P`,
 * `doc export DOC PREFIX DIR` with keys an attacker chose, and progress on a terminal only. One `rangedocs start`
 * process for the whole file; client commands as child processes (no shell).
 */
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import * as Either from "effect/Either"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { PassThrough } from "node:stream"
import { safeRelativePath } from "../../src/cli/DocRun.js"
import { UPLOAD_CHUNK_MAX } from "../../src/schema/Rpc.js"
import { eventually, HEX64, lines, makeHarness, text } from "./harness.js"

const h = makeHarness("blob")
const MiB = 1024 * 1024
const utf8 = (s: string) => new TextEncoder().encode(s)

let dir = ""
let A: ReadonlyArray<string> = []
let doc = ""

beforeAll(async () => {
  await h.bundle()
  dir = h.tempDir("node")
  A = ["--data-dir", dir]
  await h.startNode(dir)
  doc = (await h.ok(["doc", "create", ...A])).trim()
}, 90_000)
afterAll(() => h.cleanup(), 60_000)

interface Listed {
  readonly hash: string
  readonly size: number
  readonly have: number
  readonly status: string
}
const blobList = async (): Promise<Array<Listed>> =>
  lines(await h.cli(["blob", "list", "--json", ...A])).map((l) => JSON.parse(l) as Listed)
const hashOf = async (key: string) =>
  (JSON.parse(await h.ok(["doc", "get", doc, key, "--meta", "--json", ...A])) as { readonly hash: string }).hash

describe("rangedocs blob", () => {
  it("list, get (exact bytes to stdout, streamed) and export", async () => {
    const value = crypto.randomBytes(3 * MiB + 17)
    const file = path.join(h.tempDir("in"), "v.bin")
    fs.writeFileSync(file, value)
    const hash = (await h.ok(["doc", "set", doc, "blob/big", "--file", file, ...A])).trim()
    assert.match(hash, HEX64)

    const listed = (await blobList()).find((b) => b.hash === hash)
    assert.deepStrictEqual(listed, { hash, size: value.length, have: value.length, status: "Complete" })
    assert.include(await h.ok(["blob", "list", ...A]), `${hash}\t${value.length}\tcomplete`)

    const got = await h.cli(["blob", "get", hash, ...A])
    assert.strictEqual(got.code, 0, got.stderr)
    assert.isTrue(got.stdout.equals(value), "blob get writes the content exactly")

    const target = path.join(h.tempDir("out"), "deep", "v.bin")
    assert.strictEqual((await h.ok(["blob", "export", hash, target, ...A])).trim(), target)
    assert.isTrue(fs.readFileSync(target).equals(value))

    await h.failsWithOneLine(["blob", "get", "00".repeat(32), ...A], /^error: blob (0{64}|<argument>) is not \(completely\) on this node$/)
    await h.failsWithOneLine(["blob", "get", "xyz", ...A], /^error: invalid content hash \(HASH\) 'xyz'/)
  })

  it("gc: a blob an entry references survives, an unreferenced one is deleted, one being uploaded survives", async () => {
    await h.ok(["doc", "set", doc, "gc/k", "first value", ...A])
    const first = await hashOf("gc/k")
    await h.ok(["doc", "set", doc, "gc/k", "second value", ...A])
    const second = await hashOf("gc/k")
    assert.notStrictEqual(first, second)
    assert.isTrue((await blobList()).some((b) => b.hash === first), "the replaced content is still stored")

    // An upload in flight: some bytes sent, the rest held back while gc runs.
    const input = new PassThrough()
    // More than one upload chunk, so that the node holds a chunk of it, not only the client.
    const head = crypto.randomBytes(UPLOAD_CHUNK_MAX + MiB)
    const tail = crypto.randomBytes(MiB)
    const upload = h.cliPiped(["doc", "set", doc, "gc/uploading", "--json", ...A], input)
    input.write(head)
    // The command has read (nearly) all of the head, so its upload session holds chunks, before gc runs.
    await eventually(
      async () => (input.writableLength === 0 && input.readableLength === 0 ? true : undefined),
      "the upload to start",
      30_000
    )
    await new Promise((r) => setTimeout(r, 300))

    const report = JSON.parse(await h.ok(["blob", "gc", "--json", ...A])) as { deleted: number; kept: number }
    assert.isAtLeast(report.deleted, 1)
    const after = await blobList()
    assert.isFalse(after.some((b) => b.hash === first), "unreferenced content is deleted")
    assert.isTrue(after.some((b) => b.hash === second), "referenced content is kept")
    assert.strictEqual(await h.ok(["doc", "get", doc, "gc/k", ...A]), "second value")

    input.end(tail)
    const done = await upload
    assert.strictEqual(done.code, 0, done.stderr)
    const content = await h.cli(["doc", "get", doc, "gc/uploading", ...A])
    assert.isTrue(content.stdout.equals(Buffer.concat([head, tail])), "the upload survived gc whole")
    assert.match(await h.ok(["blob", "gc", ...A]), /^deleted \d+ blobs, kept \d+\n$/)
  })
})

describe("rangedocs doc import / export (directories)", () => {
  it("import DIR --prefix P sets P + relative path for every file; export writes them back", async () => {
    const src = h.tempDir("src")
    const files: Record<string, Buffer> = {
      "a.txt": Buffer.from("alpha"),
      "sub/b.bin": crypto.randomBytes(MiB + 5),
      "sub/deeper/c.txt": Buffer.from("gamma")
    }
    for (const [rel, bytes] of Object.entries(files)) {
      fs.mkdirSync(path.dirname(path.join(src, rel)), { recursive: true })
      fs.writeFileSync(path.join(src, rel), bytes)
    }
    fs.writeFileSync(path.join(src, "empty"), "")
    fs.symlinkSync(path.join(src, "a.txt"), path.join(src, "link"))

    const imported = await h.cli(["doc", "import", doc, src, "--prefix", "photos/", "--json", ...A])
    assert.strictEqual(imported.code, 0, imported.stderr)
    const rows = lines(imported).map((l) => JSON.parse(l) as { key: string; size: number; hash: string })
    assert.deepStrictEqual(rows.map((r) => r.key), ["photos/a.txt", "photos/sub/b.bin", "photos/sub/deeper/c.txt"])
    assert.deepStrictEqual(rows.map((r) => r.size), Object.values(files).map((b) => b.length))
    assert.match(imported.stderr, /skipped empty: empty/)
    assert.match(imported.stderr, /skipped link: a symbolic link/)
    assert.strictEqual(await h.ok(["doc", "get", doc, "photos/sub/deeper/c.txt", ...A]), "gamma")

    const out = path.join(h.tempDir("dst"), "export")
    const exported = await h.cli(["doc", "export", doc, "photos/", out, ...A])
    assert.strictEqual(exported.code, 0, exported.stderr)
    assert.strictEqual(lines(exported).length, 3)
    for (const [rel, bytes] of Object.entries(files)) {
      assert.isTrue(fs.readFileSync(path.join(out, rel)).equals(bytes), rel)
    }
    assert.match(exported.stderr, /^exported 3 files \(.*\) to /m)
  })

  it("export: keys that are no safe relative path are skipped and reported, nothing lands outside DIR", async () => {
    // "x/" first: a later write at "x/" would remove the author's entries below it (the prefix rule).
    const hostile = ["x/", "x/../../escaped", "x//double", "x/./dot", "x/back\\slash", "x/ctl\u0001name"]
    for (const k of [...hostile, "x/fine/file.txt"]) await h.ok(["doc", "set", doc, k, "attacker", ...A])
    const parent = h.tempDir("hostile")
    const out = path.join(parent, "a", "b")
    const r = await h.cli(["doc", "export", doc, "x/", out, "--json", ...A])
    assert.strictEqual(r.code, 0, r.stderr)
    const items = lines(r).map((l) => JSON.parse(l) as { skipped?: string; reason?: string; path?: string })
    assert.deepStrictEqual(items.filter((i) => i.path !== undefined).map((i) => i.path), [path.join(out, "fine", "file.txt")])
    assert.strictEqual(items.filter((i) => i.skipped !== undefined).length, hostile.length)
    assert.isFalse(fs.existsSync(path.join(parent, "escaped")))
    assert.isFalse(fs.existsSync(path.join(parent, "a", "escaped")))
    // Only the one safe file was written anywhere under the parent.
    const written = fs.readdirSync(parent, { recursive: true }).map(String).filter((p) =>
      fs.statSync(path.join(parent, p)).isFile()
    )
    assert.deepStrictEqual(written, [path.join("a", "b", "fine", "file.txt")])
  })

  it("safeRelativePath: NUL, absolute, non-UTF-8 and dot segments are refused", () => {
    const refused = ["a\u0000b", "/etc/passwd", "..", "a/..", "./a", "a//b", "a\\b", "", "a/"]
    for (const k of refused) assert.isTrue(Either.isLeft(safeRelativePath(utf8(`p/${k}`), utf8("p/"))), JSON.stringify(k))
    assert.isTrue(Either.isLeft(safeRelativePath(Uint8Array.from([0x70, 0xff]), utf8("p"))))
    assert.deepStrictEqual(safeRelativePath(utf8("p/a/b.c"), utf8("p/")), Either.right(["a", "b.c"]))
    assert.deepStrictEqual(safeRelativePath(utf8("p/..a/b.."), utf8("p/")), Either.right(["..a", "b.."]))
  })
})

describe("progress", () => {
  it("export-file and blob export draw a bar on a terminal and nothing on a pipe", async () => {
    const value = crypto.randomBytes(4 * MiB)
    const file = path.join(h.tempDir("p"), "v.bin")
    fs.writeFileSync(file, value)
    const hash = (await h.ok(["doc", "set", doc, "progress/v", "--file", file, ...A])).trim()
    const target = path.join(h.tempDir("p-out"), "v.bin")

    const piped = await h.cli(["doc", "export-file", doc, "progress/v", target, ...A])
    assert.strictEqual(piped.code, 0, piped.stderr)
    assert.strictEqual(piped.stderr, "", "nothing but the result on a pipe")

    const onTerminal = h.cliOnTerminal(["doc", "export-file", doc, "progress/v", target, ...A])
    if (onTerminal === undefined) return
    const tty = await onTerminal
    assert.strictEqual(tty.code, 0, text(tty))
    assert.match(text(tty), /\[#{30}\] 100% 4\.0 MiB \/ 4\.0 MiB/)
    assert.isTrue(fs.readFileSync(target).equals(value))

    const blobTty = await h.cliOnTerminal(["blob", "export", hash, target, ...A])!
    assert.strictEqual(blobTty.code, 0, text(blobTty))
    assert.match(text(blobTty), /\[#{30}\] 100% 4\.0 MiB \/ 4\.0 MiB/)
  })
})
