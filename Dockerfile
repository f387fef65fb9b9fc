# One image with the entrypoints (tscsi-controller, tscsi-node, tscsi-metrics, tscsi-call) and the
# filesystem tools the node plugin may run (mkfs, resize2fs, xfs_growfs), for those who build with
# Docker. scripts/image.sh builds the same image without Docker (debootstrap + the npm registry's
# node binary); keep the two in step: the same package list, layout, entrypoints and user.
#   docker build -t tscsi:0.1.0 .            (--build-arg NODE_VERSION=20.20.2 pins Node exactly)
ARG NODE_VERSION=20
FROM node:${NODE_VERSION}-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` would compile before the sources are here, and koffi's install script
# only rebuilds what its prebuilt package (@koromix/koffi-linux-x64) already holds.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY proto proto
COPY common common
COPY controller controller
COPY node node
COPY native native
COPY sidecar sidecar
COPY tools tools
# TypeScript, source maps, readmes and the packages' own tests are for authors; node never loads
# them (scripts/image/tscsi.sh prunes the same).
RUN npx tsc -p tsconfig.json --sourceMap false \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund \
 && find node_modules -type d \( -name test -o -name tests -o -name __tests__ -o -name example -o -name examples -o -name benchmark -o -name benchmarks \) -prune -exec rm -rf {} + \
 && find node_modules \( -name '*.ts' -o -name '*.mts' -o -name '*.cts' -o -name '*.map' -o -iname '*.md' -o -name '.package-lock.json' \) -type f -delete

FROM node:${NODE_VERSION}-bookworm-slim
# The image-scope packages of the table in scripts/setup.sh, installed by the one set-up step
# that also serves the tests and scripts/image.sh; nothing is named here twice.
COPY scripts/setup.sh /tmp/tscsi-setup/scripts/
# The image runs node, it installs nothing: npm, corepack, yarn and the headers go, as do apt's
# lists and the docs (copyright files stay). 65532 is the user the manifests run as.
RUN bash /tmp/tscsi-setup/scripts/setup.sh --image \
 && rm -rf /tmp/tscsi-setup /var/lib/apt/lists/* /var/cache/apt/* /usr/share/man /usr/share/info \
 && find /usr/share/doc -mindepth 1 ! -type d ! -name copyright -delete \
 && rm -rf /usr/local/lib/node_modules /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack \
           /usr/local/bin/yarn /usr/local/bin/yarnpkg /opt/yarn-* /usr/local/include/node \
 && groupadd -g 65532 nonroot \
 && useradd -u 65532 -g 65532 -d /home/nonroot -m -s /usr/sbin/nologin nonroot
ENV NODE_ENV=production
WORKDIR /opt/tscsi
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules node_modules
COPY --from=build /src/dist dist
# Only the .proto files the loader reads at run time (proto/gen holds types for the build).
COPY --from=build /src/proto/*.proto proto/
# The same names package.json declares as bin entries.
RUN ln -s /opt/tscsi/dist/controller/main.js /usr/local/bin/tscsi-controller \
 && ln -s /opt/tscsi/dist/node/main.js /usr/local/bin/tscsi-node \
 && ln -s /opt/tscsi/dist/sidecar/main.js /usr/local/bin/tscsi-metrics \
 && ln -s /opt/tscsi/dist/tools/call.js /usr/local/bin/tscsi-call \
 && chmod +x dist/*/main.js dist/tools/call.js
# The controller and the metrics sidecar run as this user; the node plugin's pod runs privileged.
USER 65532:65532
ENTRYPOINT []
