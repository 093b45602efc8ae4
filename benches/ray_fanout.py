#!/usr/bin/env python3
"""What fanning a query out over shards costs: SciFact as one index and as 3 shards on a local
Ray cluster (Ray Data build, Ray Serve router, 1 replica per shard), the 300 test queries one
at a time, latency per query for

  * one index, in process (the extension's prepared pipeline: analysis, BM25, top k; the same
    call a shard makes);
  * each shard alone, in process (with the collection's statistics): the work a shard does;
  * the router over HTTP (Serve's proxy → router → 3 shards in parallel → merge → JSON).

The router's overhead is the third minus the slowest shard's time for the same query. Prints the
CPU and instruction set. Needs the `ferret` package (``pip install ./python``, or PYTHONPATH
pointing at a folder holding it) and ``ray[data,serve]``.

usage: python benches/ray_fanout.py [--data DIR] [--k 10,1000]
"""
import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import ray
import requests
from ray import serve

import ferret
import ferret.ray as fray
from ferret import _ferret


def cpu():
    model, flags = platform.processor(), ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = line
    isa = "AVX-512" if "avx512f" in flags else ("AVX2" if "avx2" in flags else "no AVX2")
    return f"{model}, {os.cpu_count()} cores, {isa}"


def percentiles(xs):
    xs = sorted(xs)
    return statistics.median(xs), xs[int(0.99 * (len(xs) - 1))]


def main():
    here = Path(__file__).resolve().parents[1]
    p = argparse.ArgumentParser()
    p.add_argument("--data", default=os.environ.get("FERRET_DATA", here.parent / "shared" / "data"))
    p.add_argument("--k", default="10,1000")
    args = p.parse_args()
    data = Path(args.data) / "beir-scifact"
    qrels = ferret.read_qrels(data / "qrels" / "test.tsv")
    queries = ferret.read_queries(data / "queries.jsonl")
    queries = queries[queries["qid"].isin(set(qrels["qid"]))]
    print(f"CPU: {cpu()}; ferret {ferret.__version__}, ray {ray.__version__}")

    tmp = Path(tempfile.mkdtemp(prefix="ferret-fanout-"))
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    coll = fray.build(data / "corpus.jsonl.gz", tmp / "sharded", shards=3)
    one = ferret.Index.build(data / "corpus.jsonl.gz", tmp / "one")
    serve.start(http_options={"host": "127.0.0.1", "port": 8799})
    fray.serve(tmp / "sharded", replicas=1, name="fanout", route_prefix="/fanout", shard_cpus=0.25)
    shards = [fray.ShardServer(str(p), str(coll.statistics)) for p in coll.shard_paths()]
    url = "http://127.0.0.1:8799/fanout/v1/search"
    session = requests.Session()

    print("\n| pipeline | k | one index p50 / p99 ms | slowest shard p50 / p99 ms | router over HTTP p50 / p99 ms | router overhead p50 ms |")
    print("|---|---:|---:|---:|---:|---:|")
    for pipeline in ["bm25", "bm25 % 1000 >> rm3"]:
        single = _ferret.Prepared(one._index, pipeline)
        for k in [int(x) for x in args.k.split(",")]:
            t_one, t_shard, t_router, overhead = [], [], [], []
            for q in queries["query"]:
                t = time.perf_counter()
                single.run_one("q", q, k)
                t_one.append(time.perf_counter() - t)
                slowest = 0.0
                if pipeline == "bm25":
                    for s in shards:
                        t = time.perf_counter()
                        s.search(pipeline, "q", q, k)
                        slowest = max(slowest, time.perf_counter() - t)
                    t_shard.append(slowest)
                t = time.perf_counter()
                r = session.post(url, json={"query": q, "pipeline": pipeline, "k": k})
                elapsed = time.perf_counter() - t
                assert r.status_code == 200 and not r.json()["partial"], r.text
                t_router.append(elapsed)
                if pipeline == "bm25":
                    overhead.append(elapsed - slowest)
            ms = lambda xs: " / ".join(f"{x * 1000:.2f}" for x in percentiles(xs)) if xs else "–"
            over = f"{statistics.median(overhead) * 1000:.2f}" if overhead else "–"
            print(f"| `{pipeline}` | {k} | {ms(t_one)} | {ms(t_shard)} | {ms(t_router)} | {over} |")
    serve.shutdown()
    ray.shutdown()


if __name__ == "__main__":
    main()
