#!/usr/bin/env bash
# Builds the browser trainer into www/: the wasm package (www/pkg), the page's npm
# dependencies (www/vendor) and the shipped data (www/samples: pairs, reward_kl.json).
# Idempotent and offline once the tools are installed (the first run installs
# wasm-bindgen-cli and wasm-pack with cargo, ~8 minutes on 2 cores). Everything it writes is
# a build output, ignored by git.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target list --installed | grep -qx wasm32-unknown-unknown \
  || rustup target add wasm32-unknown-unknown

# wasm-bindgen's CLI must match the library version in Cargo.lock exactly, or the generated
# JS glue and the wasm disagree. Without --locked: a locked install fails on a yanked crate.
want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
have=$(wasm-bindgen --version 2>/dev/null | awk '{ print $2 }' || true)
if [ "$have" != "$want" ]; then
  echo "installing wasm-bindgen-cli $want (found: ${have:-none})"
  cargo install wasm-bindgen-cli --version "$want" --force
fi
command -v wasm-pack >/dev/null || cargo install wasm-pack

# npm ci starts from an empty node_modules: skip it when the installed tree already matches.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --silent
fi

# --no-opt: wasm-pack's own wasm-opt is a download (none here), and Debian's (binaryen 108)
# breaks current wasm-bindgen output (an externref table error at load). .cargo/config.toml
# sets the wasm rustflags (simd128, getrandom backend).
wasm-pack build --target web --release --no-opt --out-dir www/pkg --no-typescript

# npm's binaryen drops the function-name section: 46 -> 39 MB raw, 8.5 -> 7.0 MB gzipped, in
# under a minute. (-Oz, measured 2026-11-30 on this build: 26 MB raw but the same 7.0 MB
# gzipped, for 17 CPU-minutes per build: not worth it.)
wasm=www/pkg/dpo_bg.wasm
node_modules/.bin/wasm-opt --strip-debug --strip-producers --enable-simd --enable-bulk-memory \
  --enable-reference-types --enable-nontrapping-float-to-int --enable-sign-ext \
  --enable-multivalue --enable-mutable-globals "$wasm" -o "$wasm.stripped"
mv "$wasm.stripped" "$wasm"

# The page imports only its own origin: vendor the ES-module builds next to it.
mkdir -p www/vendor www/samples
cp node_modules/uplot/dist/uPlot.esm.js node_modules/uplot/dist/uPlot.min.css www/vendor/
cp node_modules/fflate/esm/browser.js www/vendor/fflate.js
cp examples/data/train.jsonl examples/data/heldout.jsonl www/samples/
cp examples/data/formats/*.jsonl www/samples/
# The lesson's reward-vs-KL chart plots what the native experiment measured; before that file
# exists the page says so (and a stale copy must not outlive its source).
if [ -f docs/reward_kl.json ]; then cp docs/reward_kl.json www/samples/; else rm -f www/samples/reward_kl.json; fi

# What a browser downloads for the trainer, gzip-compressed as scripts/serve.mjs (or any web
# server) sends it: the wasm and its JS glue.
gz() { gzip -c "$@" | wc -c | awk '{ printf "%.2f MB", $1 / 1e6 }'; }
echo "web build ready: www/ (wasm $(du -m "$wasm" | cut -f1) MB raw; transferred gzipped: wasm $(gz "$wasm"), glue $(gz www/pkg/dpo.js))"
