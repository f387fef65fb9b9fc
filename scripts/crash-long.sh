#!/usr/bin/env bash
# The long crash-injection run (issue 7, item 2): the harness of test/crash-inject.test.ts with
# many more kills than CI's 200, as root, on its own build. Not part of `npm test`.
#
#   sudo scripts/crash-long.sh                 # 1200 kills, a fresh random seed
#   CRASH_KILLS=3000 CRASH_SEED=42 scripts/crash-long.sh
#
# It builds a private copy of the tree under a temp folder (the shared dist/ may be rebuilt by
# someone else halfway through a 15-minute run), prints the seed first, keeps the whole op log in
# /tmp/tscsi-crash-long-<seed>.log, and exits non-zero on any invariant violation, whose report (round,
# op log tail, process logs and the line to replay it) tap prints.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
KILLS="${CRASH_KILLS:-1200}"
SEED="${CRASH_SEED:-$(( (RANDOM << 15 | RANDOM) ))}"
LOG="${CRASH_LOG:-${TMPDIR:-/tmp}/tscsi-crash-long-$SEED.log}"
[ "$(id -u)" = 0 ] || { echo "crash-long: needs root (mounts, loop devices)" >&2; exit 2; }

BUILD="$(mktemp -d /tmp/tscsi-crash-build.XXXXXX)"
trap 'rm -rf "$BUILD"' EXIT
cp -a package.json tsconfig.json common controller node native sidecar tools proto "$BUILD"/
ln -s "$ROOT/node_modules" "$BUILD/node_modules"
(cd "$BUILD" && npx tsc -p tsconfig.json)

echo "crash-long: seed $SEED, $KILLS kills, op log $LOG"
: > "$LOG"
start=$(date +%s)
status=0
CRASH_DIST_ROOT="$BUILD" CRASH_SEED="$SEED" CRASH_KILLS="$KILLS" CRASH_LOG="$LOG" \
  npx tap --reporter=tap --timeout=$(( KILLS * 4 + 600 )) test/crash-inject.test.ts || status=$?
echo "crash-long: seed $SEED, exit $status after $(( $(date +%s) - start )) s; replay with CRASH_SEED=$SEED CRASH_KILLS=$KILLS $0"
exit $status
