"""Reference PromptReps representations of SciFact texts for SmolLM2-135M-Instruct Q4_1: the
prompt and its token ids, the last token's final hidden state from llama.cpp (embeddings with
last-token pooling) and from an exact float64 forward pass (`exact_llama.py`), and the
next-token logits of both, reduced to what PromptReps keeps. ferret's PromptReps encoder is
compared with these in crates/ferret-models/tests/promptreps.rs.

    v/bin/python tests/reference/make_promptreps_reference.py MODEL.gguf SCIFACT_DIR \
        > tests/reference/smollm2-promptreps.json

(v: a venv with llama-cpp-python, jinja2, gguf, numpy; see make_llm_reference.py.)
"""
import gzip
import json
import sys

import jinja2
import numpy as np
from llama_cpp import LLAMA_POOLING_TYPE_LAST, Llama

from exact_llama import ExactLlama

path, scifact = sys.argv[1], sys.argv[2]
common = dict(model_path=path, n_ctx=2048, n_batch=2048, n_ubatch=2048, n_threads=2,
              verbose=False, seed=0, type_k=0, type_v=0, flash_attn=False)
llm = Llama(logits_all=True, **common)
embedder = Llama(embedding=True, pooling_type=LLAMA_POOLING_TYPE_LAST, **common)
exact = ExactLlama(path)
template = jinja2.Environment().from_string(llm.metadata["tokenizer.chat_template"])


def prompt(text, side):
    label = {"passage": "Passage", "query": "Query"}[side]
    user = (f'{label}: "{text}". Use one word to represent the {side} in a retrieval task. '
            "Make sure your word is in lowercase.")
    messages = [
        {"role": "system", "content": "You are an AI assistant that can understand human language."},
        {"role": "user", "content": user},
    ]
    return template.render(messages=messages, add_generation_prompt=True) + 'The word is "'


def ids(text):
    return llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)


def llama_cpp_hidden(token_ids):
    # embed() tokenizes without special tokens; hand it the prompt's ids instead.
    embedder.tokenize = lambda *_a, **_k: token_ids
    return np.array(embedder.embed("unused", normalize=False), dtype=np.float64)


def llama_cpp_logits(token_ids):
    llm.reset()
    llm.eval(token_ids)
    return np.array(llm.scores[len(token_ids) - 1], dtype=np.float64)


def top(logits, n=20):
    order = np.argsort(-logits)[:n]
    return [[int(i), float(logits[i])] for i in order]


docs = [json.loads(l) for l in gzip.open(f"{scifact}/corpus.jsonl.gz", "rt", encoding="utf-8")]
queries = [json.loads(l) for l in open(f"{scifact}/queries.jsonl", encoding="utf-8")]
# Short passages (the whole text fits the 512-token limit) and a few queries.
passages = [d for d in docs if len(ids(d["title"] + "\n" + d["text"])) < 200][:3]
texts = [("passage", d["_id"], d["title"] + "\n" + d["text"]) for d in passages]
texts += [("query", q["_id"], q["text"]) for q in queries[:3]]

out = {"texts": []}
for side, id_, text in texts:
    p = prompt(text, side)
    token_ids = ids(p)
    exact_hidden = exact.last_hidden(token_ids)
    out["texts"].append({
        "side": side,
        "id": id_,
        "text": text,
        "prompt": p,
        "prompt_ids": token_ids,
        "exact_hidden": exact_hidden.tolist(),
        "llama_cpp_hidden": llama_cpp_hidden(token_ids).tolist(),
        "exact_top_logits": top(exact.last_logits(token_ids)),
        "llama_cpp_top_logits": top(llama_cpp_logits(token_ids)),
    })
json.dump(out, sys.stdout, ensure_ascii=False)
print()
