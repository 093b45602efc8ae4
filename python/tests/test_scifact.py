"""ferret from Python on BEIR SciFact (../shared/data, or $FERRET_DATA), checked against the
`ferret` binary ($FERRET_BIN) on the same data: same runs, same numbers."""

import json
import os
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import ferret

REPO = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("FERRET_DATA", REPO.parent / "shared" / "data")) / "beir-scifact"
FERRET_BIN = os.environ.get("FERRET_BIN", str(REPO / "target" / "debug" / "ferret"))
MODEL = "all-minilm-l6-v2"


def cli(*args):
    out = subprocess.run([FERRET_BIN, *map(str, args)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.fixture(scope="session")
def scifact():
    # Fails loudly (no skip) when the data is missing.
    assert (DATA / "corpus.jsonl.gz").is_file(), f"SciFact not found under {DATA} (set FERRET_DATA)"
    assert Path(FERRET_BIN).is_file(), f"no ferret binary at {FERRET_BIN} (cargo build, or set FERRET_BIN)"
    return DATA


@pytest.fixture(scope="session")
def topics(scifact):
    qrels = ferret.read_qrels(scifact / "qrels" / "test.tsv")
    queries = ferret.read_queries(scifact / "queries.jsonl")
    return queries[queries["qid"].isin(set(qrels["qid"]))].reset_index(drop=True), qrels


@pytest.fixture(scope="session")
def bm25_index(scifact, tmp_path_factory):
    """SciFact built from Python, while another Python thread keeps running: the build must
    release the GIL."""
    path = tmp_path_factory.mktemp("scifact") / "idx"
    ticks, done = [], threading.Event()

    def tick():
        while not done.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    ticker = threading.Thread(target=tick)
    ticker.start()
    time.sleep(0.05)
    start = time.perf_counter()
    index = ferret.Index.build(scifact / "corpus.jsonl.gz", path)
    end = time.perf_counter()
    done.set()
    ticker.join()
    during = [t for t in ticks if start < t < end]
    # Holding the GIL, the ticker could run only in the microseconds of Python code around the
    # Rust call (a tick or two); released, it ticks about once per millisecond throughout.
    assert end - start > 0.1, f"SciFact indexed in {end - start:.3f}s: too fast to tell"
    assert len(during) > 20, f"the Python thread ran {len(during)} times in {end - start:.2f}s of indexing"
    return index


def test_bm25_equals_the_cli(bm25_index, topics, scifact, tmp_path):
    queries, qrels = topics
    pipeline = "bm25(k1=0.9, b=0.4) % 1000"
    run = bm25_index.pipeline(pipeline).transform(queries)
    assert list(run.columns) == ["qid", "query", "docno", "score", "rank"]
    assert run.groupby("qid").size().max() == 1000
    assert (run.groupby("qid")["rank"].min() == 0).all()
    scores = ferret.evaluate(run, qrels, ["nDCG@10", "R@100"])
    # Anserini's BM25 on SciFact, as ferret's CLI reproduces it.
    assert round(scores["nDCG@10"], 4) == 0.6789, scores
    assert round(scores["R@100"], 4) == 0.9253, scores

    cli_run = tmp_path / "cli.run"
    cli("run", "--index", bm25_index.path, "--queries", scifact / "queries.jsonl",
        "--qrels", scifact / "qrels" / "test.tsv", "--pipeline", pipeline, "-o", cli_run,
        "--raw-scores")
    theirs = ferret.read_run(cli_run)
    ours = run[["qid", "docno", "score"]].merge(theirs, on=["qid", "docno"], suffixes=("", "_cli"))
    assert len(ours) == len(run) == len(theirs)
    assert np.allclose(ours["score"], ours["score_cli"], rtol=0, atol=1e-5)
    # The files' evaluation equals the DataFrames'.
    assert ferret.evaluate(cli_run, scifact / "qrels" / "test.tsv", ["nDCG@10", "R@100"]) == pytest.approx(scores, abs=1e-12)

    written = tmp_path / "py.run"
    ferret.write_run(run, written)
    assert ferret.evaluate(written, qrels, "nDCG@10")["nDCG@10"] == pytest.approx(scores["nDCG@10"], abs=1e-9)


def test_run_cards_from_python(bm25_index, topics, scifact, tmp_path):
    """Pipeline.run writes the run and card `ferret run` writes; each side reproduces the
    other's card."""
    queries_file, qrels_file = scifact / "queries.jsonl", scifact / "qrels" / "test.tsv"
    pipeline = bm25_index.pipeline("bm25(k1=0.9, b=0.4) % 1000")
    card = pipeline.run(queries_file, tmp_path / "py.run", qrels=qrels_file, measures=["nDCG@10", "R@100"])
    metrics = {m["measure"]: m["value"] for m in card["metrics"]}
    assert round(metrics["nDCG@10"], 4) == 0.6789 and round(metrics["R@100"], 4) == 0.9253, metrics
    assert card["pipeline_resolved"].startswith("bm25(k1=0.9, b=0.4"), card["pipeline_resolved"]
    assert card["timings"]["queries"] == 300 and card["k"] == 1000 and card["scores"] == "separated"
    assert card["index"]["manifest"]["doc_count"] == len(bm25_index)
    assert ferret.read_card(tmp_path / "py.run.card.json") == card

    cli("run", "--index", bm25_index.path, "--queries", queries_file, "--qrels", qrels_file,
        "--pipeline", "bm25(k1=0.9, b=0.4) % 1000", "-o", tmp_path / "cli.run", "-m", "nDCG@10", "R@100")
    cli_card = ferret.read_card(tmp_path / "cli.run.card.json")
    # The same run, byte for byte, and the same numbers.
    assert cli_card["run"]["sha256"] == card["run"]["sha256"]
    assert cli_card["metrics"] == card["metrics"]

    again = ferret.reproduce(tmp_path / "cli.run.card.json")
    assert list(again["measure"]) == ["nDCG@10", "R@100"] and again["ok"].all(), again
    assert again.attrs["same_run"]
    assert "reproduced" in cli("reproduce", tmp_path / "py.run.card.json")

    # Other qrels than the card's: refused before running.
    changed = tmp_path / "qrels.tsv"
    lines = qrels_file.read_text().splitlines()
    changed.write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(ferret.FerretError, match="qrels file .* differs from the one the card was made with"):
        ferret.reproduce(tmp_path / "py.run.card.json", qrels=changed)
    # A card whose numbers no longer hold: the table says which, and check raises.
    card["metrics"][0]["value"] += 0.01
    (tmp_path / "edited.card.json").write_text(json.dumps(card))
    table = ferret.reproduce(tmp_path / "edited.card.json", check=False)
    assert list(table["ok"]) == [False, True], table
    with pytest.raises(ferret.FerretError, match="nDCG@10 0.6889 -> 0.6789"):
        ferret.reproduce(tmp_path / "edited.card.json")
    # Not a card; queries not in a file.
    (tmp_path / "other.json").write_text('{"pipeline": "bm25"}')
    with pytest.raises(ferret.FerretError, match="other.json:1:.*not a ferret run card"):
        ferret.read_card(tmp_path / "other.json")
    with pytest.raises(ferret.FerretError, match="takes the queries as a file"):
        pipeline.run(topics[0], tmp_path / "df.run")


def test_pipelines_compose_and_evaluate(bm25_index, topics):
    queries, qrels = topics
    bm25 = bm25_index.pipeline("bm25(k1=0.9, b=0.4)")
    rm3 = (bm25 % 1000) >> ferret.Pipeline("rm3(fb_docs=10, fb_terms=10)")
    assert rm3.text == "bm25(k1=0.9, b=0.4) % 1000 >> rm3(fb_docs=10, fb_terms=10)"
    assert "rm3(" in rm3.describe() and "fb_docs=10" in rm3.describe()
    a = rm3.transform(queries, k=1000)
    b = bm25_index.batch_search(queries, pipeline="bm25(k1=0.9, b=0.4) % 1000 >> rm3(fb_docs=10, fb_terms=10)")
    pd.testing.assert_frame_equal(a, b)
    per_query = ferret.evaluate(a, qrels, ["nDCG@10", "AP"], per_query=True)
    assert list(per_query.columns) == ["qid", "nDCG@10", "AP"]
    assert len(per_query) == len(queries)
    mean = ferret.evaluate(a, qrels, ["nDCG@10", "AP"])
    assert per_query["nDCG@10"].mean() == pytest.approx(mean["nDCG@10"], abs=1e-12)
    # One query, and a list of strings (numbered from 1).
    hits = bm25_index.search("iron uptake in yeast", k=5)
    assert len(hits) == 5 and list(hits["rank"]) == [0, 1, 2, 3, 4]
    assert (hits["score"].diff().dropna() <= 0).all()
    both = bm25_index.batch_search(["iron uptake in yeast", "vitamin D"], k=3)
    assert list(both["qid"]) == ["1"] * 3 + ["2"] * 3
    doc = bm25_index.document(hits["docno"][0])
    assert doc["docno"] == hits["docno"][0] and doc["text"]
    assert bm25_index.document("no-such-document") is None
    assert len(bm25_index) == 5183


def test_dataframe_corpus_hybrid_and_encode(scifact, topics, tmp_path):
    """A DataFrame corpus (the judged documents of 30 queries and 400 others) with a dense
    representation: the hybrid's run equals the CLI's on the same index, and encode() equals
    `ferret encode`."""
    queries, qrels = topics
    queries = queries.head(30)
    wanted = set(qrels[qrels["qid"].isin(set(queries["qid"]))]["docno"])
    rows = []
    import gzip

    with gzip.open(scifact / "corpus.jsonl.gz", "rt") as f:
        for n, line in enumerate(f):
            d = json.loads(line)
            if d["_id"] in wanted or n < 400:
                rows.append({"docno": d["_id"], "title": d["title"], "text": d["text"]})
    corpus = pd.DataFrame(rows)
    index = ferret.Index.build(corpus, tmp_path / "idx", dense=MODEL)
    assert len(index) == len(corpus)
    kinds = sorted(r["kind"] for r in index.manifest["representations"])
    assert kinds == ["dense", "lexical"], kinds
    pipeline = f"rrf(bm25 % 100, dense(model={MODEL}) % 100)"
    run = index.pipeline(pipeline).transform(queries, k=100)
    qfile = tmp_path / "queries.tsv"
    qfile.write_text("".join(f"{q}\t{t}\n" for q, t in zip(queries["qid"], queries["query"])))
    cli_run = tmp_path / "cli.run"
    cli("run", "--index", tmp_path / "idx", "--queries", qfile, "--pipeline", pipeline, "-k", 100, "-o", cli_run,
        "--raw-scores")
    theirs = ferret.read_run(cli_run)
    merged = run.merge(theirs, on=["qid", "docno"], suffixes=("", "_cli"))
    assert len(merged) == len(run) == len(theirs)
    assert np.allclose(merged["score"], merged["score_cli"], rtol=0, atol=1e-6)

    texts = list(queries["query"].head(5))
    vectors = ferret.encode(texts, MODEL, kind="query")
    assert vectors.shape == (5, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    out = tmp_path / "q.jsonl"
    five = tmp_path / "five.tsv"
    five.write_text("".join(f"{i}\t{t}\n" for i, t in enumerate(texts)))
    cli("encode", "--model", MODEL, "--queries", five, "-o", out)
    theirs = np.array([json.loads(line)["vector"] for line in out.read_text().splitlines()], dtype=np.float32)
    assert np.abs(vectors - theirs).max() < 1e-6


def test_dense_int8(scifact, tmp_path):
    """Index.build(dense_int8=True) records int8 in the manifest, and queries are encoded with
    the same int8 layers: a document's own text finds it with score 1 (an f32 query embedding
    would be ~0.997 from the int8 document vector)."""
    import gzip

    with gzip.open(scifact / "corpus.jsonl.gz", "rt") as f:
        docs = [json.loads(line) for _, line in zip(range(30), f)]
    corpus = pd.DataFrame([{"docno": d["_id"], "title": d["title"], "text": d["text"]} for d in docs])
    index = ferret.Index.build(corpus, tmp_path / "idx", dense=MODEL, dense_int8=True)
    dense = [r for r in index.manifest["representations"] if r["kind"] == "dense"]
    assert dense[0]["params"]["int8"] is True, dense
    for d in docs[:3]:
        query = pd.DataFrame([{"qid": "q", "query": f"{d['title']} {d['text']}"}])
        run = index.pipeline(f"dense(model={MODEL}, exact=1)").transform(query, k=1)
        assert run["docno"].iloc[0] == d["_id"]
        assert abs(run["score"].iloc[0] - 1.0) < 1e-4, run


def test_errors_are_ferret_errors_with_ferret_messages(bm25_index, topics, tmp_path):
    queries, qrels = topics
    with pytest.raises(ferret.FerretError, match="nowhere: not a ferret index"):
        ferret.Index(tmp_path / "nowhere")
    with pytest.raises(ferret.FerretError, match=r"position 13: expected ',' or '\)'"):
        ferret.Pipeline("bm25(k1=0.9 b=0.4)")
    with pytest.raises(ferret.FerretError, match="unknown stage"):
        bm25_index.search("x", pipeline="bm26")
    with pytest.raises(ferret.FerretError, match="query '1' is empty"):
        bm25_index.search("   ")
    with pytest.raises(ferret.FerretError, match="unknown measure 'nDCG@ten'"):
        ferret.evaluate(bm25_index.search("vitamin D"), qrels, "nDCG@ten")
    with pytest.raises(ferret.FerretError, match="share no query id"):
        ferret.evaluate(bm25_index.search("vitamin D"), qrels.assign(qid="x" + qrels["qid"]), "AP")
    bad = tmp_path / "bad.run"
    bad.write_text("1 Q0 d1 1 3.5 x\n1 Q0 d2 2 high x\n")
    with pytest.raises(ferret.FerretError, match="bad.run:2: score 'high' is not a number"):
        ferret.read_run(bad)
    with pytest.raises(ferret.FerretError, match=r"document 1 \('b'\): no 'text' field"):
        ferret.Index.build([{"docno": "a", "text": "x"}, {"docno": "b"}], tmp_path / "i2")
    bad_corpus = tmp_path / "c.jsonl"
    bad_corpus.write_bytes(b'{"_id": "a", "text": "fine"}\n{"_id": "b", "text": "\xff"}\n')
    with pytest.raises(ferret.FerretError, match="c.jsonl:2"):
        ferret.Index.build(bad_corpus, tmp_path / "i3")
    with pytest.raises(ferret.FerretError, match="has no column query"):
        bm25_index.batch_search(pd.DataFrame({"qid": ["1"]}))
    with pytest.raises(ferret.FerretError, match="unknown model|not found|no model"):
        ferret.encode(["x"], "no-such-model-anywhere")


def test_pyterrier_composes_with_ferret(bm25_index, topics):
    """A ferret pipeline as a PyTerrier transformer: composed with PyTerrier's own operators and
    evaluated by pt.Experiment (ir_measures / pytrec_eval), which agrees with ferret.evaluate.
    PyTerrier's Java side is not needed for this."""
    import pyterrier as pt

    queries, qrels = topics
    bm25 = bm25_index.pipeline("bm25(k1=0.9, b=0.4) % 1000")
    ours = ferret.evaluate(bm25.transform(queries), qrels, ["nDCG@10", "R@100"])
    as_pt = bm25.to_pyterrier()
    doubled = (as_pt % 100) >> pt.apply.doc_score(lambda row: 2 * row["score"])
    table = pt.Experiment([as_pt, doubled], queries, qrels, eval_metrics=["ndcg_cut_10", "recall_100"], names=["bm25", "doubled"])
    assert table["ndcg_cut_10"].tolist() == pytest.approx([ours["nDCG@10"]] * 2, abs=1e-9)
    assert table.loc[0, "recall_100"] == pytest.approx(ours["R@100"], abs=1e-9)
    assert not pt.java.started()
