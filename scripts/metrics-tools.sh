#!/usr/bin/env bash
# Installs the Prometheus server and promtool that the metrics tests run (Debian's `prometheus`
# package), unless they are already there. The package is only a source of the two binaries: no
# service is started, since the tests start their own Prometheus on 127.0.0.1 with a generated
# config, and a system one would hold port 9090 and write to /var/lib/prometheus.
# Exits 0 when /usr/bin/prometheus and /usr/bin/promtool are present afterwards.
set -euo pipefail

if [ -x /usr/bin/prometheus ] && [ -x /usr/bin/promtool ]; then exit 0; fi

if [ "$(id -u)" -ne 0 ]; then
  echo "metrics-tools: /usr/bin/prometheus is missing and installing it needs root (apt-get install prometheus)" >&2
  exit 1
fi

# policy-rc.d answering 101 ("action forbidden") is how Debian's maintainer scripts are told not
# to start services; both invoke-rc.d and deb-systemd-invoke honour it. Container images usually
# ship one already; if this machine has none, put one in place for the install only.
policy=/usr/sbin/policy-rc.d
added_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# added by tscsi scripts/metrics-tools.sh for one apt-get install\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  added_policy=1
fi
cleanup() { if [ "$added_policy" -eq 1 ]; then rm -f "$policy"; fi; }
trap cleanup EXIT

echo "metrics-tools: installing Debian's prometheus package (for /usr/bin/prometheus and /usr/bin/promtool)" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update >&2
apt-get install -y --no-install-recommends prometheus >&2

for bin in /usr/bin/prometheus /usr/bin/promtool; do
  if [ ! -x "$bin" ]; then
    echo "metrics-tools: $bin is still missing after installing the prometheus package" >&2
    exit 1
  fi
done
