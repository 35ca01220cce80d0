#!/usr/bin/env bash
# Builds the base images the Dockerfile and docker-compose.yml name, as local stand-ins (no image registry is
# needed): Debian bookworm from debootstrap, then `node:<major>-bookworm-slim` (this machine's node and npm) and
# the compose file's Redis image (Debian's redis-server). Each is rebuilt only when its recipe changes.
#   DOCKER_HOST=… standins.sh <redis image>   → prints the node image tag
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
redis_image=${1:?usage: standins.sh <redis image>}
node_major=$(node -p 'process.versions.node.split(".")[0]')
node_image=node:${node_major}-bookworm-slim
base_image=flashduck-standin/debian:bookworm
mirror=${FLASHDUCK_DEBIAN_MIRROR:-http://deb.debian.org/debian}
ca=/etc/ssl/certs/ca-certificates.crt

label() { docker image inspect -f '{{index .Config.Labels "flashduck.standin"}}' "$1" 2>/dev/null || true; }
log() { echo "stand-ins: $*" >&2; }

base_recipe=$( (cat "$0"; echo "$mirror") | sha256sum | cut -c1-16)
if [ "$(label "$base_image")" != "$base_recipe" ]; then
  log "debootstrap bookworm (minbase) from $mirror"
  command -v debootstrap >/dev/null 2>&1 || { echo "debootstrap is not installed (Debian: apt-get install debootstrap)" >&2; exit 3; }
  rootfs=$(mktemp -d /var/tmp/flashduck-rootfs.XXXXXX)
  trap 'rm -rf "$rootfs"' EXIT
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >/dev/null
  # As Debian's slim images: no package caches, lists, documentation or translations.
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc/* \
    "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/* "$rootfs"/usr/share/info/*
  tar -C "$rootfs" -c . | docker import --change "LABEL flashduck.standin=$base_recipe" --change 'CMD ["bash"]' - "$base_image" >/dev/null
  rm -rf "$rootfs"
  trap - EXIT
fi

node_recipe=$( (echo "$base_recipe"; cat "$here/standins/node/Dockerfile"; node --version; npm --version; sha256sum "$ca") | sha256sum | cut -c1-16)
if [ "$(label "$node_image")" != "$node_recipe" ]; then
  log "$node_image from this machine's node $(node --version) and npm $(npm --version)"
  ctx=$(mktemp -d /var/tmp/flashduck-node.XXXXXX)
  cp "$here/standins/node/Dockerfile" "$ctx/"
  cp "$(command -v node)" "$ctx/node"
  cp -r "$(npm root -g)/npm" "$ctx/npm"
  cp "$ca" "$ctx/ca-certificates.crt"
  DOCKER_BUILDKIT=0 docker build -q --label "flashduck.standin=$node_recipe" -t "$node_image" "$ctx" >/dev/null
  rm -rf "$ctx"
fi

redis_recipe=$( (echo "$base_recipe"; cat "$here/standins/redis/Dockerfile" "$here/standins/redis/docker-entrypoint.sh") | sha256sum | cut -c1-16)
if [ "$(label "$redis_image")" != "$redis_recipe" ]; then
  log "$redis_image from Debian's redis-server"
  DOCKER_BUILDKIT=0 docker build -q --label "flashduck.standin=$redis_recipe" -t "$redis_image" "$here/standins/redis" >/dev/null
fi
echo "$node_image"
