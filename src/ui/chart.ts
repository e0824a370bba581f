/** Small time-series charts drawn as SVG: a line over the last samples, with the latest value and the peak. */
import { h, svg, type Elem } from "./dom.js"

const W = 240
const H = 60

/** A chart of `values` (oldest first), titled, the latest value shown with `format`. */
export const lineChart = (title: string, values: ReadonlyArray<number>, format: (n: number) => string): Elem => {
  const peak = Math.max(1e-9, ...values)
  const step = values.length > 1 ? W / (values.length - 1) : W
  const points = values.map((v, i) => `${(i * step).toFixed(1)},${(H - 2 - (v / peak) * (H - 4)).toFixed(1)}`)
  const latest = values.length > 0 ? values[values.length - 1]! : 0
  return h(
    "figure",
    { class: "chart", "data-chart": title },
    h("figcaption", {}, `${title}: `, h("strong", {}, format(latest)), h("span", { class: "muted" }, ` (peak ${format(peak < 1e-6 ? 0 : peak)})`)),
    svg(
      "svg",
      { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img", "aria-label": `${title}, latest ${format(latest)}` },
      svg("rect", { x: 0, y: 0, width: W, height: H, class: "chart-bg" }),
      svg("polyline", { points: points.join(" "), class: "chart-line", fill: "none" })
    )
  )
}
