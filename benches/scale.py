#!/usr/bin/env python3
"""BM25 at growing corpus sizes (issue: scale), ferret and bm25s side by side on the same
synthetic corpora (benches/synth_corpus.py, fixed seed) on this machine:

  * indexing: documents/s of the whole `ferret index` process (read JSONL, analyse, build,
    commit; --threads = all cores) and its peak resident memory; bm25s = tokenize (PyStemmer,
    English stop words) + index, corpus loaded, in its own process (peak RSS of that process);
  * index size on disk: ferret's folder (documents included) and its BM25 index (lexical/)
    alone; bm25s's saved index (no documents);
  * peak resident memory of `ferret serve` on the index after answering the 1,000 queries over
    HTTP at k = 1000 (VmHWM);
  * query latency one query at a time (1,000 queries of 2–6 words), p50 and p99, at k = 10 and
    k = 1000: `ferret bench --json`, and bm25s's retrieve per query.

The table is printed, the numbers saved to OUT/scale.json, and a chart (indexing documents/s
and p99 latency at k = 1000 against corpus size, both engines) written to --plot (SVG).

usage: python3 benches/scale.py [--sizes 10000,100000,1000000] [--out target/scale]
                                [--plot docs/scale.svg] [--no-bm25s]
       python3 benches/scale.py --plot docs/scale.svg --replot A/scale.json B/scale.json
"""
import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "ferret", "bench-venv")
FERRET = os.path.join(ROOT, "target", "release", "ferret")


def ensure_venv():
    py = os.path.join(VENV, "bin", "python")
    if os.path.realpath(sys.prefix) == os.path.realpath(VENV):
        return
    if not os.path.exists(py) or subprocess.run([py, "-c", "import bm25s, Stemmer, matplotlib"], capture_output=True).returncode != 0:
        print(f"installing bm25s into {VENV}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
        subprocess.run([os.path.join(VENV, "bin", "pip"), "install", "--quiet", "bm25s==0.3.16", "PyStemmer", "numpy", "scipy", "matplotlib"], check=True)
    os.execv(py, [py] + sys.argv)


def machine():
    info = open("/proc/cpuinfo").read()
    cpu = next((l.split(":", 1)[1].strip() for l in info.splitlines() if l.startswith("model name")), platform.processor())
    flags = next((l for l in info.splitlines() if l.startswith("flags")), "")
    isa = "AVX-512" if " avx512f" in flags else "AVX2" if " avx2" in flags else "no AVX2"
    return f"{cpu}, {os.cpu_count()} cores, {isa}"


def du(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def serve_peak_rss(index, queries):
    """Peak RSS and anonymous (not file-backed) RSS, MB, of `ferret serve` on `index` after
    answering `queries` at k = 1000."""
    import urllib.request
    p = subprocess.Popen([FERRET, "serve", "--index", index, "--addr", "127.0.0.1:0"], stdout=subprocess.PIPE, text=True)
    try:
        url = p.stdout.readline().rsplit(" on ", 1)[1].strip()
        for line in open(queries):
            body = json.dumps({"query": json.loads(line)["text"], "k": 1000}).encode()
            req = urllib.request.Request(url + "/v1/search", data=body, headers={"Content-Type": "application/json"})
            urllib.request.urlopen(req).read()
        status = open(f"/proc/{p.pid}/status").read()
        field = lambda name: int(next(l.split()[1] for l in status.splitlines() if l.startswith(name))) / 1024
        return field("VmHWM"), field("RssAnon")
    finally:
        p.terminate()
        p.wait()


def timed(cmd):
    """Wall seconds and peak RSS (MB) of a command, through GNU time."""
    out = subprocess.run(["/usr/bin/time", "-f", "%e %M"] + cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{out.stderr}")
    wall, rss_kb = out.stderr.strip().splitlines()[-1].split()
    return float(wall), int(rss_kb) / 1024, out.stdout


def timed_sampled(cmd):
    """Wall seconds, peak RSS (MB, from the kernel at exit) and peak anonymous RSS (MB, sampled
    every 0.1 s) of a command. The budget bounds what ferret allocates (anonymous memory); peak
    RSS also counts pages of index files mapped while segments are merged, page cache the
    kernel can drop."""
    start = time.perf_counter()
    err = tempfile.TemporaryFile()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
    anon = 0
    while True:
        # wait4 reaps the child and gives its own peak RSS (Popen.poll would reap it first).
        pid, status, usage = os.wait4(p.pid, os.WNOHANG)
        if pid:
            break
        try:
            text = open(f"/proc/{p.pid}/status").read()
            anon = max(anon, int(next(l.split()[1] for l in text.splitlines() if l.startswith("RssAnon"))))
        except (OSError, StopIteration):
            pass
        time.sleep(0.1)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        err.seek(0)
        sys.exit(f"{' '.join(cmd)} failed:\n{err.read().decode(errors='replace')}")
    return wall, usage.ru_maxrss / 1024, anon / 1024


BM25S = r"""
import json, sys, time, resource
import numpy as np, bm25s, Stemmer
corpus, queries, out = sys.argv[1], sys.argv[2], sys.argv[3]
texts = [(d["title"] + " " + d["text"]) for d in map(json.loads, open(corpus))]
qs = [json.loads(l)["text"] for l in open(queries)]
stemmer = Stemmer.Stemmer("english")
t = time.perf_counter()
tokens = bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False)
model = bm25s.BM25()
model.index(tokens, show_progress=False)
index_s = time.perf_counter() - t
del texts, tokens
model.save(out)
lat = {}
for k in (10, 1000):
    ms = []
    for q in qs:
        t = time.perf_counter()
        qt = bm25s.tokenize([q], stopwords="en", stemmer=stemmer, show_progress=False)
        model.retrieve(qt, k=min(k, model.scores["num_docs"]), show_progress=False, n_threads=1)
        ms.append((time.perf_counter() - t) * 1000)
    ms.sort()
    lat[k] = (ms[len(ms) // 2], ms[int(len(ms) * 0.99) - 1])
print(json.dumps({"index_s": index_s, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "lat": lat}))
"""


def main():
    ensure_venv()
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--out", default=os.path.join(ROOT, "target", "scale"))
    ap.add_argument("--no-bm25s", action="store_true")
    ap.add_argument("--memory-budget", default="1G", help="ferret index --memory-budget (its default: 1G)")
    ap.add_argument("--plot", help="write the chart here (SVG)")
    ap.add_argument("--replot", nargs="+", metavar="SCALE_JSON", help="only draw --plot from saved runs' scale.json files")
    a = ap.parse_args()
    if a.replot:
        rows = sorted((r for f in a.replot for r in json.load(open(f))["rows"]), key=lambda r: r["docs"])
        plot(rows, a.plot)
        return
    if not os.path.exists(FERRET):
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "ferret"], cwd=ROOT, check=True)
    print(f"machine: {machine()}")
    rows = []
    for n in map(int, a.sizes.split(",")):
        d = os.path.join(a.out, str(n))
        if not os.path.exists(os.path.join(d, "queries.jsonl")):
            subprocess.run([sys.executable, os.path.join(ROOT, "benches", "synth_corpus.py"), "--docs", str(n), "--out", d], check=True)
        corpus, queries, index = (os.path.join(d, f) for f in ("corpus.jsonl", "queries.jsonl", "index"))
        wall, rss, anon = timed_sampled([FERRET, "index", "--corpus", corpus, "--index", index, "--overwrite", "--memory-budget", a.memory_budget])
        row = {"docs": n, "ferret_budget": a.memory_budget, "ferret_docs_s": n / wall, "ferret_rss_mb": rss, "ferret_anon_mb": anon, "ferret_mb": du(index) / 2**20,
               "ferret_lexical_mb": du(os.path.join(index, "lexical")) / 2**20}
        for k in (10, 1000):
            _, _, out = timed([FERRET, "bench", "--index", index, "--queries", queries, "-k", str(k), "--threads", "1", "--repeat", "1", "--json"])
            b = json.loads(out)
            row[f"ferret_p50_{k}"], row[f"ferret_p99_{k}"] = b["latency_p50_ms"], b["latency_p99_ms"]
        row["ferret_serve_rss_mb"], row["ferret_serve_anon_mb"] = serve_peak_rss(index, queries)
        if not a.no_bm25s:
            saved = os.path.join(d, "bm25s")
            wall, rss, out = timed([sys.executable, "-c", BM25S, corpus, queries, saved])
            b = json.loads(out)
            row.update({"bm25s_docs_s": n / b["index_s"], "bm25s_rss_mb": rss, "bm25s_mb": du(saved) / 2**20,
                        **{f"bm25s_p{p}_{k}": b["lat"][str(k)][i] for k in (10, 1000) for i, p in ((0, 50), (1, 99))}})
        rows.append(row)
        print(json.dumps(row), flush=True)
    with open(os.path.join(a.out, "scale.json"), "w") as f:
        json.dump({"machine": machine(), "rows": rows}, f, indent=1)
    print("\n| documents | ferret docs/s | bm25s docs/s | ferret peak RSS MiB indexing: all / anonymous [budget] (serving: all / anonymous) | bm25s peak RSS MiB | ferret folder MiB (BM25 index) | bm25s index MiB | ferret p50 / p99 ms k=10 | bm25s p50 / p99 ms k=10 | ferret p50 / p99 ms k=1000 | bm25s p50 / p99 ms k=1000 |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        g = lambda key, f="{:.0f}": f.format(r[key]) if key in r else "–"
        print(f"| {r['docs']:,} | {g('ferret_docs_s')} | {g('bm25s_docs_s')} | {g('ferret_rss_mb')} / {g('ferret_anon_mb')} [{r.get('ferret_budget', '–')}] ({g('ferret_serve_rss_mb')} / {g('ferret_serve_anon_mb')}) | {g('bm25s_rss_mb')} | {g('ferret_mb', '{:.1f}')} ({g('ferret_lexical_mb', '{:.1f}')}) | {g('bm25s_mb', '{:.1f}')} | "
              + " | ".join(f"{g(f'{s}_p50_{k}', '{:.3f}')} / {g(f'{s}_p99_{k}', '{:.3f}')}" for k in (10, 1000) for s in ("ferret", "bm25s")) + " |")
    if a.plot:
        plot(rows, a.plot)


def parse_size(text):
    """Bytes of a size as ferret's --memory-budget reads it (512M, 1G, 2GiB)."""
    number, unit = re.fullmatch(r"\s*([\d.]+)\s*([A-Za-z]*)\s*", text).groups()
    scale = {"": 1, "b": 1, "k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9, "t": 1e12, "tb": 1e12,
             "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}[unit.lower()]
    return float(number) * scale


def plot(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(15, 4))
    for engine, style in (("ferret", "o-"), ("bm25s", "s--")):
        measured = [r for r in rows if f"{engine}_docs_s" in r]
        if measured:
            docs = [r["docs"] for r in measured]
            left.plot(docs, [r[f"{engine}_docs_s"] for r in measured], style, label=engine)
            middle.plot(docs, [r[f"{engine}_rss_mb"] for r in measured], style, label=f"{engine} indexing")
            right.plot(docs, [r[f"{engine}_p99_1000"] for r in measured], style, label=f"{engine} p99")
            right.plot(docs, [r[f"{engine}_p50_1000"] for r in measured], style, alpha=0.4, label=f"{engine} p50")
    sampled = [r for r in rows if "ferret_anon_mb" in r]
    if sampled:
        middle.plot([r["docs"] for r in sampled], [r["ferret_anon_mb"] for r in sampled], "o-.", label="ferret indexing (anonymous)")
    served = [r for r in rows if "ferret_serve_anon_mb" in r]
    if served:
        middle.plot([r["docs"] for r in served], [r["ferret_serve_anon_mb"] for r in served], "o:", label="ferret serving (anonymous)")
    budgets = {r["ferret_budget"] for r in rows if "ferret_budget" in r}
    if len(budgets) == 1:
        middle.axhline(parse_size(budgets.pop()) / 2**20, color="grey", linestyle="--", label="ferret --memory-budget")
    left.set(xscale="log", yscale="log", xlabel="documents", ylabel="indexing documents/s", title="BM25 indexing")
    middle.set(xscale="log", yscale="log", xlabel="documents", ylabel="peak RSS, MiB", title="memory")
    right.set(xscale="log", yscale="log", xlabel="documents", ylabel="ms per query (k = 1000)", title="BM25 query latency, one at a time")
    for ax in (left, middle, right):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle(f"synthetic corpora (benches/synth_corpus.py); {machine()}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, format="svg")


if __name__ == "__main__":
    main()
