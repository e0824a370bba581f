import { assert, describe, it } from "@effect/vitest"
import fc from "fast-check"
import { formatDuration, formatValue, prometheusText, report, reportText } from "../../src/internal/metrics.js"

describe("metrics", () => {
  it("formats counts with separators and bytes with binary units", () => {
    assert.strictEqual(formatValue(1234567, "count"), "1,234,567")
    assert.strictEqual(formatValue(512, "bytes"), "512 B")
    assert.strictEqual(formatValue(1536, "bytes"), "1.5 KiB")
    assert.strictEqual(formatValue(100 * 1024 * 1024, "bytes"), "100.0 MiB")
    assert.strictEqual(formatDuration(3725), "1h 2m 5s")
    assert.strictEqual(formatDuration(0), "0s")
  })

  it("report: grouped, zero and internal counters only with all, rates over the uptime, unknown counters in other", () => {
    const counters = {
      new_entries_remote: 100,
      sync_bytes_received: 10 * 1024 * 1024,
      actor_tick_main: 7,
      downloads_failure: 0,
      some_new_counter: 3
    }
    const lines = report(counters, 10)
    assert.deepStrictEqual(lines.map((l) => l.group), ["entries", "sync", "other"])
    assert.strictEqual(lines[0]!.rate, "10/s")
    assert.strictEqual(report({ new_entries_remote: 5 }, 10)[0]!.rate, "0.50/s")
    assert.strictEqual(lines[1]!.text, "10.0 MiB")
    assert.strictEqual(lines[1]!.rate, "1.0 MiB/s")
    const all = report(counters, 10, true)
    assert.includeMembers(all.map((l) => l.name), ["actor_tick_main", "downloads_failure"])
    const text = reportText(lines, 10).join("\n")
    assert.include(text, "uptime 10s")
    assert.include(text, "entries received from peers and stored")
    assert.notInclude(text, "loop iterations")
  })

  it("prometheus: HELP, TYPE and a sample per counter, valid names, uptime gauge", () => {
    const text = prometheusText({ new_entries_local: 5, "weird-name.x": 1 }, 42)
    assert.include(text, "# TYPE rangedocs_new_entries_local_total counter\nrangedocs_new_entries_local_total 5\n")
    assert.include(text, "rangedocs_weird_name_x_total 1")
    assert.include(text, "rangedocs_uptime_seconds 42")
    assert.include(prometheusText({ downloads_in_flight: 3 }, 1), "# TYPE rangedocs_downloads_in_flight gauge\nrangedocs_downloads_in_flight 3\n")
    assert.isUndefined(report({ downloads_in_flight: 3 }, 10)[0]!.rate, "a gauge has no rate")
    assert.isTrue(text.endsWith("\n"))
  })

  it("prometheus: every sample line is a valid metric name and a number, whatever the counter names", () => {
    fc.assert(fc.property(fc.dictionary(fc.string({ minLength: 1, maxLength: 20 }), fc.nat()), fc.nat(), (counters, uptime) => {
      const samples = prometheusText(counters, uptime).split("\n").filter((l) => l !== "" && !l.startsWith("#"))
      for (const line of samples) assert.match(line, /^[a-zA-Z_:][a-zA-Z0-9_:]* \d+$/)
      const names = samples.map((l) => l.split(" ")[0])
      assert.strictEqual(new Set(names).size, names.length, "each metric once")
    }))
  })
})
