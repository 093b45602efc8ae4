#!/usr/bin/env bash
# Prompt processing and generation speed, ferret's GGUF runtime vs llama.cpp (llama-cpp-python,
# built from source) on the same file and the same tokens, one after the other in one run.
#   benches/llm_vs_llamacpp.sh [PROMPT_TOKENS] [GENERATE]
# LLM=smollm2 (default) or qwen2.5-coder-1.5b (any id `ferret models pull` knows, holding one
# .gguf); VENV to reuse a virtualenv that has llama-cpp-python.
set -euo pipefail
cd "$(dirname "$0")/.."
P=${1:-512}
G=${2:-64}
VENV=${VENV:-target/bench-venv-llm}
FERRET=${FERRET:-target/release/ferret}
[ -x "$FERRET" ] || cargo build --release -q
if ! "$VENV/bin/python" -c "import llama_cpp" 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet 'llama-cpp-python==0.3.36'
fi
LLM=${LLM:-smollm2}
MODEL=$(ls "$("$FERRET" models pull "$LLM" | awk '/->/ {print $3}')"/*.gguf)
python3 -c "import sys; sys.path.insert(0, 'benches'); from cpuinfo import cpu; print('CPU:', cpu())"
echo "ferret's kernels: ${FERRET_SIMD:+capped by FERRET_SIMD=$FERRET_SIMD, }the best this CPU runs (llama.cpp: as built)"
echo "model: $MODEL; llama-cpp-python $("$VENV/bin/python" -c 'import llama_cpp; print(llama_cpp.__version__)')"
TEXT=docs/ARCHITECTURE.md
"$FERRET" bench-llm --model "$MODEL" --text "$TEXT" --prompt-tokens "$P" --generate "$G" | tee /tmp/ferret-llm-bench.json
"$VENV/bin/python" - "$MODEL" "$TEXT" "$P" "$G" <<'PY' | tee /tmp/llamacpp-llm-bench.json
import json, os, sys, time
from llama_cpp import Llama
model, text, P, G = sys.argv[1], open(sys.argv[2]).read(), int(sys.argv[3]), int(sys.argv[4])
llm = Llama(model_path=model, n_ctx=P + G + 8, n_threads=os.cpu_count(), n_batch=512, verbose=False)
ids = llm.tokenize(text.encode(), add_bos=False, special=True)[:P]
best_p = best_g = float("inf")
for _ in range(3):
    llm.reset(); t = time.time(); llm.eval(ids); best_p = min(best_p, time.time() - t)
    t = time.time()
    for _ in range(G):
        tok = llm.sample(temp=0.0, top_k=1)
        llm.eval([tok])
    best_g = min(best_g, time.time() - t)
print(json.dumps({"runtime": "llama.cpp", "prompt_tokens": len(ids), "prompt_tokens_per_s": len(ids) / best_p,
                  "generated_tokens": G, "generation_tokens_per_s": G / best_g}))
PY
python3 - <<'PY'
import json
f = json.load(open("/tmp/ferret-llm-bench.json")); l = json.load(open("/tmp/llamacpp-llm-bench.json"))
for k in ["prompt_tokens_per_s", "generation_tokens_per_s"]:
    print(f"{k}: ferret {f[k]:.0f}, llama.cpp {l[k]:.0f}, ratio ferret/llama.cpp {f[k] / l[k]:.2f}")
PY
