#!/usr/bin/env bash
# `npm test`: the whole suite in three phases, so that it fits 2 cores (vitest.shared.ts says which file runs where).
#  1. most files on two workers (vitest.config.ts);
#  2. the twenty-node swarm alone: it needs the machine to itself;
#  3. the NAT lab (mostly waiting on real network timeouts, about half a core), then the package test, next to the
#     other serial files, one at a time, and the type check.
# Every phase runs; the exit status is non-zero when any of them failed.
set -u
cd "$(dirname "$0")/.."
bin=node_modules/.bin
status=0
"$bin/vitest" run || status=1
"$bin/vitest" run -c vitest.serial.config.ts test/layers/Swarm.test.ts || status=1
# The type check keeps its state between runs (--incremental, in a file of this checkout's own under node_modules/.cache):
# unchanged, it costs a few seconds instead of ~30 s of CPU beside the serial files. A fresh checkout checks everything.
buildinfo="node_modules/.cache/rangedocs-tsc-$(printf %s "$PWD" | cksum | cut -d' ' -f1).tsbuildinfo"
mkdir -p node_modules/.cache
"$bin/tsc" -p tsconfig.json --noEmit --incremental --tsBuildInfoFile "$buildinfo" &
typecheck=$!
# The lab's report is printed after the others', not interleaved with them.
lablog=$(mktemp)
"$bin/vitest" run -c vitest.serial.config.ts test/lab test/package >"$lablog" 2>&1 &
lab=$!
"$bin/vitest" run -c vitest.serial.config.ts --exclude 'test/lab/**' --exclude 'test/package/**' --exclude 'test/layers/Swarm.test.ts' || status=1
wait "$lab" || status=1
cat "$lablog"
rm -f "$lablog"
wait "$typecheck" || status=1
exit "$status"
