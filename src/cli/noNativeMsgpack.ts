/**
 * Stands in for msgpackr-extract in the CLI bundle (`bundle.ts`). msgpackr tries to load that optional native
 * accelerator at import; bundled, its loader (node-gyp-build-optional-packages, detect-libc) probes the file system
 * and calls `process.report.getReport()` for ~10–30 ms of every command and then fails to find the addon next to the
 * bundle anyway. msgpackr catches this failure and decodes in JavaScript, as it does without the addon.
 */
export const extractStrings = undefined
throw new Error("msgpackr-extract is not bundled")
