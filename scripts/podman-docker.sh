#!/usr/bin/env bash
# A Docker API for docker-compose on a machine with no Docker engine: Debian's podman (with runc)
# serves it on a private socket. Used by tests/deploy/compose_up_test.py; usable by hand:
#
#   eval "$(scripts/podman-docker.sh start /tmp/katy-podman)"   # prints: export DOCKER_HOST=...
#   docker-compose up -d --scale responder=3
#   scripts/podman-docker.sh stop /tmp/katy-podman
#
# start also makes the images a user elsewhere pulls, for a machine that can pull nothing:
# debian:bookworm and bookworm-slim from Debian's mirror (debootstrap), and stand-ins for
# redis:7 and prom/prometheus built from Debian's packages on that base (tests/deploy/*.Dockerfile).
# An image that is already there (pulled, or made by an earlier start) is kept as it is.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

usage() { echo "usage: scripts/podman-docker.sh start|stop DIR" >&2; exit 2; }
[[ $# -eq 2 ]] || usage
action=$1
dir=$2

# Project-local podman settings (nothing in /etc changes): runc, as crun cannot run in this
# kind of machine's cgroup setup, and limits that fit a container inside it.
export CONTAINERS_CONF="$root/tests/deploy/containers.conf"

# The Debian mirror this machine's apt uses, so the base image gets the same packages.
debian_mirror() {
  local uri
  uri=$(grep -hoE '^(URIs:|deb) +https?://[^ ]+' /etc/apt/sources.list /etc/apt/sources.list.d/*.sources \
    /etc/apt/sources.list.d/*.list 2>/dev/null | grep -v security | head -n 1 | awk '{print $2}')
  echo "${uri:-http://deb.debian.org/debian}"
}

make_base_image() {
  podman image exists docker.io/library/debian:bookworm && podman image exists docker.io/library/debian:bookworm-slim &&
    return 0
  echo "podman-docker: making debian:bookworm with debootstrap" >&2
  local rootfs="$dir/rootfs"
  rm -rf "$rootfs"
  debootstrap --variant=minbase bookworm "$rootfs" "$(debian_mirror)" >"$dir/debootstrap.log" 2>&1 ||
    { tail -n 20 "$dir/debootstrap.log" >&2; exit 1; }
  tar -C "$rootfs" -c . | podman import -q - docker.io/library/debian:bookworm >/dev/null
  podman tag docker.io/library/debian:bookworm docker.io/library/debian:bookworm-slim
  rm -rf "$rootfs"
}

# Builds tests/deploy/NAME.Dockerfile as IMAGE unless IMAGE is already there.
make_stand_in() {
  local name=$1 image=$2
  podman image exists "$image" && return 0
  echo "podman-docker: building a stand-in for $image from Debian's packages" >&2
  podman build -q --pull=never --format docker -t "$image" -f "$root/tests/deploy/$name.Dockerfile" \
    "$root/tests/deploy" >/dev/null
}

start() {
  KATY_EXTRA_PACKAGES="podman runc debootstrap golang-github-containernetworking-plugin-dnsname docker-compose" \
    "$root/scripts/setup.sh"
  mkdir -p "$dir"
  make_base_image
  make_stand_in redis docker.io/library/redis:7
  make_stand_in prometheus docker.io/prom/prometheus:v2.42.0
  local socket="$dir/podman.sock"
  if [[ ! -S "$socket" ]] || ! kill -0 "$(cat "$dir/podman.pid" 2>/dev/null)" 2>/dev/null; then
    rm -f "$socket"
    setsid podman system service --time=0 "unix://$socket" >"$dir/podman-service.log" 2>&1 &
    echo $! >"$dir/podman.pid"
    for _ in $(seq 1 100); do [[ -S "$socket" ]] && break; sleep 0.1; done
    [[ -S "$socket" ]] || { echo "podman-docker: the API did not start" >&2; cat "$dir/podman-service.log" >&2; exit 1; }
  fi
  echo "export DOCKER_HOST=unix://$socket CONTAINERS_CONF=$CONTAINERS_CONF"
}

stop() {
  local pid
  pid=$(cat "$dir/podman.pid" 2>/dev/null || true)
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$dir/podman.sock" "$dir/podman.pid"
}

case "$action" in
  start) start ;;
  stop) stop ;;
  *) usage ;;
esac
