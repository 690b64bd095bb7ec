#!/usr/bin/env python3
"""Generate the Parquet and gzip pairs fixtures with pyarrow (KBs, committed).

- tests/fixtures/pairs/ultrafeedback_binarized.parquet: 16 pairs of the shipped task
  (examples/data/train.jsonl) in the shape of HuggingFaceH4/ultrafeedback_binarized's
  `train_prefs` split: prompt (string), prompt_id (string), chosen, rejected and messages
  (lists of {content, role} structs: the user turn, then the reply), score_chosen and
  score_rejected (float64); snappy, pyarrow's default (`.gzip.parquet`: gzip). Beside it the
  same rows as JSONL (`.jsonl`) and gzip-compressed (`.jsonl.gz`), which must parse to the
  same pairs.
- tests/bad_inputs/parquet-*/pairs.parquet and pairs-gzip-*/pairs.jsonl.gz: the bad-input
  cases (tests/bad_inputs/cases.toml).

orca_dpo_pairs (system/question/chosen/rejected strings) maps onto no TRL format without
renaming a column (`question` is the prompt), so it has no fixture.

Usage: /var/tmp/venv/bin/python scripts/gen_parquet.py
Deterministic: the same bytes on every run with the same pyarrow.
"""

import gzip
import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests/fixtures/pairs"
BAD = ROOT / "tests/bad_inputs"
ROWS = 16

MESSAGE = pa.struct([("content", pa.string()), ("role", pa.string())])
MESSAGES = pa.list_(MESSAGE)
# train_prefs' features, in its column order.
ULTRAFEEDBACK = pa.schema(
    [
        ("prompt", pa.string()),
        ("prompt_id", pa.string()),
        ("chosen", MESSAGES),
        ("rejected", MESSAGES),
        ("messages", MESSAGES),
        ("score_chosen", pa.float64()),
        ("score_rejected", pa.float64()),
    ]
)


def shipped_pairs(n):
    with open(ROOT / "examples/data/train.jsonl") as f:
        return [json.loads(line) for _, line in zip(range(n), f)]


def conversation(prompt, reply):
    return [{"content": prompt, "role": "user"}, {"content": reply, "role": "assistant"}]


def ultrafeedback_rows(n):
    rows = []
    for i, pair in enumerate(shipped_pairs(n)):
        prompt = pair["prompt"]
        chosen = conversation(prompt, pair["chosen"].strip())
        rows.append(
            {
                "prompt": prompt,
                "prompt_id": hashlib.sha256(prompt.encode()).hexdigest(),
                "chosen": chosen,
                "rejected": conversation(prompt, pair["rejected"].strip()),
                "messages": chosen,
                "score_chosen": 8.0 + i % 3,
                "score_rejected": 4.0 + i % 2,
            }
        )
    return rows


def write(table, path, **options):
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, **options)
    print(f"{path.relative_to(ROOT)}: {path.stat().st_size} bytes")


def write_bytes(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    print(f"{path.relative_to(ROOT)}: {len(data)} bytes")


def gzipped(text):
    # mtime 0: the same bytes on every run.
    return gzip.compress(text.encode(), mtime=0)


def fixtures():
    rows = ultrafeedback_rows(ROWS)
    table = pa.Table.from_pylist(rows, schema=ULTRAFEEDBACK)
    write(table, FIXTURES / "ultrafeedback_binarized.parquet")
    # The other codec the reader takes (pandas and Spark users pick it).
    write(table, FIXTURES / "ultrafeedback_binarized.gzip.parquet", compression="gzip")
    jsonl = "".join(json.dumps(row) + "\n" for row in rows)
    write_bytes(FIXTURES / "ultrafeedback_binarized.jsonl", jsonl.encode())
    write_bytes(FIXTURES / "ultrafeedback_binarized.jsonl.gz", gzipped(jsonl))


def bad_cases():
    good = ultrafeedback_rows(4)
    table = pa.Table.from_pylist(good, schema=ULTRAFEEDBACK)

    def case(name, table, **options):
        write(table, BAD / name / "pairs.parquet", **options)

    def replace(name, column):
        return table.set_column(table.schema.get_field_index(name), name, column)

    case("parquet-chosen-is-an-int", replace("chosen", pa.array([1, 2, 3, 4], pa.int64())))
    case(
        "parquet-prompt-is-a-list-of-ints",
        replace("prompt", pa.array([[1, 2]] * 4, pa.list_(pa.int64()))),
    )
    role_int = pa.list_(pa.struct([("content", pa.string()), ("role", pa.int64())]))
    case(
        "parquet-role-not-a-string",
        replace(
            "chosen",
            pa.array([[{"content": r["prompt"], "role": 0}, {"content": "x", "role": 1}] for r in good], role_int),
        ),
    )
    case("parquet-missing-chosen", table.drop_columns(["chosen"]))
    case("parquet-missing-rejected", table.drop_columns(["rejected"]))
    case("parquet-zero-rows", table.slice(0, 0))
    nulls = [r["chosen"] if i != 2 else None for i, r in enumerate(good)]
    case("parquet-null-chosen", replace("chosen", pa.array(nulls, MESSAGES)))
    no_content = pa.list_(pa.struct([("role", pa.string())]))
    case(
        "parquet-message-missing-content",
        replace("rejected", pa.array([[{"role": m["role"]} for m in r["rejected"]] for r in good], no_content)),
    )
    case("parquet-zstd", table, compression="zstd")
    # Truncated: the first half of a good file (its footer is gone).
    case("parquet-truncated", table)
    path = BAD / "parquet-truncated/pairs.parquet"
    data = path.read_bytes()
    write_bytes(path, data[: len(data) // 2])
    write_bytes(BAD / "parquet-empty-file/pairs.parquet", b"")
    # One byte of a data page changed: the parquet crate panics on it (out-of-bounds slice),
    # which must still be one bad-input line.
    case("parquet-damaged-page", table)
    path = BAD / "parquet-damaged-page/pairs.parquet"
    data = bytearray(path.read_bytes())
    data[781] ^= 0xFF
    write_bytes(path, bytes(data))

    jsonl = "".join(json.dumps(row) + "\n" for row in good)
    whole = gzipped(jsonl)
    write_bytes(BAD / "pairs-gzip-truncated/pairs.jsonl.gz", whole[: len(whole) // 2])
    lines = jsonl.splitlines(keepends=True)
    lines[2] = json.dumps({"prompt": "p", "chosen": 5, "rejected": "r"}) + "\n"
    write_bytes(BAD / "pairs-gzip-bad-line/pairs.jsonl.gz", gzipped("".join(lines)))


if __name__ == "__main__":
    fixtures()
    bad_cases()
