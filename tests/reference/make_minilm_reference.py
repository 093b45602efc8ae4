#!/usr/bin/env python3
"""Writes minilm-scifact.json: all-MiniLM-L6-v2 embeddings computed by sentence-transformers
(PyTorch, CPU, float32) for the first 8 SciFact documents (title + " " + text) and 4 queries,
the reference ferret's encoder is checked against (cosine >= 0.9999).

usage: make_minilm_reference.py MODEL_DIR DATA_DIR > minilm-scifact.json
(MODEL_DIR: the model folder, e.g. from `ferret models pull all-minilm-l6-v2`;
 needs sentence-transformers installed.)
"""
import gzip
import json
import sys

import sentence_transformers
import torch
from sentence_transformers import SentenceTransformer

model_dir, data = sys.argv[1], sys.argv[2]
docs = [json.loads(l) for l in gzip.open(f"{data}/beir-scifact/corpus.jsonl.gz", "rt", encoding="utf-8")][:8]
queries = [json.loads(l) for l in open(f"{data}/beir-scifact/queries.jsonl", encoding="utf-8")][:4]
model = SentenceTransformer(model_dir, device="cpu")
doc_texts = [d["title"] + " " + d["text"] for d in docs]
out = {
    "model": "sentence-transformers/all-MiniLM-L6-v2",
    "made_with": f"sentence-transformers {sentence_transformers.__version__}, torch {torch.__version__}",
    "documents": [{"id": d["_id"], "embedding": e.tolist()} for d, e in zip(docs, model.encode(doc_texts))],
    "queries": [{"id": q["_id"], "text": q["text"], "embedding": e.tolist()} for q, e in zip(queries, model.encode([q["text"] for q in queries]))],
}
json.dump(out, sys.stdout)
