#!/usr/bin/env bash
# Installs the Debian 12 packages Katy needs to build, test and run. Idempotent: it asks apt
# only for what is missing, so a machine that has everything is not touched.
set -euo pipefail

packages=(
  g++ cmake ninja-build pkg-config make git curl ca-certificates
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libpistache-dev libhiredis-dev nlohmann-json3-dev libsimdjson-dev libcurl4-openssl-dev libssl-dev
  libre2-dev libyaml-cpp-dev prometheus-cpp-dev libgtest-dev libgmock-dev libbenchmark-dev
  redis-server redis-tools python3
)
# Extra packages for a caller's purpose, e.g. KATY_EXTRA_PACKAGES="clang-14 wrk".
if [[ -n "${KATY_EXTRA_PACKAGES:-}" ]]; then
  read -r -a extra <<<"$KATY_EXTRA_PACKAGES"
  packages+=("${extra[@]}")
fi

missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "setup: installing ${missing[*]}" >&2
sudo=""
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "setup: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
