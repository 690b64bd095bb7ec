#!/usr/bin/env bash
# `dpo bench` and scripts/bench_torch.py on this machine, in one go, then one side-by-side
# markdown table (ratios are dpo / torch: below 1 means dpo is faster or leaner) to append to
# BENCHMARKS.md. Run it on an otherwise idle machine: the cases run one after another, and
# anything else running skews both sides.
#
#   PYTHON=/path/to/venv/bin/python scripts/bench.sh
#
# Settings (environment):
#   PYTHON         a Python with torch and transformers (default: python3)
#   WORKLOADS      comma-separated (default: tiny,small; also gpt2-124m, micro)
#   STEPS, WARMUP  timed and untimed steps per case (default: 10 and 3)
#   DPO_BACKEND    cpu, wgpu, cuda (comma-separated) or all (default: dpo's own: cpu, plus
#                  wgpu on a hardware GPU)
#   TORCH_DEVICES  cpu, cuda or cpu,cuda (default: cpu, plus cuda when torch sees one)
#   OUT            where the raw JSON lines go (default: a new temporary folder)
#   DPO            a dpo binary to run instead of building one here (one built with
#                  `--features cuda`, or for a machine without cargo)
# dpo's wgpu and cuda rows are paired with torch's cuda rows, cpu with cpu.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
WORKLOADS="${WORKLOADS:-tiny,small}"
STEPS="${STEPS:-10}"
WARMUP="${WARMUP:-3}"
OUT="${OUT:-$(mktemp -d -t dpo-bench-XXXXXX)}"
mkdir -p "$OUT"

if [ -z "${TORCH_DEVICES:-}" ]; then
  TORCH_DEVICES=$("$PYTHON" -c 'import torch; print("cpu,cuda" if torch.cuda.is_available() else "cpu")')
fi
backend=()
[ -n "${DPO_BACKEND:-}" ] && backend=(--backend "$DPO_BACKEND")
common=(--workloads "$WORKLOADS" --steps "$STEPS" --warmup "$WARMUP" --json)

if [ -z "${DPO:-}" ]; then
  cargo build --release --quiet
  DPO=target/release/dpo
fi
echo "raw results: $OUT" >&2
# A failed case is a row with an "error" field; the table shows it, so go on either way.
"$DPO" bench "${common[@]}" "${backend[@]}" > "$OUT/dpo.jsonl" || true
"$PYTHON" scripts/bench_torch.py "${common[@]}" --device "$TORCH_DEVICES" > "$OUT/torch.jsonl" || true

python3 scripts/bench_table.py "$OUT/dpo.jsonl" "$OUT/torch.jsonl"
