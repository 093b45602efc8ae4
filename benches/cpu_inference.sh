#!/usr/bin/env bash
# ferret's CPU runtimes next to their peers on this machine, one after the other in one run,
# with the CPU and instruction set at the top: the sentence encoders against
# sentence-transformers on PyTorch, f32 and int8 (PyTorch's dynamic quantisation against
# `ferret encode --int8`), and the GGUF LLM runtime against llama.cpp (prompt and generation
# tokens/s). docs/BENCHMARKS.md keeps one table per kind of machine.
#   benches/cpu_inference.sh        (DOCS=500 MiniLM documents, DOCS_MPNET=100, QWEN=1 adds
#                                    Qwen2.5-Coder-1.5B, VENV: a virtualenv with llama-cpp-python)
# ISA=avx2 holds the encoder rows to AVX2 on both sides (encoder_vs_pytorch.py --isa avx2: a
# stand-in for an AVX2 CPU on an AVX-512 one) and runs ferret's LLM kernels under
# FERRET_SIMD=avx2.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p ferret
python3 -c "import sys; sys.path.insert(0, 'benches'); from cpuinfo import cpu; print('CPU:', cpu())"
isa=()
if [ "${ISA:-}" = avx2 ]; then isa=(--isa avx2); export FERRET_SIMD=avx2; echo "held to AVX2 (ISA=avx2)"; fi
python3 benches/encoder_vs_pytorch.py --model all-minilm-l6-v2 --docs "${DOCS:-500}" "${isa[@]}"
python3 benches/encoder_vs_pytorch.py --model all-mpnet-base-v2 --docs "${DOCS_MPNET:-100}" "${isa[@]}"
benches/llm_vs_llamacpp.sh 512 64
if [ -n "${QWEN:-}" ]; then LLM=qwen2.5-coder-1.5b benches/llm_vs_llamacpp.sh 256 32; fi
