#!/usr/bin/env bash
# Runs every benchmark side by side with its reference. Results: stdout and bench/results/.
set -euo pipefail
cd "$(dirname "$0")/.."
npm run build >/dev/null
node bench/registry.mjs "$@"
node bench/proxy.mjs "$@"
# The cold path with raw HTTP (curl), beside the direct pull and registry:2's proxy mode.
node bench/cold.mjs "$@"
# Cold pulls across a WAN stand-in (a userspace relay: RTT, per-connection rate): skopeo and
# dockerd direct vs through stowage vs registry:2's proxy; round trips; dead mirrors.
# Layer prefetch is on by default (WAN_PREFETCH=0 for a baseline). The relay proves its own RTT
# and rate first. Then the concurrent case again with the clients on a core of their own.
node bench/wan-relay.mjs --check
node --import=./node_modules/@tapjs/typescript/dist/esm/import.mjs bench/wan.mjs "$@"
taskset -c 0 node --import=./node_modules/@tapjs/typescript/dist/esm/import.mjs bench/wan.mjs --only concurrent --clients-cpu 1 "$@"
node bench/wan-h2.mjs
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
