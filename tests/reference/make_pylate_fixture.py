"""Makes the PyLate-layout ColBERT fixture (crates/ferret-models/tests/fixtures/tiny-pylate).

PyLate 1.6 loads the shared colbert-ai fixture (../shared/fixtures/tiny-colbert: seeded random
weights) with its own lengths (query_length 24, document_length 64), saves it in its own
layout (sentence-transformers folder, Dense projection module, PyLate's
config_sentence_transformers.json) and encodes SciFact queries and passages with it.

What is committed: PyLate's small configuration files of the saved folder and
`reference.json` (token ids and the embeddings PyLate returns). The weights are not: the test
rebuilds the folder from tiny-colbert's `model.safetensors` (the BERT weights and the
projection `linear.weight` are the same tensors PyLate saved; this script checks that).

    python -m venv v && v/bin/pip install pylate==1.6.0
    v/bin/python tests/reference/make_pylate_fixture.py ../shared/fixtures/tiny-colbert \
        ../shared/data/beir-scifact crates/ferret-models/tests/fixtures/tiny-pylate
"""

import gzip
import json
import os
import shutil
import sys
import tempfile

import torch
from pylate import models
from safetensors.torch import load_file

src, scifact, out = sys.argv[1:4]
saved = tempfile.mkdtemp()
model = models.ColBERT(
    model_name_or_path=src, device="cpu", query_length=24, document_length=64
)
model.save(saved)

# The saved weights are tiny-colbert's: the same BERT tensors and projection.
colbert = load_file(os.path.join(src, "model.safetensors"))
bert = load_file(os.path.join(saved, "model.safetensors"))
for name, t in bert.items():
    # transformers 5.3 saves LayerNorms under their old names (gamma/beta).
    original = name.replace("LayerNorm.gamma", "LayerNorm.weight").replace(
        "LayerNorm.beta", "LayerNorm.bias"
    )
    assert torch.equal(t, colbert["bert." + original]), name
dense = load_file(os.path.join(saved, "1_Dense", "model.safetensors"))
assert list(dense) == ["linear.weight"], list(dense)
assert torch.equal(dense["linear.weight"], colbert["linear.weight"])

os.makedirs(os.path.join(out, "1_Dense"), exist_ok=True)
for f in [
    "modules.json",
    "config_sentence_transformers.json",
    "sentence_bert_config.json",
    os.path.join("1_Dense", "config.json"),
]:
    shutil.copy(os.path.join(saved, f), os.path.join(out, f))

queries = [json.loads(l) for l in open(os.path.join(scifact, "queries.jsonl"))][:4]
corpus = []
with gzip.open(os.path.join(scifact, "corpus.jsonl.gz"), "rt") as f:
    for line in f:
        corpus.append(json.loads(line))
        if len(corpus) == 5:
            break
q_texts = [q["text"] for q in queries]
d_texts = [d["title"] + " " + d["text"] for d in corpus]
q_emb = model.encode(q_texts, is_query=True, convert_to_numpy=True)
d_emb = model.encode(d_texts, is_query=False, convert_to_numpy=True)
q_tok = model.tokenize(q_texts, is_query=True)
reference = {
    "generator": "pylate 1.6.0 (models.ColBERT over tiny-colbert, query_length 24, document_length 64); "
    + "torch " + torch.__version__,
    "queries": [
        {
            "text": t,
            "input_ids": q_tok["input_ids"][i].tolist(),
            "attention_mask": q_tok["attention_mask"][i].tolist(),
            "embeddings": q_emb[i].tolist(),
        }
        for i, t in enumerate(q_texts)
    ],
    "docs": [
        {
            "text": t,
            "input_ids": model.tokenize([t], is_query=False)["input_ids"][0].tolist(),
            "embeddings": d_emb[i].tolist(),
        }
        for i, t in enumerate(d_texts)
    ],
}
with open(os.path.join(out, "reference.json"), "w") as f:
    json.dump(reference, f)
print("wrote", out)
