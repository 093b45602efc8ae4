"""ferret past one machine: SciFact split into 3 shards on a real Ray cluster (a head and two
worker nodes started on loopback addresses), built with Ray Data, served with Ray Serve, and
checked against one index over the same documents: same documents, same scores."""

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest
import requests

import ferret

REPO = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("FERRET_DATA", REPO.parent / "shared" / "data")) / "beir-scifact"
MODEL = "all-minilm-l6-v2"
HEAD, WORKERS = "127.0.0.2", ["127.0.0.3", "127.0.0.4"]
GCS_PORT = 6391  # outside Ray's worker port range (10002–19999)
HTTP_PORT = 8765
BASE = f"http://{HEAD}:{HTTP_PORT}"

import ray  # noqa: E402  (scripts/test.sh installs ray[data,serve]; missing, the test fails)

import ferret.ray as fray  # noqa: E402


def ray_cli(*args, env):
    exe = Path(sys.executable).parent / "ray"
    out = subprocess.run([str(exe), *args], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, f"ray {' '.join(args)}:\n{out.stdout}\n{out.stderr}"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    assert (DATA / "corpus.jsonl.gz").is_file(), f"SciFact not found under {DATA} (set FERRET_DATA)"
    env = dict(os.environ, RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")
    os.environ.update(RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")
    temp = Path("/tmp") / f"ferret-ray-{os.getpid()}"
    ray_cli("stop", "--force", env=env)
    ray_cli(
        "start", "--head", f"--node-ip-address={HEAD}", f"--port={GCS_PORT}", "--num-cpus=2",
        "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}",
        "--object-store-memory=400000000", env=env,
    )
    for ip in WORKERS:
        ray_cli(
            "start", f"--address={HEAD}:{GCS_PORT}", f"--node-ip-address={ip}", "--num-cpus=1",
            "--object-store-memory=400000000", env=env,
        )
    ray.init(address=f"{HEAD}:{GCS_PORT}", log_to_driver=False)
    from ray import serve

    serve.start(http_options={"host": HEAD, "port": HTTP_PORT})
    try:
        alive = [n for n in ray.nodes() if n["Alive"]]
        assert sorted(n["NodeManagerAddress"] for n in alive) == [HEAD, *WORKERS]
        yield tmp_path_factory.mktemp("ray")
    finally:
        from ray import serve

        serve.shutdown()
        ray.shutdown()
        ray_cli("stop", "--force", env=env)
        shutil.rmtree(temp, ignore_errors=True)


def wait_routed(app: str):
    """Serve's HTTP proxy learns a new application's route shortly after `serve.run` returns."""
    deadline = time.monotonic() + 60
    while True:
        r = requests.get(f"{BASE}/{app}/health", timeout=30)
        if r.status_code == 200 or time.monotonic() > deadline:
            return r
        time.sleep(0.5)


def topics():
    qrels = ferret.read_qrels(DATA / "qrels" / "test.tsv")
    queries = ferret.read_queries(DATA / "queries.jsonl")
    return queries[queries["qid"].isin(set(qrels["qid"]))].reset_index(drop=True), qrels


def routed_run(app: str, queries: pd.DataFrame, pipeline: str, k: int) -> pd.DataFrame:
    """The router's answers for every query, as a run DataFrame."""

    def one(row):
        r = requests.post(f"{BASE}/{app}/v1/search", json={"query": row.query, "pipeline": pipeline, "k": k}, timeout=120)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["partial"] is False and body["missing_shards"] == [], body
        return [(row.qid, h["id"], h["score"], h["rank"] - 1) for h in body["hits"]]

    with ThreadPoolExecutor(4) as pool:
        rows = [r for hits in pool.map(one, queries.itertuples()) for r in hits]
    return pd.DataFrame(rows, columns=["qid", "docno", "score", "rank"])


def assert_same_runs(one: pd.DataFrame, sharded: pd.DataFrame, what: str):
    """Per query: the same documents rank by rank, scores within 1e-5 (equal scores are in
    corpus order in both: one index's internal numbers, the router's corpus positions)."""
    a, b = one.groupby("qid"), sharded.groupby("qid")
    assert set(a.groups) == set(b.groups), what
    for qid, x in a:
        xs, ys = x.sort_values("rank"), b.get_group(qid).sort_values("rank")
        assert list(xs["docno"]) == list(ys["docno"]), f"{what} {qid}: other documents or order"
        diff = abs(xs["score"].to_numpy() - ys["score"].to_numpy()).max()
        assert diff < 1e-5, f"{what} {qid}: scores differ by {diff}"


def test_scifact_in_three_shards_answers_as_one_index(cluster):
    queries, qrels = topics()
    out = cluster / "scifact-3"
    start = time.perf_counter()
    collection = fray.build(DATA / "corpus.jsonl.gz", out, shards=3)
    took = time.perf_counter() - start
    assert collection.manifest["documents"] == 5183
    sizes = [len(ferret.Index(p)) for p in collection.shard_paths()]
    assert sum(sizes) == 5183 and min(sizes) > 1500, sizes
    assert all((out / f"shard-00{i}.ordinals.npy").exists() for i in range(3))
    print(f"\nSciFact, 3 shards through Ray Data: {took:.1f} s; documents per shard {sizes}")

    # Building again resumes: committed shards are kept. A shard left half-written (as a
    # crash would) is not visible, and is written again.
    (out / "shard-001").rename(out / "shard-001.partial")
    (out / "collection.json").unlink()
    mtime = (out / "shard-000" / "manifest.json").stat().st_mtime_ns
    with pytest.raises(ferret.FerretError, match="collection.json"):
        fray.Collection(out)
    fray.build(DATA / "corpus.jsonl.gz", out, shards=3)
    assert (out / "shard-000" / "manifest.json").stat().st_mtime_ns == mtime
    assert not (out / "shard-001.partial").exists() and (out / "shard-001" / "manifest.json").exists()
    with pytest.raises(ferret.FerretError, match="shard 0 of 3, but this build writes shard 0 of 2"):
        fray.build(DATA / "corpus.jsonl.gz", out, shards=2)

    one = ferret.Index.build(DATA / "corpus.jsonl.gz", cluster / "scifact-1")
    fray.serve(out, replicas=1, name="scifact", route_prefix="/scifact", shard_cpus=0.25)
    assert wait_routed("scifact").json()["documents"] == 5183
    spec = requests.get(f"{BASE}/scifact/openapi.json").json()
    assert "/v1/search" in spec["paths"] and "/health" in spec["paths"]

    bm25 = "bm25(k1=0.9, b=0.4)"
    for pipeline, k in [(bm25, 1000), (f"{bm25} >> rm3(fb_docs=10, fb_terms=10)", 1000)]:
        started = time.perf_counter()
        sharded = routed_run("scifact", queries, pipeline, k)
        took = time.perf_counter() - started
        single = one.pipeline(f"({pipeline}) % {k}").transform(queries)
        assert_same_runs(single, sharded, pipeline)
        ours = ferret.evaluate(sharded, qrels, ["nDCG@10", "R@100"])
        theirs = ferret.evaluate(single, qrels, ["nDCG@10", "R@100"])
        assert ours == pytest.approx(theirs, abs=1e-4), (ours, theirs)
        print(f"{pipeline}: nDCG@10 {ours['nDCG@10']:.4f} R@100 {ours['R@100']:.4f} ({took:.1f} s for {len(queries)} queries)")
        if pipeline == bm25:
            assert round(ours["nDCG@10"], 4) == 0.6789

    # Bad input is the router's clear error, not a shard's traceback.
    r = requests.post(f"{BASE}/scifact/v1/search", json={"query": "cells", "pipeline": "bm25 >>"})
    assert r.status_code == 400 and "expected" in r.json()["error"]["message"], r.text
    r = requests.post(f"{BASE}/scifact/v1/search", json={"query": "cells", "pipeline": "bm25 % 10 >> listwise"})
    assert r.status_code == 400 and "does not run across shards" in r.json()["error"]["message"], r.text
    r = requests.post(f"{BASE}/scifact/v1/search", json={"query": "cells", "pipeline": "bm25(k1=-1)"})
    assert r.status_code == 400 and "k1 must be >= 0" in r.json()["error"]["message"], r.text
    r = requests.post(f"{BASE}/scifact/v1/search", json={"query": "  ", "pipeline": "bm25"})
    assert r.status_code == 400 and "empty" in r.json()["error"]["message"], r.text


def subset_corpus(path: Path, queries: pd.DataFrame, qrels: pd.DataFrame) -> Path:
    """The judged documents of `queries` and the first 250 others: small enough to embed
    twice here (the test's extension module is a debug build)."""
    import gzip
    import json

    judged = set(qrels[qrels["qid"].isin(set(queries["qid"]))]["docno"])
    kept = []
    with gzip.open(DATA / "corpus.jsonl.gz", "rt") as f:
        for i, line in enumerate(f):
            if i < 250 or json.loads(line)["_id"] in judged:
                kept.append(line)
    path.write_text("".join(kept))
    return path


def test_dense_fusion_and_a_killed_replica(cluster):
    queries, qrels = topics()
    queries = queries.head(50)
    corpus = subset_corpus(cluster / "subset.jsonl", queries, qrels)
    out = cluster / "subset-3"
    start = time.perf_counter()
    fray.build(corpus, out, shards=3, dense=MODEL, encoders=1, batch_size=512)
    print(f"\nsubset ({sum(1 for _ in open(corpus))} documents) with {MODEL}, 3 shards, 1 encoder actor: {time.perf_counter() - start:.1f} s")
    one = ferret.Index.build(corpus, cluster / "subset-1", dense=MODEL)
    fray.serve(out, replicas=2, name="subset", route_prefix="/subset", timeout_s=30, shard_cpus=0.25, warm=["dense"])
    assert wait_routed("subset").status_code == 200

    from ray import serve

    def replicas(shard, expect):
        """{pid: node id} of the shard's replicas, asked until `expect` distinct ones answered."""
        handle = serve.get_deployment_handle(f"shard-{shard}", app_name="subset")
        seen = {}
        for _ in range(200):
            pid, node = handle.where.remote().result(timeout_s=30)
            seen[pid] = node
            if len(seen) >= expect:
                break
        return seen

    placed = [replicas(s, 2) for s in range(3)]
    assert all(len(p) == 2 for p in placed), placed
    nodes = {n for p in placed for n in p.values()}
    print(f"shard replicas (2 each) on {len(nodes)} nodes")
    assert len(nodes) >= 2

    for pipeline in ["dense", "rrf(bm25 % 100, dense % 100)", "bm25 % 100 >> dense"]:
        sharded = routed_run("subset", queries, pipeline, 100)
        single = one.pipeline(f"({pipeline}) % 100").transform(queries)
        assert_same_runs(single, sharded, pipeline)
        print(f"{pipeline}: nDCG@10 {ferret.evaluate(sharded, qrels, ['nDCG@10'])['nDCG@10']:.4f} (equal to one index)")

    def under_load(seconds, kill=None):
        """Queries from two threads for `seconds`, killing `kill` (a pid) after one second;
        every response's (status, partial, missing shards)."""
        answers, stop = [], time.monotonic() + seconds

        def client():
            i = 0
            while time.monotonic() < stop:
                q = queries["query"].iloc[i % len(queries)]
                i += 1
                try:
                    r = requests.post(f"{BASE}/subset/v1/search", json={"query": q, "pipeline": "bm25", "k": 10}, timeout=30)
                    body = r.json() if r.status_code == 200 else {}
                    answers.append((time.monotonic(), r.status_code, body.get("partial"), body.get("missing_shards")))
                except requests.RequestException as e:
                    answers.append((time.monotonic(), str(e), None, None))

        threads = [threading.Thread(target=client) for _ in range(2)]
        for t in threads:
            t.start()
        if kill is not None:
            time.sleep(1)
            os.kill(kill, signal.SIGKILL)
        for t in threads:
            t.join()
        return answers

    # Two replicas per shard: one killed under load, no request fails or is partial.
    victim = next(iter(replicas(1, 2)))
    answers = under_load(8, kill=victim)
    assert len(answers) > 20
    bad = [a for a in answers if a[1] != 200 or a[2] is not False]
    assert not bad, bad[:5]
    print(f"R=2, replica {victim} of shard 1 killed: {len(answers)} requests, none failed or partial")

    # One replica per shard: the killed shard's answers are missing (partial, naming it)
    # until Serve has restarted it; then whole again.
    fray.serve(out, replicas=1, name="subset", route_prefix="/subset", timeout_s=2, shard_cpus=0.25)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        states = serve.status().applications["subset"].deployments["shard-1"].replica_states
        if dict(states) == {"RUNNING": 1}:
            break
        time.sleep(0.5)
    victim = next(iter(replicas(1, 1)))
    answers = under_load(6, kill=victim)
    failed = [a for a in answers if a[1] != 200]
    assert not failed, failed[:5]
    partial = [a for a in answers if a[2]]
    assert partial and all(a[3] == [1] for a in partial), answers[-5:]
    healed = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        r = requests.post(f"{BASE}/subset/v1/search", json={"query": "cells", "pipeline": "bm25", "k": 10}, timeout=30)
        if r.status_code == 200 and r.json()["partial"] is False:
            healed = time.monotonic()
            break
        time.sleep(1)
    assert healed is not None, "shard 1 was not restarted within 120 s"
    print(f"R=1: {len(partial)} of {len(answers)} responses partial (missing shard 1), whole again {healed - partial[0][0]:.1f} s after the first partial one")


def test_bad_input(cluster):
    """Bad corpora, shard folders of another collection, mixed analyzers, and a router whose
    shards are all down."""
    import asyncio
    import gzip

    from ferret import _ferret

    with gzip.open(DATA / "corpus.jsonl.gz", "rb") as f:
        lines = [next(f) for _ in range(60)]
    corpus = cluster / "small.jsonl"
    corpus.write_bytes(b"".join(lines))
    small = fray.build(corpus, cluster / "small-2", shards=2)
    paths = [str(p) for p in small.shard_paths()]
    stats = str(small.statistics)

    for name, content, message in [
        ("utf8.jsonl", b"".join(lines[:3]) + b'{"_id": "x", "text": "caf\xe9"}\n', r"utf8.jsonl:4: not UTF-8"),
        ("json.jsonl", b"".join(lines[:2]) + b'{"_id": "x", "text": \n', r"json.jsonl:3: not a BEIR document"),
        ("types.jsonl", b'{"_id": "x", "text": 5}\n', r"types.jsonl:1: document 'x': title and text must be strings"),
    ]:
        (cluster / name).write_bytes(content)
        with pytest.raises(ferret.FerretError, match=message):
            fray.build(cluster / name, cluster / f"bad-{name}", shards=2)

    assert fray.ShardServer(paths[1], stats, (), (1, 2), []).index is not None
    with pytest.raises(ferret.FerretError, match="shard 1 of 2, but the collection expects shard 0 of 2"):
        fray.ShardServer(paths[1], stats, (), (0, 2), [])
    with pytest.raises(ferret.FerretError, match="built with the models"):
        fray.ShardServer(paths[1], stats, (), (1, 2), [["dense", "some/model", "0" * 64]])
    with pytest.raises(ferret.FerretError, match="not a ferret index"):
        fray.ShardServer(str(cluster / "missing"), stats)
    with pytest.raises(ferret.FerretError, match="no collection.json"):
        fray.Collection(cluster / "missing")

    zh = ferret.Index.build([{"docno": "x", "text": "你好"}], cluster / "zh", analyzer="zh")
    _ferret.sum_statistics([str(zh.path)], str(cluster / "zh-stats.json"))
    with pytest.raises(ferret.FerretError, match="statistics are for analyzer Zh"):
        fray.ShardServer(paths[0], str(cluster / "zh-stats.json"))
    with pytest.raises(ferret.FerretError, match="part 1 was indexed with analyzer Zh"):
        _ferret.sum_statistics([paths[0], str(zh.path)], str(cluster / "mixed.json"))

    async def down(shard, method, *args):
        raise ConnectionError("replica unreachable")

    started = time.monotonic()
    status, body = asyncio.run(fray.Router(down, 2, 0.5).respond("cells", "bm25", 10))
    assert status == 503 and body["error"]["code"] == "shards_unavailable", body
    assert time.monotonic() - started < 5
