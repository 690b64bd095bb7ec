#!/usr/bin/env bash
# The whole test suite: Rust unit and integration tests in release mode (the training tests
# need optimised code; the wgpu ones run on whatever Vulkan device exists, lavapipe in CI),
# then the browser end-to-end tests in headless Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo test --release --locked "$@"
scripts/test_browser.sh
