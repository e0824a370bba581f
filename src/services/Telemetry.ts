/**
 * OpenTelemetry export (issue 16): when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, the node's spans (every
 * `Effect.fn("Service.method")` and `withSpan`), its log lines and its figures go to that OTLP/HTTP collector as JSON
 * (`<endpoint>/v1/traces`, `/v1/metrics`, `/v1/logs`) through @effect/opentelemetry's `Otlp` exporter. Unset: nothing
 * is loaded. The exporter is imported on demand, so no client command (and no node without the variable) loads it.
 *
 * `layer` must be provided *below* the node's layers (`Layer.provide`): the tracer it installs is inherited by every
 * fiber those layers start. The figures are the node's Effect metrics (`rangedocs_<counter>`, tagged with the node;
 * the same counters `/metrics` serves), read from Effect's metric registry at each export.
 *
 * Environment (the OpenTelemetry names): `OTEL_EXPORTER_OTLP_ENDPOINT` (http(s) URL), `OTEL_SERVICE_NAME` (default
 * `rangedocs`), `OTEL_EXPORTER_OTLP_HEADERS` (`k=v,k2=v2`, e.g. a collector's API key; never logged).
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"

export interface TelemetryOptions {
  /** The collector's base URL (`http://localhost:4318`); `/v1/traces` etc. are appended. */
  readonly endpoint: string
  readonly serviceName?: string
  readonly serviceVersion?: string
  /** Sent with every export (e.g. an API key). */
  readonly headers?: Readonly<Record<string, string>>
  /** How often spans, figures and logs are sent; default 5 s. */
  readonly exportInterval?: Duration.DurationInput
}

export const DEFAULT_SERVICE_NAME = "rangedocs"
export const DEFAULT_EXPORT_INTERVAL = Duration.seconds(5)

/** `k=v,k2=v2` (values may be URL-encoded, as the OpenTelemetry spec has it); malformed pairs are skipped. */
const parseHeaders = (text: string): Record<string, string> => {
  const out: Record<string, string> = {}
  for (const pair of text.split(",")) {
    const at = pair.indexOf("=")
    if (at <= 0) continue
    const key = pair.slice(0, at).trim()
    try {
      out[key] = decodeURIComponent(pair.slice(at + 1).trim())
    } catch {
      out[key] = pair.slice(at + 1).trim()
    }
  }
  return out
}

/** The options the environment asks for; none when `OTEL_EXPORTER_OTLP_ENDPOINT` is unset or not an http(s) URL. */
export const optionsFromEnv = (env: NodeJS.ProcessEnv): Option.Option<TelemetryOptions> => {
  const endpoint = env["OTEL_EXPORTER_OTLP_ENDPOINT"]?.trim() ?? ""
  if (!/^https?:\/\/[^\s]+$/.test(endpoint)) return Option.none()
  const serviceName = env["OTEL_SERVICE_NAME"]?.trim()
  const headers = env["OTEL_EXPORTER_OTLP_HEADERS"]
  return Option.some({
    endpoint: endpoint.replace(/\/+$/, ""),
    ...(serviceName === undefined || serviceName === "" ? {} : { serviceName }),
    ...(headers === undefined || headers.trim() === "" ? {} : { headers: parseHeaders(headers) })
  })
}

/** Traces, figures and logs to the collector, for the layer's lifetime (flushed when it closes). */
export const layer = (options: TelemetryOptions): Layer.Layer<never> =>
  Layer.unwrapEffect(Effect.promise(async () => {
    const [Otlp, FetchHttpClient] = await Promise.all([
      import("@effect/opentelemetry/Otlp"),
      import("@effect/platform/FetchHttpClient")
    ])
    const interval = options.exportInterval ?? DEFAULT_EXPORT_INTERVAL
    return Otlp.layerJson({
      baseUrl: options.endpoint,
      resource: {
        serviceName: options.serviceName ?? DEFAULT_SERVICE_NAME,
        ...(options.serviceVersion === undefined ? {} : { serviceVersion: options.serviceVersion })
      },
      ...(options.headers === undefined ? {} : { headers: options.headers }),
      tracerExportInterval: interval,
      metricsExportInterval: interval,
      loggerExportInterval: interval
    }).pipe(Layer.provide(FetchHttpClient.layer))
  }))

/** `layer` as the environment asks (`optionsFromEnv`), else nothing. */
export const layerFromEnv = (overrides: Partial<TelemetryOptions> = {}): Layer.Layer<never> =>
  Option.match(optionsFromEnv(process.env), {
    onNone: () => Layer.empty,
    onSome: (options) => layer({ ...options, ...overrides })
  })
