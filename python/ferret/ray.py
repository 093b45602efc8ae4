"""ferret past one machine, on Ray: a collection split into shards, built with Ray Data and
served with Ray Serve, answering exactly as one index over all its documents would.

>>> import ray, ferret.ray
>>> ray.init(address="auto")
>>> ferret.ray.build("corpus.jsonl", "scifact-3", shards=3, dense="all-minilm-l6-v2")
>>> ferret.ray.serve("scifact-3", replicas=2)            # HTTP on Serve's proxy, port 8000
>>> # POST /v1/search {"query": "...", "pipeline": "bm25 % 1000 >> rm3", "k": 10}

**Build.** The corpus (BEIR JSONL) is read in order and handed to Ray Data in chunks;
each document goes to shard ``crc32(id) mod N``, computes dense vectors in a pool of encoder actors (batches; GPU actors
when ``num_gpus`` is given), and writes each shard as a complete ferret index (every
representation, the vectors as computed). A shard is written to ``shard-NNN.partial`` and
renamed when committed, so a crash leaves no half shard visible; building again into the same
folder skips the committed shards. Last, the shards' lexical statistics (N, field lengths,
document frequencies) are summed into ``lexical-statistics.json`` and ``collection.json`` is
written: with them every shard scores BM25, and filters feedback terms, with the whole
collection's statistics.

**Serve.** One Serve deployment per shard (``replicas`` each) and a router deployment speaking
ferret's HTTP API (``/v1/search``, ``/health``, ``/openapi.json``). The router runs the
pipeline itself: retrievers fan out to every shard and their top k are merged (global
statistics make BM25 and exact dense scores comparable); ``a >> stage`` sends each shard its
own candidates to rescore and merges; fusion runs after the merge; RM3 and Rocchio take their
feedback documents from the merged ranking, fetch those documents' contents from the shards
that hold them and send them with the query, so that every shard expands the query alike and
searches its documents with it. A shard that does not answer within ``timeout_s`` (after
retrying while there is time: another replica may answer) makes the response carry
``partial: true`` and ``missing_shards``; never a silently smaller result.
"""


import asyncio
import json
import os
import shutil
import time
import zlib
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from . import _ferret
from ._ferret import FerretError

__all__ = ["build", "serve", "Collection", "shard_of"]

COLLECTION = "collection.json"
STATISTICS = "lexical-statistics.json"
FEED_DEPTH = 1000
FORMAT = 1
_NO_SHARD = object()  # no shard answered

# Stages that need the whole incoming ranking in one place (vectors or texts of many documents
# at once, or an LLM comparing passages): not run across shards.
_NOT_SHARDABLE = {"vprf", "colbert_prf", "tprf", "prp", "listwise", "insertrank"}


def shard_of(docid: str, shards: int) -> int:
    """The shard a document id goes to: crc32 of its UTF-8 bytes, mod the shard count."""
    return zlib.crc32(docid.encode("utf-8")) % shards


def _shard_dir(out: Path, i: int) -> Path:
    return out / f"shard-{i:03d}"


def _ordinals_file(shard_dir: Path) -> Path:
    return shard_dir.with_name(shard_dir.name + ".ordinals.npy")


def _write_json_atomically(path: Path, value) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as f:
        json.dump(value, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Collection:
    """A built collection: its folder, shard folders and statistics."""

    def __init__(self, path):
        self.path = Path(path)
        manifest = self.path / COLLECTION
        if not manifest.exists():
            raise FerretError(f"{self.path}: no {COLLECTION} (not a built collection, or its build did not finish)")
        try:
            self.manifest = json.loads(manifest.read_text())
            self.shards = int(self.manifest["shards"])
        except (ValueError, KeyError, TypeError) as e:
            raise FerretError(f"{manifest}: not a collection manifest: {e}") from None
        self.statistics = self.path / self.manifest["statistics"]

    def shard_paths(self) -> list:
        return [self.path / p for p in self.manifest["paths"]]


# ---------------------------------------------------------------------------------------------
# Build (Ray Data)


def _corpus_chunks(corpus: Path, shards: int, todo: set, rows: int = 20000):
    """The corpus (BEIR JSONL, optionally gzipped) as DataFrames of `rows` documents:
    (id, title, text, shard, ordinal) of the shards still to write. `ordinal` is the
    document's position in the corpus, by which the router orders equal scores as one index
    over the corpus would (by its internal numbers): read here, in order, once."""
    import gzip

    import pandas as pd

    columns = {"id": [], "title": [], "text": [], "shard": [], "ordinal": []}
    ordinal = 0
    opener = gzip.open if corpus.name.endswith(".gz") else open
    with opener(corpus, "rb") as f:
        for number, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise FerretError(f"{corpus}:{number}: not UTF-8 ({e})") from None
            if not line.strip():
                continue
            try:
                doc = json.loads(line)
                docid = str(doc["_id"])
                title, text = doc.get("title") or "", doc.get("text") or ""
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                raise FerretError(f"{corpus}:{number}: not a BEIR document ({e})") from None
            if not isinstance(text, str) or not isinstance(title, str):
                raise FerretError(f"{corpus}:{number}: document '{docid}': title and text must be strings")
            shard = shard_of(docid, shards)
            if shard in todo:
                for key, value in zip(columns, (docid, title, text, shard, ordinal)):
                    columns[key].append(value)
            ordinal += 1
            if len(columns["id"]) >= rows:
                yield pd.DataFrame(columns)
                columns = {key: [] for key in columns}
    if columns["id"]:
        yield pd.DataFrame(columns)


class _Encoder:
    """A Ray Data actor: loads the model once, embeds batches of documents."""

    def __init__(self, model: str, threads: Optional[int]):
        self.model = model
        self.threads = threads

    def __call__(self, batch):
        texts = [_ferret.document_text(t, x) for t, x in zip(batch["title"], batch["text"])]
        data, rows, dim = _ferret.encode(self.model, texts, "document", self.threads)
        vectors = np.frombuffer(data, dtype="<f4").reshape(rows, dim)
        batch["vector"] = list(vectors)
        return batch


def _write_shard(group, out: str, shards: int, analyzer: str, fields: str, representations: dict, threads):
    """A Ray Data group (one shard's documents) → a committed shard folder."""
    import pandas as pd

    group = group.sort_values("ordinal")
    shard = int(group["shard"].iloc[0])
    final = _shard_dir(Path(out), shard)
    partial = final.with_name(final.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    # The shard's internal numbers follow corpus order; their corpus positions are kept
    # beside it (written before the shard becomes visible).
    with open(_ordinals_file(final), "wb") as f:
        np.save(f, group["ordinal"].to_numpy(dtype=np.int64))
        f.flush()
        os.fsync(f.fileno())
    rows = list(zip(group["id"], group["title"], group["text"]))
    vectors, dim = None, 0
    if "vector" in group:
        matrix = np.stack(list(group["vector"])).astype("<f4")
        vectors, dim = matrix.tobytes(), matrix.shape[1]
    added = _ferret.build_shard(
        str(partial), rows, analyzer, fields, representations, shard, shards, vectors, dim, threads
    )
    os.replace(partial, final)
    _fsync_dir(final.parent)
    return pd.DataFrame({"shard": [shard], "documents": [added]})


def _models_of(manifest: dict) -> list:
    """[kind, model id, weights hash] of each representation made with a model."""
    return [
        [e["kind"], e["model"]["id"], e["model"]["weights_sha256"]]
        for e in manifest["representations"]
        if e.get("model")
    ]


def _committed_shards(out: Path, shards: int) -> set:
    done = set()
    for i in range(shards):
        manifest = _shard_dir(out, i) / "manifest.json"
        if not manifest.exists():
            continue
        m = json.loads(manifest.read_text())
        found = (m["shard"]["id"], m["shard"]["count"])
        if found != (i, shards):
            raise FerretError(
                f"{manifest}: shard {found[0]} of {found[1]}, but this build writes shard {i} of {shards}"
            )
        done.add(i)
    return done


def build(
    corpus,
    out,
    shards: int,
    dense: Optional[str] = None,
    sparse: Sequence[str] = (),
    analyzer: str = "en",
    fields: str = "flat",
    encoders: int = 1,
    batch_size: int = 256,
    num_gpus: float = 0,
    threads: Optional[int] = None,
) -> Collection:
    """Builds ``corpus`` (a BEIR JSONL file) as ``shards`` ferret indexes under ``out`` on the
    connected Ray cluster and returns the :class:`Collection`. ``dense`` is embedded by
    ``encoders`` actors (``num_gpus`` each) in batches of ``batch_size``; ``sparse`` models are
    encoded by each shard's writer. Building into a folder that holds some committed shards of
    the same count resumes: only the others are written."""
    import ray

    if shards < 1:
        raise FerretError(f"shards must be at least 1, got {shards}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    todo = sorted(set(range(shards)) - _committed_shards(out, shards))
    representations = {
        "dense": [dense] if dense else [],
        "sparse": list(sparse),
        "tokens": [],
        "colbert": [],
        "hnsw": False,
        "dense_dtype": "",
        "dense_int8": False,
        "tokens_nbits": 2,
    }
    if todo:
        # The corpus is read here, in order (a gzipped file is read sequentially anyway); the
        # chunks go to the object store, and Ray does the rest.
        refs = [ray.put(chunk) for chunk in _corpus_chunks(Path(corpus), shards, set(todo))]
        if not refs:
            raise FerretError(f"{corpus}: no documents")
        ds = ray.data.from_pandas_refs(refs)
        if dense:
            ds = ds.map_batches(
                _Encoder,
                fn_constructor_kwargs={"model": dense, "threads": threads},
                compute=ray.data.ActorPoolStrategy(size=encoders),
                batch_size=batch_size,
                num_gpus=num_gpus,
                batch_format="pandas",
            )
        written = (
            ds.groupby("shard", num_partitions=shards)
            .map_groups(
                _write_shard,
                fn_kwargs={
                    "out": os.fspath(out),
                    "shards": shards,
                    "analyzer": analyzer,
                    "fields": fields,
                    "representations": representations,
                    "threads": threads,
                },
                batch_format="pandas",
            )
            .take_all()
        )
        missing = set(todo) - {int(r["shard"]) for r in written}
        if missing:
            raise FerretError(f"no documents went to shard(s) {sorted(missing)}: use fewer shards")
    paths = [_shard_dir(out, i).name for i in range(shards)]
    models = [_models_of(json.loads((out / p / "manifest.json").read_text())) for p in paths]
    if any(m != models[0] for m in models):
        raise FerretError(f"{out}: the shards were built with different models: {models}")
    docs = _ferret.sum_statistics([os.fspath(out / p) for p in paths], os.fspath(out / STATISTICS))
    _write_json_atomically(
        out / COLLECTION,
        {
            "format": FORMAT,
            "shards": shards,
            "paths": paths,
            "documents": docs,
            "statistics": STATISTICS,
            "routing": "crc32(id) mod shards",
            "analyzer": analyzer,
            "fields": fields,
            "dense": dense,
            "sparse": list(sparse),
            "models": models[0],
        },
    )
    return Collection(out)


# ---------------------------------------------------------------------------------------------
# Serve (Ray Serve)


class _Failure:
    """A shard's ferret error, returned rather than raised: it reaches the router as ferret's
    message whatever the transport does with exceptions."""

    def __init__(self, message: str):
        self.message = message


def _answers(method):
    def guarded(self, *args):
        try:
            return method(self, *args)
        except FerretError as e:
            return _Failure(str(e))

    guarded.__name__, guarded.__doc__ = method.__name__, method.__doc__
    return guarded


class ShardServer:
    """One shard, opened with the collection's statistics; its pipelines prepared once."""

    def __init__(self, path: str, statistics: str, warm: Sequence[str] = (), shard=None, models=None):
        """`shard` (id, count) and `models` (the collection's models, `_models_of`) are checked
        against the shard's manifest: a folder of another collection is refused."""
        self.index = _ferret.open_shard(path, statistics)
        manifest = json.loads(self.index.manifest_json())
        found = (manifest["shard"]["id"], manifest["shard"]["count"])
        if shard is not None and found != tuple(shard):
            raise FerretError(f"{path}: shard {found[0]} of {found[1]}, but the collection expects shard {shard[0]} of {shard[1]}")
        if models is not None and _models_of(manifest) != models:
            raise FerretError(f"{path}: built with the models {_models_of(manifest)}, the collection with {models}")
        self.ordinals = np.load(_ordinals_file(Path(path)))
        if len(self.ordinals) != len(self.index):
            raise FerretError(f"{path}: {len(self.index)} documents but {len(self.ordinals)} corpus positions")
        self.prepared = {}
        # Pipelines prepared (models loaded) before the replica takes requests: a first query
        # would otherwise wait for the model to load, and may miss the router's deadline.
        for pipeline in warm:
            self._stage(json.dumps(json.loads(_ferret.parse_pipeline(pipeline))), False)

    def _stage(self, pipeline: str, fed: bool):
        key = (pipeline, fed)
        if key not in self.prepared:
            self.prepared[key] = _ferret.Prepared(self.index, pipeline, fed)
        return self.prepared[key]

    @_answers
    def search(self, pipeline, qid, text, k, candidates=None, feedback=None):
        """(internal number, id, score, corpus position) per hit, best first."""
        fed = candidates is not None
        hits = self._stage(pipeline, fed).run_one(qid, text, k, candidates, feedback)
        return [(d, i, s, int(self.ordinals[d])) for d, i, s in hits]

    @_answers
    def feedback_positions(self, pipeline, ranking_len):
        return self._stage(pipeline, True).feedback_positions(ranking_len)

    @_answers
    def contents(self, docnos):
        return self.index.contents(docnos)

    @_answers
    def fuse(self, pipeline, rankings, qid, text, k):
        return _ferret.fuse(self.index, pipeline, rankings, qid, text, k)

    def where(self):
        """(process id, Ray node id) of this replica."""
        import ray

        return os.getpid(), ray.get_runtime_context().get_node_id()


class PipelineError(Exception):
    """A pipeline the router cannot run (HTTP 400)."""


class _Doc:
    __slots__ = ("shard", "docno", "id", "score", "ordinal")

    def __init__(self, shard, docno, id, score, ordinal):
        self.shard, self.docno, self.id, self.score, self.ordinal = shard, docno, id, score, ordinal


class Router:
    """Runs a pipeline across the shards; `call(shard, method, *args)` is the transport (Ray
    Serve handles in a deployment, direct objects in a test)."""

    def __init__(self, call, shards: int, timeout_s: float):
        self.call = call
        self.shards = shards
        self.timeout_s = timeout_s
        self.positions = {}

    async def _ask(self, shard, method, *args, deadline, missing):
        """One shard's answer, retried until the deadline (another replica may take it);
        None, with the shard noted as missing, when there is none in time."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                missing.add(shard)
                return None
            try:
                answer = await asyncio.wait_for(self.call(shard, method, *args), left)
            except asyncio.TimeoutError:
                missing.add(shard)
                return None
            except Exception:
                # A replica died or is unreachable: ask again (another replica may answer).
                await asyncio.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
                continue
            if isinstance(answer, _Failure):
                raise FerretError(answer.message)
            return answer

    async def _all(self, method, args_of, deadline, missing, shards=None):
        shards = range(self.shards) if shards is None else shards
        answers = await asyncio.gather(
            *[self._ask(s, method, *args_of(s), deadline=deadline, missing=missing) for s in shards]
        )
        return dict(zip(shards, answers))

    async def search(self, pipeline: str, qid: str, text: str, k: int):
        """(hits, missing shards) for one query: hits are `_Doc`s, best first."""
        if not text.strip():
            raise PipelineError("the query is empty")
        try:
            tree = json.loads(_ferret.parse_pipeline(pipeline))
        except FerretError as e:
            raise PipelineError(str(e)) from None
        missing = set()
        deadline = time.monotonic() + self.timeout_s
        hits = await self._run(tree, qid, text, k, None, deadline, missing)
        return hits, sorted(missing)

    async def respond(self, query: str, pipeline: str, k: int):
        """(HTTP status, body) of ferret's `/v1/search` for one query."""
        started = time.perf_counter()
        try:
            hits, missing = await self.search(pipeline, "q", query, k)
        except (PipelineError, FerretError) as e:
            return 400, {"error": {"code": "invalid_pipeline", "message": str(e)}}
        if len(missing) == self.shards:
            message = f"no shard answered within {self.timeout_s} s"
            return 503, {"error": {"code": "shards_unavailable", "message": message}}
        return 200, {
            "query": query,
            "pipeline": pipeline,
            "k": k,
            "took_ms": (time.perf_counter() - started) * 1000,
            "hits": [{"rank": r + 1, "id": d.id, "score": d.score, "shard": d.shard} for r, d in enumerate(hits)],
            "partial": bool(missing),
            "missing_shards": missing,
        }

    async def _run(self, node, qid, text, k, candidates, deadline, missing):
        op = node["op"]
        if op == "cutoff":
            return await self._run(node["input"], qid, text, min(k, node["k"]), candidates, deadline, missing)
        if op == "then":
            first = await self._run(node["first"], qid, text, max(FEED_DEPTH, k), candidates, deadline, missing)
            return await self._run(node["then"], qid, text, k, first, deadline, missing)
        name = node["name"]
        info = _ferret.stage_info(name)
        if info is None:
            raise PipelineError(f"unknown stage '{name}'")
        min_inputs, needs_candidates = info
        text_form = json.dumps(node)
        if min_inputs > 0:
            return await self._fuse(node, text_form, qid, text, k, deadline, missing)
        if candidates is None:
            if needs_candidates:
                raise PipelineError(f"{name} works on an incoming ranking: feed it one with '>>'")
            answers = await self._all("search", lambda s: (text_form, qid, text, k), deadline, missing)
            return _merge(answers, k)
        if name in _NOT_SHARDABLE:
            raise PipelineError(
                f"{name} needs the whole incoming ranking in one place; it does not run across shards"
            )
        positions = await self._feedback_positions(text_form, len(candidates), deadline, missing)
        if positions is _NO_SHARD:
            return []
        if positions is not None:
            return await self._feedback(text_form, qid, text, k, candidates, positions, deadline, missing)
        return await self._rescore(text_form, qid, text, k, candidates, deadline, missing)

    async def _feedback_positions(self, text_form, n, deadline, missing):
        # They depend on the stage and the ranking's length only: asked once, then known.
        key = (text_form, n)
        if key not in self.positions:
            for s in range(self.shards):
                if s in missing:
                    continue
                answer = await self._ask(s, "feedback_positions", text_form, n, deadline=deadline, missing=missing)
                if s not in missing:
                    self.positions[key] = answer
                    break
            else:
                return _NO_SHARD
        return self.positions[key]

    async def _feedback(self, text_form, qid, text, k, candidates, positions, deadline, missing):
        by_shard = {}
        for p in positions:
            d = candidates[p]
            by_shard.setdefault(d.shard, []).append(p)
        fetched = await self._all(
            "contents",
            lambda s: ([candidates[p].docno for p in by_shard[s]],),
            deadline,
            missing,
            shards=sorted(by_shard),
        )
        contents = {}
        for s, texts in fetched.items():
            if texts is not None:
                contents.update(zip(by_shard[s], texts))
        ranking = [(i, d.score) for i, d in enumerate(candidates)]
        if len(contents) < len(positions):
            # A feedback document whose shard did not answer cannot be read: the response is
            # partial (that shard is in `missing`); the expansion uses the documents read.
            ranking = [(i, candidates[i].score) for i in positions if i in contents]
        answers = await self._all("search", lambda s: (text_form, qid, text, k, ranking, contents), deadline, missing)
        return _merge(answers, k)

    async def _rescore(self, text_form, qid, text, k, candidates, deadline, missing):
        by_shard = {}
        order = {}
        for i, d in enumerate(candidates):
            by_shard.setdefault(d.shard, []).append((d.docno, d.score))
            order[(d.shard, d.docno)] = i
        answers = await self._all(
            "search",
            lambda s: (text_form, qid, text, len(by_shard[s]), by_shard[s]),
            deadline,
            missing,
            shards=sorted(by_shard),
        )
        docs = [_Doc(s, *hit) for s, hits in answers.items() if hits is not None for hit in hits]
        # A stage that rescored candidates keeps equal scores in the incoming order.
        docs.sort(key=lambda d: (-d.score, order[(d.shard, d.docno)]))
        return docs[:k]

    async def _fuse(self, node, text_form, qid, text, k, deadline, missing):
        depth = FEED_DEPTH
        for a in node.get("args", []):
            if a["name"] == "depth":
                depth = int(a["value"])
        depth = max(depth, k)
        rankings = await asyncio.gather(
            *[self._run(i, qid, text, depth, None, deadline, missing) for i in node["inputs"]]
        )
        # The fusion stage sees each document under one number, the same in every input.
        keys, table, keyed = {}, [], []
        for ranking in rankings:
            for d in ranking:
                if (d.shard, d.docno) not in keys:
                    keys[(d.shard, d.docno)] = len(table)
                    table.append(d)
            keyed.append([(keys[(d.shard, d.docno)], d.score) for d in ranking])
        for shard in range(self.shards):
            if shard in missing:
                continue
            fused = await self._ask(shard, "fuse", text_form, keyed, qid, text, k, deadline=deadline, missing=missing)
            if fused is not None:
                return [_Doc(table[key].shard, table[key].docno, table[key].id, score, table[key].ordinal) for key, score in fused]
        return []


def _merge(answers: dict, k: int):
    docs = [_Doc(s, *hit) for s, hits in answers.items() if hits is not None for hit in hits]
    # Equal scores by corpus position: the order of one index's internal numbers.
    docs.sort(key=lambda d: (-d.score, d.ordinal))
    return docs[:k]


def _deployments(collection: Collection, replicas: int, timeout_s: float, shard_cpus: float, warm: Sequence[str]):
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse
    from pydantic import BaseModel, Field
    from ray import serve

    app = FastAPI(
        title="ferret (sharded)",
        description="ferret's search API over a collection split into shards (ferret.ray)",
    )

    class SearchRequest(BaseModel):
        query: str = Field(description="The query text.")
        pipeline: Optional[str] = Field(default=None, description="Pipeline text or JSON form; default bm25.")
        k: int = Field(default=10, ge=1, le=1000, description="Number of hits.")

    class Hit(BaseModel):
        rank: int
        id: str
        score: float
        shard: int

    class SearchResponse(BaseModel):
        query: str
        pipeline: str
        k: int
        took_ms: float
        hits: list[Hit]
        partial: bool = Field(description="True when a shard did not answer in time: hits miss its documents.")
        missing_shards: list[int]

    shard_deployment = serve.deployment(
        ShardServer, num_replicas=replicas, ray_actor_options={"num_cpus": shard_cpus}
    )
    n = collection.shards

    @serve.deployment(ray_actor_options={"num_cpus": 0})
    @serve.ingress(app)
    class FerretRouter:
        def __init__(self, *handles):
            self.handles = handles

            async def call(shard, method, *args):
                return await getattr(self.handles[shard], method).remote(*args)

            self.router = Router(call, n, timeout_s)

        @app.get("/health")
        async def health(self):
            return {"status": "ok", "shards": n, "documents": collection.manifest["documents"]}

        @app.post("/v1/search", response_model=SearchResponse)
        async def search(self, request: SearchRequest):
            status, body = await self.router.respond(request.query, request.pipeline or "bm25", request.k)
            return body if status == 200 else JSONResponse(status_code=status, content=body)

    paths, stats = collection.shard_paths(), os.fspath(collection.statistics)
    shard_apps = [
        shard_deployment.options(name=f"shard-{i}").bind(
            os.fspath(paths[i]), stats, list(warm), (i, n), collection.manifest["models"]
        )
        for i in range(n)
    ]
    return FerretRouter.bind(*shard_apps)


def serve(
    collection,
    replicas: int = 1,
    timeout_s: float = 10.0,
    name: str = "ferret",
    route_prefix: str = "/",
    shard_cpus: float = 0.5,
    http_host: Optional[str] = None,
    http_port: Optional[int] = None,
    warm: Sequence[str] = (),
):
    """Deploys ``collection`` on the connected Ray cluster's Serve as application ``name``:
    one deployment per shard (``replicas`` each, spread over the nodes by Ray) behind a router
    that speaks ferret's HTTP API on Serve's proxy under ``route_prefix`` (Serve's proxy is
    started on ``http_host:http_port`` when given). Deploying the same name again updates it
    (e.g. another replica count). Every replica prepares the retriever stages in ``warm`` (e.g.
    ``["dense"]``, as the router sends them) before it takes requests, so that no first query waits for a
    model to load. Returns the router's handle."""
    from ray import serve as ray_serve

    if http_host is not None or http_port is not None:
        options = {"host": http_host or "127.0.0.1", "port": http_port or 8000}
        ray_serve.start(http_options=options)
    app = _deployments(Collection(collection), replicas, timeout_s, shard_cpus, warm)
    return ray_serve.run(app, name=name, route_prefix=route_prefix)
