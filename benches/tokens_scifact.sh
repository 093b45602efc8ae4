#!/usr/bin/env bash
# Effectiveness of a zero-shot token-vector test bed on SciFact test (300 queries): exhaustive
# MaxSim, PLAID, XTR, ColBERT-PRF and fusion with BM25, next to BM25. Each runs through
# `ferret run` end to end (query encoding included; its queries/s on stderr) and is scored by
# `ferret eval` (nDCG@10, R@100; significance tests against the first row, exhaustive MaxSim).
#   benches/tokens_scifact.sh MODEL WORK [NBITS]
# MODEL: a sentence encoder id (all-minilm-l6-v2, all-mpnet-base-v2); WORK: a folder for the
# index and runs (an index already there is reused); NBITS: residual bits, 0 for f16 (default 2).
# Building the index encodes every document's tokens: ~20 min with MiniLM, ~40 with MPNet on
# 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:?model id}
WORK=${2:?work folder}
NBITS=${3:-2}
FERRET=${FERRET:-target/release/ferret}
DATA=${FERRET_DATA:-../shared/data}/beir-scifact
[ -x "$FERRET" ] || cargo build --release -q -p ferret
python3 -c "import sys; sys.path.insert(0, 'benches'); from cpuinfo import cpu; print('CPU:', cpu())"
mkdir -p "$WORK"
INDEX=$WORK/index
if [ ! -f "$INDEX/manifest.json" ]; then
  "$FERRET" index --corpus "$DATA/corpus.jsonl.gz" --index "$INDEX" --tokens "$MODEL" \
    --tokens-nbits "$NBITS"
fi
QRELS=$DATA/qrels/test.tsv
run() { # name pipeline
  [ -s "$WORK/$1.run" ] || "$FERRET" run --index "$INDEX" --queries "$DATA/queries.jsonl" \
    --qrels "$QRELS" --pipeline "$2" -k 1000 -o "$WORK/$1.run" > /dev/null
  echo "$WORK/$1.run"
}
RUNS=(
  "$(run exhaustive 'colbert(method=exhaustive)')"
  "$(run plaid 'colbert')"
  "$(run xtr 'colbert(method=xtr)')"
  "$(run prf 'colbert % 3 >> colbert_prf')"
  "$(run prf-beta0.25 'colbert % 3 >> colbert_prf(beta=0.25)')"
  "$(run bm25 'bm25')"
  "$(run rrf-bm25 'rrf(bm25 % 1000, colbert % 1000)')"
)
"$FERRET" eval --qrels "$QRELS" "${RUNS[@]}" -m nDCG@10 R@100
