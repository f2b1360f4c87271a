#!/usr/bin/env bash
# Installs ftccl's build and test dependencies from Debian packages (run as root;
# libssl-dev is OpenSSL's libcrypto, which authenticates the health channel),
# the baselines and plotting of bench/compare.py (libgloo-dev, gnuplot-nox), what
# bench/multihost.sh uses (iproute2, iperf3, procps for sysctl), and PyTorch for the
# torch.distributed backend (python3-torch, libtorch-dev, pybind11-dev), and clang with
# its libFuzzer runtime for the fuzz targets (scripts/fuzz.sh), and clang-format 14, which
# scripts/check_format.sh pins.
# Skips apt entirely when everything is already there.
# usage: scripts/install_deps.sh
case "${1:-}" in -h | --help) sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"; exit 0 ;; esac
set -euo pipefail
packages=(build-essential cmake ninja-build pkg-config libucx-dev ucx-utils libopenmpi-dev
          openmpi-bin libhwloc-dev libgtest-dev libgmock-dev libspdlog-dev libssl-dev libgloo-dev
          gnuplot-nox iproute2 iperf3 procps python3-torch libtorch-dev pybind11-dev
          clang libclang-rt-14-dev clang-format-14)
missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install_deps: all ${#packages[@]} packages present"
  exit 0
fi
echo "install_deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
