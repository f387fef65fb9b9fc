#!/usr/bin/env bash
# Writes the TypeScript types of the gRPC protocols (proto/csi.proto, proto/pluginregistration.proto)
# into proto/gen with @grpc/proto-loader's own generator. The flags are common/grpc.ts's
# LOADER_OPTIONS (keepCase, longs: String, enums: String, defaults, oneofs), so each `Foo__Output`
# type is what a handler receives. Edit the .proto, then run this (npm run gen:proto);
# test/unit-typed-protocol.test.ts generates afresh and fails while the committed files differ.
# Usage: bash scripts/gen-proto-types.sh [OUT_DIR]   (default: proto/gen of this checkout)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-$ROOT/proto/gen}"
case "$OUT" in /*) ;; *) OUT="$PWD/$OUT" ;; esac

# A message or service removed from the proto must not survive as a stale file.
rm -rf "$OUT"
# Relative paths from the root: each file's "Original file:" line names proto/<file>, wherever
# the checkout is.
cd "$ROOT"
node node_modules/@grpc/proto-loader/build/bin/proto-loader-gen-types.js \
  --keepCase --longs=String --enums=String --defaults --oneofs \
  --grpcLib=@grpc/grpc-js --importFileExtension=.js \
  -O "$OUT" proto/csi.proto proto/pluginregistration.proto
