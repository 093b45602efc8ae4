#!/usr/bin/env bash
# Runs every fuzz target (fuzz/, cargo-fuzz on nightly, no sanitizer) until it has made RUNS
# executions or run FUZZ_SECONDS seconds, JOBS targets at a time, growing the saved corpora in
# crates/ferret-fuzz/corpus/ (the test suite replays them). Prints one line per target:
# executions, seconds, corpus size, and whether libFuzzer found a crash, a timeout or an
# out-of-memory (the input is then in fuzz/artifacts/<target>/).
#
#   scripts/fuzz.sh [TARGET…]     (FUZZ_SECONDS=600, RUNS=1000000, JOBS=2, MAX_LEN=4096)
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
SECONDS_EACH=${FUZZ_SECONDS:-600}
RUNS=${RUNS:-1000000}
JOBS=${JOBS:-2}
MAX_LEN=${MAX_LEN:-4096}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
cargo +nightly fuzz build -s none
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo +nightly fuzz list)
mkdir -p logs
cpu=$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)
isa=$(grep -q ' avx512f' /proc/cpuinfo && echo AVX-512 || (grep -q ' avx2' /proc/cpuinfo && echo AVX2 || echo "no AVX2"))
echo "machine: $cpu, $(nproc) cores, $isa; up to $RUNS executions or $SECONDS_EACH s per target"
run_one() {
  local t=$1 start end status execs files
  start=$(date +%s)
  # -rss_limit_mb: an input that makes a reader allocate what a header claims is a finding.
  cargo +nightly fuzz run -s none "$t" "../crates/ferret-fuzz/corpus/$t" -- \
    -runs="$RUNS" -max_total_time="$SECONDS_EACH" -max_len="$MAX_LEN" -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 > "logs/$t.log" 2>&1 && status=ok || status=FOUND
  end=$(date +%s)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "logs/$t.log" | tail -1)
  files=$(find "../crates/ferret-fuzz/corpus/$t" -type f | wc -l)
  printf '%-12s %10s executions %5d s  corpus %4d  %s\n' "$t" "${execs:-?}" $((end - start)) "$files" "$status"
}
export -f run_one
export RUNS SECONDS_EACH MAX_LEN
printf '%s\n' "${targets[@]}" | xargs -P "$JOBS" -I{} bash -c 'run_one {}'
