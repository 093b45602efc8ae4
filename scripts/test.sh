#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit tests and the integration tests on the real
# datasets (../shared/data, or $FERRET_DATA). The trec_eval-agreement tests need pytrec_eval and
# ir_measures, the OpenAI-backend test a real llama.cpp server (llama-cpp-python, built from
# source: ~10 minutes on 2 cores the first time); this script installs them into a virtualenv
# (reused between runs), with schemathesis for the server's OpenAPI test. The web page's test
# needs Chromium (apt) and playwright-core (npm).
#
# `scripts/test.sh --long` runs the long campaigns instead: 100 SIGKILLs per write mode
# (crates/ferret/tests/crash_safety.rs; the default suite runs 10).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--long" ]; then
  PYO3_BUILD_EXTENSION_MODULE=1 FERRET_KILLS=100 \
    exec cargo test -p ferret --test crash_safety -- --nocapture --test-threads 1
fi

venv="${FERRET_TEST_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/ferret/test-venv}"
if ! "$venv/bin/python" -c "import pytrec_eval, ir_measures" 2>/dev/null; then
  echo "== installing the reference evaluators (pytrec-eval-terrier, ir-measures) into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check pytrec-eval-terrier==0.5.11 ir-measures==0.4.3
fi
if ! "$venv/bin/python" -c "import llama_cpp.server" 2>/dev/null; then
  echo "== installing llama-cpp-python[server] (the OpenAI-compatible server the LLM tests talk to)"
  # Built for AVX2 rather than -march=native: the native build crashed (general protection
  # fault in libggml-cpu) on an AVX-512/AMX virtual machine; AVX2 runs on every CI machine.
  CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON" \
    CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" "$venv/bin/pip" install --quiet --disable-pip-version-check \
    'llama-cpp-python[server]==0.3.36'
fi
if ! "$venv/bin/python" -c "import schemathesis" 2>/dev/null; then
  echo "== installing schemathesis (the server's OpenAPI fuzzing test)"
  "$venv/bin/pip" install --quiet --disable-pip-version-check schemathesis==4.32.5
fi
if ! "$venv/bin/python" -c "import pandas, pytest, pyterrier" 2>/dev/null; then
  echo "== installing pandas, pytest and PyTerrier (the Python package's tests)"
  "$venv/bin/pip" install --quiet --disable-pip-version-check pandas==3.1.1 pytest==9.2.0 pyterrier==1.1.2
fi
if ! "$venv/bin/python" -c "import ray.data, ray.serve" 2>/dev/null; then
  echo "== installing Ray (Data and Serve: the sharded build and serving tests)"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'ray[data,serve]==2.60.0'
fi
export FERRET_PYTHON="$venv/bin/python"

# The web page's browser test: Debian's Chromium, driven by playwright-core from npm.
if [ ! -x /usr/bin/chromium ]; then
  echo "== installing chromium (Debian) for the browser test"
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
fi
node_dir="${FERRET_TEST_NODE:-${XDG_CACHE_HOME:-$HOME/.cache}/ferret/test-node}"
if [ ! -d "$node_dir/node_modules/playwright-core" ]; then
  echo "== installing playwright-core (npm) into $node_dir"
  mkdir -p "$node_dir"
  npm install --silent --no-audit --no-fund --prefix "$node_dir" playwright-core@1.65.1
fi
export FERRET_NODE_MODULES="$node_dir/node_modules"

# PyO3 as maturin builds it (the extension module leaves Python's symbols to the interpreter),
# for every cargo command below, so that it is compiled once.
export PYO3_BUILD_EXTENSION_MODULE=1

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --all-targets --quiet -- -D warnings
echo "== cargo test"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace 2>&1 | tee "$log"
# The Python package (python/), tested with pytest against the ferret binary cargo test built.
# Its extension module is built here by cargo, with the features cargo test unified, so that
# nothing cargo test compiled is compiled again (`maturin build -p` would select the crate alone
# and rebuild ~60 dependencies with other features); the package is python/ferret plus that
# module. `pip install ./python` (maturin, release) is the users' way; docs/PYTHON.md.
echo "== Python package (python/): extension module, pytest"
cargo build --workspace --all-targets --quiet
pkg=$(mktemp -d)
trap 'rm -rf "$log" "$pkg"' EXIT
cp -r python/ferret "$pkg/ferret"
cp target/debug/lib_ferret.so "$pkg/ferret/_ferret.abi3.so"
PYTHONPATH="$pkg" FERRET_BIN="$PWD/target/debug/ferret" "$venv/bin/python" -m pytest -q -p no:cacheprovider \
  python/tests 2>&1 | tee -a "$log"
# One closing line for the whole suite (cargo prints one per test binary).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
     /^[0-9]+ passed/ || /^=+ .*(passed|failed)/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed,?$/) p += $(i-1); if ($i ~ /^failed,?$/) f += $(i-1) } }
     END { printf "\nsuite: %d passed, %d failed (cargo test and pytest)\n", p, f }' "$log"
