#!/usr/bin/env bash
# Make sure a Docker engine is running and the vllm simulator image is built.
#
# Idempotent; meant to run as root (CI, tests, a developer's machine):
#   1. if `docker info` works, keep the running engine; otherwise install
#      docker.io (apt-get) when dockerd is missing and start dockerd in the
#      background (log: /var/log/dockerd.log), waiting until it answers;
#   2. make sure the base image $SIM_BASE_IMAGE exists; image registries are
#      not reachable here, so it is built locally with debootstrap
#      (minbase + python3) from the Debian mirror apt is configured with and
#      imported with `docker import`; the rootfs tarball is cached under
#      ${XDG_CACHE_HOME:-$HOME/.cache}/deepseek-r1-ascend/;
#   3. build the simulator image $SIM_IMAGE from sim/ and the flag parser it
#      shares with validation (core/vllm_args.py, core/vllm_flags_*.json);
#   4. install Debian's prometheus (with promtool) when missing, and build the
#      local stack's Prometheus image $PROM_IMAGE from it (sim/prometheus/);
#   5. build the local stack's front door image $DOOR_IMAGE from Debian's
#      haproxy package (sim/front-door/);
#   6. build the local stack's router image $ROUTER_IMAGE from PyPI's pinned
#      vllm-router wheels (sim/router/): pip downloads them on the host (PyPI is
#      reachable from it, not from a build) and installs them offline in the image.
#
# Environment:
#   SIM_BASE_IMAGE   base image name      (default deepseek-sim-base:bookworm)
#   SIM_IMAGE        simulator image name (default deepseek-r1-ascend-sim:0.1)
#   SIM_SUITE        Debian suite         (default bookworm)
#   DEBIAN_MIRROR    mirror URL           (default: from apt's sources)
#   DOCKERD_WAIT     seconds to wait for dockerd (default 60)
#   PROM_IMAGE       local Prometheus image (default deepseek-r1-ascend-prometheus:0.1)
#   DOOR_IMAGE       local front door image (default deepseek-r1-ascend-front-door:0.1)
#   ROUTER_IMAGE     local router image (default deepseek-r1-ascend-router:0.1)
#   SKIP_SIM_BUILD=1 only ensure the engine (and base image)
#   TOOLS_ONLY=1     only install prometheus/promtool (no Docker at all)
set -euo pipefail

log() { echo "docker-engine: $*" >&2; }
die() { echo "docker-engine: ERROR: $*" >&2; exit 1; }

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SIM_BASE_IMAGE="${SIM_BASE_IMAGE:-deepseek-sim-base:bookworm}"
SIM_IMAGE="${SIM_IMAGE:-deepseek-r1-ascend-sim:0.1}"
SIM_SUITE="${SIM_SUITE:-bookworm}"
PROM_IMAGE="${PROM_IMAGE:-deepseek-r1-ascend-prometheus:0.1}"
DOOR_IMAGE="${DOOR_IMAGE:-deepseek-r1-ascend-front-door:0.1}"
ROUTER_IMAGE="${ROUTER_IMAGE:-deepseek-r1-ascend-router:0.1}"
DOCKERD_WAIT="${DOCKERD_WAIT:-60}"
CACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/deepseek-r1-ascend"

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    die "need root to run: $*"; fi
}

# ---------------------------------------------------------------- engine
ensure_engine() {
  if docker info >/dev/null 2>&1; then
    log "docker engine already running"
    return 0
  fi
  if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
    log "installing docker.io with apt-get"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null \
      || die "apt-get install docker.io failed"
  fi
  if ! pgrep -x dockerd >/dev/null 2>&1; then
    log "starting dockerd in the background (log: /var/log/dockerd.log)"
    # setsid: keep dockerd alive when the calling job's process group ends
    as_root sh -c 'setsid nohup dockerd >>/var/log/dockerd.log 2>&1 </dev/null &'
  else
    log "dockerd process exists; waiting for it to answer"
  fi
  local i=0
  while ! docker info >/dev/null 2>&1; do
    i=$((i + 1))
    if [ "$i" -gt "$DOCKERD_WAIT" ]; then
      tail -n 20 /var/log/dockerd.log >&2 2>/dev/null || true
      die "dockerd did not come up within ${DOCKERD_WAIT}s (see /var/log/dockerd.log); Docker cannot run on this machine"
    fi
    sleep 1
  done
  log "docker engine is up ($(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?'))"
}

# ---------------------------------------------------------------- base image
apt_mirror() {
  if [ -n "${DEBIAN_MIRROR:-}" ]; then echo "$DEBIAN_MIRROR"; return; fi
  local url=""
  # deb822 sources: "URIs: http://.../debian" (skip the security archive)
  url=$(grep -hsE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null \
        | awk '{for (i=2;i<=NF;i++) print $i}' | grep -v -- '-security' | grep '/debian' | head -n1 || true)
  if [ -z "$url" ]; then
    # one-line sources: "deb [opts] http://.../debian bookworm main"
    url=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
          | grep -E '^deb ' | sed -E 's/\[[^]]*\]//' | awk '{print $2}' \
          | grep -v -- '-security' | grep '/debian' | head -n1 || true)
  fi
  echo "${url:-http://deb.debian.org/debian}"
}

ensure_base_image() {
  if docker image inspect "$SIM_BASE_IMAGE" >/dev/null 2>&1; then
    log "base image $SIM_BASE_IMAGE present"
    return 0
  fi
  mkdir -p "$CACHE_DIR"
  local tarball="$CACHE_DIR/rootfs-${SIM_SUITE}-minbase-python3.tar"
  if [ ! -s "$tarball" ]; then
    command -v debootstrap >/dev/null 2>&1 || {
      log "installing debootstrap with apt-get"
      as_root apt-get update -qq
      as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
    }
    local mirror dir
    mirror="$(apt_mirror)"
    dir="$(mktemp -d "$CACHE_DIR/rootfs.XXXXXX")"
    log "debootstrap --variant=minbase --include=python3 $SIM_SUITE $dir $mirror (a few minutes)"
    if ! as_root debootstrap --variant=minbase --include=python3 "$SIM_SUITE" "$dir" "$mirror" \
         >"$CACHE_DIR/debootstrap.log" 2>&1; then
      tail -n 20 "$CACHE_DIR/debootstrap.log" >&2 || true
      as_root rm -rf "$dir"
      die "debootstrap failed (log: $CACHE_DIR/debootstrap.log)"
    fi
    # keep the image small: drop apt lists and caches, docs
    as_root rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/* \
      "$dir"/usr/share/doc/* "$dir"/usr/share/man/* || true
    as_root tar -C "$dir" -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    as_root rm -rf "$dir"
    log "cached rootfs tarball: $tarball"
  else
    log "using cached rootfs tarball $tarball"
  fi
  log "docker import $tarball $SIM_BASE_IMAGE"
  docker import --change 'CMD ["/bin/bash"]' "$tarball" "$SIM_BASE_IMAGE" >/dev/null
}

# ---------------------------------------------------------------- sim image
build_sim_image() {
  # The context is sim/ plus what the simulator shares with validation: core/vllm_args.py
  # and vllm's flag table, so the image parses `vllm serve` exactly as validation reads it.
  local out context
  out="$(mktemp)"
  context="$(mktemp -d)"
  cp -r "$REPO_ROOT/sim/." "$context/"
  mkdir "$context/core"
  cp "$REPO_ROOT/core/__init__.py" "$REPO_ROOT/core/vllm_args.py" "$REPO_ROOT"/core/vllm_flags_*.json "$context/core/"
  log "docker build --build-arg BASE_IMAGE=$SIM_BASE_IMAGE -t $SIM_IMAGE (sim/ + core/vllm_args.py + flag table)"
  if ! docker build --build-arg "BASE_IMAGE=$SIM_BASE_IMAGE" -t "$SIM_IMAGE" "$context" \
       >"$out" 2>&1; then
    tail -n 30 "$out" >&2
    rm -rf "$out" "$context"
    die "docker build of $SIM_IMAGE failed"
  fi
  rm -rf "$out" "$context"
  log "image $SIM_IMAGE ready"
}

# ---------------------------------------------------------------- prometheus
ensure_prometheus_tools() {
  if command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; then
    return 0
  fi
  log "installing prometheus (with promtool) with apt-get"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null \
    || die "apt-get install prometheus failed"
}

# Build image $1 on the base image from the prepared context directory $2 (removed after), $3
# saying what it holds.
build_in_context() {
  local image="$1" context="$2" what="$3"
  log "docker build --build-arg BASE_IMAGE=$SIM_BASE_IMAGE -t $image ($what)"
  if ! docker build --build-arg "BASE_IMAGE=$SIM_BASE_IMAGE" -t "$image" "$context" >"$context/build.log" 2>&1; then
    tail -n 30 "$context/build.log" >&2
    rm -rf "$context"
    die "docker build of $image failed"
  fi
  rm -rf "$context"
  log "image $image ready"
}

build_prometheus_image() {
  local context
  context="$(mktemp -d)"
  cp "$REPO_ROOT/sim/prometheus/Dockerfile" "$(command -v prometheus)" "$context/"
  build_in_context "$PROM_IMAGE" "$context" "Debian's prometheus"
}

# ---------------------------------------------------------------- front door
# haproxy's libraries that a minbase root with python3 lacks (apt-cache depends haproxy).
DOOR_DEBS="haproxy liblua5.3-0 libopentracing-c-wrapper0 libopentracing1"

build_front_door_image() {
  local context
  context="$(mktemp -d)"
  mkdir -p "$context/debs" "$context/rootfs"
  cp "$REPO_ROOT/sim/front-door/Dockerfile" "$context/"
  # Downloaded, not installed: the deploying machine runs no haproxy of its own.
  if ! (cd "$context/debs" && apt-get download $DOOR_DEBS >"$context/download.log" 2>&1); then
    as_root apt-get update -qq
    (cd "$context/debs" && apt-get download $DOOR_DEBS >"$context/download.log" 2>&1) \
      || { tail -n 20 "$context/download.log" >&2; rm -rf "$context"; die "apt-get download $DOOR_DEBS failed"; }
  fi
  for deb in "$context"/debs/*.deb; do dpkg-deb -x "$deb" "$context/rootfs"; done
  # Only /usr: the base links /lib and /bin into it, and COPY must not replace those links.
  find "$context/rootfs" -mindepth 1 -maxdepth 1 ! -name usr -exec rm -rf {} +
  build_in_context "$DOOR_IMAGE" "$context" "Debian's haproxy"
}

# ---------------------------------------------------------------- router
# The base's python3 is CPython 3.11; the wheels must fit it and this machine's architecture,
# whatever Python the host runs. sim/router/constraints.txt pins every version.
build_router_image() {
  local context arch
  context="$(mktemp -d)"
  mkdir -p "$context/wheels"
  cp "$REPO_ROOT/sim/router/Dockerfile" "$REPO_ROOT/sim/router/constraints.txt" "$context/"
  case "$(uname -m)" in
    x86_64 | amd64) arch=x86_64 ;;
    aarch64 | arm64) arch=aarch64 ;;
    *) rm -rf "$context"; die "no vllm-router wheels for $(uname -m)" ;;
  esac
  if ! python3 -m pip --version >/dev/null 2>&1; then
    log "installing python3-pip with apt-get (to download the router's wheels)"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-pip >/dev/null \
      || die "apt-get install python3-pip failed"
  fi
  log "pip download vllm-router and its dependencies (sim/router/constraints.txt, cp311 $arch)"
  if ! python3 -m pip download --disable-pip-version-check --quiet --dest "$context/wheels" \
       --only-binary=:all: --implementation cp --python-version 3.11 \
       --platform "manylinux_2_28_$arch" --platform "manylinux_2_17_$arch" \
       --platform "manylinux2014_$arch" --platform "manylinux_2_5_$arch" \
       --platform "manylinux1_$arch" --platform any \
       --constraint "$context/constraints.txt" vllm-router pip >"$context/download.log" 2>&1; then
    tail -n 20 "$context/download.log" >&2
    rm -rf "$context"
    die "pip download of vllm-router failed (is PyPI reachable from this machine?)"
  fi
  build_in_context "$ROUTER_IMAGE" "$context" "vllm-router from PyPI"
}

ensure_prometheus_tools
if [ "${TOOLS_ONLY:-0}" = "1" ]; then
  exit 0
fi
ensure_engine
ensure_base_image
if [ "${SKIP_SIM_BUILD:-0}" != "1" ]; then
  build_sim_image
  build_prometheus_image
  build_front_door_image
  build_router_image
fi
