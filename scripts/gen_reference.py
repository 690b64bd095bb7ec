#!/usr/bin/env python3
"""Reference numbers from PyTorch, transformers and TRL, for the parity tests.

    python scripts/gen_reference.py fixtures        # writes tests/fixtures/hf/
    python scripts/gen_reference.py adapters        # writes tests/fixtures/hf/*-lora/
    python scripts/gen_reference.py families        # writes tests/fixtures/hf/{qwen2,qwen3,mistral,llama3}*
    python scripts/gen_reference.py templates       # writes tests/fixtures/templates/expected.json
    python scripts/gen_reference.py check --model DIR [--adapter DIR] [--ref DIR] --data FILE [--dpo BIN]
    python scripts/gen_reference.py smollm2-shape DIR  # a random Llama of SmolLM2-135M's shape

`fixtures` builds small random-weight Hugging Face folders (a GPT-2 and a Llama, each with a
policy and a different reference, and their tokenizers), a pairs file, and what TRL's
DPOTrainer.evaluate() reports for them (several loss types), plus transformers' per-token
log-probs of a few Llama sequences. The Rust tests compare `dpo eval` against these numbers.

`adapters` puts PEFT LoRA adapters with non-zero factors on those GPT-2 and Llama folders
(`gpt2-lora/`, `llama-lora/`, PEFT's own files) and records TRL's evaluate() metrics for the
PEFT models against their base (the adapters switched off) in expected_lora.json.

`families` does what `fixtures` does for the Llama family's relatives (Qwen2, Qwen3, Mistral,
a Llama 3 with llama3 rope scaling), each with its family's tokenizer conventions, into
expected_families.json.

`templates` renders conversations with the hub's chat templates of a few model families (the
.jinja files in tests/fixtures/templates/) through transformers' apply_chat_template, at a fixed
date for the templates that write today's, into expected.json.

`smollm2-shape` writes a random-weight Llama folder of SmolLM2-135M's shape (540 MB) for
scripts/browser_smollm2.mjs.

`check` loads a folder that `dpo` wrote (a model, or with --adapter a PEFT adapter on --model)
into transformers and PEFT, runs TRL's evaluate on it and compares with `dpo eval --json` on
the same files to 1e-4 relative.

Needs: torch, transformers, trl, peft, datasets, tokenizers (pip, in a venv). Not run by CI.
"""

import argparse
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import transformers
import trl
from datasets import Dataset
import tokenizers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)
from trl import DPOConfig, DPOTrainer

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "hf"
METRICS = [
    "loss",
    "rewards/chosen",
    "rewards/rejected",
    "rewards/margins",
    "rewards/accuracies",
    "logps/chosen",
    "logps/rejected",
]
# Every TRL loss the project implements; robust and exo_pair need label smoothing > 0.
LOSSES = {
    "sigmoid": 0.0,
    "hinge": 0.0,
    "ipo": 0.0,
    "robust": 0.1,
    "exo_pair": 0.1,
    "sigmoid_norm": 0.0,
    "bco_pair": 0.0,
    "sppo_hard": 0.0,
    "nca_pair": 0.0,
    "apo_zero": 0.0,
    "apo_down": 0.0,
    "sft": 0.0,
}
BETA = 0.1

# Prompts end on a space or a newline and completions vary in length, so that BPE merges at
# the prompt/completion boundary are exercised as well as plain splits.
PAIRS = [
    ("Question: what colour is the sky?\nAnswer:", " Blue, on a clear day.", " Green."),
    ("Translate to French: cat\n", "chat", "chien"),
    ("Name a prime number: ", "seven", "eight, which is even"),
    ("The capital of Italy is", " Rome.", " Paris, I think."),
    ("Write a greeting.\n", "Hello there, friend!", "Go away."),
    ("2 + 2 =", " 4", " 5"),
    ("Describe a river in three words: ", "long, wide, calm", "dry"),
    ("Is water wet?", " Yes, it makes things wet.", " No."),
]
CORPUS = [p + c for p, c, r in PAIRS] + [p + r for p, c, r in PAIRS] + [
    "The quick brown fox jumps over the lazy dog. Rivers flow to the sea.",
    "Questions and answers, greetings and translations, numbers and colours.",
]


def byte_level_tokenizer(vocab_size):
    """A GPT-2-style byte-level BPE with <|endoftext|>."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", bos_token="<|endoftext|>")
    return fast


def llama_tokenizer(vocab_size):
    """A Llama-2-style tokenizer: metaspace BPE with <unk>, <s>, </s>, and BOS prepended."""
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first")
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<unk>", "<s>", "</s>"])
    tok.train_from_iterator(CORPUS, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", tok.token_to_id("<s>"))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )


def scale_weights(model, seed, std):
    """Random weights far from uniform, so that log-probs and rewards are not all alike."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1 and name.endswith("weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(std * torch.randn(p.shape, generator=gen))


def gpt2(tokenizer, seed):
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=64,
        n_embd=32,
        n_layer=2,
        n_head=4,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = GPT2LMHeadModel(config)
    scale_weights(model, seed, 0.3)
    return model


def llama(tokenizer, seed):
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = LlamaForCausalLM(config)
    scale_weights(model, seed, 0.3)
    return model


def save(model, tokenizer, name):
    folder = OUT / name
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    (folder / "generation_config.json").unlink(missing_ok=True)
    return folder


def load(folder):
    return transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()


def load_tokenizer(folder):
    return transformers.AutoTokenizer.from_pretrained(folder)


def trl_metrics(policy, reference, tokenizer, rows, loss, label_smoothing):
    """What DPOTrainer.evaluate() reports, in one batch so that its means are over all pairs."""
    with tempfile.TemporaryDirectory() as tmp:
        args = DPOConfig(
            output_dir=tmp,
            beta=BETA,
            loss_type=[loss],
            label_smoothing=label_smoothing,
            per_device_eval_batch_size=len(rows),
            report_to="none",
            use_cpu=True,
            # TRL defaults to bf16 autocast; the reference numbers are fp32, like `dpo`.
            bf16=False,
            max_length=None,
        )
        trainer = DPOTrainer(
            model=policy,
            ref_model=reference,
            args=args,
            processing_class=tokenizer,
            train_dataset=Dataset.from_list(rows),
            eval_dataset=Dataset.from_list(rows),
        )
        result = trainer.evaluate()
    return {m: result[f"eval_{m}"] for m in METRICS}


def token_logps(model, tokenizer, texts):
    """Per-token log p(token | prefix) from transformers, for the sequences of `texts`."""
    out = []
    for text in texts:
        ids = tokenizer(text)["input_ids"]
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0].float()
        logps = torch.log_softmax(logits[:-1], dim=-1).gather(1, torch.tensor(ids[1:])[:, None])[:, 0]
        out.append({"text": text, "ids": ids, "logps": logps.tolist()})
    return out


def record_family(expected, name, tokenizer, build, rows, losses, rewrite=lambda folder: None):
    """Saves a policy and a different reference of `name` (`build(tokenizer, seed)`, each folder
    then passed to `rewrite`) and records TRL's metrics for `losses` and transformers' per-token
    log-probs of a few sequences in `expected`."""
    policy = save(build(tokenizer, 1), tokenizer, name)
    reference = save(build(tokenizer, 2), tokenizer, f"{name}-ref")
    rewrite(policy)
    rewrite(reference)
    # Every evaluation starts from the saved files (what `dpo` reads), freshly loaded:
    # a trainer wraps the models it is given, which would leak into the next run.
    expected[name] = {
        loss: trl_metrics(load(policy), load(reference), load_tokenizer(policy), rows, loss, ls)
        | {"label_smoothing": ls}
        for loss, ls in losses.items()
    }
    texts = [p + c for p, c, _ in PAIRS[:3]]
    expected[f"{name}_token_logps"] = token_logps(load(policy), load_tokenizer(policy), texts)


def fixtures():
    torch.manual_seed(0)
    OUT.mkdir(parents=True, exist_ok=True)
    rows = [{"prompt": p, "chosen": c, "rejected": r} for p, c, r in PAIRS]
    with open(OUT / "pairs.jsonl", "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    expected = {
        "generated_by": "scripts/gen_reference.py",
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "trl": trl.__version__},
        "beta": BETA,
    }
    families = {"gpt2": (byte_level_tokenizer(300), gpt2), "llama": (llama_tokenizer(300), llama)}
    for family, (tokenizer, build) in families.items():
        record_family(expected, family, tokenizer, build, rows, LOSSES)
    with open(OUT / "expected.json", "w") as f:
        json.dump(expected, f, indent=1)
    sizes = {p.relative_to(OUT): p.stat().st_size for p in OUT.rglob("*") if p.is_file()}
    print(f"wrote {OUT}: {sum(sizes.values()) // 1024} KB in {len(sizes)} files")


# Adapter fixtures: which layers, rank and alpha per family (GPT-2's Conv1D layers need
# fan_in_fan_out; Llama's mix attention and MLP projections).
ADAPTERS = {
    "gpt2": dict(r=4, lora_alpha=8, target_modules=["c_attn", "c_proj", "c_fc"], fan_in_fan_out=True),
    "llama": dict(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj", "o_proj", "down_proj"]),
}
ADAPTER_LOSSES = {"sigmoid": 0.0, "ipo": 0.0, "robust": 0.1}


def with_adapter(base_dir, adapter_dir):
    from peft import PeftModel

    return PeftModel.from_pretrained(load(base_dir), adapter_dir).eval()


def adapters():
    """PEFT adapters with non-zero A and B on the fixture models, and TRL's metrics for them."""
    from peft import LoraConfig, get_peft_model

    rows = read_pairs(OUT / "pairs.jsonl")
    expected = {
        "generated_by": "scripts/gen_reference.py adapters",
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "trl": trl.__version__,
                     "peft": __import__("peft").__version__},
        "beta": BETA,
    }
    for family, settings in ADAPTERS.items():
        base = OUT / family
        model = get_peft_model(load(base), LoraConfig(task_type="CAUSAL_LM", **settings))
        gen = torch.Generator().manual_seed(3)
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "lora_" in name:
                    p.copy_(0.3 * torch.randn(p.shape, generator=gen))
        folder = OUT / f"{family}-lora"
        model.save_pretrained(folder)
        (folder / "README.md").unlink(missing_ok=True)
        # The reference is the base model: what `dpo eval --adapter` compares with by default.
        expected[family] = {
            loss: trl_metrics(with_adapter(base, folder), load(base), load_tokenizer(base), rows, loss, ls)
            | {"label_smoothing": ls}
            for loss, ls in ADAPTER_LOSSES.items()
        }
    with open(OUT / "expected_lora.json", "w") as f:
        json.dump(expected, f, indent=1)
    print(f"wrote {OUT}/gpt2-lora, llama-lora and expected_lora.json")


# The Llama family's relatives, each with its own tokenizer conventions: Qwen's byte-level BPE
# adds no BOS, Llama 3's adds <|begin_of_text|>, Mistral's is Llama 2's. The regexes are the
# families' own pre-tokenizer splits.
QWEN_SPLIT = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
LLAMA3_SPLIT = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
FAMILY_LOSSES = {"sigmoid": 0.0, "ipo": 0.0, "robust": 0.1}


def split_byte_level_tokenizer(vocab_size, split, specials, bos=None, eos=None):
    """A byte-level BPE behind a regex split (Qwen2/Qwen3, Llama 3); with `bos`, prepended."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(tokenizers.Regex(split), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(CORPUS, trainer)
    byte_level = processors.ByteLevel(trim_offsets=False)
    if bos:
        template = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tok.token_to_id(bos))]
        )
        tok.post_processor = processors.Sequence([byte_level, template])
    else:
        tok.post_processor = byte_level
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=bos, eos_token=eos)


def qwen_tokenizer():
    return split_byte_level_tokenizer(300, QWEN_SPLIT, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                      eos="<|endoftext|>")


def llama3_tokenizer():
    return split_byte_level_tokenizer(300, LLAMA3_SPLIT, ["<|begin_of_text|>", "<|end_of_text|>"],
                                      bos="<|begin_of_text|>", eos="<|end_of_text|>")


SHAPE = dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=64, rms_norm_eps=1e-5)
# Each relative exercises what sets it apart: Qwen2's q/k/v biases and tied head, Qwen3's
# per-head norms and a head_dim that is not hidden/heads, Mistral's sliding window (longer
# than the pairs) and linear rope scaling, Llama 3's llama3 scaling (written in transformers
# 4's spelling, `rope_scaling` beside `rope_theta`, as most hub configs still are).
FAMILIES = {
    "qwen2": (qwen_tokenizer, "Qwen2", dict(tie_word_embeddings=True, rope_theta=1000000.0)),
    "qwen3": (qwen_tokenizer, "Qwen3", dict(head_dim=16, tie_word_embeddings=False, rope_theta=1000000.0)),
    "mistral": (lambda: llama_tokenizer(300), "Mistral",
                dict(sliding_window=48, rope_parameters={"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0})),
    "llama3": (llama3_tokenizer, "Llama", dict(
        tie_word_embeddings=True,
        rope_parameters={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                         "original_max_position_embeddings": 16, "rope_theta": 500000.0})),
}


def relative(name, tokenizer, seed):
    _, arch, extra = FAMILIES[name]
    config_class = getattr(transformers, f"{arch}Config")
    model_class = getattr(transformers, f"{arch}ForCausalLM")
    config = config_class(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                          eos_token_id=tokenizer.eos_token_id, **SHAPE, **extra)
    model = model_class(config)
    scale_weights(model, seed, 0.3)
    return model


def to_transformers4_rope(folder):
    """Rewrites a saved config's `rope_parameters` as transformers 4 wrote them."""
    path = folder / "config.json"
    config = json.loads(path.read_text())
    params = config.pop("rope_parameters")
    config["rope_theta"] = params.pop("rope_theta")
    config["rope_scaling"] = params
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def families():
    """Qwen2, Qwen3, Mistral and a Llama 3 with llama3 rope scaling: folders and TRL's metrics."""
    rows = read_pairs(OUT / "pairs.jsonl")
    expected = {
        "generated_by": "scripts/gen_reference.py families",
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "trl": trl.__version__},
        "beta": BETA,
    }
    for name, (make_tokenizer, _, _) in FAMILIES.items():
        torch.manual_seed(0)
        build = lambda tokenizer, seed: relative(name, tokenizer, seed)  # noqa: E731
        rewrite = to_transformers4_rope if name == "llama3" else (lambda folder: None)
        record_family(expected, name, make_tokenizer(), build, rows, FAMILY_LOSSES, rewrite)
    with open(OUT / "expected_families.json", "w") as f:
        json.dump(expected, f, indent=1)
    print(f"wrote {', '.join(FAMILIES)} (and -ref) and expected_families.json in {OUT}")


TEMPLATES = ROOT / "tests" / "fixtures" / "templates"
# Each fixture template: the hub repo it is copied from (TRL's trl/chat_templates/ keeps the
# same copies, checked weekly against the hub; SmolLM2's is not among them) and the special
# tokens of that repo's tokenizer_config.json.
TEMPLATE_MODELS = {
    "qwen2.5": ("Qwen/Qwen2.5-0.5B-Instruct", {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}),
    "qwen3": ("Qwen/Qwen3-0.6B", {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}),
    "llama3.2": ("meta-llama/Llama-3.2-1B-Instruct", {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}),
    "smollm2": (
        "HuggingFaceTB/SmolLM2-135M-Instruct",
        {
            "bos_token": "<|im_start|>",
            "eos_token": "<|im_end|>",
            "pad_token": "<|im_end|>",
            "unk_token": "<|endoftext|>",
        },
    ),
}
# System or not (Qwen2.5 and SmolLM2 add a default one), several turns, text the templates trim
# or split (Llama trims contents; Qwen3 moves <think> blocks and drops them before the last
# user turn), and non-ASCII text.
CONVERSATIONS = {
    "system_user_assistant": [
        {"role": "system", "content": "You are a terse assistant."},
        {"role": "user", "content": "What colour is the sky?"},
        {"role": "assistant", "content": "Blue."},
    ],
    "user": [{"role": "user", "content": "Name a prime number."}],
    "multi_turn": [
        {"role": "user", "content": "Hi!"},
        {"role": "assistant", "content": "Hello. How can I help?"},
        {"role": "user", "content": "  Translate \"chat\" to English.\n"},
        {"role": "assistant", "content": "\nCat. (café, naïve, 猫 ✓)\n"},
    ],
    "thinking": [
        {"role": "system", "content": "Think first."},
        {"role": "user", "content": "2 + 2?"},
        {"role": "assistant", "content": "<think>\nTwo and two.\n</think>\n\n4"},
        {"role": "user", "content": "And 3 + 3?"},
        {"role": "assistant", "content": "<think>\nThree and three.\n</think>\n\n6"},
    ],
}
# Llama 3.x templates write today's date (`strftime_now`); both sides render as of this time.
TEMPLATE_NOW = "2024-07-06T09:05:00"


def templates():
    from datetime import datetime
    from unittest import mock

    import jinja2
    from transformers.utils import chat_template_utils

    class FixedClock(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime.fromisoformat(TEMPLATE_NOW)

    models_out, cases = {}, []
    for name, (repo, special_tokens) in TEMPLATE_MODELS.items():
        source = (TEMPLATES / f"{name}.jinja").read_text(encoding="utf-8")
        # apply_chat_template reads only the template and the special tokens of a tokenizer.
        tokenizer = PreTrainedTokenizerFast(
            tokenizer_object=Tokenizer(models.BPE()), chat_template=source, **special_tokens
        )
        models_out[name] = {"repo": repo, "template": f"{name}.jinja", "special_tokens": special_tokens}
        for conversation, messages in CONVERSATIONS.items():
            for add_generation_prompt in (False, True):
                with mock.patch.object(chat_template_utils, "datetime", FixedClock):
                    text = tokenizer.apply_chat_template(
                        messages, tokenize=False, add_generation_prompt=add_generation_prompt
                    )
                cases.append(
                    {
                        "model": name,
                        "conversation": conversation,
                        "add_generation_prompt": add_generation_prompt,
                        "text": text,
                    }
                )
    expected = {
        "versions": {"transformers": transformers.__version__, "jinja2": jinja2.__version__},
        "now": TEMPLATE_NOW,
        "models": models_out,
        "conversations": CONVERSATIONS,
        "cases": cases,
    }
    path = TEMPLATES / "expected.json"
    path.write_text(json.dumps(expected, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {len(cases)} renders to {path}")


def read_pairs(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def check(model_dir, adapter_dir, ref_dir, data, dpo, loss):
    """TRL on a folder `dpo` wrote vs `dpo eval` on the same folder: equal to 1e-4 relative.
    With an adapter, the policy is PEFT's model with it and the default reference the base."""
    tokenizer = load_tokenizer(model_dir)
    rows = [{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in read_pairs(data)]
    cmd = [dpo, "eval", "--model", model_dir, "--data", data, "--loss", loss, "--json"]
    if adapter_dir:
        policy = with_adapter(model_dir, adapter_dir)
        cmd += ["--adapter", adapter_dir]
    else:
        policy = load(model_dir)
    reference = load(ref_dir or model_dir)
    if ref_dir:
        cmd += ["--ref", ref_dir]
    theirs = trl_metrics(policy, reference, tokenizer, rows, loss, 0.0)
    ours = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    worst = 0.0
    for m in METRICS:
        err = abs(ours[m] - theirs[m]) / max(abs(theirs[m]), 1e-6)
        worst = max(worst, err)
        print(f"{m:20} trl {theirs[m]: .6f}  dpo {ours[m]: .6f}  rel.err {err:.1e}")
    print(f"transformers loaded {model_dir}; largest relative difference {worst:.1e}")
    return 0 if worst <= 1e-4 else 1


def smollm2_shape(out):
    """A Llama of SmolLM2-135M's published shape (30 layers, width 576, 9 heads, 3 KV heads,
    intermediate 1536, vocabulary 49152, tied embeddings) with random weights and a small
    Llama-style tokenizer: the browser's largest run (scripts/browser_smollm2.mjs) without a
    download."""
    tokenizer = llama_tokenizer(300)
    shape = {
        "vocab_size": 49152, "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
        "num_attention_heads": 9, "num_key_value_heads": 3, "max_position_embeddings": 8192,
        "rms_norm_eps": 1e-5, "rope_theta": 100000.0, "tie_word_embeddings": True,
    }
    config = LlamaConfig(**shape, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    (Path(out) / "generation_config.json").unlink(missing_ok=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("fixtures")
    sub.add_parser("adapters")
    sub.add_parser("families")
    sub.add_parser("templates")
    sub.add_parser("smollm2-shape").add_argument("out")
    c = sub.add_parser("check")
    c.add_argument("--model", required=True)
    c.add_argument("--adapter")
    c.add_argument("--ref")
    c.add_argument("--data", required=True)
    c.add_argument("--loss", default="sigmoid")
    c.add_argument("--dpo", default=str(ROOT / "target" / "release" / "dpo"))
    args = parser.parse_args()
    if args.command == "fixtures":
        fixtures()
        return 0
    if args.command == "adapters":
        adapters()
        return 0
    if args.command == "families":
        families()
        return 0
    if args.command == "templates":
        templates()
        return 0
    if args.command == "smollm2-shape":
        smollm2_shape(args.out)
        return 0
    return check(args.model, args.adapter, args.ref, args.data, args.dpo, args.loss)


if __name__ == "__main__":
    sys.exit(main())
