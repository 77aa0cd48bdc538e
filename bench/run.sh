#!/usr/bin/env bash
# Runs every benchmark side by side with its reference. Results: stdout and bench/results/.
set -euo pipefail
cd "$(dirname "$0")/.."
npm run build >/dev/null
node bench/registry.mjs "$@"
node bench/proxy.mjs "$@"
# The cold path with raw HTTP (curl), beside the direct pull and registry:2's proxy mode.
node bench/cold.mjs "$@"
# Object stores (Swift's S3 API): needs the Debian swift packages and memcached.
if command -v swift-proxy-server >/dev/null; then node --import=./node_modules/@tapjs/typescript/dist/esm/import.mjs bench/object-store.ts "$@"; fi
node bench/notify.mjs "$@"
node bench/security.mjs "$@"
node bench/http2.mjs
node bench/bundle.mjs "$@"
node bench/eviction.mjs "$@"
# The signature policy: a verified cold manifest fetch and warm GETs, policy on vs off.
node bench/policy.mjs
# Replicas: 1 on SQLite, 1 and 3 on PostgreSQL (Debian's postgresql), through nginx.
if [ -x /usr/lib/postgresql/15/bin/postgres ]; then node bench/replicas.mjs; fi
