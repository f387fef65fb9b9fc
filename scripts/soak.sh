#!/usr/bin/env bash
# The soak of issue 7 (item 6), not part of `npm test`: at least 2,000 volumes (dir, image and
# block) through full lifecycles against the real controller and node plugin for at least 10
# minutes, each volume published to 6 targets at once by 32 volumes in flight, its "pods"
# reading through every target for ~1 s. At the end the open fds of both processes, the mounts
# and the loop devices under the work folder must be back exactly at the baseline (taken after a
# warm-up), and RSS within the tolerance documented in test/helpers/soak.ts (RSS_TOLERANCE).
# Prints the numbers; exits 1 on any violation. The short version is test/soak-short.test.ts.
#
# Environment (defaults): SOAK_VOLUMES (2000) SOAK_SECONDS (600, minimum run time; 0 stops at the
# volume count) SOAK_CONCURRENCY (32) SOAK_TARGETS (6) SOAK_HOLD_MS (1000) SOAK_WARMUP (40)
# SOAK_DIR (/var/tmp, where the work folder is made) SOAK_NO_BUILD=1 (use dist/ as it is).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

if [ "$(id -u)" != 0 ]; then
  echo "soak: must run as root (the node plugin mounts and attaches loop devices)" >&2
  exit 1
fi
if [ "${SOAK_NO_BUILD:-}" != 1 ]; then ensure_built; fi

cd "$ROOT"
# The harness is TypeScript (it shares test/helpers with the tests): run it through the loader tap
# uses, without type-checking, as tap runs the tests (npm test type-checks both: tsconfig.test.json).
export TS_NODE_TRANSPILE_ONLY=1
run=(node --import @tapjs/typescript/import test/helpers/soak.ts)
# A private mount namespace: a killed run leaks no mount into the host's table (loop devices are
# global; the harness detaches its own on the way out either way).
if command -v unshare >/dev/null && unshare -m --propagation private true 2>/dev/null; then
  exec unshare -m --propagation private "${run[@]}"
fi
echo "soak: unshare -m is not available; running in the host's mount namespace" >&2
exec "${run[@]}"
