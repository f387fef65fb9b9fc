#!/usr/bin/env bash
# Every test: tap (unit, service, native and root end-to-end tests), then csi-sanity against the
# split controller/node sockets, once without and once with --enable-attach. The last line is
# "N passed, N failed" over all of them, which is what CI reads.
set -u
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
ensure_built || { echo "0 passed, 1 failed"; exit 1; }
ensure_csi_sanity || { echo "0 passed, 1 failed"; exit 1; }
# A real kube-apiserver, etcd and kubectl for the Kubernetes-store tests (about 5 minutes on a
# cold machine, seconds afterwards).
bash scripts/k8s-tools.sh || { echo "0 passed, 1 failed"; exit 1; }
# Debian's prometheus and promtool for the metrics tests.
bash scripts/metrics-tools.sh || { echo "0 passed, 1 failed"; exit 1; }

passed=0
failed=0
log="$(mktemp /tmp/tscsi-test.XXXXXX)"
trap 'rm -f "$log"' EXIT

echo "== tap"
npx tap --reporter=tap 2>&1 | tee "$log"
summary="$(grep -E '^# \{ total: ' "$log" | tail -1)"
tp="$(sed -nE 's/.*pass: ([0-9]+).*/\1/p' <<<"$summary")"
tf="$(sed -nE 's/.*fail: ([0-9]+).*/\1/p' <<<"$summary")"
if [ -z "$summary" ]; then tf=1; fi
passed=$((passed + ${tp:-0}))
failed=$((failed + ${tf:-0}))

for mode in "" "--enable-attach"; do
  echo "== csi-sanity ${mode:-(without attach)}"
  bash scripts/sanity.sh $mode 2>&1 | tee "$log"
  line="$(grep -E '^SANITY passed=' "$log" | tail -1)"
  sp="$(sed -nE 's/.*passed=([0-9]+).*/\1/p' <<<"$line")"
  sf="$(sed -nE 's/.*failed=([0-9]+).*/\1/p' <<<"$line")"
  if [ -z "$line" ]; then sf=1; fi
  passed=$((passed + ${sp:-0}))
  failed=$((failed + ${sf:-0}))
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
