#!/usr/bin/env bash
# The whole test suite: unit and integration tests in release mode (the training tests
# need optimised code), the wgpu ones on whatever Vulkan device exists (lavapipe in CI).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --release --locked "$@"
