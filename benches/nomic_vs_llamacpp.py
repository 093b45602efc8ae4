#!/usr/bin/env python3
"""nomic-embed-text-v1.5 (f16 GGUF from PyPI) in ferret vs llama.cpp (llama-cpp-python) on the
same file, same machine, same threads, one run.

Always: documents/s on the first --docs SciFact documents (ferret: `ferret encode`, its own
timing of the encoding; llama.cpp: `Llama.embed` one text at a time, n_ctx 2048, mean pooling)
and the cosine between the two engines' vectors of every document.

With --full, also SciFact test nDCG@10 / R@100 of exact search over the whole corpus with each
engine: ferret through the product's path (`ferret index --dense nomic-embed-text-v1.5`, timed,
and `ferret run --pipeline 'dense(exact=1)'`; with --matryoshka also `--dense-dims 512` and `256`
indexes, two more encodings of the corpus), llama.cpp's vectors searched exactly in numpy and
scored by `ferret eval`, at 768 and at 512 / 256 by the model card's recipe (layer norm without
weights, cut, normalise).
On 2 cores a whole-corpus encoding takes over an hour per engine; a run stopped part way resumes
where it stopped (ferret's indexes and runs in --out are kept, llama.cpp's vectors are saved as
they come).

Texts: "search_document: " + title + " " + text and "search_query: " + query, as both sides
prefix by default.

usage: benches/nomic_vs_llamacpp.py [--docs N] [--threads T] [--full [--matryoshka]] [--out DIR]
  (runs in the test virtualenv, which has llama-cpp-python: scripts/test.sh installs it;
  FERRET=path/to/ferret uses that binary instead of building the release one)
"""
import argparse
import gzip
import json
import os
import subprocess
import sys
import time

import numpy as np

from cpuinfo import cpu

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(cmd, **kw):
    print("$", " ".join(str(c) for c in cmd), file=sys.stderr, flush=True)
    return subprocess.run([str(c) for c in cmd], check=True, capture_output=True, text=True, **kw)


def matryoshka_cut(v, dims):
    v = (v - v.mean(1, keepdims=True)) / np.sqrt(v.var(1, keepdims=True) + 1e-5)
    v = v[:, :dims]
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def write_run(path, qids, dids, q, d, tag, k=100):
    scores = q @ d.T
    with open(path, "w") as f:
        for i, qid in enumerate(qids):
            top = np.argsort(-scores[i], kind="stable")[:k]
            for r, j in enumerate(top):
                f.write(f"{qid} Q0 {dids[j]} {r + 1} {scores[i, j]:.6f} {tag}\n")


def load_llama(gguf, threads):
    from llama_cpp import Llama

    model = Llama(model_path=gguf, embedding=True, n_ctx=2048, n_batch=2048, n_ubatch=2048, pooling_type=1,
                  n_threads=threads, n_threads_batch=threads, verbose=False)
    embed = lambda text: model.embed(text, normalize=False, truncate=False)
    embed("search_document: warm-up")
    return embed


def speed(ferret, embed, docs, corpus, threads, out):
    """Documents/s of both engines on `docs` and the cosine between their vectors."""
    vectors = os.path.join(out, "ferret-docs.f32")
    res = run(ferret + ["encode", "--model", "nomic-embed-text-v1.5", "--corpus", corpus, "--limit", len(docs),
                        "--threads", threads, "-o", vectors])
    # ferret reports the time of the encoding itself (model loaded, texts read).
    ferret_secs = float(res.stderr.split(" in ")[1].split("s")[0])
    ours = np.fromfile(vectors, dtype="<f4").reshape(len(docs), -1).astype(np.float64)
    t = time.perf_counter()
    theirs = np.array([embed("search_document: " + d["title"] + " " + d["text"]) for d in docs])
    llama_secs = time.perf_counter() - t
    cos = (ours * theirs).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(theirs, axis=1)
    n = len(docs)
    print(f"\nnomic-embed-text-v1.5 f16 GGUF on the first {n} SciFact documents, {threads} threads")
    print(f"CPU: {cpu()}")
    print(f"  llama.cpp: {n / llama_secs:6.2f} docs/s")
    print(f"  ferret:    {n / ferret_secs:6.2f} docs/s")
    print(f"  ratio ferret / llama.cpp: {llama_secs / ferret_secs:.2f}x")
    print(f"  cosine between the engines' vectors: min {cos.min():.7f}, mean {cos.mean():.7f}", flush=True)


def means(ferret, run_file, qrels):
    out = run(ferret + ["eval", "--qrels", qrels, run_file, "-m", "ndcg_cut.10", "recall.100", "--json"]).stdout
    return json.loads(out)["runs"][0]["mean"]


def llama_documents(embed, docs, out, every=25):
    """llama.cpp's vectors of all documents, and the seconds they took. Saved as they come
    (every `every` documents, with the seconds so far), so that a run stopped part way resumes:
    on 2 cores the whole corpus takes over an hour."""
    path, clock = os.path.join(out, "llamacpp-docs.f32"), os.path.join(out, "llamacpp-docs.seconds")
    done = np.fromfile(path, dtype="<f4").reshape(-1, 768) if os.path.exists(path) else np.zeros((0, 768), "<f4")
    secs = float(open(clock).read()) if os.path.exists(clock) and len(done) else 0.0
    if len(done):
        print(f"llama.cpp: resuming after {len(done)} documents", file=sys.stderr, flush=True)
    for start in range(len(done), len(docs), every):
        t = time.perf_counter()
        batch = np.array([embed("search_document: " + x["title"] + " " + x["text"])
                          for x in docs[start:start + every]], dtype="<f4")
        secs += time.perf_counter() - t
        with open(path, "ab") as f:
            f.write(batch.tobytes())
        with open(clock, "w") as f:
            f.write(f"{secs}\n")
    return np.fromfile(path, dtype="<f4").reshape(-1, 768).astype(np.float64), secs


def effectiveness(ferret, embed, docs, scifact, threads, matryoshka, out):
    """SciFact test nDCG@10 / R@100, whole corpus, both engines."""
    corpus = os.path.join(scifact, "corpus.jsonl.gz")
    qrels = os.path.join(scifact, "qrels", "test.tsv")
    judged = {l.split("\t")[0] for l in open(qrels, encoding="utf-8").read().splitlines()[1:]}
    queries = [json.loads(l) for l in open(os.path.join(scifact, "queries.jsonl"), encoding="utf-8")]
    queries = [q for q in queries if q["_id"] in judged]
    queries_file = os.path.join(out, "test-queries.jsonl")
    with open(queries_file, "w", encoding="utf-8") as f:
        for q in queries:
            f.write(json.dumps(q) + "\n")
    rows = []
    for dims in [768] + ([512, 256] if matryoshka else []):
        index = os.path.join(out, f"index-{dims}")
        run_file = os.path.join(out, f"ferret-{dims}.run")
        timing = os.path.join(out, f"ferret-{dims}.seconds")
        if not (os.path.exists(run_file) and os.path.exists(timing)):
            extra = ["--dense-dims", dims] if dims != 768 else []
            t = time.perf_counter()
            run(ferret + ["index", "--corpus", corpus, "--index", index, "--overwrite", "--threads", threads,
                          "--dense", "nomic-embed-text-v1.5"] + extra)
            with open(timing, "w") as f:
                f.write(f"{time.perf_counter() - t}\n")
            run(ferret + ["run", "--index", index, "--queries", queries_file, "--pipeline", "dense(exact=1)",
                          "-k", "100", "--threads", threads, "-o", run_file])
        secs = float(open(timing).read())
        rows.append((f"ferret, {dims}", f"{len(docs) / secs:.2f}", means(ferret, run_file, qrels)))
    d, secs = llama_documents(embed, docs, out)
    q = np.array([embed("search_query: " + x["text"]) for x in queries], dtype=np.float64)
    for dims in [768, 512, 256]:
        if dims == 768:
            dn, qn = (v / np.linalg.norm(v, axis=1, keepdims=True) for v in (d, q))
        else:
            dn, qn = matryoshka_cut(d, dims), matryoshka_cut(q, dims)
        run_file = os.path.join(out, f"llamacpp-{dims}.run")
        write_run(run_file, [x["_id"] for x in queries], [x["_id"] for x in docs], qn, dn, f"llama.cpp-{dims}")
        rows.append((f"llama.cpp, {dims}", f"{len(docs) / secs:.2f}" if dims == 768 else "-", means(ferret, run_file, qrels)))
    print(f"\nSciFact test ({len(queries)} queries, {len(docs)} documents), exact search, {threads} threads; CPU: {cpu()}")
    print("| engine, dimensions | docs/s (whole corpus) | nDCG@10 | R@100 |")
    print("|---|---:|---:|---:|")
    for name, dps, m in rows:
        print(f"| {name} | {dps} | {m['nDCG@10']:.4f} | {m['R@100']:.4f} |")
    print("(ferret's docs/s: the whole `ferret index` command, BM25 and writing included)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=200, help="documents for the speed comparison (0: none)")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--full", action="store_true", help="also nDCG@10 / R@100 over the whole corpus")
    ap.add_argument("--matryoshka", action="store_true", help="with --full: also ferret indexes at 512 and 256 dimensions")
    ap.add_argument("--out", default=os.path.join(ROOT, "target", "nomic-bench"))
    ap.add_argument("--data", default=os.environ.get("FERRET_DATA", os.path.join(ROOT, "..", "shared", "data")))
    args = ap.parse_args()
    import llama_cpp

    os.makedirs(args.out, exist_ok=True)
    print(f"CPU: {cpu()}; threads {args.threads}; llama-cpp-python {llama_cpp.__version__}", flush=True)
    if os.environ.get("FERRET"):
        ferret = [os.path.abspath(os.environ["FERRET"])]
    else:
        subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "ferret"], cwd=ROOT, check=True)
        ferret = [os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "ferret")]
    pulled = run(ferret + ["models", "pull", "nomic-embed-text-v1.5"]).stdout
    gguf = os.path.join(pulled.split(" -> ")[1].split("\n")[0].strip(), "nomic-embed-text-v1.5.f16.gguf")
    embed = load_llama(gguf, args.threads)

    scifact = os.path.join(args.data, "beir-scifact")
    corpus = os.path.join(scifact, "corpus.jsonl.gz")
    with gzip.open(corpus, "rt", encoding="utf-8") as f:
        docs = [json.loads(l) for l in f]
    if args.docs:
        speed(ferret, embed, docs[: args.docs], corpus, args.threads, args.out)
    if args.full:
        effectiveness(ferret, embed, docs, scifact, args.threads, args.matryoshka, args.out)


if __name__ == "__main__":
    main()
