"""A notebook's worth of ferret on BEIR SciFact: build (BM25 + MiniLM dense), run BM25, RM3 and
two hybrids, evaluate — the numbers `ferret quickstart` prints.

    pip install ./python
    python python/examples/scifact.py [--data ../shared/data/beir-scifact] [--index /tmp/scifact-py]
"""

import argparse
import time
from pathlib import Path

import ferret

ap = argparse.ArgumentParser()
ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2].parent / "shared/data/beir-scifact"))
ap.add_argument("--index", default="/tmp/scifact-py")
a = ap.parse_args()
data = Path(a.data)

t = time.time()
index = ferret.Index.build(data / "corpus.jsonl.gz", a.index, dense="all-minilm-l6-v2", overwrite=True)
print(f"{index!r} built in {time.time() - t:.0f}s")

qrels = ferret.read_qrels(data / "qrels/test.tsv")
topics = ferret.read_queries(data / "queries.jsonl")
topics = topics[topics.qid.isin(qrels.qid)]

pipelines = {
    "BM25": "bm25(k1=0.9, b=0.4) % 1000",
    "BM25 >> RM3": "bm25(k1=0.9, b=0.4) % 1000 >> rm3",
    "MiniLM": "dense % 1000",
    "RRF(BM25, MiniLM)": "rrf(bm25 % 1000, dense % 1000)",
    "interp z-score": "interp(bm25 % 1000, dense % 1000, norm=zscore)",
}
print(f"{'pipeline':<24} {'nDCG@10':>8} {'R@100':>7} {'q/s':>7}")
for name, text in pipelines.items():
    pipeline = index.pipeline(text)
    t = time.time()
    run = pipeline.transform(topics)
    qps = len(topics) / (time.time() - t)
    m = ferret.evaluate(run, qrels, ["nDCG@10", "R@100"])
    print(f"{name:<24} {m['nDCG@10']:>8.4f} {m['R@100']:>7.4f} {qps:>7.1f}")
