#!/usr/bin/env bash
# npm run bench: tscsi against kubernetes-csi's hostpathplugin on this machine (see BENCHMARKS.md).
#   1. builds tscsi (dist/) and the harness (bench/ -> dist/bench/)
#   2. builds hostpathplugin into .tools/bin when missing or stale (scripts/hostpath-tools.sh)
#   3. installs the Debian packages it runs (strace, for the syscall counts) with scripts/setup.sh
#   4. runs the harness in a private mount namespace (unshare -m): every mount the drivers and the
#      scale phase make lives and dies there, so even a killed run leaks nothing into the host's
#      mount table. The harness cleans up after itself regardless.
# Environment: BENCH_QUICK=1 for a ~1 minute smoke run; the other knobs are listed at the top of
# bench/main.ts (BENCH_PHASES, BENCH_ROUNDS, BENCH_ROUND_SECONDS, BENCH_NODE_FLAGS, BENCH_PROFILE, ...).
# Arguments are passed to the harness. Benchmarks print numbers; nothing here asserts a timing.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

if [ "$(id -u)" != 0 ]; then
  echo "bench: must run as root (it mounts and unmounts, as a node plugin does)" >&2
  exit 1
fi

ensure_built
(cd "$ROOT" && npx tsc -p bench/tsconfig.json >&2)
export BENCH_HOSTPATH_BIN="${BENCH_HOSTPATH_BIN:-$(bash "$ROOT/scripts/hostpath-tools.sh")}"

# strace (for the syscall counts) and the rest come from the one set-up step.
bash "$ROOT/scripts/setup.sh"

cd "$ROOT"
if [ "${BENCH_NO_UNSHARE:-}" != 1 ] && command -v unshare >/dev/null && unshare -m --propagation private true 2>/dev/null; then
  exec unshare -m --propagation private node dist/bench/main.js "$@"
fi
echo "bench: unshare -m is not available; running in the host's mount namespace (cleanup still detaches everything)" >&2
exec node dist/bench/main.js "$@"
