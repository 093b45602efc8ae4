#!/usr/bin/env python3
"""Writes the encoder references ferret's encoder is checked against (cosine >= 0.9999):
embeddings computed by sentence-transformers (PyTorch, CPU, float32) for the first N SciFact
documents (title + " " + text) and the first M queries.

usage: make_encoder_reference.py MODEL_ID MODEL_DIR DATA_DIR N M > reference.json
  minilm-scifact.json: sentence-transformers/all-MiniLM-L6-v2 ... 8 4
  mpnet-scifact.json:  sentence-transformers/all-mpnet-base-v2 ... 4 2
(MODEL_DIR: the model folder, e.g. from `ferret models pull all-minilm-l6-v2`;
 needs sentence-transformers installed.)
"""
import gzip
import json
import sys

import sentence_transformers
import torch
from sentence_transformers import SentenceTransformer

model_id, model_dir, data, n_docs, n_queries = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
docs = [json.loads(l) for l in gzip.open(f"{data}/beir-scifact/corpus.jsonl.gz", "rt", encoding="utf-8")][:n_docs]
queries = [json.loads(l) for l in open(f"{data}/beir-scifact/queries.jsonl", encoding="utf-8")][:n_queries]
model = SentenceTransformer(model_dir, device="cpu")
doc_texts = [d["title"] + " " + d["text"] for d in docs]
out = {
    "model": model_id,
    "made_with": f"sentence-transformers {sentence_transformers.__version__}, torch {torch.__version__}",
    "documents": [{"id": d["_id"], "embedding": e.tolist()} for d, e in zip(docs, model.encode(doc_texts))],
    "queries": [{"id": q["_id"], "text": q["text"], "embedding": e.tolist()} for q, e in zip(queries, model.encode([q["text"] for q in queries]))],
}
json.dump(out, sys.stdout)
