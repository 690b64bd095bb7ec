#!/usr/bin/env python3
"""Writes the fuzz targets' seed inputs into fuzz/corpus/<target>/seed-*: valid inputs of each
kind, which the fuzzer then mutates. Input layouts are those of fuzz/src/lib.rs."""

import json
import struct
from pathlib import Path

FUZZ = Path(__file__).resolve().parent
FORMATS = FUZZ.parent / "examples" / "data" / "formats"


def write(target, name, data):
    folder = FUZZ / "corpus" / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"seed-{name}").write_bytes(data)


def pairs():
    for path in sorted(FORMATS.glob("*.jsonl")):
        head = b"".join(path.read_bytes().splitlines(keepends=True)[:3])
        for selector in (0, 1, 40):  # plain template / ChatML; a short max_length
            write("pairs", f"{path.stem}-{selector}", bytes([selector]) + head)
    crlf = '\ufeff{"chosen": "a b", "rejected": "a c"}\r\n\r\n{"prompt": "", "chosen": "x", "rejected": "y"}'
    write("pairs", "bom-crlf", b"\x00" + crlf.encode())


def safetensors(tensors, dtype="F32", prefix="transformer."):
    """A safetensors file of `tensors` (name -> shape), values 0.01 * index."""
    pack = {"F32": "<f", "F16": "<e"}
    header, data = {"__metadata__": {"format": "pt"}}, b""
    for name, shape in tensors:
        count = 1
        for dim in shape:
            count *= dim
        values = [0.01 * i for i in range(count)]
        if dtype == "BF16":  # the high half of each f32
            raw = b"".join(struct.pack("<f", v)[2:] for v in values)
        else:
            raw = struct.pack("<" + pack[dtype][1] * count, *values)
        header[prefix + name] = {"dtype": dtype, "shape": shape,
                                 "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    header = json.dumps(header).encode()
    return struct.pack("<Q", len(header)) + header + data


def model_files():
    config = {"vocab_size": 6, "n_positions": 4, "n_embd": 4, "n_layer": 1, "n_head": 1}
    d, inner = 4, 16
    layer = [("ln_1.weight", [d]), ("ln_1.bias", [d]),
             ("attn.c_attn.weight", [d, 3 * d]), ("attn.c_attn.bias", [3 * d]),
             ("attn.c_proj.weight", [d, d]), ("attn.c_proj.bias", [d]),
             ("ln_2.weight", [d]), ("ln_2.bias", [d]),
             ("mlp.c_fc.weight", [d, inner]), ("mlp.c_fc.bias", [inner]),
             ("mlp.c_proj.weight", [inner, d]), ("mlp.c_proj.bias", [d])]
    tensors = [("wte.weight", [6, d]), ("wpe.weight", [4, d])]
    tensors += [(f"h.0.{name}", shape) for name, shape in layer]
    tensors += [("ln_f.weight", [d]), ("ln_f.bias", [d])]
    variants = {
        "f32": (config, safetensors(tensors)),
        "f16": (config, safetensors(tensors, "F16")),
        "bf16": (config, safetensors(tensors, "BF16")),
        "bare-names": (config, safetensors(tensors, prefix="")),
        "options": ({**config, "n_inner": inner, "activation_function": "gelu",
                     "layer_norm_epsilon": 1e-6, "model_type": "gpt2"}, safetensors(tensors)),
    }
    for name, (config, weights) in variants.items():
        config = json.dumps(config, indent=2).encode()
        write("model_files", name, struct.pack("<H", len(config)) + config + weights)


def tokenizer():
    eos = {"id": 0, "content": "<|endoftext|>", "single_word": False, "lstrip": False,
           "rstrip": False, "normalized": False, "special": True}
    vocab = {"<|endoftext|>": 0, "a": 1, "b": 2, "c": 3, "ab": 4, "</s>": 5}
    bpe = {"version": "1.0", "added_tokens": [eos],
           "model": {"type": "BPE", "vocab": vocab, "merges": [["a", "b"]]}}
    byte_level = {**bpe, "normalizer": {"type": "NFC"},
                  "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False,
                                    "trim_offsets": True, "use_regex": True},
                  "decoder": {"type": "ByteLevel", "add_prefix_space": True,
                              "trim_offsets": True, "use_regex": True}}
    word_level = {"version": "1.0", "model": {"type": "WordLevel", "unk_token": "a",
                                              "vocab": vocab}}
    chatml = ("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n"
              "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    configs = {"none": None,
               "eos": {"eos_token": "</s>"},
               "chatml": {"eos_token": {"content": "</s>"}, "chat_template": chatml},
               "named": {"chat_template": [{"name": "default", "template": chatml}]}}
    for tok_name, tok in (("bpe", bpe), ("byte-level", byte_level), ("word-level", word_level)):
        for config_name, config in configs.items():
            data = json.dumps(tok).encode()
            if config is not None:
                data += b"\x00" + json.dumps(config).encode()
            write("tokenizer", f"{tok_name}-{config_name}", data)


if __name__ == "__main__":
    pairs()
    model_files()
    tokenizer()
