#!/usr/bin/env bash
# Makes sure the Prometheus server and promtool that the metrics tests run are here: Debian's
# `prometheus` package, installed by the one set-up step (scripts/setup.sh) with every other
# package. The package is only a source of the two binaries: the tests start their own Prometheus
# on 127.0.0.1 with a generated config (setup.sh keeps the package from starting a system one).
# Exits 0 when /usr/bin/prometheus and /usr/bin/promtool are present afterwards.
set -euo pipefail
if ! [ -x /usr/bin/prometheus ] || ! [ -x /usr/bin/promtool ]; then
  bash "$(dirname "$0")/setup.sh"
fi
for bin in /usr/bin/prometheus /usr/bin/promtool; do
  if [ ! -x "$bin" ]; then
    echo "metrics-tools: $bin is missing (Debian package prometheus; scripts/setup.sh installs it)" >&2
    exit 1
  fi
done
