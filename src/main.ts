#!/usr/bin/env -S node --max-semi-space-size=4
/**
 * The node program: runs the `rangedocs` CLI. The only place that runs an Effect.
 *
 * The shebang caps V8's young generation at 4 MiB semi-spaces (default: grows to 16 MiB), as do the `start`, `demo`
 * and `bench` scripts of package.json: the network stack allocates an ArrayBuffer per TCP read and per noise frame,
 * garbage only a scavenge frees, and the larger young generation cost memory without saving time (figures: README).
 *
 * Deep imports only: the `effect` barrel alone loads every module of the library (about half a second here), and a
 * client command must start fast (`npm run bench -- cli`).
 */
import "./internal/polyfill.js"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as NodeTerminal from "@effect/platform-node/NodeTerminal"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Scheduler from "effect/Scheduler"
import { exitCode, runCli } from "./cli/Cli.js"

// Logs go to stderr: stdout carries only the commands' output (content bytes, ids, JSON lines).
const logger = Logger.replace(Logger.defaultLogger, Logger.prettyLogger({ stderr: true }))

// A reader that goes away (`rangedocs doc keys … | head -1`) ends the command quietly, as other Unix tools do: the
// signal interrupts the command, so its finalizers still run (e.g. closing its document handle on the node).
process.stdout.on("error", (error: NodeJS.ErrnoException) => {
  if (error.code !== "EPIPE") throw error
  process.kill(process.pid, "SIGTERM")
})

// What @effect/cli needs (NodeContext would also load the command executor and its child_process machinery).
const context = Layer.mergeAll(NodeFileSystem.layer, NodePath.layer, NodeTerminal.layer, logger)

NodeRuntime.runMain(runCli(process.argv).pipe(Effect.provide(context), Effect.withScheduler(new Scheduler.MixedScheduler(64))), {
  // runCli has printed one line for any failure already.
  disableErrorReporting: true,
  disablePrettyLogger: true,
  // Exit as soon as the command is done (its output is flushed by then): idle sockets of the RPC client must not keep
  // the process alive.
  teardown: (exit) => process.exit(exitCode(exit))
})
