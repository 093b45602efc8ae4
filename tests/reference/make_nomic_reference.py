#!/usr/bin/env python3
"""Writes the nomic-embed-text-v1.5 reference ferret's GGUF encoder is checked against
(cosine >= 0.9999): embeddings computed by llama.cpp (llama-cpp-python, CPU) from the same GGUF
for the first N SciFact documents ("search_document: " + title + " " + text) and the first M
queries ("search_query: " + text), mean pooling, context 2048.

usage: make_nomic_reference.py GGUF DATA_DIR N M > nomic-scifact.json
  nomic-scifact.json: ~/.cache/ferret/models/nomic-embed-text-v1.5/nomic-embed-text-v1.5.f16.gguf ... 8 4
(GGUF: from `ferret models pull nomic-embed-text-v1.5`; needs llama-cpp-python.)
"""
import gzip
import json
import sys

import llama_cpp
from llama_cpp import Llama

gguf, data, n_docs, n_queries = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
docs = [json.loads(l) for l in gzip.open(f"{data}/beir-scifact/corpus.jsonl.gz", "rt", encoding="utf-8")][:n_docs]
queries = [json.loads(l) for l in open(f"{data}/beir-scifact/queries.jsonl", encoding="utf-8")][:n_queries]
model = Llama(model_path=gguf, embedding=True, n_ctx=2048, n_batch=2048, n_ubatch=2048, pooling_type=1, verbose=False)


def embed(text):
    return model.embed(text, normalize=False, truncate=False)


out = {
    "model": "nomic-embed-text-v1.5",
    "made_with": f"llama-cpp-python {llama_cpp.__version__}",
    "documents": [
        {"id": d["_id"], "tokens": len(model.tokenize(("search_document: " + d["title"] + " " + d["text"]).encode())),
         "embedding": embed("search_document: " + d["title"] + " " + d["text"])}
        for d in docs
    ],
    "queries": [{"id": q["_id"], "text": q["text"], "embedding": embed("search_query: " + q["text"])} for q in queries],
}
json.dump(out, sys.stdout)
