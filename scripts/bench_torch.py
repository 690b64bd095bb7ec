#!/usr/bin/env python3
"""The PyTorch side of `dpo bench`: the workloads of BENCHMARKS.md, the same DPO step, the same report.

    python scripts/bench_torch.py [--workloads tiny,small] [--device cpu,cuda]
        [--modes two-model,precomputed] [--steps 10] [--warmup 3]
        [--dtype fp32|bf16] [--compile] [--logps full|trl-fused] [--json]

Needs torch and transformers (and trl for --logps trl-fused); nothing is downloaded. Not run by
CI: scripts/bench.sh runs it beside `dpo bench` on one machine.

A case is one workload on one device in one reference mode, run in its own child process (this
script with --case) so that each case's peak RSS is its own. A case builds transformers'
GPT2LMHeadModel from a GPT2Config of the workload's shape (dropout off, as TRL's DPOTrainer
does), random pairs of exactly `seq` tokens whose first seq/4 are a shared prompt, and times
`warmup + steps` DPO steps; the timed steps' median is reported. One step, as TRL does it:

- one forward of the policy over chosen and rejected together ([2 x pairs, seq]);
- sequence log-probs: with --logps full (the default), full [2P, seq, vocab] logits,
  log_softmax, gather, completion-mask sum; with --logps trl-fused, TRL 1.x's fused LM head
  (`add_fused_lm_head`; only completion positions, in tiles), as DPOTrainer itself calls it;
- the reference: a frozen copy's forward under no_grad (two-model), or log-probs computed once
  before the first step (precomputed);
- sigmoid loss (beta 0.1), backward, global-norm clipping at 1.0, torch.optim.AdamW
  (lr 1e-4, weight decay 0.01), and one read of the step's metrics (loss, rewards, grad norm),
  the only host sync, as the dpo Trainer makes one read per step.

Differences from the Rust side, none of which changes the work measured: token ids come from
another generator (same shape and distribution), and the learning rate is constant (dpo's
schedule changes a scalar). transformers picks its attention implementation (sdpa here); the
JSON records it.

Peak memory: torch.cuda.max_memory_allocated on CUDA (max_memory_reserved is reported too),
the process's peak RSS on the CPU (`start_rss_bytes` is that peak after importing torch and
before the model exists).
"""

import argparse
import copy
import json
import resource
import statistics
import subprocess
import sys
import time

# name: (vocab, d_model, layers, heads, seq, pairs), as in src/bench/mod.rs ("micro" is test-sized).
WORKLOADS = {
    "micro": (1024, 64, 2, 2, 64, 4),
    "tiny": (4096, 128, 4, 4, 128, 16),
    "small": (8192, 256, 6, 8, 256, 16),
    "gpt2-124m": (50257, 768, 12, 12, 512, 8),
}
MODES = ("two-model", "precomputed")
BETA = 0.1


def peak_rss_bytes():
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # macOS: bytes, Linux: KiB


def random_batch(torch, workload, seed, device):
    vocab, _, _, _, seq, pairs = WORKLOADS[workload]
    prompt_len = seq // 4
    gen = torch.Generator().manual_seed(seed)
    prompt = torch.randint(vocab, (pairs, prompt_len), generator=gen)
    completion = lambda: torch.randint(vocab, (pairs, seq - prompt_len), generator=gen)
    chosen = torch.cat([prompt, completion()], dim=1)
    rejected = torch.cat([prompt, completion()], dim=1)
    input_ids = torch.cat([chosen, rejected]).to(device)  # TRL's concatenated batch
    completion_mask = torch.zeros_like(input_ids)
    completion_mask[:, prompt_len:] = 1
    return input_ids, completion_mask


def sequence_logps(torch, model, input_ids, completion_mask, logps):
    if logps == "trl-fused":
        labels = input_ids.masked_fill(completion_mask == 0, -100)
        out = model(input_ids=input_ids, labels=labels, use_cache=False, fused_lm_head=True)
        return out.log_probs[:, -(input_ids.shape[1] - 1):].sum(dim=1)
    logits = model(input_ids=input_ids, use_cache=False).logits[:, :-1]
    labels = input_ids[:, 1:].unsqueeze(-1)
    per_token = torch.gather(logits.log_softmax(-1), 2, labels).squeeze(-1)
    return (per_token * completion_mask[:, 1:]).sum(dim=1)


def run_case(args, workload, device_name, mode):
    import torch
    import torch.nn.functional as F
    from transformers import GPT2Config, GPT2LMHeadModel

    start_rss = peak_rss_bytes()
    device = torch.device(device_name)
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    vocab, d_model, layers, heads, seq, pairs = WORKLOADS[workload]
    torch.manual_seed(args.seed)
    config = GPT2Config(vocab_size=vocab, n_positions=max(1024, seq), n_embd=d_model,
                        n_layer=layers, n_head=heads, resid_pdrop=0.0, embd_pdrop=0.0,
                        attn_pdrop=0.0)
    policy = GPT2LMHeadModel(config).to(device).train()
    reference = copy.deepcopy(policy).eval().requires_grad_(False) if mode == "two-model" else None
    if args.logps == "trl-fused":
        from trl.trainer.utils import add_fused_lm_head
        for model in filter(None, [policy, reference]):
            add_fused_lm_head(model)
    if args.compile:
        for model in filter(None, [policy, reference]):
            model.compile()
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.dtype == "bf16")
    input_ids, mask = random_batch(torch, workload, args.seed, device)
    logps = lambda model: sequence_logps(torch, model, input_ids, mask, args.logps)
    params = [p for p in policy.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01)

    precompute_ms = None
    if mode == "precomputed":
        started = time.perf_counter()
        with torch.no_grad(), autocast:
            precomputed = logps(policy).float()
        precomputed.tolist()  # waits for the device
        precompute_ms = (time.perf_counter() - started) * 1e3

    def step():
        with autocast:
            policy_logps = logps(policy).float()
            if reference is None:
                ref_logps = precomputed
            else:
                with torch.no_grad():
                    ref_logps = logps(reference).float()
        chosen, rejected = (BETA * (policy_logps - ref_logps)).chunk(2)
        loss = -F.logsigmoid(chosen - rejected).mean()
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(params, 1.0)
        optim.step()
        optim.zero_grad(set_to_none=True)
        accuracy = (chosen > rejected).float().mean()
        metrics = torch.stack([loss, chosen.mean(), rejected.mean(), accuracy, grad_norm])
        return metrics.detach().tolist()  # the step's one read, as the dpo Trainer's

    times = []
    for i in range(args.warmup + args.steps):
        started = time.perf_counter()
        loss = step()[0]
        if i >= args.warmup:
            times.append((time.perf_counter() - started) * 1e3)

    median = statistics.median(times)
    peak_rss = peak_rss_bytes()
    return {
        "impl": "torch",
        "workload": workload,
        "backend": device.type,
        "mode": mode,
        "device": (torch.cuda.get_device_name(device) if cuda
                   else f"cpu, {torch.get_num_threads()} threads"),
        "torch": torch.__version__,
        "dtype": args.dtype,
        "compile": args.compile,
        "logps": args.logps,
        "attn": policy.config._attn_implementation,
        "pairs": pairs,
        "seq": seq,
        "warmup": args.warmup,
        "steps": args.steps,
        "ms_per_step": round(median, 3),
        "ms_min": round(min(times), 3),
        "ms_max": round(max(times), 3),
        "tokens_per_s": round(2 * pairs * seq / (median / 1e3)),
        "precompute_ms": None if precompute_ms is None else round(precompute_ms, 3),
        "peak_bytes": torch.cuda.max_memory_allocated(device) if cuda else peak_rss,
        "peak_source": "torch.cuda.max_memory_allocated" if cuda else "process RSS",
        "reserved_bytes": torch.cuda.max_memory_reserved(device) if cuda else None,
        "peak_rss_bytes": peak_rss,
        "start_rss_bytes": start_rss,
        "largest_alloc_bytes": None,  # the caching allocator does not report it
        "loss": loss,
    }


def run_child(args, case):
    workload, device, mode = case.split("/")
    command = [sys.executable, __file__, "--case", case, "--steps", str(args.steps),
               "--warmup", str(args.warmup), "--seed", str(args.seed), "--dtype", args.dtype,
               "--logps", args.logps] + (["--compile"] if args.compile else [])
    out = subprocess.run(command, capture_output=True, text=True)
    for line in out.stdout.splitlines():
        if out.returncode == 0 and line.startswith("{"):
            return json.loads(line)
    lines = [l for l in out.stderr.splitlines() if l.strip()]
    error = lines[-1] if lines else f"exit status {out.returncode}"
    return {"impl": "torch", "workload": workload, "backend": device.split(":")[0],
            "mode": mode, "error": error[:400]}


def table(rows):
    mib = lambda b: "-" if b is None else f"{b / 2**20:.1f}"
    lines = [f"{'workload':<10} {'backend':<7} {'mode':<12} {'ms/step':>10} {'tokens/s':>11} "
             f"{'peak MiB':>10}"]
    for r in rows:
        head = f"{r['workload']:<10} {r['backend']:<7} {r['mode']:<12}"
        if "error" in r:
            lines.append(f"{head} failed: {r['error']}")
        else:
            lines.append(f"{head} {r['ms_per_step']:>10.1f} {r['tokens_per_s']:>11.0f} "
                         f"{mib(r['peak_bytes']):>10}")
    devices = dict.fromkeys(r["device"] for r in rows if "device" in r)
    return "\n".join(lines + list(devices))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workloads", default="tiny,small")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, or both: cpu,cuda")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--compile", action="store_true", help="torch.compile the models")
    parser.add_argument("--logps", choices=["full", "trl-fused"], default="full")
    parser.add_argument("--json", action="store_true", help="one JSON object per case")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.steps < 1:
        parser.error("--steps must be at least 1")
    if args.case:
        print(json.dumps(run_case(args, *args.case.split("/"))))
        return
    names = lambda text: [n.strip() for n in text.split(",") if n.strip()]
    for name in names(args.workloads):
        if name not in WORKLOADS:
            parser.error(f"unknown workload {name!r} (one of {', '.join(WORKLOADS)})")
    for name in names(args.modes):
        if name not in MODES:
            parser.error(f"unknown mode {name!r} (one of {', '.join(MODES)})")
    rows = []
    for workload in names(args.workloads):
        for device in names(args.device):
            for mode in names(args.modes):
                row = run_child(args, f"{workload}/{device}/{mode}")
                rows.append(row)
                print(json.dumps(row) if args.json else table([row]).splitlines()[1],
                      file=sys.stdout if args.json else sys.stderr, flush=True)
    print(table(rows), file=sys.stderr if args.json else sys.stdout)
    sys.exit(1 if any("error" in r for r in rows) else 0)


if __name__ == "__main__":
    main()
