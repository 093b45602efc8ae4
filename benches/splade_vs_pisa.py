#!/usr/bin/env python3
"""Learned sparse retrieval, side by side on one machine in one run: ferret's exact block-max
MaxScore (and its exhaustive scorer) vs PISA (pyterrier-pisa: exact dynamic pruning) and
Seismic (pyseismic-lsr: approximate), on the same SPLADE-tiny vectors of BEIR SciFact
(documents and the 300 test queries, encoded once by `ferret encode --sparse`); then BM25
(k1 0.9, b 0.4) of ferret vs PISA over the same documents. Prints the CPU and instruction set,
throughput on one thread at k = 10 and 1000, mean / p99 latency, index sizes, Seismic's recall of
the exact top 10, and ratios. With --transformers PYTHON (a Python with torch and
transformers), also documents/s of SPLADE encoding: ferret vs transformers on the same cores.

usage: python3 benches/splade_vs_pisa.py [--data DIR] [--ferret PATH] [--repeat 3]
       [--transformers PYTHON [--encode-docs 1000] [--encode-only]]
It installs pyterrier-pisa and pyseismic-lsr into a virtualenv (FERRET_BENCH_VENV, default
~/.cache/ferret/bench-venv) and re-runs itself there.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cpuinfo import cpu

ROOT = Path(__file__).resolve().parent.parent
PEERS = ["pyterrier-pisa==0.4.9", "pyseismic-lsr==0.5.4", "pandas"]


def ensure_venv():
    venv = Path(os.environ.get("FERRET_BENCH_VENV", Path.home() / ".cache/ferret/bench-venv"))
    py = venv / "bin/python"
    if Path(sys.executable).resolve() == py.resolve() if py.exists() else False:
        return
    try:
        import pyterrier_pisa  # noqa: F401
        import seismic  # noqa: F401
        return
    except ImportError:
        pass
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "-q", *PEERS], check=True)
    os.execv(str(py), [str(py), *sys.argv])


def run(cmd, **kw):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)
    return out.stdout


def read_jsonl(path):
    return [json.loads(l) for l in open(path, encoding="utf-8")]


def size(path):
    p = Path(path)
    if p.is_file():
        return p.stat().st_size
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def timed(fn, queries, repeat):
    """Best-of-`repeat` seconds for all queries in one call, and per-query latencies (ms)."""
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn(queries)
        best = min(best, time.perf_counter() - t)
    lat = []
    for q in queries:
        t = time.perf_counter()
        fn([q])
        lat.append((time.perf_counter() - t) * 1e3)
    lat.sort()
    return len(queries) / best, statistics.mean(lat), lat[max(0, int(len(lat) * 0.99 + 0.5) - 1)]


def frames(whole, one, qids):
    """The query frame for a timed call: all queries, or one prepared row."""
    return whole if len(qids) == len(whole) else one[qids[0]]


def main():
    ensure_venv()
    import numpy as np
    import pandas as pd
    import seismic
    from pyterrier_pisa import PisaIndex

    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.environ.get("FERRET_DATA", ROOT.parent / "shared/data"))
    ap.add_argument("--ferret", default=ROOT / "target/release/ferret")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--transformers", help="a Python with torch and transformers, for the encoding row")
    ap.add_argument("--encode-docs", type=int, default=1000,
                    help="documents for the encoding row (the first N of the corpus, both sides)")
    ap.add_argument("--encode-only", action="store_true", help="stop after the encoding row")
    a = ap.parse_args()
    data = Path(a.data) / "beir-scifact"
    ferret = str(a.ferret)
    print(f"CPU: {cpu()}; Python {platform.python_version()}")
    tmp = Path(tempfile.mkdtemp(prefix="ferret-splade-bench-"))
    qrels = data / "qrels/test.tsv"
    test_ids = list(dict.fromkeys(l.split("\t")[0] for l in open(qrels).read().splitlines()[1:]))
    queries_file = tmp / "test-queries.jsonl"
    texts = {q["_id"]: q["text"] for q in read_jsonl(data / "queries.jsonl")}
    with open(queries_file, "w") as f:
        for q in test_ids:
            f.write(json.dumps({"_id": q, "text": texts[q]}) + "\n")

    # The same vectors for everyone.
    t = time.perf_counter()
    run([ferret, "encode", "--sparse", "--model", "splade-tiny", "--corpus", str(data / "corpus.jsonl.gz"),
         "-o", str(tmp / "docs.jsonl"), "--threads", "2"])
    encode_s = time.perf_counter() - t
    run([ferret, "encode", "--sparse", "--model", "splade-tiny", "--queries", str(queries_file),
         "-o", str(tmp / "queries.jsonl")])
    docs = read_jsonl(tmp / "docs.jsonl")
    qvecs = read_jsonl(tmp / "queries.jsonl")
    print(f"SciFact: {len(docs)} documents, {len(qvecs)} test queries; SPLADE-tiny "
          f"{statistics.mean(len(d['vector']) for d in docs):.0f} terms per document, "
          f"{statistics.mean(len(q['vector']) for q in qvecs):.0f} per query")

    if a.transformers:
        # Both sides on the same first N documents, 2 threads, max length 256, from text to
        # term weights (transformers: batches of 32 padded, the usual loop; ferret: its encoder).
        n = a.encode_docs
        t = time.perf_counter()
        run([ferret, "encode", "--sparse", "--model", "splade-tiny", "--corpus", str(data / "corpus.jsonl.gz"),
             "-o", str(tmp / "docs-subset.jsonl"), "--threads", "2", "--limit", str(n)])
        ferret_s = time.perf_counter() - t
        script = f"""
import gzip, json, time, torch
from transformers import AutoModelForMaskedLM, AutoTokenizer
torch.set_num_threads(2)
d = {json.dumps(str(Path(run([ferret, 'models', 'pull', 'splade-tiny']).split(' -> ')[1].split(chr(10))[0])))}
tok = AutoTokenizer.from_pretrained(d); m = AutoModelForMaskedLM.from_pretrained(d).eval()
docs = [json.loads(l) for _, l in zip(range({n}), gzip.open({json.dumps(str(data / 'corpus.jsonl.gz'))}, 'rt'))]
texts = [x['title'] + ' ' + x['text'] for x in docs]
t = time.perf_counter()
with torch.no_grad():
    for i in range(0, len(texts), 32):
        b = tok(texts[i:i+32], truncation=True, max_length=256, padding=True, return_tensors='pt')
        w = torch.max(torch.log1p(torch.relu(m(**b).logits)) * b['attention_mask'].unsqueeze(-1), dim=1).values
print(time.perf_counter() - t)
"""
        t = time.perf_counter()
        hf_s = float(run([a.transformers, "-c", script]).strip().splitlines()[-1])
        print(f"\nSPLADE encoding of the first {n} documents (256 tokens) on 2 threads: ferret "
              f"{n / ferret_s:.1f} docs/s (whole command, model load included), transformers "
              f"{n / hf_s:.1f} docs/s (encoding loop only): ferret {hf_s / ferret_s:.2f}x")
        if a.encode_only:
            return

    # ferret: the index encodes with the same code; queries given as vectors.
    idx = tmp / "ferret-idx"
    t = time.perf_counter()
    run([ferret, "index", "--corpus", str(data / "corpus.jsonl.gz"), "--index", str(idx), "--sparse", "splade-tiny"])
    sparse_bytes = sum(size(idx / f) for e in json.loads(run([ferret, "info", "--index", str(idx), "--json"]))["representations"]
                       if e["kind"] == "sparse" for f in e["files"] if "impacts" in f)

    def ferret_bench(pipeline, k):
        out = run([ferret, "bench", "--index", str(idx), "--queries", str(queries_file), "--sparse-queries",
                   str(tmp / "queries.jsonl"), "--pipeline", pipeline, "-k", str(k), "--threads", "1",
                   "--repeat", str(a.repeat), "--json"])
        v = json.loads(out)
        return v["queries_per_second"], v["latency_mean_ms"], v["latency_p99_ms"]

    # PISA, same vectors (its own quantisation: weight x 100, as Anserini).
    pisa_dir = tmp / "pisa-splade"
    pisa = PisaIndex(str(pisa_dir), stemmer="none", threads=1)
    pisa.toks_indexer(scale=100.0).index({"docno": d["id"], "toks": d["vector"]} for d in docs)
    pisa_bytes = size(pisa_dir)
    qdf = pd.DataFrame([{"qid": q["id"], "query_toks": q["vector"]} for q in qvecs])

    # Seismic (approximate), same vectors.
    st = seismic.get_seismic_string()
    ds = seismic.SeismicDataset()
    for d in docs:
        ds.add_document(d["id"], np.array(list(d["vector"]), dtype=st), np.array(list(d["vector"].values()), dtype=np.float32))
    t = time.perf_counter()
    sx = seismic.SeismicIndex.build_from_dataset(ds, num_threads=1)
    seismic_dir = tmp / "seismic.index"
    sx.save(str(seismic_dir))
    seismic_bytes = size(str(seismic_dir) + ".index.seismic") if Path(str(seismic_dir) + ".index.seismic").exists() else size(tmp) - size(idx) - size(pisa_dir) - size(tmp / "docs.jsonl") - size(tmp / "queries.jsonl")
    q_comp = [np.array(list(q["vector"]), dtype=st) for q in qvecs]
    q_vals = [np.array(list(q["vector"].values()), dtype=np.float32) for q in qvecs]
    q_ids = np.array([q["id"] for q in qvecs], dtype=st)
    all_q = list(range(len(qvecs)))
    position = {q["id"]: i for i, q in enumerate(qvecs)}
    # Inputs prepared outside the timed calls (one-row frames for the latency pass).
    one_qdf = {q: qdf[qdf.qid == q] for q in qdf.qid}

    rows = []
    exact10 = {}
    for k in (10, 1000):
        f = ferret_bench("splade(method=maxscore)", k)
        fx = ferret_bench("splade(method=exhaustive)", k)
        retr = pisa.quantized(num_results=k, threads=1)
        p = timed(lambda qs: retr.transform(frames(qdf, one_qdf, qs)), list(qdf.qid), a.repeat)

        def seismic_search(ids):
            sel = all_q if len(ids) == len(qvecs) else [position[ids[0]]]
            return sx.batch_search(q_ids[sel], [q_comp[i] for i in sel],
                                   [q_vals[i] for i in sel], k, query_cut=20, heap_factor=0.7, num_threads=1)
        s = timed(seismic_search, [q["id"] for q in qvecs], a.repeat)
        rows.append((k, f, fx, p, s))
        if k == 10:
            out = run([ferret, "run", "--index", str(idx), "--queries", str(queries_file), "--sparse-queries",
                       str(tmp / "queries.jsonl"), "--pipeline", "splade", "-k", "10", "-o", str(tmp / "exact10.run")])
            for l in open(tmp / "exact10.run"):
                qid, _, doc, *_ = l.split()
                exact10.setdefault(qid, set()).add(doc)
            found = seismic_search([q["id"] for q in qvecs])
            hit = sum(1 for res in found for (qid, _, doc) in res if doc in exact10.get(qid, set()))
            recall = hit / sum(len(v) for v in exact10.values())

    print(f"\nSPLADE-tiny, exact top-k on 1 thread (best of {a.repeat} passes; latency: queries one at a time)")
    print(f"{'k':>5} {'engine':<26} {'queries/s':>10} {'mean ms':>8} {'p99 ms':>8} {'ferret ratio':>13}")
    for k, f, fx, p, s in rows:
        for name, r in [("ferret (MaxScore)", f), ("ferret (exhaustive)", fx), ("PISA (pyterrier-pisa)", p),
                        ("Seismic (approximate)", s)]:
            ratio = "" if r is f else f"{f[0] / r[0]:.2f}x"
            print(f"{k:>5} {name:<26} {r[0]:>10.0f} {r[1]:>8.3f} {r[2]:>8.3f} {ratio:>13}")
    print(f"Seismic recall of the exact top 10: {recall:.4f} (query_cut 20, heap_factor 0.7)")
    print(f"index size: ferret impacts {sparse_bytes / 1e6:.1f} MB, PISA {pisa_bytes / 1e6:.1f} MB, "
          f"Seismic {seismic_bytes / 1e6:.1f} MB")

    # BM25 over the same documents.
    bm_idx = tmp / "ferret-bm25"
    run([ferret, "index", "--corpus", str(data / "corpus.jsonl.gz"), "--index", str(bm_idx)])
    pisa_bm = PisaIndex(str(tmp / "pisa-bm25"), stemmer="porter2", threads=1)
    pisa_bm.indexer().index({"docno": d["_id"], "text": d["title"] + " " + d["text"]}
                            for d in map(json.loads, __import__("gzip").open(data / "corpus.jsonl.gz", "rt")))
    tdf = pd.DataFrame([{"qid": q, "query": texts[q]} for q in test_ids])
    one_tdf = {q: tdf[tdf.qid == q] for q in tdf.qid}
    print("\nBM25 (k1 0.9, b 0.4) on 1 thread")
    print(f"{'k':>5} {'engine':<26} {'queries/s':>10} {'mean ms':>8} {'p99 ms':>8} {'ferret ratio':>13}")
    for k in (10, 1000):
        out = run([ferret, "bench", "--index", str(bm_idx), "--queries", str(queries_file), "--pipeline",
                   "bm25(k1=0.9, b=0.4)", "-k", str(k), "--threads", "1", "--repeat", str(a.repeat), "--json"])
        v = json.loads(out)
        f = (v["queries_per_second"], v["latency_mean_ms"], v["latency_p99_ms"])
        retr = pisa_bm.bm25(k1=0.9, b=0.4, num_results=k, threads=1)
        p = timed(lambda qs: retr.transform(frames(tdf, one_tdf, qs)), list(tdf.qid), a.repeat)
        print(f"{k:>5} {'ferret':<26} {f[0]:>10.0f} {f[1]:>8.3f} {f[2]:>8.3f}")
        print(f"{k:>5} {'PISA (pyterrier-pisa)':<26} {p[0]:>10.0f} {p[1]:>8.3f} {p[2]:>8.3f} {f[0] / p[0]:>12.2f}x")


if __name__ == "__main__":
    main()
