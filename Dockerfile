# stowage: a pull-through caching OCI registry, drop-in for registry:2.
#   docker build -t stowage .
#   docker run -d -p 5000:5000 -v registry:/var/lib/registry stowage
# registry:2's port, data path, config path (/etc/docker/registry/config.yml) and REGISTRY_*
# overrides. Works with the classic builder and with BuildKit.
#
# Build arguments:
#   NODE_IMAGE    the Node 22 base of both stages (default node:22-bookworm-slim); any Debian-based
#                 image with node and npm works (test/container/build-base.sh makes one offline).
#   NPM_CA        PEM certificates npm should trust in the build stage, for networks that reach
#                 the npm registry through a TLS-intercepting proxy or a private mirror:
#                   --build-arg NPM_CA="$(cat /usr/local/share/ca-certificates/*.crt)"
#   NPM_REGISTRY  another npm registry URL for the build stage (a mirror).
# Neither NPM_* value reaches the final image. Few instructions on purpose: with the classic
# builder every instruction is a container commit, which costs a copy of the image on vfs.
ARG NODE_IMAGE=node:22-bookworm-slim

FROM ${NODE_IMAGE} AS build
ARG NPM_CA=""
ARG NPM_REGISTRY=""
WORKDIR /app
COPY package.json package-lock.json ./
# Dependencies first, so a source change rebuilds only what follows. Install scripts are off for
# `npm ci` (our own `prepare` would compile sources that are not here yet); better-sqlite3's
# native addon is then built once: a prebuilt binary if one can be downloaded, else from source
# with a toolchain installed for this stage only.
RUN set -eu; \
    if [ -n "$NPM_CA" ]; then printf '%s\n' "$NPM_CA" >/tmp/npm-ca.pem; export npm_config_cafile=/tmp/npm-ca.pem; fi; \
    if [ -n "$NPM_REGISTRY" ]; then export npm_config_registry="$NPM_REGISTRY"; fi; \
    npm ci --no-audit --no-fund --ignore-scripts; \
    if ! npm rebuild better-sqlite3 >/tmp/prebuilt.log 2>&1; then \
      apt-get update -qq; \
      apt-get install -y -qq --no-install-recommends python3 make g++ >/dev/null; \
      npm rebuild better-sqlite3; \
    fi; \
    rm -rf /tmp/npm-ca.pem /tmp/prebuilt.log /root/.npm /var/lib/apt/lists/*
COPY . .
# Compile, drop dev dependencies, keep only the addon better-sqlite3 loads (its build tree and the
# SQLite sources are ~25 MB), and lay out the final file system under /out for one COPY.
RUN set -eu; \
    node_modules/.bin/tsc -p tsconfig.build.json; \
    npm prune --omit=dev --ignore-scripts --no-audit --no-fund; \
    # Type declarations, source maps and the browser/react-native builds of the object-store
    # SDKs are never loaded by Node: ~50 MB of the AWS and Azure packages.
    find node_modules \( -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' -o -name '*.map' \) -type f -delete; \
    find node_modules -type d -name dist-types -prune -exec rm -rf {} +; \
    rm -rf node_modules/@azure/*/dist/browser node_modules/@azure/*/dist/react-native; \
    addon=node_modules/better-sqlite3/build/Release/better_sqlite3.node; \
    mv "$addon" /tmp/addon.node; \
    rm -rf node_modules/better-sqlite3/build node_modules/better-sqlite3/deps node_modules/better-sqlite3/src; \
    mkdir -p "$(dirname "$addon")" /out/app /out/etc/docker/registry /data; \
    mv /tmp/addon.node "$addon"; \
    mv dist node_modules package.json /out/app/; \
    cp config/docker.yml /out/etc/docker/registry/config.yml; \
    rm -rf /root/.npm

FROM ${NODE_IMAGE}
COPY --from=build /out/ /
# The data directory belongs to the user the registry runs as (uid 1000: `node` in node images).
COPY --from=build --chown=1000:1000 /data/ /var/lib/registry/
LABEL org.opencontainers.image.title="stowage" \
      org.opencontainers.image.description="A pull-through caching OCI container registry, drop-in for registry:2" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="0.1.0"
# Numeric, so Kubernetes' runAsNonRoot can verify it.
USER 1000:1000
VOLUME /var/lib/registry
EXPOSE 5000
# Asks the running registry (its /v2/, at the address the config names) whether it is healthy:
# /v2/ answers 503 while a health check fails. Give it the same config path if you change CMD.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "/app/dist/cli.js", "healthcheck", "/etc/docker/registry/config.yml"]
# No V8 heap flags: a 1 GiB heap limit (used until 2026-12-03) made V8 collect 7x as often on
# the cold path, 7% more CPU for no lower peak (README, Memory).
ENTRYPOINT ["node", "/app/dist/cli.js"]
CMD ["serve", "/etc/docker/registry/config.yml"]
