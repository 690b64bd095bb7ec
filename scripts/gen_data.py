#!/usr/bin/env python3
"""Generate the shipped example preference data: a synthetic review task with a known reward.

Every word has a weight in a lexicon (sentiment words +-1..3, everything else 0). The
ground-truth reward of a text is the sum of the weights of its words (lowercased, split on
anything that is not an ASCII letter; unknown words count 0). Each pair shares a prompt and a
completion template, so chosen and rejected have the same words in the same places except for
the sentiment slots; chosen is whichever scores higher, by at least MIN_GAP. Both sides are
drawn from the same distribution (chosen is often negative, rejected often positive), so only
the sentiment words tell them apart: not length, not position, not sign.

Completions start with a space so that prompt + completion reads as one text.

Usage: python3 scripts/gen_data.py [--seed 0] [--out examples/data]
Standard library only; the output depends only on the seed.
"""

import argparse
import json
import random
import re
from pathlib import Path

MIN_GAP = 2
SLOT = re.compile(r"\{([A-Z])\}")

# Sentiment-bearing slot fillers, by weight. Positive and negative words have similar
# lengths so that character count carries no signal.
ADJECTIVES = {
    3: ["amazing", "superb", "perfect", "ideal", "stellar"],
    2: ["great", "lovely", "pleasant", "neat", "elegant"],
    1: ["good", "nice", "decent", "friendly", "reliable"],
    0: ["okay", "average", "plain", "standard", "typical"],
    -1: ["poor", "tiresome", "noisy", "clumsy", "mediocre"],
    -2: ["cramped", "rude", "broken", "dirty", "annoying"],
    -3: ["awful", "terrible", "horrid", "useless", "gross"],
}
VERBS = {
    3: ["loved", "adored"],
    2: ["enjoyed", "praised"],
    1: ["liked", "valued"],
    0: ["used", "tried", "checked", "noticed"],
    -1: ["doubted", "minded"],
    -2: ["feared", "disliked"],
    -3: ["hated", "loathed"],
}
ADVERBS = {
    2: ["thankfully", "happily"],
    1: ["luckily", "gladly"],
    0: ["honestly", "frankly", "basically", "overall"],
    -1: ["oddly", "strangely"],
    -2: ["sadly", "annoyingly"],
}
SLOT_POOLS = {"A": ADJECTIVES, "V": VERBS, "D": ADVERBS}

# Weight-0 fillers.
INTENSIFIERS = ["very", "really", "quite", "fairly", "rather", "somewhat"]
NOUNS = [
    "service", "price", "staff", "design", "quality", "setup", "support", "value",
    "sound", "layout", "screen", "room", "menu", "battery", "delivery", "packaging",
]
TRAIN_SUBJECTS = [
    "hotel", "phone", "laptop", "restaurant", "movie", "concert", "museum", "bakery",
    "gym", "camera", "bike", "jacket", "game", "book", "airline", "park", "library",
    "headphones", "coffee shop", "train ride", "car rental", "tablet", "pizza place", "spa",
]
# Only in heldout.jsonl: prompts the model has never seen.
HELDOUT_SUBJECTS = ["theater", "watch", "ferry", "cafe"]
PROMPTS = [
    "Review of the {s}:",
    "My thoughts on the new {s}:",
    "How was the {s}?",
    "Feedback on the {s}:",
    "Quick note about the {s}:",
    "What did you think of the {s}?",
]
# {A} adjective, {V} verb, {D} sentence adverb: sentiment slots. {N} noun, {I} intensifier:
# neutral slots, shared by chosen and rejected (the intensifier sometimes differs).
COMPLETIONS = [
    " the {N} was {I} {A} and the {N} was {A}.",
    " i {V} the {N}, it felt {A}.",
    " {D}, the {N} was {I} {A}.",
    " {D} the {N} seemed {A} but the {N} was {A}.",
    " we {V} it. the {N} was {A} and {I} {A}.",
    " {A} {N}, {A} {N}, and i {V} the {N}.",
    " the {N} is {A}, i {V} the {N} here.",
    " after a week the {N} still feels {I} {A}.",
    " honestly the {N} was {A} and {D} the {N} was {A} too.",
    " i {V} it, the {N} was {A} and the {N} felt {A}.",
    " {D} the {N} felt {A} to me.",
    " the {N} was {A}, the {N} was {A}, the {N} was {A}.",
]
SYSTEM = "You are a helpful assistant that writes short product and place reviews."



def words(text):
    return re.findall(r"[a-z]+", text.lower())


def build_lexicon():
    lex = {}
    for pool in SLOT_POOLS.values():
        for weight, ws in pool.items():
            for w in ws:
                assert lex.get(w, weight) == weight, w
                lex[w] = weight
    fixed = [SLOT.sub(" ", t) for t in PROMPTS + COMPLETIONS]
    neutral = INTENSIFIERS + NOUNS + TRAIN_SUBJECTS + HELDOUT_SUBJECTS + fixed + [SYSTEM]
    for w in words(" ".join(neutral).replace("{s}", " ")):
        assert lex.get(w, 0) == 0, w
        lex[w] = 0
    return dict(sorted(lex.items()))


def reward(lex, text):
    return sum(lex.get(w, 0) for w in words(text))


def fill(template, values):
    it = iter(values)
    return SLOT.sub(lambda m: next(it), template)


def make_pair(rng, lex, subjects):
    prompt = rng.choice(PROMPTS).format(s=rng.choice(subjects))
    template = rng.choice(COMPLETIONS)
    kinds = SLOT.findall(template)
    sentiment = [i for i, k in enumerate(kinds) if k in SLOT_POOLS]

    def pick(kind):
        pool = SLOT_POOLS[kind]
        return rng.choice([w for ws in pool.values() for w in ws])

    nouns = rng.sample(NOUNS, kinds.count("N"))
    shared, n = [], iter(nouns)
    for k in kinds:
        shared.append(next(n) if k == "N" else rng.choice(INTENSIFIERS) if k == "I" else None)
    # One time in three the pair differs in a single sentiment slot: the cleanest contrast.
    single = len(sentiment) > 1 and rng.random() < 1 / 3
    while True:
        a = list(shared)
        for i in sentiment:
            a[i] = pick(kinds[i])
        b = list(a)
        for i in [rng.choice(sentiment)] if single else sentiment:
            b[i] = pick(kinds[i])
        for i, k in enumerate(kinds):
            if k == "I" and rng.random() < 0.3:
                b[i] = rng.choice(INTENSIFIERS)
        ta, tb = fill(template, a), fill(template, b)
        ra, rb = reward(lex, ta), reward(lex, tb)
        if abs(ra - rb) >= MIN_GAP:
            break
    chosen, rejected = (ta, tb) if ra > rb else (tb, ta)
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected}


def generate(rng, lex, count, subjects, seen):
    out = []
    while len(out) < count:
        pair = make_pair(rng, lex, subjects)
        key = (pair["chosen"], pair["rejected"])
        if key in seen:
            continue
        seen.add(key)
        out.append(pair)
    return out


def write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="ascii", newline="\n") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=True, sort_keys=False) + "\n")


def summarize(name, lex, pairs):
    rc = [reward(lex, p["chosen"]) for p in pairs]
    rr = [reward(lex, p["rejected"]) for p in pairs]
    lc = [len(words(p["chosen"])) for p in pairs]
    longer = sum(len(p["chosen"]) > len(p["rejected"]) for p in pairs)
    shorter = sum(len(p["chosen"]) < len(p["rejected"]) for p in pairs)
    mean = lambda xs: sum(xs) / len(xs)
    print(
        f"{name}: {len(pairs)} pairs, reward chosen {mean(rc):+.2f} rejected {mean(rr):+.2f}"
        f" (gap min {min(c - r for c, r in zip(rc, rr))}),"
        f" chosen<0 {sum(r < 0 for r in rc) / len(rc):.0%}, rejected>0"
        f" {sum(r > 0 for r in rr) / len(rr):.0%}; mean words prompt"
        f" {mean([len(words(p['prompt'])) for p in pairs]):.1f} completion {mean(lc):.1f};"
        f" mean chars chosen {mean([len(p['chosen']) for p in pairs]):.1f}"
        f" rejected {mean([len(p['rejected']) for p in pairs]):.1f}"
        f" (chosen longer {longer}, shorter {shorter})"
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "examples" / "data"))
    ap.add_argument("--train", type=int, default=2000)
    ap.add_argument("--heldout", type=int, default=200)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    out = Path(args.out)
    lex = build_lexicon()

    seen = set()
    train = generate(rng, lex, args.train, TRAIN_SUBJECTS, seen)
    # A third of held-out pairs have subjects never seen in training.
    unseen = args.heldout // 3
    heldout = generate(rng, lex, unseen, HELDOUT_SUBJECTS, seen)
    heldout += generate(rng, lex, args.heldout - unseen, TRAIN_SUBJECTS, seen)
    rng.shuffle(heldout)

    out.mkdir(parents=True, exist_ok=True)
    with open(out / "lexicon.json", "w", encoding="ascii", newline="\n") as f:
        json.dump(lex, f, ensure_ascii=True, indent=1, sort_keys=True)
        f.write("\n")
    write_jsonl(out / "train.jsonl", train)
    write_jsonl(out / "heldout.jsonl", heldout)

    sample = train[:6]
    write_jsonl(out / "formats" / "standard.jsonl", sample)
    write_jsonl(
        out / "formats" / "implicit_prompt.jsonl",
        [{"chosen": p["prompt"] + p["chosen"], "rejected": p["prompt"] + p["rejected"]} for p in sample],
    )
    write_jsonl(
        out / "formats" / "conversational.jsonl",
        [
            {
                "prompt": [
                    {"role": "system", "content": SYSTEM},
                    {"role": "user", "content": p["prompt"]},
                ],
                "chosen": [{"role": "assistant", "content": p["chosen"].strip()}],
                "rejected": [{"role": "assistant", "content": p["rejected"].strip()}],
            }
            for p in sample
        ],
    )

    print(f"seed {args.seed}: lexicon {len(lex)} words"
          f" ({sum(v > 0 for v in lex.values())} positive, {sum(v < 0 for v in lex.values())} negative)")
    summarize("train", lex, train)
    summarize("heldout", lex, heldout)
    print(f"wrote {out}/lexicon.json, train.jsonl, heldout.jsonl, formats/*.jsonl ({len(sample)} lines each)")


if __name__ == "__main__":
    main()
