#!/usr/bin/env bash
# Builds the real CSI clients the client-matrix test (test/client-matrix.test.ts) runs against
# tscsi, into .tools (git-ignored), from the registries alone:
#   .tools/bin/csc-grpc119      test/clients/csc-go against grpc-go 1.19 (seed 003's csc era)
#   .tools/bin/csc-grpc-current the same source against a current grpc-go (current/go.mod)
#   .tools/py/                  a venv with grpcio and grpcio-tools from PyPI, and the CSI stubs
#                               generated from proto/csi.proto into .tools/py/stubs
# Idempotent: each is rebuilt only when its inputs, the Go or Python version change (a stamp
# beside it records them); a second run takes about a second. Needs go, and python3 with its venv
# module (Debian: python3-venv).
# Usage: bash scripts/client-tools.sh     (prints KEY=PATH lines on stdout, progress on stderr)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
BIN="$TOOLS/bin"
SRC="$ROOT/test/clients"
GRPCIO_VERSION=1.85.1
mkdir -p "$BIN"

# Two runs at once (tap runs test files in parallel) would race on the same outputs.
exec 9>"$TOOLS/client-tools.lock"
flock 9

log() { echo "client-tools: $*" >&2; }
digest() { LC_ALL=C sort -z | xargs -0 cat | sha256sum | cut -c1-16; }

command -v go >/dev/null || { log "go is not on PATH: the Go clients are built from the module proxy"; exit 1; }
export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS="-mod=readonly -buildvcs=false"
GO_VERSION="$(go env GOVERSION)"

# build_go NAME MODDIR: main.go from test/clients/csc-go with MODDIR's go.mod and go.sum.
build_go() {
  local name="$1" mod="$2" stamp="$TOOLS/$1.stamp" want
  want="$GO_VERSION $(find "$SRC/csc-go/main.go" "$mod/go.mod" "$mod/go.sum" -print0 | digest)"
  if [ -x "$BIN/$name" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then return 0; fi
  local work="$TOOLS/src-$name"
  rm -rf "$work" && mkdir -p "$work"
  cp "$SRC/csc-go/main.go" "$mod/go.mod" "$mod/go.sum" "$work/"
  log "building $name with $GO_VERSION ..."
  (cd "$work" && go build -trimpath -ldflags "-s -w" -o "$BIN/.$name.tmp" .)
  mv -f "$BIN/.$name.tmp" "$BIN/$name"
  echo "$want" >"$stamp"
}
build_go csc-grpc119 "$SRC/csc-go"
build_go csc-grpc-current "$SRC/csc-go/current"

# Python: Debian's own python3 (not a pyenv shim that a fresh machine lacks), in a venv.
PY=/usr/bin/python3
[ -x "$PY" ] || PY="$(command -v python3)" || { log "python3 is not installed (Debian: python3-venv)"; exit 1; }
VENV="$TOOLS/py"
stamp="$TOOLS/py.stamp"
want="$("$PY" --version 2>&1) grpcio==$GRPCIO_VERSION $(find "$ROOT/proto/csi.proto" -print0 | digest)"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  rm -rf "$VENV"
  "$PY" -m venv "$VENV" || { log "python3 -m venv failed: install Debian's python3-venv"; exit 1; }
  log "installing grpcio $GRPCIO_VERSION from PyPI into $VENV ..."
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "grpcio==$GRPCIO_VERSION" "grpcio-tools==$GRPCIO_VERSION" >&2
  mkdir -p "$VENV/stubs"
  # The well-known types csi.proto imports (descriptor, wrappers, timestamp) ship in grpc_tools.
  "$VENV/bin/python" - "$ROOT/proto" "$VENV/stubs" <<'PYEOF'
import os, sys, grpc_tools
from grpc_tools import protoc
proto, out = sys.argv[1], sys.argv[2]
wkt = os.path.join(os.path.dirname(grpc_tools.__file__), '_proto')
sys.exit(protoc.main(['protoc', '-I' + proto, '-I' + wkt, '--python_out=' + out, '--grpc_python_out=' + out, os.path.join(proto, 'csi.proto')]))
PYEOF
  echo "$want" >"$stamp"
fi
echo "CSC_GRPC119=$BIN/csc-grpc119"
echo "CSC_GRPC_CURRENT=$BIN/csc-grpc-current"
echo "PYTHON=$VENV/bin/python3"
echo "PY_STUBS=$VENV/stubs"
