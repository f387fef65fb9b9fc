# One image with the three entrypoints (tscsi-controller, tscsi-node, tscsi-metrics) and the
# filesystem tools the node plugin may run (mkfs, resize2fs, xfs_growfs).
FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY proto proto
COPY common common
COPY controller controller
COPY node node
COPY native native
COPY metrics metrics
COPY tools tools
RUN npx tsc -p tsconfig.json && npm prune --omit=dev

FROM node:20-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends e2fsprogs xfsprogs btrfs-progs \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/tscsi
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules node_modules
COPY --from=build /src/dist dist
COPY --from=build /src/proto proto
# The same names package.json declares as bin entries.
RUN for b in controller node metrics; do ln -s /opt/tscsi/dist/$b/main.js /usr/local/bin/tscsi-$b; done \
 && ln -s /opt/tscsi/dist/tools/call.js /usr/local/bin/tscsi-call \
 && chmod +x dist/*/main.js dist/tools/call.js
# The controller and the metrics sidecar run as this user; the node plugin's pod runs privileged.
USER 65532:65532
ENTRYPOINT []
