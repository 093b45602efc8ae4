#!/usr/bin/env bash
# The best SciFact pipeline ferret reaches on a CPU with the weights it can fetch, every weight
# chosen on the train split only (809 queries), evaluated once on test (300 queries):
#   * one index with BM25, nomic-embed-text-v1.5 (GGUF), all-MiniLM-L6-v2 and SPLADE-tiny
#     (and all-mpnet-base-v2 with WITH_MPNET=1; BM25 >> RM3 as one more input with WITH_RM3=1;
#     a sentence encoder's token vectors searched by MaxSim (PLAID, 2-bit) with
#     TOKENS=all-mpnet-base-v2 or all-minilm-l6-v2: ~40 / ~20 min of encoding on 2 cores);
#   * each model alone on test;
#   * z-score CombSUM of them, the weights found by coordinate ascent on train
#     (`ferret tune --search coordinate`, RESTARTS random starts, seed 1), written with its
#     run card;
#   * the tuned fusion against BM25 and against the best single model: paired t-test and
#     randomisation test (`ferret eval`).
#
# usage: benches/best_scifact.sh [WORKDIR]
#   FERRET (binary, default target/release/ferret), FERRET_DATA, RESTARTS (random starts of the
#   coordinate ascent, default 3), WITH_MPNET=1 (MPNET_INT8=1: its
#   corpus encoded with int8 linear layers, ~15 instead of ~40 min), WITH_RM3=1, TOKENS=MODEL,
#   NOMIC_INDEX (an existing SciFact index with nomic-embed-text-v1.5, copied instead of
#   encoding the corpus again: ~45 min on 2 cores)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
FERRET=${FERRET:-$ROOT/target/release/ferret}
DATA=${FERRET_DATA:-$ROOT/../shared/data}/beir-scifact
WORK=${1:-$ROOT/target/best-scifact}
mkdir -p "$WORK"
Q=$DATA/queries.jsonl
TEST=$DATA/qrels/test.tsv
TRAIN=$DATA/qrels/train.tsv
IDX=$WORK/index
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, $(grep -qw avx512f /proc/cpuinfo && echo AVX-512 || { grep -qw avx2 /proc/cpuinfo && echo AVX2 || echo 'no AVX2'; })"

if [ ! -f "$IDX/manifest.json" ]; then
  if [ -n "${NOMIC_INDEX:-}" ]; then
    cp -r "$NOMIC_INDEX" "$IDX"
  else
    "$FERRET" index --corpus "$DATA/corpus.jsonl.gz" --index "$IDX" --dense nomic-embed-text-v1.5
  fi
fi
has() { grep -q "$1" "$IDX/manifest.json"; }
has all-MiniLM-L6-v2 || "$FERRET" index --index "$IDX" --dense all-minilm-l6-v2
has splade-tiny || "$FERRET" index --index "$IDX" --sparse splade-tiny
NOMIC="dense(model=nomic-embed-text-v1.5, exact=1) % 1000"
MINILM="dense(model=sentence-transformers/all-MiniLM-L6-v2, exact=1) % 1000"
SPLADE="splade % 1000"
INPUTS=("bm25 % 1000" "$NOMIC" "$MINILM" "$SPLADE")
NAMES=(bm25 nomic minilm splade)
WEIGHTS="{bm25}, 1, {minilm}, {splade}"
GRIDS=(--grid bm25=0:2:0.1 --grid minilm=0:2:0.1 --grid splade=0:2:0.1)
if [ "${WITH_MPNET:-}" = 1 ]; then
  has all-mpnet-base-v2 || "$FERRET" index --index "$IDX" --dense all-mpnet-base-v2 ${MPNET_INT8:+--int8}
  INPUTS+=("dense(model=sentence-transformers/all-mpnet-base-v2, exact=1) % 1000")
  NAMES+=(mpnet)
  WEIGHTS="$WEIGHTS, {mpnet}"
  GRIDS+=(--grid mpnet=0:2:0.1)
fi
if [ -n "${TOKENS:-}" ]; then
  # The canonical id (which the index records) as ferret's own resolver names it.
  TOKENS_ID=$("$FERRET" models pull "$TOKENS" | awk '/->/ {print $1}')
  has "tokens/${TOKENS_ID/\//--}/" || "$FERRET" index --index "$IDX" --tokens "$TOKENS"
  INPUTS+=("colbert(model=$TOKENS_ID) % 1000")
  NAMES+=(maxsim)
  WEIGHTS="$WEIGHTS, {maxsim}"
  GRIDS+=(--grid maxsim=0:2:0.1)
fi
if [ "${WITH_RM3:-}" = 1 ]; then
  INPUTS+=("bm25 % 1000 >> rm3")
  NAMES+=(rm3)
  WEIGHTS="$WEIGHTS, {rm3}"
  GRIDS+=(--grid rm3=0:2:0.1)
fi

# Each model alone, on test.
for i in "${!INPUTS[@]}"; do
  "$FERRET" run --index "$IDX" --queries "$Q" --qrels "$TEST" --pipeline "${INPUTS[$i]}" -k 1000 \
    -o "$WORK/${NAMES[$i]}.run" -m nDCG@10 R@100 2>/dev/null | sed "s/^/${NAMES[$i]}: /"
done

# The fusion's weights on train (nomic's held at 1: z-scores make the scale free).
JOINED=$(printf '%s, ' "${INPUTS[@]}")
FUSION="combsum(${JOINED%, }, norm=zscore, weights=[$WEIGHTS])"
echo "tuning: $FUSION"
"$FERRET" tune --index "$IDX" --queries "$Q" --qrels "$TRAIN" --report-qrels "$TEST" \
  --pipeline "$FUSION" "${GRIDS[@]}" --search coordinate --restarts "${RESTARTS:-3}" --seed 1 \
  -m nDCG@10 R@100 -k 1000 -o "$WORK/tuned.run" > "$WORK/tune.txt"
tail -4 "$WORK/tune.txt"

# The tuned fusion against BM25 and against the best single model on test.
best_single=$(for n in "${NAMES[@]}"; do
  echo "$("$FERRET" eval --qrels "$TEST" "$WORK/$n.run" -m nDCG@10 --json |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["runs"][0]["mean"]["nDCG@10"])') $n"
done | sort -rn | head -1 | cut -d' ' -f2)
echo "best single model on test: $best_single"
"$FERRET" eval --qrels "$TEST" "$WORK/tuned.run" "$WORK/bm25.run" "$WORK/$best_single.run" -m nDCG@10 R@100
