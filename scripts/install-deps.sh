#!/usr/bin/env bash
# Installs what agentlock needs to build and test, from Debian 12 packages. Idempotent: packages
# already installed are not touched, and `apt-get update` runs only when something is missing.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config git python3
  libboost1.81-dev libboost-json1.81-dev libspdlog-dev libgtest-dev libgmock-dev libsystemd-dev
  tmux golang-go systemd prometheus-node-exporter libssl-dev etcd-server etcd-client
)
if [[ "${AGENTLOCK_EXTRA_PACKAGES:-}" != "" ]]; then
  read -r -a extra <<<"${AGENTLOCK_EXTRA_PACKAGES}"
  packages+=("${extra[@]}")
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} > 0)); then
  echo "install-deps: installing ${missing[*]}"
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "install-deps: all ${#packages[@]} packages present"
fi
