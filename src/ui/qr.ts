/**
 * The share dialog's QR code (issue 18): the ticket encoded by uqr (bundled into the page, nothing fetched) and drawn as
 * one SVG path, element by element — no inline script or style, which the page's Content-Security-Policy forbids.
 *
 * The pure part (`qrMatrix`, `modulesPath`) runs under node in the tests; `qrSvg` builds the element in the page.
 */
import { encode } from "uqr"
import { type Elem, svg } from "./dom.js"

/** Light modules around the code that a scanner needs to find it (the standard's quiet zone). */
export const QUIET_ZONE = 4

/**
 * The modules of `text` as a QR code (`true`: dark), rows first, without a border; undefined when the text is longer
 * than a QR code holds (about 2.9 kB of bytes at the lowest error correction). The error correction is the highest
 * that fits in the smallest version that holds the text.
 */
export const qrMatrix = (text: string): ReadonlyArray<ReadonlyArray<boolean>> | undefined => {
  try {
    return encode(text, { ecc: "L", boostEcc: true, border: 0 }).data
  } catch {
    return undefined
  }
}

/**
 * An SVG path drawing the dark modules of `matrix`, one unit each, at (column, row): every run of dark modules in a row
 * is one rectangle `M x y h n v 1 h -n z`.
 */
export const modulesPath = (matrix: ReadonlyArray<ReadonlyArray<boolean>>): string => {
  const parts: Array<string> = []
  matrix.forEach((row, y) => {
    for (let x = 0; x < row.length;) {
      if (!row[x]) {
        x++
        continue
      }
      let n = 1
      while (row[x + n] === true) n++
      parts.push(`M${x} ${y}h${n}v1h-${n}z`)
      x += n
    }
  })
  return parts.join("")
}

/** The QR code of `text` as an SVG element (dark on light whatever the page's colours), or undefined when too long. */
export const qrSvg = (text: string, label: string): Elem | undefined => {
  const matrix = qrMatrix(text)
  if (matrix === undefined) return undefined
  const side = matrix.length + 2 * QUIET_ZONE
  return svg(
    "svg",
    {
      viewBox: `${-QUIET_ZONE} ${-QUIET_ZONE} ${side} ${side}`,
      class: "qr",
      role: "img",
      "aria-label": label,
      "shape-rendering": "crispEdges",
      "data-modules": matrix.length
    },
    svg("rect", { x: -QUIET_ZONE, y: -QUIET_ZONE, width: side, height: side, fill: "#fff" }),
    svg("path", { d: modulesPath(matrix), fill: "#000" })
  )
}
