"""Reference outputs of llama.cpp (through llama-cpp-python) for a chat GGUF: token ids of
texts, next-token log-probabilities of "Yes"/"No" after chat prompts, the 20 largest next-token
logits, and greedy answers. ferret's GGUF runtime is compared with these in
crates/ferret-models/tests/llm_gguf.rs.

    python -m venv v && v/bin/pip install 'llama-cpp-python[server]' jinja2 gguf
    v/bin/python tests/reference/make_llm_reference.py SmolLM2-135M-Instruct.Q4_1.gguf > tests/reference/smollm2-llamacpp.json
    v/bin/python tests/reference/make_llm_reference.py --no-exact qwen2.5-coder-1.5b-instruct-q4_k_m.gguf > tests/reference/qwen2.5-coder-1.5b-llamacpp.json

--no-exact leaves out the float64 forward pass (exact_llama.py knows the llama architecture
only; a quantised model's products are not exact in either engine anyway).
"""
import json
import math
import sys

import jinja2
import numpy as np
from llama_cpp import Llama

from exact_llama import ExactLlama

args = sys.argv[1:]
with_exact = "--no-exact" not in args
path = [a for a in args if a != "--no-exact"][0]
# F32 KV cache (GGML_TYPE_F32 = 0): llama.cpp's default F16 cache moves log-probabilities by
# up to ~0.2 on this small model, more than the two runtimes differ otherwise.
llm = Llama(model_path=path, n_ctx=2048, n_threads=2, logits_all=True, verbose=False, seed=0,
            type_k=0, type_v=0, flash_attn=False)
template = jinja2.Environment().from_string(llm.metadata["tokenizer.chat_template"])

texts = [
    "Hello world",
    "The 2019 study of 1,234 patients: p < 0.05!",
    "  leading spaces and\ttabs\nnewlines",
    "Café naïve résumé — “quotes” and emoji 🙂",
    "<|im_start|>user\nIs this relevant?<|im_end|>\n<|im_start|>assistant\n",
    "0-dimensional biomaterials show inductive properties.",
]

def ids(text):
    return llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)

def render(messages):
    return template.render(messages=messages, add_generation_prompt=True)

def next_logprobs(prompt_ids, choices):
    llm.reset()
    llm.eval(prompt_ids)
    logits = np.array(llm.scores[len(prompt_ids) - 1], dtype=np.float64)
    m = logits.max()
    log_z = m + math.log(np.exp(logits - m).sum())
    return [float(logits[ids(c)[0]] - log_z) for c in choices]

exact = ExactLlama(path) if with_exact else None

def exact_logprobs(prompt_ids, choices):
    logits = exact.last_logits(prompt_ids)
    m = logits.max()
    log_z = m + math.log(np.exp(logits - m).sum())
    return [float(logits[ids(c)[0]] - log_z) for c in choices]

def top_logits(prompt_ids, n=20):
    llm.reset()
    llm.eval(prompt_ids)
    logits = np.array(llm.scores[len(prompt_ids) - 1], dtype=np.float64)
    top = np.argsort(-logits, kind="stable")[:n]
    return [[int(i), float(logits[i])] for i in top]

def greedy(prompt_ids, n):
    llm.reset()
    out = []
    for tok in llm.generate(prompt_ids, temp=0.0, top_k=1, reset=True):
        if tok in (llm.token_eos(), ids("<|im_end|>")[0]) or len(out) >= n:
            break
        out.append(tok)
    return llm.detokenize(out).decode("utf-8", errors="replace")

def judge(query, passage):
    return [
        {"role": "system", "content": "You judge whether a passage answers a query. Answer Yes or No."},
        {"role": "user", "content": f"Query: {query}\nPassage: {passage}\nDoes the passage answer the query? Answer Yes or No."},
    ]

chats = [
    judge("What is the capital of France?", "Paris is the capital and largest city of France."),
    judge("What is the capital of France?", "Bananas are rich in potassium."),
    [{"role": "user", "content": "What is 2 + 2? Answer with a number."}],
    [{"role": "user", "content": "Name three colours."}],
]

out = {"model_sha256": None, "texts": [], "chats": []}
for t in texts:
    out["texts"].append({"text": t, "ids": ids(t)})
for messages in chats:
    prompt = render(messages)
    p = ids(prompt)
    out["chats"].append({
        "messages": messages,
        "prompt": prompt,
        "prompt_ids": p,
        "logprobs": dict(zip(["Yes", "No"], next_logprobs(p, ["Yes", "No"]))),
        **({"exact_logprobs": dict(zip(["Yes", "No"], exact_logprobs(p, ["Yes", "No"])))} if exact else {}),
        "top_logits": top_logits(p),
        "greedy_32": greedy(p, 32),
    })
json.dump(out, sys.stdout, ensure_ascii=False, indent=1)
print()
