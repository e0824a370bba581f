#!/usr/bin/env bash
# `npm test`: the whole suite in phases, so that it fits 2 cores (vitest.shared.ts says which file runs where).
#  1. most files on two workers (vitest.config.ts);
#  2. the serial files, one at a time, in one vitest process (their modules load once): the twenty-node swarm first,
#     which needs the machine to itself, then the timer tests and the browsers. Once the swarm is done, beside them:
#     the NAT lab (mostly waiting on real network timeouts) and then the relay tests through the CLI, in a process of
#     their own; and the type check.
#  3. all along, at the lowest priority, the files that assert nothing about time (vitest.shared.ts): they use the
#     CPU the others leave while they wait.
# Every part runs; the exit status is non-zero when any of them failed. Reports of parts that run beside others are
# printed after them, not interleaved.
set -u
cd "$(dirname "$0")/.."
bin=node_modules/.bin
status=0
backlog=$(mktemp)
lablog=$(mktemp)
done_dir=$(mktemp -d)
trap 'rm -rf "$backlog" "$lablog" "$done_dir"' EXIT
# Idle for the disk too where ionice exists (util-linux): the package test's `npm install` writes thousands of files.
idle=(nice -n 19)
command -v ionice >/dev/null && idle=(ionice -c 3 nice -n 19)
RANGEDOCS_TEST_PASS=background "${idle[@]}" "$bin/vitest" run -c vitest.serial.config.ts >"$backlog" 2>&1 &
back=$!
"$bin/vitest" run || status=1

RANGEDOCS_TEST_DONE_DIR=$done_dir "$bin/vitest" run -c vitest.serial.config.ts --exclude 'test/lab/**' --exclude test/layers/ReachCli.test.ts &
serial=$!
# test/utils/fileDone.ts marks the swarm's end (or the pass ended early).
until [ -e "$done_dir/Swarm.test.ts.done" ] || ! kill -0 "$serial" 2>/dev/null; do sleep 0.2; done
# The type check (TypeScript 7, the native compiler: ~10 s of CPU for the whole checkout on one thread, where 5.9 took
# ~38 s) keeps its state between runs (--incremental, in a file of this checkout's own under node_modules/.cache):
# unchanged, it costs about a second. One checker thread: the CPU is what the suite is short of, not wall time. A fresh
# checkout checks everything, at a lower priority than the lab and the serial files beside it, which wait on real time.
buildinfo="node_modules/.cache/rangedocs-tsc-$(printf %s "$PWD" | cksum | cut -d' ' -f1).tsbuildinfo"
mkdir -p node_modules/.cache
nice -n 10 "$bin/tsc" -p tsconfig.json --noEmit --incremental --tsBuildInfoFile "$buildinfo" --singleThreaded &
typecheck=$!
"$bin/vitest" run -c vitest.serial.config.ts test/lab test/layers/ReachCli.test.ts >"$lablog" 2>&1 &
lab=$!
wait "$serial" || status=1
wait "$lab" || status=1
cat "$lablog"
wait "$typecheck" || status=1
wait "$back" || status=1
cat "$backlog"
exit "$status"
