#!/usr/bin/env bash
# Browser end-to-end tests (tests/browser/*.test.mjs) in headless Chromium through
# playwright-core: WebGPU on SwiftShader, the CPU fallback, bad input, and agreement with
# the native CLI. Builds what is missing, serves www/ on a free port, runs `node --test`.
# Screenshots land in target/browser-artifacts/. DPO_TEST_VERBOSE=1 echoes the page's console.
# Arguments name test files to run instead of all of them.
set -euo pipefail
cd "$(dirname "$0")/.."

# (Re)build the page when it is missing or older than the Rust sources: a stale wasm would
# test yesterday's library.
if [ ! -f www/pkg/dpo_bg.wasm ] || [ ! -f www/pkg-cpu/dpo_bg.wasm ] || [ ! -f www/vendor/uPlot.esm.js ] || [ ! -f www/samples/train.jsonl ] \
  || [ -n "$(find src Cargo.toml Cargo.lock .cargo -newer www/pkg/dpo_bg.wasm 2>/dev/null | head -n1)" ]; then
  scripts/build_web.sh
fi
[ -d node_modules/playwright-core ] || npm ci --no-audit --no-fund --silent
cargo build --release --bin dpo

# Debian's Chromium (it bundles SwiftShader's Vulkan for WebGPU). Never a downloaded browser.
if ! command -v chromium >/dev/null; then
  apt-get install -y chromium || { apt-get update && apt-get install -y chromium; }
fi

# Every test twice: on pages that are cross-origin isolated (serve.mjs's COOP + COEP: the CPU
# backend on threads) and on pages that are not (an embedding page without the headers: one
# thread). One test at a time: each trains a model, and two at once would only fight over
# 2 cores.
if [ $# -eq 0 ]; then set -- tests/browser/; fi
log=$(mktemp)
server=
failed=()
# `|| true`: under `set -e` a failing command in the trap would become the script's exit status,
# and the server is usually gone by then.
trap '[ -z "$server" ] || kill $server 2>/dev/null || true; rm -f "$log"' EXIT
for isolation in on off; do
  DPO_ISOLATION=$isolation node scripts/serve.mjs 0 >"$log" &
  server=$!
  url=
  for _ in $(seq 50); do
    url=$(head -n1 "$log")
    [ -n "$url" ] && break
    sleep 0.1
  done
  [ -n "$url" ] || { echo "the static server did not start" >&2; exit 1; }
  echo "== browser tests, $(sed -n 2p "$log")"
  DPO_ISOLATION=$isolation DPO_WEB_URL="$url" node --test --test-concurrency=1 --test-reporter=spec "$@" \
    || failed+=("isolation $isolation")
  kill $server
  wait $server 2>/dev/null || true
  server=
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "browser tests failed: ${failed[*]}" >&2
  exit 1
fi
