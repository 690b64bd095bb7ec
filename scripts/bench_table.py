#!/usr/bin/env python3
"""The side-by-side markdown table of one benchmark sitting, for BENCHMARKS.md.

    python scripts/bench_table.py DPO_JSONL TORCH_JSONL

DPO_JSONL holds `dpo bench --json` lines (any backends), TORCH_JSONL `scripts/bench_torch.py
--json` lines. Ratios are dpo / torch: below 1 means dpo is faster or leaner. dpo's wgpu and
cuda rows pair with torch's cuda rows, cpu with cpu. Only the standard library is needed.
"""
import json, platform, subprocess, sys, datetime

def rows(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.startswith("{")]

def sh(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True).stdout.strip()
    except OSError:
        return ""

dpo, torch = rows(sys.argv[1]), rows(sys.argv[2])
pair = {"cpu": "cpu", "wgpu": "cuda", "cuda": "cuda"}
key = lambda r, backend: (r["workload"], backend, r["mode"])
torch_by = {key(r, r["backend"]): r for r in torch}
mib = lambda b: "-" if b is None else f"{b / 2**20:.1f}"
ratio = lambda a, b: "-" if a is None or not b else f"{a / b:.2f}"
get = lambda r, k: None if r is None or "error" in r else r.get(k)
num = lambda x, places: "-" if x is None else f"{x:.{places}f}"

cpu = sh("sh", "-c", "lscpu | sed -n 's/^Model name: *//p'") or platform.processor()
gpu = sh("sh", "-c", "nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null")
commit = sh("git", "describe", "--always", "--dirty")
print(f"### {datetime.date.today()} — {commit}\n")
print(f"- machine: {platform.system()} {platform.machine()}, {cpu}, "
      f"{sh('nproc')} cores" + (f", {gpu}" if gpu else ""))
for device in dict.fromkeys(r["device"] for r in dpo + torch if "device" in r):
    print(f"- device: {device}")
versions = {r.get("torch") for r in torch if r.get("torch")}
if versions:
    print(f"- torch {', '.join(sorted(versions))}, fp32 eager, logps `full`")
first = next((r for r in dpo + torch if "steps" in r), {})
print(f"- steps: {first.get('warmup')} warm-up + {first.get('steps')} timed, median reported\n")

print("| workload | mode | dpo on | torch on | dpo ms/step | torch ms/step | time ratio "
      "| dpo tokens/s | torch tokens/s | dpo peak MiB | torch peak MiB | memory ratio "
      "| dpo largest MiB |")
print("|" + " --- |" * 13)
for r in dpo:
    t = torch_by.get(key(r, pair.get(r["backend"])))
    cells = [r["workload"], r["mode"], r["backend"], t["backend"] if t else "-",
             num(get(r, "ms_per_step"), 1), num(get(t, "ms_per_step"), 1),
             ratio(get(r, "ms_per_step"), get(t, "ms_per_step")),
             num(get(r, "tokens_per_s"), 0), num(get(t, "tokens_per_s"), 0),
             mib(get(r, "peak_bytes")), mib(get(t, "peak_bytes")),
             ratio(get(r, "peak_bytes"), get(t, "peak_bytes")),
             mib(get(r, "largest_alloc_bytes"))]
    print("| " + " | ".join(cells) + " |")

# The precomputed-reference goal compares modes of one implementation. On the CPU the peak is
# the process's RSS, whose start (runtime and libraries: hundreds of MiB for torch) is not the
# workload's, so that part is subtracted there.
print("\n| workload | on | dpo precomputed / two-model peak | torch precomputed / two-model peak |")
print("| --- | --- | --- | --- |")
def own(r):
    peak = get(r, "peak_bytes")
    if peak is None or r.get("peak_source") != "process RSS":
        return peak
    return peak - (r.get("start_rss_bytes") or 0)
by = lambda rs, backend: {(r["workload"], r["mode"]): r for r in rs if r["backend"] == backend}
for backend in dict.fromkeys(r["backend"] for r in dpo):
    d, t = by(dpo, backend), by(torch, pair.get(backend))
    for workload in dict.fromkeys(w for w, _ in d):
        m = lambda rs, mode: own(rs.get((workload, mode)))
        print(f"| {workload} | {backend} | {ratio(m(d, 'precomputed'), m(d, 'two-model'))} "
              f"| {ratio(m(t, 'precomputed'), m(t, 'two-model'))} |")
failed = [r for r in dpo + torch if "error" in r]
for r in failed:
    print(f"\nfailed: {r.get('impl', 'dpo')} {r['workload']} {r['backend']} {r['mode']}: {r['error']}")
