/**
 * The share dialog's QR code (issue 18), without a browser: the SVG path the page draws holds exactly the modules uqr
 * computed for the ticket, with the three finder patterns a scanner looks for; a ticket too long for a QR code gets
 * none (the page then says so).
 */
import { assert, describe, it } from "@effect/vitest"
import { encode } from "uqr"
import { fromHex } from "../../src/internal/bytes.js"
import { Read } from "../../src/schema/Capability.js"
import { NamespaceId } from "../../src/schema/Keys.js"
import { NodeAddr, NodeId } from "../../src/schema/NodeAddr.js"
import { DocTicket, ticketToString } from "../../src/schema/Ticket.js"
import { modulesPath, qrMatrix } from "../../src/ui/qr.js"

/** The modules a path of `M x y h n v 1 h -n z` rectangles paints, on a `size`-square grid. */
const paint = (path: string, size: number): Array<Array<boolean>> => {
  const grid = Array.from({ length: size }, () => Array.from({ length: size }, () => false))
  const re = /M(\d+) (\d+)h(\d+)v1h-(\d+)z/gy
  let consumed = 0
  for (let m = re.exec(path); m !== null; m = re.exec(path)) {
    const [x, y, n, back] = [Number(m[1]), Number(m[2]), Number(m[3]), Number(m[4])]
    assert.strictEqual(n, back, "every rectangle closes")
    for (let i = 0; i < n; i++) {
      assert.isFalse(grid[y]![x + i]!, "no module is painted twice")
      grid[y]![x + i] = true
    }
    consumed = re.lastIndex
  }
  assert.strictEqual(consumed, path.length, "the path is only rectangles")
  return grid
}

const ticket = (addrs: ReadonlyArray<string>) =>
  ticketToString(new DocTicket({
    capability: new Read({ id: NamespaceId.make(new Uint8Array(32).fill(1)) }),
    nodes: [new NodeAddr({ nodeId: NodeId.make(fromHex("ae58ff8833241ac82d6ff7611046ed67b5072d142c588d0063e942d9a75502b6")!), addrs })]
  }))

/** A finder pattern at (x, y): a dark 7×7 ring, a light ring, a dark 3×3 centre. */
const isFinder = (m: ReadonlyArray<ReadonlyArray<boolean>>, x: number, y: number) => {
  for (let dy = 0; dy < 7; dy++) {
    for (let dx = 0; dx < 7; dx++) {
      const ring = Math.max(Math.abs(dx - 3), Math.abs(dy - 3))
      if (m[y + dy]![x + dx] !== (ring !== 2)) return false
    }
  }
  return true
}

describe("share QR code", () => {
  it("the SVG path paints exactly uqr's modules for a ticket, finder patterns in three corners", () => {
    const text = ticket(["/ip4/127.0.0.1/tcp/4001", "/ip4/192.168.1.20/tcp/4001", "/ip6/::1/tcp/4001"])
    const matrix = qrMatrix(text)
    assert.isDefined(matrix)
    if (matrix === undefined) return
    const reference = encode(text, { ecc: "L", boostEcc: true, border: 0 })
    assert.strictEqual(matrix.length, reference.size)
    assert.strictEqual(reference.size, 17 + 4 * reference.version, "a standard QR size")
    assert.deepStrictEqual(paint(modulesPath(matrix), matrix.length), reference.data.map((row) => [...row]))
    const n = matrix.length
    assert.isTrue(isFinder(matrix, 0, 0) && isFinder(matrix, n - 7, 0) && isFinder(matrix, 0, n - 7))
    // A different ticket is a different code.
    assert.notDeepEqual(qrMatrix(ticket(["/ip4/127.0.0.1/tcp/4002"])), matrix)
  })

  it("a ticket longer than a QR code holds gets none", () => {
    const addrs = Array.from({ length: 64 }, (_, i) => `/dns4/${"relay".repeat(8)}-${i}.example.com/tcp/${4000 + i}`)
    assert.isAbove(ticket(addrs).length, 3000)
    assert.isUndefined(qrMatrix(ticket(addrs)))
  })

  it("the empty matrix and a lone module", () => {
    assert.strictEqual(modulesPath([]), "")
    assert.strictEqual(modulesPath([[false, true, true], [true, false, false]]), "M1 0h2v1h-2zM0 1h1v1h-1z")
  })
})
