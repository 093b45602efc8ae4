"""Late interaction on SciFact, ferret side by side with fast-plaid (the Rust PLAID engine on
PyPI), on the very same token vectors.

    python3 -m venv v && v/bin/pip install fast-plaid==1.4.6.2110 pylate==1.6.0
    v/bin/python benches/colbert_vs_fastplaid.py --model all-minilm-l6-v2 --work /tmp/colbert-bench \
        [--build-only] [--isa avx2] [--ferret BINARY]

The indexes take about an hour to build on 2 cores (fast-plaid's half of it); `--build-only`
builds them and stops, so that the timed searches of a second run see a quiet machine.
`--isa avx2` holds both engines to AVX2 on an AVX-512 machine (benches/isa.py: fast-plaid's
PyTorch through ATen's and MKL's switches, ferret through FERRET_SIMD and a build without the
gemm crate's AVX-512 kernels). Without `--ferret`, the script builds ferret itself.

What it does, all on this machine in one run:
1. ferret indexes SciFact's corpus with the model's token vectors three times: f16 vectors,
   2-bit and 1-bit residuals (`ferret index --tokens MODEL --tokens-nbits N`; reused when the
   work folder has them), and encodes the 300 test queries (`ferret encode --tokens`).
2. `ferret bench-tokens` times exhaustive MaxSim, PLAID and XTR on each index with those
   query vectors (search only: no model, no query encoding) and writes their runs.
3. fast-plaid indexes the f16 index's document vectors — read from ferret's token file, so
   both engines see the same vectors — with 2-bit residuals (and 4-bit with --fast-plaid-nbits 2,4), and searches the
   same query vectors at its defaults and at settings closer to ferret's.
4. Every run is compared with exhaustive MaxSim over the f16 vectors: recall of its top 10 and
   top 100, and nDCG@10 / R@100 against the qrels (`ferret eval`); queries/s and index sizes.
"""

import argparse
import gzip
import json
import os
import re
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from cpuinfo import cpu
from isa import AVX2_ENV, build_ferret, describe


def run(cmd, **kw):
    print("$", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.run([str(c) for c in cmd], check=True, capture_output=True, text=True, **kw)


def load_run(path):
    r = {}
    for line in open(path):
        q, _, d, _, _, _ = line.split()
        r.setdefault(q, []).append(d)
    return r


def agreement(reference, run_path):
    got = load_run(run_path)
    out = []
    for k in (10, 100):
        vals = [
            len(set(reference[q][:k]) & set(got.get(q, [])[:k])) / max(1, len(reference[q][:k]))
            for q in reference
        ]
        out.append(sum(vals) / len(vals))
    return out


def evaluate(ferret, qrels, run_path):
    out = run([ferret, "eval", "--qrels", qrels, "-m", "nDCG@10", "R@100", "--json", run_path]).stdout
    mean = json.loads(out)["runs"][0]["mean"]
    return [mean["nDCG@10"], mean["R@100"]]


def read_token_file(path):
    """Document lengths and f16 vectors of a ferret token file (tokens/<model>/chunk-*.bin)."""
    data = Path(path).read_bytes()
    magic, version, docs, dim, nbits, _ = struct.unpack_from("<4sIIIII", data, 0)
    (tokens,) = struct.unpack_from("<Q", data, 24)
    assert magic == b"FTOK" and version == 1 and nbits == 0, (magic, version, nbits)
    doclens = np.frombuffer(data, dtype="<u4", count=docs, offset=32)
    payload = 32 + 4 * (docs + 2 * tokens)
    vectors = np.frombuffer(data, dtype="<f2", count=tokens * dim, offset=payload).reshape(tokens, dim)
    return doclens, vectors


def build_fast_plaid(a, work, indexes, data):
    """fast-plaid indexes of the f16 index's document vectors (reused when present); the ids."""
    import torch
    from fast_plaid import search as fp_search

    chunk = next((indexes[0] / "tokens").glob("*/chunk-*.bin"))
    doclens, vectors = read_token_file(chunk)
    offsets = np.zeros(len(doclens) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum(doclens)
    ids = [json.loads(l)["_id"] for l in gzip.open(data / "corpus.jsonl.gz", "rt")]
    assert len(ids) == len(doclens)
    for nbits in [int(n) for n in a.fast_plaid_nbits.split(",")]:
        path = work / f"fast-plaid-{nbits}"
        if not (path / "metadata.json").exists():
            docs = [torch.from_numpy(vectors[offsets[i]:offsets[i + 1]].astype(np.float32))
                    for i in range(len(doclens))]
            t = time.time()
            fp_search.FastPlaid(index=str(path), device="cpu").create(documents_embeddings=docs, nbits=nbits)
            print(f"fast-plaid {nbits}-bit index built in {time.time() - t:.0f}s", flush=True)
    return ids


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ferret", help="the ferret binary (default: built here, for --isa if given)")
    ap.add_argument("--isa", choices=["avx2"], help="hold both engines to AVX2 (benches/isa.py)")
    ap.add_argument("--model", default="all-minilm-l6-v2")
    ap.add_argument("--data", default=str(Path(__file__).resolve().parent.parent.parent / "shared/data/beir-scifact"))
    ap.add_argument("--work", required=True)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--fast-plaid-nbits", default="2", help="comma-separated, e.g. 2,4")
    ap.add_argument("--nbits", default="0,2,1", help="ferret indexes to build (0: f16; must include 0)")
    ap.add_argument("--build-only", action="store_true",
                    help="build the indexes and query vectors, then stop (time the searches later, on a quiet machine)")
    a = ap.parse_args()
    if a.isa:
        if a.ferret:
            sys.exit("--isa avx2 builds its own ferret (without the gemm crate's AVX-512 kernels): leave out --ferret")
        os.environ.update(AVX2_ENV)  # before PyTorch loads
    a.ferret = a.ferret or build_ferret(a.isa)
    import torch
    from fast_plaid import search as fp_search

    torch.set_num_threads(a.threads)
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    data = Path(a.data)
    qrels = data / "qrels/test.tsv"
    print(f"machine: {cpu()}; threads {a.threads}; torch {torch.__version__}, "
          f"ATen CPU capability {torch.backends.cpu.get_cpu_capability()}")
    if a.isa:
        print("  " + describe())

    # 1. Indexes and query vectors.
    indexes = {}
    for nbits in [int(n) for n in a.nbits.split(",")]:
        idx = work / f"idx-{nbits}"
        if not (idx / "manifest.json").exists():
            t = time.time()
            run([a.ferret, "index", "--corpus", data / "corpus.jsonl.gz", "--index", idx,
                 "--tokens", a.model, "--tokens-nbits", nbits, "--threads", a.threads])
            print(f"  indexed in {time.time() - t:.0f}s")
        indexes[nbits] = idx
    judged = {l.split("\t")[0] for l in open(qrels).read().splitlines()[1:]}
    queries = work / "queries.jsonl"
    with open(queries, "w") as out:
        for line in open(data / "queries.jsonl"):
            if json.loads(line)["_id"] in judged:
                out.write(line)
    qvec = work / "query-vectors.jsonl"
    if not qvec.exists():
        run([a.ferret, "encode", "--tokens", "--model", a.model, "--queries", queries, "-o", qvec])
    qrows = [json.loads(l) for l in open(qvec)]
    if a.build_only:
        build_fast_plaid(a, work, indexes, data)
        return

    rows = []  # (engine, setting, qps, r10, r100, ndcg, recall100, size MB)
    isa = f"-{a.isa}" if a.isa else ""  # runs and timings kept apart per instruction set

    # 2. ferret.
    for nbits, idx in indexes.items():
        runs = work / f"runs-{nbits}{isa}"
        # Exhaustive MaxSim (the reference) once, on the f16 vectors: it takes minutes.
        methods = ["exhaustive"] if nbits == 0 else []
        methods += ["plaid", "xtr", "xtr-only"]
        out = ""
        for m in methods:
            # Timings kept beside the runs, so that a rerun of the script reuses them.
            saved = runs / f"{m}.timing"
            if not saved.exists():
                text = run([a.ferret, "bench-tokens", "--index", idx, "--queries", qvec, "-k", 100,
                            "--runs", runs, "--repeat", 1 if m == "exhaustive" else a.repeat,
                            "--threads", a.threads, "--methods", m]).stdout
                saved.write_text(text)
            out += saved.read_text()
        print(out)
        qps = dict(re.findall(r"^(\S+)\s+[\d.]+s\s+([\d.]+) queries/s", out, re.M))
        sizes = re.findall(r"^size .*?([\d.]+) MB$", out, re.M)[:4]
        size = sum(float(x) for x in sizes)
        storage = "f16" if nbits == 0 else f"{nbits}-bit"
        for m in methods:
            rows.append(["ferret", f"{m} ({storage})", float(qps[m]), runs / f"{m}.run", size])
        if nbits != 0:
            # PLAID at fast-plaid's default depth (8 cells, 4096 documents fully scored).
            wide = work / f"runs-{nbits}-wide{isa}"
            saved = wide / "plaid.timing"
            if not saved.exists():
                text = run([a.ferret, "bench-tokens", "--index", idx, "--queries", qvec, "-k", 100,
                            "--ncells", 8, "--threshold", 0.4, "--ndocs", 4096, "--runs", wide,
                            "--repeat", a.repeat, "--threads", a.threads, "--methods", "plaid"]).stdout
                saved.write_text(text)
            q = re.search(r"^plaid\s+[\d.]+s\s+([\d.]+) queries/s", saved.read_text(), re.M).group(1)
            rows.append(["ferret", f"plaid ({storage}, ncells 8, ndocs 4096)", float(q), wide / "plaid.run", size])
    reference = load_run(work / f"runs-0{isa}" / "exhaustive.run")

    # 3. fast-plaid on the f16 index's vectors.
    ids = build_fast_plaid(a, work, indexes, data)
    qs = [torch.tensor(q["vectors"], dtype=torch.float32) for q in qrows]
    for nbits in [int(n) for n in a.fast_plaid_nbits.split(",")]:
        path = work / f"fast-plaid-{nbits}"
        fp = fp_search.FastPlaid(index=str(path), device="cpu")
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6
        for probe, full in ((8, 4096), (2, 1024), (1, 256)):
            best, results = float("inf"), None
            for _ in range(a.repeat):
                t = time.time()
                results = fp.search(queries_embeddings=qs, top_k=100, n_ivf_probe=probe,
                                    n_full_scores=full, show_progress=False)
                best = min(best, time.time() - t)
            run_path = work / f"fast-plaid-{nbits}-{probe}-{full}.run"
            with open(run_path, "w") as out:
                for q, hits in zip(qrows, results):
                    for rank, (d, s) in enumerate(hits):
                        out.write(f"{q['id']} Q0 {ids[d]} {rank + 1} {s} fast-plaid\n")
            rows.append(["fast-plaid", f"{nbits}-bit, n_ivf_probe {probe}, n_full_scores {full}",
                         len(qs) / best, run_path, size])

    # 4. Agreement, effectiveness, speed.
    print(f"\nSciFact test ({len(qrows)} queries), {a.model} token vectors, k=100, "
          f"{a.threads} threads; machine: {cpu()}" + (f" ({describe()})" if a.isa else ""))
    print(f"{'engine':<11} {'setting':<44} {'q/s':>8} {'top10':>6} {'top100':>6} {'nDCG@10':>8} {'R@100':>6} {'MB':>7}")
    for engine, setting, qps, run_path, size in rows:
        r10, r100 = agreement(reference, run_path)
        ndcg, rec = evaluate(a.ferret, qrels, run_path)
        print(f"{engine:<11} {setting:<44} {qps:>8.1f} {r10:>6.3f} {r100:>6.3f} {ndcg:>8.4f} {rec:>6.4f} {size:>7.1f}")
    print("top10/top100: share of exhaustive MaxSim's (f16) top 10 / top 100 found in the run's.")


if __name__ == "__main__":
    sys.exit(main())
