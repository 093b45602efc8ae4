"""ferret from Python: multi-stage retrieval and ranking with evaluation built in.

The conventions are PyTerrier's: queries are DataFrames with ``qid`` and ``query`` columns,
results add ``docno``, ``score`` and ``rank``; qrels have ``qid``, ``docno`` and ``label``.

>>> import ferret
>>> index = ferret.Index.build("corpus.jsonl.gz", "scifact-idx", dense="all-minilm-l6-v2")
>>> bm25 = index.pipeline("bm25(k1=0.9, b=0.4) % 1000")
>>> run = bm25.transform(ferret.read_queries("queries.jsonl"))
>>> ferret.evaluate(run, ferret.read_qrels("qrels/test.tsv"), ["nDCG@10", "R@100"])
{'nDCG@10': 0.6789..., 'R@100': 0.9253...}

Indexing, searching, evaluation and encoding run in ferret's Rust core with the GIL released.
Errors are :class:`FerretError` with ferret's messages (file, line, position).
"""

from __future__ import annotations

import os
from typing import Iterable, Mapping, Optional, Sequence, Union

import numpy as np
import pandas as pd

from . import _ferret
from ._ferret import FerretError, __version__

__all__ = [
    "FerretError",
    "Index",
    "Pipeline",
    "encode",
    "evaluate",
    "read_qrels",
    "read_queries",
    "read_card",
    "read_run",
    "reproduce",
    "write_run",
    "__version__",
]

PathLike = Union[str, "os.PathLike[str]"]
#: The measures ``ferret run`` prints and records in run cards by default.
RUN_MEASURES = ("nDCG@10", "R@100", "R@1000", "AP", "RR@10")
Models = Union[None, str, Sequence[str]]


def _models(value: Models) -> list:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return list(value)


def _documents(corpus) -> list:
    """(id, title, text) rows from a DataFrame or an iterable of dicts (PyTerrier's ``docno``
    or BEIR's ``_id``)."""
    if isinstance(corpus, pd.DataFrame):
        corpus = corpus.to_dict("records")
    rows = []
    for n, doc in enumerate(corpus):
        if not isinstance(doc, Mapping):
            raise FerretError(f"document {n}: expected a dict with docno and text, got {type(doc).__name__}")
        docno = doc.get("docno", doc.get("_id"))
        if docno is None:
            raise FerretError(f"document {n}: no 'docno' (or '_id') field")
        text = doc.get("text")
        if text is None:
            raise FerretError(f"document {n} ('{docno}'): no 'text' field")
        rows.append((str(docno), str(doc.get("title") or ""), str(text)))
    return rows


def _queries(queries) -> pd.DataFrame:
    """A DataFrame with qid and query from a DataFrame, a queries file, a string or a list of
    strings (numbered 1, 2, …)."""
    if isinstance(queries, pd.DataFrame):
        missing = {"qid", "query"} - set(queries.columns)
        if missing:
            raise FerretError(f"queries DataFrame has no column {', '.join(sorted(missing))} (columns: {', '.join(map(str, queries.columns))})")
        return queries
    if isinstance(queries, (str, os.PathLike)) and os.path.exists(queries):
        return read_queries(queries)
    if isinstance(queries, str):
        queries = [queries]
    texts = [str(q) for q in queries]
    return pd.DataFrame({"qid": [str(i + 1) for i in range(len(texts))], "query": texts})


def _results(qids, docnos, scores, topics: pd.DataFrame) -> pd.DataFrame:
    """The topics' columns (qid, query and any others, as PyTerrier's retrievers keep them)
    with docno, score and rank (from 0) per hit."""
    hits = pd.DataFrame({"qid": qids, "docno": docnos, "score": np.asarray(scores, dtype=np.float64)})
    hits["rank"] = hits.groupby("qid", sort=False).cumcount()
    return topics.merge(hits, on="qid", how="inner", sort=False)


class Index:
    """A ferret index directory: ``Index(path)`` opens one, ``Index.build`` makes one."""

    def __init__(self, path: PathLike):
        self.path = os.fspath(path)
        self._index = _ferret.Index(self.path)

    @classmethod
    def build(
        cls,
        corpus,
        path: PathLike,
        *,
        analyzer: str = "en",
        fields: str = "flat",
        dense: Models = None,
        sparse: Models = None,
        tokens: Models = None,
        colbert: Models = None,
        hnsw: bool = False,
        dense_dtype: str = "f32",
        dense_int8: bool = False,
        tokens_nbits: int = 2,
        overwrite: bool = False,
        append: bool = False,
        skip_invalid: bool = False,
        threads: Optional[int] = None,
    ) -> "Index":
        """Indexes ``corpus`` into ``path`` and returns the opened index.

        ``corpus`` is a BEIR JSONL(.gz) / TSV file, a DataFrame with ``docno`` and ``text``
        (and optionally ``title``) columns, an iterable of such dicts (PyTerrier's), or None
        with ``append=True`` to add representations to an existing index. ``dense``,
        ``sparse``, ``tokens`` and ``colbert`` name models (ids, aliases or folders) whose
        representations are added, as ``ferret index --dense …`` does; ``dense_int8`` runs
        the dense encoders with int8 linear layers (``--int8``).
        """
        corpus_file, documents = None, []
        if isinstance(corpus, (str, os.PathLike)):
            corpus_file = os.fspath(corpus)
        elif corpus is not None:
            documents = _documents(corpus)
        representations = {
            "dense": _models(dense),
            "sparse": _models(sparse),
            "tokens": _models(tokens),
            "colbert": _models(colbert),
            "hnsw": bool(hnsw),
            "dense_dtype": dense_dtype,
            "dense_int8": bool(dense_int8),
            "tokens_nbits": int(tokens_nbits),
        }
        added, skipped = _ferret.Index.build(
            os.fspath(path), corpus_file, documents, analyzer, fields, representations,
            overwrite, append, skip_invalid, threads,
        )
        index = cls(path)
        #: What the build did: documents added, and (with skip_invalid) each skipped one's reason.
        index.build_stats = {"added": added, "skipped": skipped}
        return index

    def __len__(self) -> int:
        return len(self._index)

    def __repr__(self) -> str:
        return repr(self._index)

    @property
    def manifest(self) -> dict:
        """The committed manifest: generation, documents, representations and their models."""
        import json

        return json.loads(self._index.manifest_json())

    def document(self, docno: str) -> Optional[dict]:
        """The stored document (``docno``, ``title``, ``text``), or None."""
        found = self._index.document(str(docno))
        if found is None:
            return None
        return {"docno": str(docno), "title": found[0], "text": found[1]}

    def pipeline(self, text: str = "bm25") -> "Pipeline":
        """A :class:`Pipeline` on this index, e.g. ``index.pipeline("bm25 % 100 >> rm3")``."""
        return Pipeline(text, self)

    def search(self, query: str, pipeline: str = "bm25", k: int = 10) -> pd.DataFrame:
        """One query: a DataFrame of qid, query, docno, score, rank."""
        return self.pipeline(pipeline).search(query, k=k)

    def batch_search(self, queries, pipeline: str = "bm25", k: int = 1000, threads: Optional[int] = None) -> pd.DataFrame:
        """Many queries (DataFrame with qid and query, a queries file, or a list of strings)."""
        return self.pipeline(pipeline).transform(queries, k=k, threads=threads)

    transform = batch_search


class Pipeline:
    """A ranking pipeline in ferret's language, bound to an index; a PyTerrier-style
    transformer (``transform(topics) -> results``).

    ``Pipeline("bm25") >> Pipeline("rm3")`` and ``Pipeline("bm25") % 100`` compose as the
    language's ``>>`` and ``%`` do. Models and statistics are loaded once, on first use.
    """

    def __init__(self, text: str, index: Optional[Index] = None, k: int = 1000):
        self.text = _ferret.canonical_pipeline(text)
        self.index = index
        self.k = k
        self._prepared = None

    def _on(self, other_text: str) -> "Pipeline":
        return Pipeline(other_text, self.index, self.k)

    def __rshift__(self, other) -> "Pipeline":
        other_text = other.text if isinstance(other, Pipeline) else str(other)
        return self._on(f"({self.text}) >> ({other_text})")

    def __mod__(self, k: int) -> "Pipeline":
        return self._on(f"({self.text}) % {int(k)}")

    def __repr__(self) -> str:
        return f"ferret.Pipeline({self.text!r})"

    def describe(self) -> str:
        """Every stage with every parameter, defaults included (as in run cards)."""
        return self._prepare().describe()

    def _prepare(self):
        if self.index is None:
            raise FerretError(f"pipeline {self.text!r} has no index: Index.pipeline(...) or Pipeline(text, index)")
        if self._prepared is None:
            self._prepared = _ferret.Prepared(self.index._index, self.text)
        return self._prepared

    def search(self, query: str, k: int = 10) -> pd.DataFrame:
        return self.transform(pd.DataFrame({"qid": ["1"], "query": [query]}), k=k)

    def transform(self, queries, k: Optional[int] = None, threads: Optional[int] = None) -> pd.DataFrame:
        """Runs every query; returns qid, query, docno, score, rank (rank from 0, as PyTerrier)."""
        topics = _queries(queries)
        qids = [str(q) for q in topics["qid"]]
        texts = [str(t) for t in topics["query"]]
        columns = self._prepare().search(qids, texts, int(k or self.k), threads)
        topics = topics.assign(qid=qids)
        return _results(*columns, topics)

    __call__ = transform

    def run(
        self,
        queries: PathLike,
        output: PathLike,
        *,
        qrels: Optional[PathLike] = None,
        measures: Sequence[str] = RUN_MEASURES,
        k: Optional[int] = None,
        tag: str = "ferret",
        raw_scores: bool = False,
        threads: Optional[int] = None,
    ) -> dict:
        """Runs a query file as ``ferret run`` does: the TREC run goes to ``output`` and its run
        card beside it (``<output>.card.json``: the pipeline with every parameter, the index's
        manifest, sha256 of the queries, qrels and run, timings, and with ``qrels`` the judged
        queries only and the ``measures``' means). Returns the card as a dict;
        :func:`reproduce` (or ``ferret reproduce``) re-runs it and checks the numbers.

        Scores are written as ``ferret run`` writes them: exact ties separated so that
        trec_eval evaluates the ranked order, unless ``raw_scores``.
        """
        import json
        import sys

        if self.index is None:
            raise FerretError(f"pipeline {self.text!r} has no index: Index.pipeline(...) or Pipeline(text, index)")
        if not isinstance(queries, (str, os.PathLike)):
            raise FerretError("Pipeline.run takes the queries as a file (the run card records its sha256); use transform() for a DataFrame")
        card = _ferret.run_query_set(
            self.index.path, os.fspath(queries), self.text, int(k or self.k), os.fspath(output),
            None if qrels is None else os.fspath(qrels), list(measures), tag, bool(raw_scores),
            threads, [sys.executable, *sys.argv],
        )
        return json.loads(card)

    def to_pyterrier(self):
        """This pipeline as a ``pyterrier.Transformer`` (needs ``python-terrier``), so it composes
        with PyTerrier's operators and runs in ``pt.Experiment``."""
        import pyterrier as pt

        pipeline = self

        class FerretTransformer(pt.Transformer):
            def transform(self, topics: pd.DataFrame) -> pd.DataFrame:
                return pipeline.transform(topics)

            def __repr__(self) -> str:
                return f"ferret({pipeline.text!r})"

        return FerretTransformer()


def read_queries(path: PathLike) -> pd.DataFrame:
    """BEIR queries.jsonl or TSV (id<TAB>text) as qid, query."""
    ids, texts = _ferret.read_queries(os.fspath(path))
    return pd.DataFrame({"qid": ids, "query": texts})


def read_qrels(path: PathLike) -> pd.DataFrame:
    """TREC qrels or BEIR TSV as qid, docno, label."""
    q, d, r = _ferret.read_qrels(os.fspath(path))
    return pd.DataFrame({"qid": q, "docno": d, "label": np.asarray(r, dtype=np.int64)})


def read_run(path: PathLike) -> pd.DataFrame:
    """A TREC run as qid, docno, score, rank (each query's documents best first)."""
    q, d, s = _ferret.read_run(os.fspath(path))
    df = pd.DataFrame({"qid": q, "docno": d, "score": np.asarray(s, dtype=np.float64)})
    df = df.sort_values(["qid", "score", "docno"], ascending=[True, False, False], kind="stable")
    df["rank"] = df.groupby("qid", sort=False).cumcount()
    return df.reset_index(drop=True)


def write_run(run: pd.DataFrame, path: PathLike, tag: str = "ferret") -> None:
    """Writes qid, docno, score (ranks 1..n in score order) as a TREC run."""
    df = run.sort_values(["qid", "score"], ascending=[True, False], kind="stable")
    with open(path, "w") as out:
        for qid, group in df.groupby("qid", sort=False):
            for rank, (docno, score) in enumerate(zip(group["docno"], group["score"]), start=1):
                out.write(f"{qid} Q0 {docno} {rank} {score!r} {tag}\n")


def _run_columns(run):
    if isinstance(run, (str, os.PathLike)):
        return _ferret.read_run(os.fspath(run))
    return ([str(q) for q in run["qid"]], [str(d) for d in run["docno"]], [float(s) for s in run["score"]])


def _qrels_columns(qrels):
    if isinstance(qrels, (str, os.PathLike)):
        return _ferret.read_qrels(os.fspath(qrels))
    label = "label" if "label" in qrels.columns else "relevance"
    return ([str(q) for q in qrels["qid"]], [str(d) for d in qrels["docno"]], [int(r) for r in qrels[label]])


def evaluate(
    run,
    qrels,
    measures: Union[str, Iterable[str]] = ("nDCG@10",),
    *,
    per_query: bool = False,
    relevance_level: int = 1,
    complete: bool = False,
):
    """Evaluates a run exactly as trec_eval does.

    ``run``: DataFrame (qid, docno, score) or a TREC run file; ``qrels``: DataFrame (qid, docno,
    label) or a qrels file (TREC or BEIR TSV). ``measures`` in trec_eval (``ndcg_cut.10``) or
    ir_measures (``nDCG@10``) style. Returns {measure: mean}, or with ``per_query`` a DataFrame
    with one row per query. ``complete`` averages over every judged query (trec_eval -c).
    """
    if isinstance(measures, str):
        measures = [measures]
    names, means, rows = _ferret.evaluate(
        _run_columns(run), _qrels_columns(qrels), list(measures), relevance_level, complete
    )
    if per_query:
        return pd.DataFrame([[qid, *values] for qid, values in rows], columns=["qid", *names])
    return dict(zip(names, means))


def read_card(path: PathLike) -> dict:
    """A run card (``<run>.card.json``, from ``ferret run`` or :meth:`Pipeline.run`) as a dict,
    after checking that it is one."""
    import json

    return json.loads(_ferret.read_card(os.fspath(path)))


def reproduce(
    card: PathLike,
    *,
    index: Optional[PathLike] = None,
    queries: Optional[PathLike] = None,
    qrels: Optional[PathLike] = None,
    tolerance: float = 1e-9,
    check: bool = True,
    threads: Optional[int] = None,
) -> pd.DataFrame:
    """Re-runs a run card as ``ferret reproduce`` does: the queries and qrels must be the files the
    card was made from (sha256) and the index must have its representations and documents;
    ``index``, ``queries`` and ``qrels`` replace the card's paths (e.g. on another machine).

    Returns one row per measure (``measure``, ``card``, ``now``, ``diff``, ``ok``);
    ``attrs["same_run"]`` says whether the run file came out byte for byte the same. With
    ``check`` a difference above ``tolerance`` raises :class:`FerretError`.
    """
    opt = lambda p: None if p is None else os.fspath(p)  # noqa: E731
    rows, same_run = _ferret.reproduce(os.fspath(card), opt(index), opt(queries), opt(qrels), threads)
    table = pd.DataFrame(rows, columns=["measure", "card", "now"])
    table["diff"] = table["now"] - table["card"]
    table["ok"] = table["diff"].abs() <= tolerance
    table.attrs["same_run"] = same_run
    if check and not table["ok"].all():
        bad = ", ".join(f"{r.measure} {r.card:.4f} -> {r.now:.4f}" for r in table.itertuples() if not r.ok)
        raise FerretError(f"{os.fspath(card)}: metrics differ from the card by more than {tolerance}: {bad}")
    return table


def encode(texts: Union[str, Sequence[str]], model: str, kind: str = "document", threads: Optional[int] = None) -> np.ndarray:
    """Embeds texts with a sentence encoder (id, alias or folder) after its document or query
    prefix: a float32 array [len(texts), dim]."""
    if isinstance(texts, str):
        texts = [texts]
    data, rows, dim = _ferret.encode(model, [str(t) for t in texts], kind, threads)
    return np.frombuffer(data, dtype="<f4").reshape(rows, dim)
