#!/usr/bin/env python3
"""ferret's sentence encoder vs sentence-transformers (PyTorch), side by side in one run on the
same machine: throughput on SciFact documents (title + " " + text, max_seq 256, batch 32 for
PyTorch), same thread count, and the cosine between the two embeddings of every document.

usage: python3 benches/encoder_vs_pytorch.py [--model all-minilm-l6-v2] [--docs 500] [--threads N] [--data DIR]

--model: any sentence encoder `ferret models pull` knows (all-mpnet-base-v2: max_seq 384).

Installs sentence-transformers (and with it PyTorch from PyPI) into its own virtualenv, builds
ferret in release mode, and fetches the model with `ferret models pull`.
"""
import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "ferret", "encoder-bench-venv")


def ensure_venv():
    py = os.path.join(VENV, "bin", "python")
    if os.path.realpath(sys.prefix) == os.path.realpath(VENV):
        return
    if not os.path.exists(py) or subprocess.run([py, "-c", "import sentence_transformers"], capture_output=True).returncode != 0:
        print(f"installing sentence-transformers into {VENV}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
        subprocess.run([os.path.join(VENV, "bin", "pip"), "install", "--quiet", "sentence-transformers", "numpy"], check=True)
    os.execv(py, [py] + sys.argv)


def main():
    ensure_venv()
    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer

    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="all-minilm-l6-v2")
    ap.add_argument("--docs", type=int, default=500)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--data", default=os.environ.get("FERRET_DATA", os.path.join(ROOT, "..", "shared", "data")))
    args = ap.parse_args()

    subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "ferret"], cwd=ROOT, check=True)
    ferret = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "ferret")
    pulled = subprocess.run([ferret, "models", "pull", args.model], check=True, capture_output=True, text=True).stdout
    model_dir = pulled.split(" -> ")[1].split("\n")[0].strip()

    corpus = os.path.join(args.data, "beir-scifact", "corpus.jsonl.gz")
    with gzip.open(corpus, "rt", encoding="utf-8") as f:
        docs = [json.loads(l) for _, l in zip(range(args.docs), f)]
    texts = [d["title"] + " " + d["text"] if d["title"] else d["text"] for d in docs]

    torch.set_num_threads(args.threads)
    model = SentenceTransformer(model_dir, device="cpu")
    model.encode(texts[:32], batch_size=32)  # warm-up
    t = time.perf_counter()
    theirs = model.encode(texts, batch_size=32, convert_to_numpy=True)
    torch_secs = time.perf_counter() - t

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "v.f32")
        res = subprocess.run([ferret, "encode", "--model", args.model, "--corpus", corpus, "--limit", str(args.docs),
                              "--threads", str(args.threads), "-o", out], check=True, capture_output=True, text=True)
        # ferret reports the time of the encoding itself (model loaded, texts read)
        ferret_secs = float(res.stderr.split(" in ")[1].split("s")[0])
        ours = np.fromfile(out, dtype="<f4").reshape(len(texts), -1)

    cos = (ours * theirs).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(theirs, axis=1)
    n = len(texts)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from cpuinfo import cpu
    print(f"\nCPU: {cpu()}")
    print(f"{args.model} on {n} SciFact documents, {args.threads} threads (torch {torch.__version__})")
    print(f"  sentence-transformers: {n / torch_secs:7.1f} docs/s")
    print(f"  ferret:                {n / ferret_secs:7.1f} docs/s")
    print(f"  ratio ferret / PyTorch: {torch_secs / ferret_secs:.2f}x")
    print(f"  cosine: min {cos.min():.7f}, mean {cos.mean():.7f}")


if __name__ == "__main__":
    main()
