#!/usr/bin/env python3
"""ferret vs bm25s, side by side in one run on the same machine: indexing time and query
throughput at k=1000 on BEIR SciFact, on one thread and on all cores, printed as ratios.

usage: python3 benches/bm25s_vs_ferret.py [--data DIR] [--repeat N]

It builds ferret in release mode and installs bm25s (with PyStemmer, its default English
stemmer and stop words) into its own virtualenv, then times both:
  * indexing: ferret = the whole `ferret index` process (read gzip JSONL, analyze, build the
    index, commit to disk); bm25s = bm25s.tokenize (stemmer + English stop words) + BM25.index,
    in memory, corpus already loaded;
  * queries/s at k=1000: ferret = `ferret bench` (query analysis + BM25 + top-k, in process);
    bm25s = bm25s.tokenize of the queries + retrieve(k=1000). All 1,109 SciFact queries.
Best of --repeat runs for each. Indexing is also compared per CPU-second (user + system time
of all threads), since ferret with --threads 1 still overlaps reading, analysis and tantivy's
indexing on separate threads.
"""
import argparse
import gzip
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "ferret", "bench-venv")


def ensure_venv():
    py = os.path.join(VENV, "bin", "python")
    if os.path.realpath(sys.prefix) == os.path.realpath(VENV):
        return
    if not os.path.exists(py) or subprocess.run([py, "-c", "import bm25s, Stemmer"], capture_output=True).returncode != 0:
        print(f"installing bm25s into {VENV}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
        subprocess.run([os.path.join(VENV, "bin", "pip"), "install", "--quiet", "bm25s==0.3.16", "PyStemmer", "numpy", "scipy"], check=True)
    os.execv(py, [py] + sys.argv)


def best(fn, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def cpu_seconds():
    """CPU time (user + system) of this process and of its finished children."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def best_cpu(fn, repeat):
    times = []
    for _ in range(repeat):
        t = cpu_seconds()
        fn()
        times.append(cpu_seconds() - t)
    return min(times)


def main():
    ensure_venv()
    import bm25s
    import Stemmer

    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.environ.get("FERRET_DATA", os.path.join(ROOT, "..", "shared", "data")))
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    scifact = os.path.join(args.data, "beir-scifact")
    corpus_path = os.path.join(scifact, "corpus.jsonl.gz")
    queries_path = os.path.join(scifact, "queries.jsonl")

    subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "ferret"], cwd=ROOT, check=True)
    ferret = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "ferret")
    cores = os.cpu_count()

    with gzip.open(corpus_path, "rt", encoding="utf-8") as f:
        docs = [json.loads(l) for l in f]
    corpus = [d["title"] + " " + d["text"] for d in docs]
    with open(queries_path, encoding="utf-8") as f:
        queries = [json.loads(l)["text"] for l in f]
    stemmer = Stemmer.Stemmer("english")

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        idx = os.path.join(tmp, "idx")

        def ferret_index(threads):
            subprocess.run([ferret, "index", "--corpus", corpus_path, "--index", idx, "--overwrite", "--threads", str(threads)],
                           check=True, capture_output=True)

        def bm25s_index():
            tokens = bm25s.tokenize(corpus, stopwords="en", stemmer=stemmer, show_progress=False)
            r = bm25s.BM25()
            r.index(tokens, show_progress=False)
            return r

        retriever = bm25s_index()
        for threads in (1, cores):
            f = best(lambda: ferret_index(threads), args.repeat)
            b = best(bm25s_index, args.repeat)  # bm25s indexing is single-threaded
            rows.append((f"indexing, {threads} thread(s) [docs/s]", len(corpus) / f, len(corpus) / b))
        # ferret overlaps reading, analysis and tantivy's indexing on separate threads even with
        # --threads 1, so also compare the CPU time both spend (all threads of the process).
        f = best_cpu(lambda: ferret_index(1), args.repeat)
        b = best_cpu(bm25s_index, args.repeat)
        rows.append(("indexing, 1 thread [docs per CPU-second]", len(corpus) / f, len(corpus) / b))

        for threads in (1, cores):
            out = subprocess.run([ferret, "bench", "--index", idx, "--queries", queries_path, "-k", "1000",
                                  "--threads", str(threads), "--repeat", str(args.repeat), "--json"],
                                 check=True, capture_output=True, text=True).stdout
            f_qps = json.loads(out)["queries_per_second"]

            def bm25s_query():
                qt = bm25s.tokenize(queries, stopwords="en", stemmer=stemmer, show_progress=False)
                retriever.retrieve(qt, k=1000, n_threads=threads, show_progress=False)
            b_qps = len(queries) / best(bm25s_query, args.repeat)
            rows.append((f"queries at k=1000, {threads} thread(s) [queries/s]", f_qps, b_qps))

    print(f"\nBEIR SciFact ({len(corpus)} docs, {len(queries)} queries), {cores} cores, best of {args.repeat}")
    print(f"{'':<44} {'ferret':>10} {'bm25s':>10} {'ratio':>7}")
    for name, f, b in rows:
        print(f"{name:<44} {f:>10.0f} {b:>10.0f} {f / b:>6.2f}x")


if __name__ == "__main__":
    main()
