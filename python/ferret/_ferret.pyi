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

class Prepared:
    def __init__(self, index: Index, pipeline: str) -> None: ...
    def describe(self) -> str: ...
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
