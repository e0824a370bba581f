#!/usr/bin/env node
/** The node program: runs the CLI. The only place that runs an Effect. */
import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { Effect } from "effect"
import { run } from "./cli/Cli.js"

NodeRuntime.runMain(run(process.argv).pipe(Effect.provide(NodeContext.layer)), { disableErrorReporting: false })
