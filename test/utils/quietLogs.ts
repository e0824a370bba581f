/**
 * Vitest setup: tests log quietly. Many tests provoke failures on purpose (bad peers, broken streams), and the node
 * logs each one; printed, they buried a run's result under a few hundred WARN and ERROR lines with stacks. What a test
 * expects it asserts; the logs are for a developer who asks for them: `RANGEDOCS_LOG_LEVEL=debug npx vitest run …`.
 *
 * Effect reads a fiber's minimum log level from the fiber's refs, and a runtime without one (every `Effect.run*`,
 * `it.effect`, `ManagedRuntime`) falls back to the FiberRef's initial value, which this sets. A test that asserts on
 * log output sets its own level (`Logger.withMinimumLogLevel`). Child processes (the CLI tests' nodes) get the level
 * through the environment, which the node program honours.
 */
import * as FiberRef from "effect/FiberRef"
import { isLogLevelName, LOG_LEVEL_OF, LOG_LEVELS } from "../../src/cli/Argv.js"


const name = (process.env["RANGEDOCS_LOG_LEVEL"] ?? "").toLowerCase() || "none"
if (!isLogLevelName(name)) throw new Error(`RANGEDOCS_LOG_LEVEL: expected one of ${LOG_LEVELS.join(", ")}`)
const level = LOG_LEVEL_OF[name]

process.env["RANGEDOCS_LOG_LEVEL"] = name
Object.defineProperty(FiberRef.currentMinimumLogLevel, "initial", { value: level, configurable: true, writable: true })
