#!/usr/bin/env python3
"""The sharded Serve app against `ferret serve` on one node: throughput and p50/p99 latency of
BM25 and the MiniLM hybrid over HTTP, SciFact's 300 test queries.

  * `ferret serve --index ONE` — SciFact as one index with MiniLM vectors (`ferret index`);
  * the Serve app — SciFact as 3 shards built by `ferret.ray.build(dense=MiniLM)` and served
    by `ferret.ray.serve` (1 replica per shard, a router) on a local one-node Ray cluster.

Each is measured alone (the other is stopped): closed-loop clients (1 and 4 at a time) send the
queries over keep-alive connections; throughput = queries / wall time, latency per request.
Before timing, both answer every query once and their top 10 are checked to be the same
documents (the sharded collection scores as one index).

Prints the CPU and instruction set. Needs the `ferret` package built in release mode
(``pip install ./python``, or PYTHONPATH at a folder holding it), ``ray[data,serve]``, and a
release `ferret` binary (``--ferret``, default target/release/ferret).

usage: python benches/ray_vs_serve.py [--data DIR] [--work DIR] [--clients 1,4]
"""
import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

import ferret
import ferret.ray as fray

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ray_fanout import cpu  # noqa: E402

MODEL = "all-minilm-l6-v2"
PIPELINES = {
    "BM25": "bm25(k1=0.9, b=0.4)",
    "MiniLM hybrid": "interp(bm25 % 1000, dense(exact=1) % 1000, alpha=0.5)",
}


def wait_for(url, seconds=600):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{url} did not come up in {seconds} s")


def top10(url, queries, pipeline):
    session = requests.Session()
    out = []
    for q in queries:
        r = session.post(url, json={"query": q, "pipeline": pipeline, "k": 10}, timeout=120)
        assert r.status_code == 200, r.text
        body = r.json()
        assert not body.get("partial", False), body
        out.append([h["id"] for h in body["hits"]])
    return out


def load(url, queries, pipeline, clients):
    """Closed loop: `clients` threads take the next query until all are sent."""
    latencies, lock, next_q = [], threading.Lock(), iter(queries)

    def client():
        session = requests.Session()
        while True:
            with lock:
                q = next(next_q, None)
            if q is None:
                return
            t = time.perf_counter()
            r = session.post(url, json={"query": q, "pipeline": pipeline, "k": 10}, timeout=120)
            elapsed = time.perf_counter() - t
            assert r.status_code == 200 and not r.json().get("partial", False), r.text
            with lock:
                latencies.append(elapsed)

    start = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    latencies.sort()
    return len(queries) / wall, statistics.median(latencies), latencies[int(0.99 * (len(latencies) - 1))]


def measure(name, url, queries, clients, rows, reference=None):
    answers = {}
    for label, pipeline in PIPELINES.items():
        answers[label] = top10(url, queries, pipeline)  # also warms models and caches
        if reference is not None:
            same = sum(a == b for a, b in zip(answers[label], reference[label]))
            print(f"{name}, {label}: top 10 identical to ferret serve's for {same} / {len(queries)} queries")
            assert same == len(queries)
        for c in clients:
            qps, p50, p99 = load(url, queries, pipeline, c)
            rows.append((label, c, name, qps, p50 * 1000, p99 * 1000))
            print(f"  {name:<28} {label:<14} clients={c}: {qps:7.1f} q/s  p50 {p50 * 1000:7.2f} ms  p99 {p99 * 1000:7.2f} ms", flush=True)
    return answers


def main():
    here = Path(__file__).resolve().parents[1]
    p = argparse.ArgumentParser()
    p.add_argument("--data", default=os.environ.get("FERRET_DATA", here.parent / "shared" / "data"))
    p.add_argument("--work", default="/tmp/ferret-ray-vs-serve", help="indexes are built here once and reused")
    p.add_argument("--ferret", default=str(here / "target" / "release" / "ferret"))
    p.add_argument("--clients", default="1,4")
    args = p.parse_args()
    data, work = Path(args.data) / "beir-scifact", Path(args.work)
    clients = [int(c) for c in args.clients.split(",")]
    qrels = ferret.read_qrels(data / "qrels" / "test.tsv")
    queries = ferret.read_queries(data / "queries.jsonl")
    queries = list(queries[queries["qid"].isin(set(qrels["qid"]))]["query"])
    import ray
    from ray import serve

    print(f"CPU: {cpu()}; ferret {ferret.__version__}, ray {ray.__version__}; {len(queries)} queries, k=10")
    work.mkdir(parents=True, exist_ok=True)
    one = work / "one"
    if not (one / "manifest.json").exists():
        t = time.time()
        subprocess.run([args.ferret, "index", "--corpus", str(data / "corpus.jsonl.gz"), "--index", str(one),
                        "--dense", MODEL, "--overwrite"], check=True)
        print(f"one index with MiniLM: {time.time() - t:.0f} s")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    t = time.time()
    fray.build(data / "corpus.jsonl.gz", work / "sharded", shards=3, dense=MODEL, batch_size=512)
    print(f"3 shards with MiniLM through Ray Data: {time.time() - t:.0f} s (0 if built before)")
    ray.shutdown()

    rows = []
    server = subprocess.Popen([args.ferret, "serve", "--index", str(one), "--addr", "127.0.0.1:8797"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for("http://127.0.0.1:8797/health")
        reference = measure("ferret serve (one index)", "http://127.0.0.1:8797/v1/search", queries, clients, rows)
    finally:
        server.terminate()
        server.wait()

    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": 8798})
    fray.serve(work / "sharded", replicas=1, name="bench", route_prefix="/", warm=["dense"])
    wait_for("http://127.0.0.1:8798/health")
    measure("Ray Serve (3 shards)", "http://127.0.0.1:8798/v1/search", queries, clients, rows, reference)
    serve.shutdown()
    ray.shutdown()

    print("\n| pipeline | clients | system | queries/s | p50 ms | p99 ms | queries/s vs ferret serve |")
    print("|---|---:|---|---:|---:|---:|---:|")
    base = {(r[0], r[1]): r[3] for r in rows if r[2].startswith("ferret serve")}
    for label, c, name, qps, p50, p99 in sorted(rows, key=lambda r: (list(PIPELINES).index(r[0]), r[1])):
        print(f"| {label} | {c} | {name} | {qps:.1f} | {p50:.2f} | {p99:.2f} | {qps / base[(label, c)]:.2f}× |")


if __name__ == "__main__":
    main()
