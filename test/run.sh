#!/usr/bin/env bash
# `npm test`: the whole suite in phases, so that it fits 2 cores (vitest.shared.ts says which file runs where).
#  1. most files on two workers (vitest.config.ts);
#  2. the twenty-node swarm: it needs the machine to itself (but for the files of 4, which yield to everything);
#  3. two streams of serial files side by side, one file at a time: the NAT lab (mostly waiting on real network
#     timeouts), then the relay tests through the CLI; the timer tests, then the browsers. And the type check.
#  4. all along, at the lowest priority, the files that assert nothing about time (vitest.shared.ts): they use the
#     CPU the others leave while they wait.
# Every part runs; the exit status is non-zero when any of them failed. Reports of parts that run beside others are
# printed after them, not interleaved.
set -u
cd "$(dirname "$0")/.."
bin=node_modules/.bin
status=0
backlog=$(mktemp)
lablog=$(mktemp)
trap 'rm -f "$backlog" "$lablog"' EXIT
RANGEDOCS_TEST_PASS=background nice -n 19 "$bin/vitest" run -c vitest.serial.config.ts >"$backlog" 2>&1 &
back=$!
"$bin/vitest" run || status=1
"$bin/vitest" run -c vitest.serial.config.ts test/layers/Swarm.test.ts || status=1
# The type check keeps its state between runs (--incremental, in a file of this checkout's own under node_modules/.cache):
# unchanged, it costs a few seconds instead of ~30 s of CPU beside the serial files. A fresh checkout checks everything.
buildinfo="node_modules/.cache/rangedocs-tsc-$(printf %s "$PWD" | cksum | cut -d' ' -f1).tsbuildinfo"
mkdir -p node_modules/.cache
"$bin/tsc" -p tsconfig.json --noEmit --incremental --tsBuildInfoFile "$buildinfo" &
typecheck=$!
"$bin/vitest" run -c vitest.serial.config.ts test/lab test/layers/ReachCli.test.ts >"$lablog" 2>&1 &
lab=$!
"$bin/vitest" run -c vitest.serial.config.ts --exclude 'test/lab/**' --exclude 'test/layers/ReachCli.test.ts' \
  --exclude 'test/layers/Swarm.test.ts' || status=1
wait "$lab" || status=1
cat "$lablog"
wait "$typecheck" || status=1
wait "$back" || status=1
cat "$backlog"
exit "$status"
