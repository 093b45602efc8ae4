"""Type stubs of the extension module (python/src/lib.rs). Use the `ferret` package's API."""

from typing import Optional, Sequence

__version__: str

class FerretError(Exception):
    """An error reported by ferret: bad input (file, line, position), an unknown model or
    stage, a broken or missing index."""

RankingColumns = tuple[list[str], list[str], list[float]]

class Index:
    def __init__(self, path: str) -> None: ...
    @staticmethod
    def build(
        path: str,
        corpus: Optional[str],
        documents: Sequence[tuple[str, str, str]],
        analyzer: str,
        fields: str,
        representations: dict,
        overwrite: bool,
        append: bool,
        skip_invalid: bool,
        threads: Optional[int],
    ) -> tuple[int, list[str]]: ...
    def __len__(self) -> int: ...
    def manifest_json(self) -> str: ...
    def document(self, docno: str) -> Optional[tuple[str, str]]: ...
    def contents(self, docnos: Sequence[int]) -> list[str]: ...

class Prepared:
    def __init__(self, index: Index, pipeline: str, fed: bool = False) -> None: ...
    def describe(self) -> str: ...
    def run_one(
        self,
        qid: str,
        text: str,
        k: int,
        candidates: Optional[Sequence[tuple[int, float]]] = None,
        feedback: Optional[dict[int, str]] = None,
    ) -> list[tuple[int, str, float]]: ...
    def feedback_positions(self, ranking_len: int) -> Optional[list[int]]: ...
    def search(self, qids: Sequence[str], texts: Sequence[str], k: int, threads: Optional[int] = None) -> RankingColumns: ...

def canonical_pipeline(text: str) -> str: ...
def read_run(path: str) -> RankingColumns: ...
def read_qrels(path: str) -> tuple[list[str], list[str], list[int]]: ...
def read_queries(path: str) -> tuple[list[str], list[str]]: ...
def evaluate(
    run: RankingColumns,
    qrels: tuple[Sequence[str], Sequence[str], Sequence[int]],
    measures: Sequence[str],
    relevance_level: int = 1,
    complete: bool = False,
) -> tuple[list[str], list[float], list[tuple[str, list[float]]]]: ...
def encode(model: str, texts: Sequence[str], kind: str, threads: Optional[int] = None) -> tuple[bytes, int, int]: ...
def run_query_set(
    index: str,
    queries: str,
    pipeline: str,
    k: int,
    output: str,
    qrels: Optional[str],
    measures: Sequence[str],
    tag: str,
    raw_scores: bool,
    threads: Optional[int],
    command: Sequence[str],
) -> str: ...
def read_card(path: str) -> str: ...
def reproduce(
    card: str,
    index: Optional[str] = None,
    queries: Optional[str] = None,
    qrels: Optional[str] = None,
    threads: Optional[int] = None,
) -> tuple[list[tuple[str, float, float]], bool]: ...

# Shards of a collection (ferret.ray).
def build_shard(
    path: str,
    documents: Sequence[tuple[str, str, str]],
    analyzer: str,
    fields: str,
    representations: dict,
    shard: int,
    count: int,
    vectors: Optional[bytes],
    dim: int,
    threads: Optional[int] = None,
) -> int: ...
def document_text(title: str, text: str) -> str: ...
def sum_statistics(shards: Sequence[str], out: str) -> int: ...
def open_shard(path: str, statistics: str) -> Index: ...
def parse_pipeline(text: str) -> str: ...
def stage_info(name: str) -> Optional[tuple[int, bool]]: ...
def fuse(
    index: Index,
    pipeline: str,
    rankings: Sequence[Sequence[tuple[int, float]]],
    qid: str,
    text: str,
    k: int,
) -> list[tuple[int, float]]: ...
