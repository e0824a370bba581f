#!/usr/bin/env node
/** The node program: runs the `rangedocs` CLI. The only place that runs an Effect. */
import "./internal/polyfill.js"
import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { Effect, Layer, Logger } from "effect"
import { exitCode, runCli } from "./cli/Cli.js"

// Logs go to stderr: stdout carries only the commands' output (content bytes, ids, JSON lines).
const logger = Logger.replace(Logger.defaultLogger, Logger.prettyLogger({ stderr: true }))

NodeRuntime.runMain(runCli(process.argv).pipe(Effect.provide(Layer.merge(NodeContext.layer, logger))), {
  // runCli has printed one line for any failure already.
  disableErrorReporting: true,
  disablePrettyLogger: true,
  // Exit as soon as the command is done (output is flushed by then); open sockets of the RPC client or libp2p must not
  // keep the process alive.
  teardown: (exit) => process.exit(exitCode(exit))
})
