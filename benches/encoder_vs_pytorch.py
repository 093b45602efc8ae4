#!/usr/bin/env python3
"""ferret's sentence encoder vs sentence-transformers (PyTorch), side by side in one run on the
same machine: throughput on SciFact documents (title + " " + text, max_seq 256, batch 32 for
PyTorch), same thread count, and the cosine between the two embeddings of every document.
Two precisions each: f32, and int8 — PyTorch's own dynamic quantisation
(`torch.ao.quantization.quantize_dynamic` of every Linear, qint8) against `ferret encode --int8`.

usage: python3 benches/encoder_vs_pytorch.py [--model all-minilm-l6-v2] [--docs 500] [--threads N] [--data DIR]
                                            [--isa avx2]

--model: any sentence encoder `ferret models pull` knows (all-mpnet-base-v2: max_seq 384).
--isa avx2: on an AVX-512 machine, run both sides as an AVX2 machine would. PyTorch through its
  own switches (ATEN_CPU_CAPABILITY, MKL_ENABLE_INSTRUCTIONS, ONEDNN_MAX_CPU_ISA,
  FBGEMM_ENABLE_INSTRUCTIONS); ferret through FERRET_SIMD=avx2 and a build without the gemm
  crate's AVX-512 kernels (RUSTFLAGS="--cfg ferret_gemm_avx2", in target/gemm-avx2). The same
  instructions, not the same machine: an AVX2-only CPU (AMD Zen 3, say) has other ports and
  caches, so this is a stand-in, not a measurement of one.

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

from cpuinfo import cpu
from isa import AVX2_ENV, build_ferret, describe

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "ferret", "encoder-bench-venv")


def ensure_venv():
    wants_avx2 = any(a.startswith("--isa") for a in sys.argv)
    if wants_avx2 and any(os.environ.get(k) != v for k, v in AVX2_ENV.items()):
        os.environ.update(AVX2_ENV)
        os.execv(sys.executable, [sys.executable] + sys.argv)
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
    ap.add_argument("--isa", choices=["avx2"])
    args = ap.parse_args()

    ferret = build_ferret(args.isa)
    pulled = subprocess.run([ferret, "models", "pull", args.model], check=True, capture_output=True, text=True).stdout
    model_dir = pulled.split(" -> ")[1].split("\n")[0].strip()

    corpus = os.path.join(args.data, "beir-scifact", "corpus.jsonl.gz")
    with gzip.open(corpus, "rt", encoding="utf-8") as f:
        docs = [json.loads(l) for _, l in zip(range(args.docs), f)]
    texts = [d["title"] + " " + d["text"] if d["title"] else d["text"] for d in docs]

    torch.set_num_threads(args.threads)

    def torch_encode(model):
        model.encode(texts[:32], batch_size=32)  # warm-up
        t = time.perf_counter()
        v = model.encode(texts, batch_size=32, convert_to_numpy=True)
        return v, time.perf_counter() - t

    model = SentenceTransformer(model_dir, device="cpu")
    torch_f32, torch_f32_secs = torch_encode(model)
    import warnings
    from torch.ao.quantization import quantize_dynamic
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # quantised tensor types are deprecated in PyTorch 2.15
        # The whole SentenceTransformer (its forward does not read a replaced `auto_model`):
        # every nn.Linear in it becomes a dynamic quantised Linear.
        model = quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        quantized = sum(type(m).__module__.startswith("torch.ao.nn.quantized.dynamic") for m in model.modules())
        assert quantized > 0, "quantize_dynamic replaced no Linear layer"
        torch_int8, torch_int8_secs = torch_encode(model)

    def ferret_encode(extra):
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "v.f32")
            res = subprocess.run([ferret, "encode", "--model", args.model, "--corpus", corpus, "--limit", str(args.docs),
                                  "--threads", str(args.threads), "-o", out] + extra, check=True, capture_output=True, text=True)
            # ferret reports the time of the encoding itself (model loaded, texts read)
            return np.fromfile(out, dtype="<f4").reshape(len(texts), -1), float(res.stderr.split(" in ")[1].split("s")[0])

    ferret_f32, ferret_f32_secs = ferret_encode([])
    ferret_int8, ferret_int8_secs = ferret_encode(["--int8"])

    def cosine(a, b):
        c = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
        return f"min {c.min():.7f}, mean {c.mean():.7f}"

    n = len(texts)
    simd = os.environ.get("FERRET_SIMD")
    if args.isa:
        print(f"\nCPU: {cpu()}\n  " + describe())
    else:
        print(f"\nCPU: {cpu()}" + (f" (ferret's own loops capped at FERRET_SIMD={simd}; its f32 GEMMs not)" if simd else ""))
    print(f"{args.model} on {n} SciFact documents, {args.threads} threads (torch {torch.__version__}, "
          f"ATen CPU capability {torch.backends.cpu.get_cpu_capability()}, "
          f"quantized engine {torch.backends.quantized.engine}, {quantized} Linear layers quantised)")
    print(f"  {'':24} {'docs/s':>8} {'/ PyTorch f32':>14} {'cosine to sentence-transformers f32'}")
    rows = [("PyTorch f32", torch_f32, torch_f32_secs), ("PyTorch int8 (dynamic)", torch_int8, torch_int8_secs),
            ("ferret f32", ferret_f32, ferret_f32_secs), ("ferret int8", ferret_int8, ferret_int8_secs)]
    for name, v, secs in rows:
        print(f"  {name:24} {n / secs:8.1f} {torch_f32_secs / secs:13.2f}x  {cosine(v, torch_f32)}")
    print(f"  ferret int8 / PyTorch int8: {torch_int8_secs / ferret_int8_secs:.2f}x")


if __name__ == "__main__":
    main()
