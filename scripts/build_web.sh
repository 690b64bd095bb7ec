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

# The CPU-only module (www/pkg-cpu): no WebGPU backend, a fraction of the download, loaded
# where WebGPU is missing or not chosen; built with threads (rayon on Web Workers over shared
# memory, used where the page is cross-origin isolated). Threads need std rebuilt with atomics:
# a pinned nightly with rust-src, and its own target folder (other flags, other toolchain).
# RUSTFLAGS replaces .cargo/config.toml's wasm flags, so they are repeated here. The memory may
# grow to 4 GiB, as the single-threaded module's does.
nightly=nightly-2026-10-29
rustup toolchain list | grep -q "^$nightly" \
  || rustup toolchain install "$nightly" --profile minimal -c rust-src -t wasm32-unknown-unknown
threads_target="${CARGO_TARGET_DIR:-target}/wasm-threads"
# Every crate (std too) optimised for size but the ones the step spends its time in: 2.72 ->
# 2.42 MB gzipped, and its threaded step 0.75x, faster than on one thread in every round
# (BENCHMARKS.md, 2026-12-08). With the kernels at "s" too: 2.08 MB, but a slower step.
size_opts=(--config 'profile.release.opt-level="s"')
for crate in dpo burn-flex gemm gemm-common gemm-f32 macerator rayon-core; do
  size_opts+=(--config "profile.release.package.$crate.opt-level=3")
done
# The link flags go to the final module only (`cargo rustc`): a shared, imported memory and
# the thread-local storage exports wasm-bindgen's thread start-up calls.
RUSTFLAGS='-C target-feature=+simd128,+atomics,+bulk-memory,+mutable-globals --cfg getrandom_backend="wasm_js"' \
  CARGO_TARGET_DIR="$threads_target" \
  cargo "+$nightly" "${size_opts[@]}" rustc --lib --crate-type cdylib --release --locked --target wasm32-unknown-unknown \
  --no-default-features --features threads -Z build-std=panic_abort,std -- \
  -C link-arg=--shared-memory -C link-arg=--import-memory -C link-arg=--max-memory=4294967296 \
  -C link-arg=--export=__wasm_init_tls -C link-arg=--export=__tls_size \
  -C link-arg=--export=__tls_align -C link-arg=--export=__tls_base
rm -rf www/pkg-cpu
wasm-bindgen --target web --no-typescript --out-dir www/pkg-cpu \
  "$threads_target/wasm32-unknown-unknown/release/dpo.wasm"
# wasm-bindgen-rayon's worker script lands in a folder named with a hash: a fixed name lets the
# service worker's offline list (www/sw.js) name it. Its call of the module's init uses the
# deprecated positional form (a console warning per thread): the object form instead.
helpers=www/pkg-cpu/snippets/wasm-bindgen-rayon/src/workerHelpers.no-bundler.js
mv www/pkg-cpu/snippets/wasm-bindgen-rayon-*/ www/pkg-cpu/snippets/wasm-bindgen-rayon/
sed -i 's#/snippets/wasm-bindgen-rayon-[0-9a-f]*/#/snippets/wasm-bindgen-rayon/#' www/pkg-cpu/dpo.js
sed -i 's#pkg.default(data.module, data.memory)#pkg.default({ module_or_path: data.module, memory: data.memory })#' "$helpers"
grep -q 'module_or_path: data.module' "$helpers" || { echo "$helpers: its init call changed; update build_web.sh" >&2; exit 1; }

# npm's binaryen drops the function-name section: 46 -> 39 MB raw, 8.5 -> 7.0 MB gzipped, in
# under a minute. (-Oz, measured 2026-11-30 on this build: 26 MB raw but the same 7.0 MB
# gzipped, for 17 CPU-minutes per build: not worth it.)
strip_names() {
  node_modules/.bin/wasm-opt --strip-debug --strip-producers --enable-simd --enable-bulk-memory \
    --enable-reference-types --enable-nontrapping-float-to-int --enable-sign-ext \
    --enable-multivalue --enable-mutable-globals --enable-threads "$1" -o "$1.stripped"
  mv "$1.stripped" "$1"
}
wasm=www/pkg/dpo_bg.wasm
cpu_wasm=www/pkg-cpu/dpo_bg.wasm
strip_names "$wasm"
strip_names "$cpu_wasm"

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
echo "web build ready: www/ (transferred gzipped: WebGPU module $(gz "$wasm") + glue $(gz www/pkg/dpo.js); CPU-only module $(gz "$cpu_wasm") + glue $(gz www/pkg-cpu/dpo.js "$helpers"))"
