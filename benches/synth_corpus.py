#!/usr/bin/env python3
"""A synthetic corpus for scale runs, reproducible from a seed: BEIR-style corpus.jsonl
(_id, title, text) and queries.jsonl.

* Vocabulary: VOCAB pseudo-words (pronounceable syllable strings, distinct, longer for rarer
  ranks as in natural language), drawn with Zipf's law (P(rank r) ∝ 1 / r^ZIPF, ZIPF 1.07 as
  fitted to English web text).
* Document length: log-normal in words, median 55 and a long tail (σ 0.6, as MS MARCO passages
  and paper abstracts), at least 5 words; titles of 3–10 words.
* Queries: 2–6 words drawn from the middle of the vocabulary (ranks 100 … 20,000), so that they
  match documents without being stop-word-like.

usage: python3 benches/synth_corpus.py --docs N --out DIR [--seed S] [--queries Q]
"""
import argparse
import json
import os

import numpy as np

SYLLABLES = [c + v for c in "bcdfghjklmnprstvwz" for v in "aeiou"] + ["qu" + v for v in "aei"]


def vocabulary(size, rng):
    """`size` distinct pseudo-words; rank r gets ~1 + log2(r)/3 syllables (short frequent words)."""
    words, seen = [], set()
    while len(words) < size:
        r = len(words) + 1
        n = 1 + int(np.log2(r) / 3) + int(rng.integers(0, 2))
        w = "".join(SYLLABLES[i] for i in rng.integers(0, len(SYLLABLES), n))
        if w not in seen:
            seen.add(w)
            words.append(w)
    return np.array(words, dtype=object)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=20261202)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--vocab", type=int, default=500_000)
    ap.add_argument("--zipf", type=float, default=1.07)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    vocab = vocabulary(a.vocab, rng)
    weights = 1.0 / np.arange(1, a.vocab + 1) ** a.zipf
    cdf = np.cumsum(weights / weights.sum())
    os.makedirs(a.out, exist_ok=True)
    block = 10_000
    with open(os.path.join(a.out, "corpus.jsonl"), "w") as f:
        for start in range(0, a.docs, block):
            n = min(block, a.docs - start)
            lengths = np.maximum(5, rng.lognormal(np.log(55), 0.6, n).astype(int))
            title_lengths = rng.integers(3, 11, n)
            ids = np.searchsorted(cdf, rng.random(int(lengths.sum() + title_lengths.sum())))
            words = vocab[np.minimum(ids, a.vocab - 1)]
            at = 0
            lines = []
            for i in range(n):
                title = " ".join(words[at:at + title_lengths[i]])
                at += title_lengths[i]
                text = " ".join(words[at:at + lengths[i]])
                at += lengths[i]
                lines.append(json.dumps({"_id": f"d{start + i}", "title": title, "text": text}))
            f.write("\n".join(lines) + "\n")
    with open(os.path.join(a.out, "queries.jsonl"), "w") as f:
        for q in range(a.queries):
            n = int(rng.integers(2, 7))
            words = vocab[rng.integers(100, min(20_000, a.vocab), n)]
            f.write(json.dumps({"_id": f"q{q}", "text": " ".join(words)}) + "\n")


if __name__ == "__main__":
    main()
