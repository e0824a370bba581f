/**
 * The node's counters for people and for Prometheus: a catalogue of what each counter means (group, unit, help),
 * the grouped report of `rangedocs stats`, and the Prometheus text exposition format (version 0.0.4) served at
 * `/metrics`. Pure: the caller passes the counters and the node's uptime.
 */

export type Unit = "count" | "bytes"

export interface CounterInfo {
  readonly group: string
  readonly help: string
  readonly unit: Unit
  /** Engine internals (loop ticks): shown by `stats --all` only. */
  readonly internal?: boolean
  /** A level that goes up and down (how full something is now), not a count since the start. */
  readonly gauge?: boolean
}

const c = (group: string, help: string, unit: Unit = "count", internal = false): CounterInfo =>
  internal ? { group, help, unit, internal } : { group, help, unit }
const gauge = (group: string, help: string): CounterInfo => ({ group, help, unit: "count", gauge: true })

/** What each known counter means. Counters missing here are reported in the group "other". */
export const CATALOGUE: Readonly<Record<string, CounterInfo>> = {
  new_entries_local: c("entries", "entries written on this node"),
  new_entries_remote: c("entries", "entries received from peers and stored"),
  new_entries_local_size: c("entries", "content bytes of entries written on this node", "bytes"),
  new_entries_remote_size: c("entries", "content bytes of entries received from peers", "bytes"),
  sync_via_connect_success: c("sync", "sync sessions this node started that succeeded"),
  sync_via_connect_failure: c("sync", "sync sessions this node started that failed"),
  sync_via_accept_success: c("sync", "sync sessions peers started that succeeded"),
  sync_via_accept_failure: c("sync", "sync sessions peers started that failed"),
  sync_entries_sent: c("sync", "entries sent in sync sessions"),
  sync_entries_received: c("sync", "entries received in sync sessions"),
  sync_bytes_sent: c("sync", "bytes sent in sync sessions", "bytes"),
  sync_bytes_received: c("sync", "bytes received in sync sessions", "bytes"),
  sync_entries_invalid: c("sync", "invalid entries dropped during sync sessions"),
  sync_retries: c("sync", "failed sync sessions started again after a backoff"),
  sync_retry_refused: c("sync", "retry steps the peer refused (AlreadySyncing: it syncs with us itself); the retries go on"),
  live_peers_evicted: c("limits", "idle peer states dropped to make room"),
  live_peers_refused: c("limits", "peers refused because every peer state was in a session"),
  wanted_overflow: c("limits", "wanted hashes kept in the store only (the in-memory working set was full)"),
  providers_dropped: c("limits", "content providers forgotten (the list per hash was full)"),
  downloads_in_flight: gauge("content", "downloads running now"),
  wanted_in_memory: gauge("content", "wanted hashes in the in-memory working set now"),
  downloads_success: c("content", "content downloads that completed"),
  downloads_failure: c("content", "content downloads that failed"),
  download_bytes: c("content", "content bytes downloaded", "bytes"),
  gossip_put_sent: c("gossip", "entries broadcast to the document's swarm"),
  gossip_put_received: c("gossip", "entries received by gossip"),
  gossip_inline_content_sent: c("gossip", "small contents sent inside their gossiped entry"),
  gossip_inline_content_received: c("gossip", "small contents received inside their gossiped entry"),
  gossip_inline_content_rejected: c("gossip", "inline contents dropped because they did not match their entry"),
  actor_tick_main: c("engine", "live engine loop iterations", "count", true),
  doc_live_tick_main: c("engine", "live engine loop iterations", "count", true),
  doc_live_tick_actor: c("engine", "live engine commands from the API", "count", true),
  doc_live_tick_replica_event: c("engine", "replica insert events handled", "count", true),
  doc_live_tick_running_sync_connect: c("engine", "finished outgoing sessions handled", "count", true),
  doc_live_tick_running_sync_accept: c("engine", "finished incoming sessions handled", "count", true),
  doc_live_tick_pending_downloads: c("engine", "finished downloads handled", "count", true)
}

/** Groups in the order `stats` prints them. */
export const GROUPS = ["entries", "sync", "gossip", "content", "limits", "engine", "other"] as const

const infoOf = (name: string): CounterInfo =>
  Object.hasOwn(CATALOGUE, name) ? CATALOGUE[name]! : c("other", name.replaceAll("_", " "))

/** `1234567` → `"1,234,567"`; bytes as `"12.3 MiB"`. */
export const formatValue = (value: number, unit: Unit): string => {
  if (unit === "count" || Math.abs(value) < 1024) {
    return unit === "bytes" ? `${value} B` : Math.round(value).toLocaleString("en-US")
  }
  const units = ["KiB", "MiB", "GiB", "TiB"]
  let v = value / 1024
  let i = 0
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024
    i++
  }
  return `${v.toFixed(1)} ${units[i]}`
}

export interface ReportLine {
  readonly group: string
  readonly name: string
  readonly help: string
  readonly value: number
  readonly text: string
  /** Average per second since the node started, when it moved. */
  readonly rate?: string
}

/**
 * The counters grouped for people, with units and average rates over `uptimeSeconds`; counters that are zero are
 * left out, engine internals too unless `all`.
 */
export const report = (
  counters: Readonly<Record<string, number>>,
  uptimeSeconds: number,
  all = false
): Array<ReportLine> => {
  const lines: Array<ReportLine> = []
  for (const name of Object.keys(counters).sort()) {
    const value = counters[name]!
    const info = infoOf(name)
    if (!all && (info.internal === true || value === 0)) continue
    const perSecond = uptimeSeconds > 0 ? value / uptimeSeconds : 0
    const rate = value > 0 && uptimeSeconds > 0 && info.gauge !== true
      ? `${info.unit === "bytes" ? formatValue(perSecond, "bytes") : perSecond.toFixed(perSecond < 10 ? 2 : 0)}/s`
      : undefined
    lines.push({
      group: info.group,
      name,
      help: info.help,
      value,
      text: formatValue(value, info.unit),
      ...(rate === undefined ? {} : { rate })
    })
  }
  const order = (g: string) => {
    const i = (GROUPS as ReadonlyArray<string>).indexOf(g)
    return i < 0 ? GROUPS.length : i
  }
  return lines.sort((a, b) => order(a.group) - order(b.group))
}

/** `report` as aligned text: a heading per group, one counter per line. */
export const reportText = (lines: ReadonlyArray<ReportLine>, uptimeSeconds: number): Array<string> => {
  const out: Array<string> = [`uptime ${formatDuration(uptimeSeconds)}`]
  const helpWidth = Math.max(0, ...lines.map((l) => l.help.length))
  const valueWidth = Math.max(0, ...lines.map((l) => l.text.length))
  let group: string | undefined
  for (const line of lines) {
    if (line.group !== group) {
      group = line.group
      out.push("", group)
    }
    out.push(`  ${line.help.padEnd(helpWidth)}  ${line.text.padStart(valueWidth)}${line.rate === undefined ? "" : `  (${line.rate})`}`)
  }
  if (lines.length === 0) out.push("", "nothing happened yet")
  return out
}

export const formatDuration = (seconds: number): string => {
  const s = Math.floor(seconds)
  const d = Math.floor(s / 86_400)
  const h = Math.floor((s % 86_400) / 3600)
  const m = Math.floor((s % 3600) / 60)
  const parts = [d > 0 ? `${d}d` : "", h > 0 ? `${h}h` : "", m > 0 ? `${m}m` : "", `${s % 60}s`].filter((p) => p !== "")
  return parts.join(" ")
}

const PREFIX = "rangedocs_"
const escapeHelp = (s: string) => s.replaceAll("\\", "\\\\").replaceAll("\n", "\\n")
/** A metric name Prometheus accepts: `[a-zA-Z_:][a-zA-Z0-9_:]*`; counters end in `_total`. */
const metricName = (name: string, gauge: boolean) =>
  `${PREFIX}${name.replace(/[^a-zA-Z0-9_]/g, "_")}${gauge ? "" : "_total"}`

/**
 * The Prometheus text exposition format: every counter as `rangedocs_<name>_total` and every gauge as
 * `rangedocs_<name>`, with HELP and TYPE lines, plus `rangedocs_uptime_seconds`.
 */
export const prometheusText = (counters: Readonly<Record<string, number>>, uptimeSeconds: number): string => {
  const out: Array<string> = [
    "# HELP rangedocs_uptime_seconds seconds since the node started",
    "# TYPE rangedocs_uptime_seconds gauge",
    `rangedocs_uptime_seconds ${uptimeSeconds}`
  ]
  const seen = new Set<string>()
  for (const name of Object.keys(counters).sort()) {
    const value = counters[name]!
    const info = infoOf(name)
    const isGauge = info.gauge === true
    const metric = metricName(name, isGauge)
    // Two names that sanitize alike would make one metric twice: the exposition format allows it once.
    if (!Number.isFinite(value) || seen.has(metric)) continue
    seen.add(metric)
    out.push(`# HELP ${metric} ${escapeHelp(info.help)}`, `# TYPE ${metric} ${isGauge ? "gauge" : "counter"}`, `${metric} ${value}`)
  }
  return out.join("\n") + "\n"
}
