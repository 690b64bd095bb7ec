#!/usr/bin/env bash
# Installs what building and testing need beyond a Rust toolchain and Node.js: Mesa's Vulkan
# drivers (lavapipe gives the wgpu path a device on machines without a GPU) and Debian's
# Chromium for the browser tests. Idempotent; skips what is already there.
set -euo pipefail

need_apt=()
dpkg -s mesa-vulkan-drivers >/dev/null 2>&1 || need_apt+=(mesa-vulkan-drivers)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
if [ ${#need_apt[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1; then
    sudo_cmd=""
    [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "setup: please install a Vulkan driver (Mesa's lavapipe works without a GPU) and Chromium: ${need_apt[*]}" >&2
  fi
fi
