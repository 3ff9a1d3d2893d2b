#!/usr/bin/env bash
# tests/deps.sh [build|test|all]: install portier's Debian packages (as root).
# build: what compiling and running needs; test: plus the suite's clients.
set -euo pipefail
what=${1:-all}
build_pkgs=(build-essential meson ninja-build pkg-config curl openssl ca-certificates
  libevent-dev libssl-dev libnghttp2-dev libpcre2-dev libjansson-dev libhttp-parser-dev libyaml-dev)
test_pkgs=(python3 python3-pytest python3-pytest-timeout python3-requests python3-websockets python3-h2
  python3-cryptography nghttp2-client wrk clang docker-compose pebble linux-perf)
pkgs=("${build_pkgs[@]}")
[ "$what" = build ] || pkgs+=("${test_pkgs[@]}")
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
