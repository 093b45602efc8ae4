#!/usr/bin/env python3
"""Writes the reference for nomic-embed-text-v1.5 as a zero-shot token model (`--tokens`):
llama.cpp's (llama-cpp-python, CPU) last-layer token states of the same GGUF, without pooling,
for the first N SciFact documents ("search_document: " + title + " " + text) and the first M
queries ("search_query: " + text), context 2048. What ferret keeps is worked out here from
llama.cpp's own tokens: the task prefix's positions (after [CLS]) dropped, and for documents the
first token of each punctuation symbol (Python's string.punctuation, colbert-ai's skiplist);
each kept state L2-normalised. To keep the file small it holds the first DIMS dimensions of
every kept token and the whole vector of the first, middle and last kept token.

usage: make_nomic_tokens_reference.py GGUF DATA_DIR N M DIMS > nomic-tokens-scifact.json
  nomic-tokens-scifact.json: ~/.cache/ferret/models/nomic-embed-text-v1.5/nomic-embed-text-v1.5.f16.gguf ... 1 3 32
(GGUF: from `ferret models pull nomic-embed-text-v1.5`; needs llama-cpp-python and numpy.)
"""
import gzip
import json
import string
import sys

import llama_cpp
import numpy as np
from llama_cpp import Llama

gguf, data = sys.argv[1], sys.argv[2]
n_docs, n_queries, dims = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
docs = [json.loads(l) for l in gzip.open(f"{data}/beir-scifact/corpus.jsonl.gz", "rt", encoding="utf-8")][:n_docs]
queries = [json.loads(l) for l in open(f"{data}/beir-scifact/queries.jsonl", encoding="utf-8")][:n_queries]
# pooling_type 0: no pooling, one state per token.
model = Llama(model_path=gguf, embedding=True, n_ctx=2048, n_batch=2048, n_ubatch=2048, pooling_type=0, verbose=False)


def first_token(text):
    # tokenize() adds [CLS] ... [SEP]; the symbol's first token is the one after [CLS].
    return model.tokenize(text.encode(), add_bos=True)[1]


punctuation = {first_token(c) for c in string.punctuation}


def entry(id_, prefix, text, skip_punctuation):
    n_prefix = len(model.tokenize(prefix.encode(), add_bos=True)) - 2
    ids = model.tokenize((prefix + text).encode(), add_bos=True)
    states = np.array(model.embed(prefix + text, normalize=False, truncate=False), dtype=np.float64)
    assert states.shape[0] == len(ids), (states.shape, len(ids))
    kept = [p for p, t in enumerate(ids) if not 1 <= p <= n_prefix and not (skip_punctuation and t in punctuation)]
    vectors = states[kept]
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    whole = sorted({0, len(kept) // 2, len(kept) - 1})
    return {
        "id": id_,
        "ids": [ids[p] for p in kept],
        "head": [[round(float(x), 7) for x in v[:dims]] for v in vectors],
        "whole": {str(r): [round(float(x), 7) for x in vectors[r]] for r in whole},
    }


out = {
    "model": "nomic-embed-text-v1.5",
    "made_with": f"llama-cpp-python {llama_cpp.__version__}",
    "dims": dims,
    "documents": [entry(d["_id"], "search_document: ", d["title"] + " " + d["text"], True) for d in docs],
    "queries": [entry(q["_id"], "search_query: ", q["text"], False) for q in queries],
}
json.dump(out, sys.stdout)
