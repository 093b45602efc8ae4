#!/usr/bin/env bash
# Effectiveness on BEIR SciFact (test split, 300 queries) of the learned-sparse methods and their
# hybrids, as reported in docs/SPARSE.md:
#   * PromptReps with SmolLM2-135M-Instruct: dense, sparse and hybrid (the promptreps stage);
#   * SPLADE-tiny fused with BM25 and with MiniLM: RRF (k=60) and min-max interpolation with
#     alpha tuned on the train split only (ferret tune), then evaluated once on test.
# usage: benches/sparse_effectiveness.sh [WORKDIR]   (FERRET: the binary, default target/release/ferret;
#        PROMPTREPS_DOC_LENGTH: passage tokens for PromptReps, default 512 as the authors)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
FERRET=${FERRET:-$ROOT/target/release/ferret}
DATA=${FERRET_DATA:-$ROOT/../shared/data}/beir-scifact
WORK=${1:-$(mktemp -d)}
mkdir -p "$WORK"
Q=$DATA/queries.jsonl
TEST=$DATA/qrels/test.tsv
TRAIN=$DATA/qrels/train.tsv
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, $(grep -qw avx512f /proc/cpuinfo && echo AVX-512 || echo AVX2)"

run() { # name pipeline
  "$FERRET" run --index "$IDX" --queries "$Q" --qrels "$TEST" --pipeline "$2" -k 1000 \
    -o "$WORK/$1.run" -m nDCG@10 R@100 | sed "s/^/$1: /"
}

# SPLADE-tiny with BM25 and MiniLM.
IDX=$WORK/splade-minilm
if [ ! -f "$IDX/manifest.json" ]; then
  start=$(date +%s.%N)
  "$FERRET" index --corpus "$DATA/corpus.jsonl.gz" --index "$IDX" --sparse splade-tiny
  echo "SPLADE-tiny indexing (256 tokens, 2 threads): $(echo "5183 / ($(date +%s.%N) - $start)" | bc -l | cut -c1-6) docs/s"
  "$FERRET" index --index "$IDX" --dense all-minilm-l6-v2
fi
run splade "splade"
run minilm "dense"
run splade-bm25-rrf "rrf(bm25 % 1000, splade % 1000)"
run splade-minilm-rrf "rrf(dense % 1000, splade % 1000)"
for other in bm25 dense; do
  best=$("$FERRET" tune --index "$IDX" --queries "$Q" --qrels "$TRAIN" \
    --pipeline "interp($other % 1000, splade % 1000, alpha={alpha})" --grid alpha=0.1:0.9:0.1 -m nDCG@10 \
    | tee "$WORK/tune-$other.txt" | grep -oE 'alpha=[0-9.]+' | tail -1)
  echo "interp $other+splade: best on train $best"
  run "splade-$other-interp" "interp($other % 1000, splade % 1000, ${best})"
done

# PromptReps: one forward pass of SmolLM2 per document gives both representations.
IDX=$WORK/promptreps
if [ ! -f "$IDX/manifest.json" ]; then
  start=$(date +%s)
  "$FERRET" index --corpus "$DATA/corpus.jsonl.gz" --index "$IDX" --promptreps smollm2 \
    --sparse-doc-length "${PROMPTREPS_DOC_LENGTH:-512}"
  echo "PromptReps indexing: $(( $(date +%s) - start )) s"
fi
run promptreps-dense "promptreps(mode=dense)"
run promptreps-sparse "promptreps(mode=sparse)"
run promptreps-hybrid "promptreps"
run promptreps-bm25-rrf "rrf(bm25 % 1000, promptreps % 1000)"

