#!/usr/bin/env bash
# Load on `ferret serve` (release build) over loopback: wrk, 16 connections, 60 s per pipeline,
# POST /v1/search with SciFact's 300 test queries in turn (k=10), once with BM25 and once with
# a hybrid (RRF of BM25 and MiniLM dense), then BM25 again during a flood of slow LLM searches
# (FLOOD_CONNECTIONS clients asking SmolLM2 about 50 BM25 candidates each, pointwise: minutes of
# work per request, so every one is cancelled at the server's timeout, TIMEOUT_S). Reports
# requests/s, p50/p99 latency, errors (non-2xx and socket errors), the server's resident memory:
# peak, and the mean of the first and last 10 s (memory must not grow); for the flood, how many
# LLM searches timed out and how long after its deadline cancelled work freed its worker (the
# server's ferret_work_overrun_seconds histogram). wrk and the server share this machine's cores.
#
#   benches/server_load.sh [OUT_DIR]     (FERRET_DATA, DURATION=60, CONNECTIONS=16, TIMEOUT_S=5,
#                                         FLOOD_CONNECTIONS=8, SERVE_ARGS such as "--workers 4")
# Needs wrk (Debian: apt-get install wrk).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-target/server-load}
DATA=${FERRET_DATA:-../shared/data}
SCIFACT=$DATA/beir-scifact
DURATION=${DURATION:-60}
CONNECTIONS=${CONNECTIONS:-16}
TIMEOUT_S=${TIMEOUT_S:-5}
FLOOD_CONNECTIONS=${FLOOD_CONNECTIONS:-8}
FERRET=${FERRET:-target/release/ferret}
command -v wrk >/dev/null || { echo "wrk not found (apt-get install wrk)" >&2; exit 1; }
[ -x "$FERRET" ] || cargo build --release -q
mkdir -p "$OUT"
[ -f "$OUT/index/manifest.json" ] ||
  "$FERRET" index --corpus "$SCIFACT/corpus.jsonl.gz" --index "$OUT/index" --dense minilm

# wrk's request generator: the test queries as JSON bodies, in turn.
python3 - "$SCIFACT" "$OUT" <<'PY'
import json, sys
scifact, out = sys.argv[1], sys.argv[2]
judged = {l.split("\t")[0] for l in open(f"{scifact}/qrels/test.tsv").read().splitlines()[1:]}
queries = [json.loads(l) for l in open(f"{scifact}/queries.jsonl")]
texts = [q["text"] for q in queries if q["_id"] in judged]
def lua(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
for name, pipeline in [("bm25", "bm25"), ("hybrid", "rrf(bm25 % 1000, dense(exact=1) % 1000, k=60)"),
                       ("llm", "bm25 % 50 >> pointwise(llm=smollm2, cache=0)")]:
    with open(f"{out}/{name}.lua", "w") as f:
        f.write("local bodies = {\n")
        for t in texts:
            f.write("  " + lua(json.dumps({"query": t, "pipeline": pipeline, "k": 10})) + ",\n")
        f.write("}\nlocal i = 0\n")
        f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n')
        f.write("request = function()\n  i = i % #bodies + 1\n")
        f.write('  return wrk.format(nil, "/v1/search", nil, bodies[i])\nend\n')
PY

# shellcheck disable=SC2086
"$FERRET" serve --index "$OUT/index" --addr 127.0.0.1:0 --timeout-s "$TIMEOUT_S" ${SERVE_ARGS:-} > "$OUT/serve.log" &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q "serving" "$OUT/serve.log" && break; sleep 0.1; done
URL=$(sed -n 's/.* on \(http:\/\/[0-9.:]*\)$/\1/p' "$OUT/serve.log")
echo "server $URL (pid $PID)"

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$PID/status"; }
measure() {  # name lua: warm up (models loaded, pages touched), then measure
  wrk -t2 -c"$CONNECTIONS" -d5s -s "$OUT/$2.lua" "$URL" > /dev/null
  : > "$OUT/$1.rss"
  ( for _ in $(seq "$DURATION"); do rss_kb >> "$OUT/$1.rss"; sleep 1; done ) &
  SAMPLER=$!
  wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$OUT/$2.lua" "$URL" > "$OUT/$1.wrk"
  wait $SAMPLER
}
measure bm25 bm25
measure hybrid hybrid
# The LLM flood starts first (and loads SmolLM2), covers the whole BM25 measurement, and ends
# after it; its requests time out (503) and are cancelled.
wrk -t1 -c"$FLOOD_CONNECTIONS" -d"$((DURATION + 20))s" --timeout "$((TIMEOUT_S + 5))s" \
  -s "$OUT/llm.lua" "$URL" > "$OUT/llm.wrk" &
FLOOD=$!
sleep 10
measure bm25-flood bm25
wait $FLOOD
curl -s "$URL/metrics" > "$OUT/metrics.txt"

python3 - "$OUT" "$DURATION" "$CONNECTIONS" "$FLOOD_CONNECTIONS" "$TIMEOUT_S" <<'PY'
import os, platform, re, sys
out, duration, conns, flood, timeout = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
flags = next((l for l in open("/proc/cpuinfo") if l.startswith("flags")), "")
isa = "AVX-512" if " avx512f" in flags else "AVX2" if " avx2" in flags else "no AVX2"
print(f"\nmachine: {cpu}, {os.cpu_count()} cores, {isa}")
print(f"{duration} s per pipeline, {conns} connections, wrk -t2, loopback; SciFact test queries in turn, k=10\n")
print("| pipeline | requests/s | p50 ms | p99 ms | errors | RSS peak MB | RSS first 10 s MB | RSS last 10 s MB |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
def ms(v):
    n, unit = re.match(r"([\d.]+)(\w+)", v).groups()
    return float(n) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[unit]
for name in ["bm25", "hybrid", "bm25-flood"]:
    w = open(f"{out}/{name}.wrk").read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", w).group(1))
    p50 = ms(re.search(r"\s50%\s+(\S+)", w).group(1))
    p99 = ms(re.search(r"\s99%\s+(\S+)", w).group(1))
    non2xx = int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", w)) else 0
    sock = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", w)) if "Socket errors" in w else 0
    rss = [int(l) / 1024 for l in open(f"{out}/{name}.rss").read().split()]
    first, last = rss[:10], rss[-10:]
    print(f"| {name} | {rps:.0f} | {p50:.2f} | {p99:.2f} | {non2xx + sock} | {max(rss):.0f} | {sum(first)/len(first):.0f} | {sum(last)/len(last):.0f} |")
w = open(f"{out}/llm.wrk").read()
total = int(re.search(r"(\d+) requests in", w).group(1))
non2xx = int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", w)) else 0
metrics = open(f"{out}/metrics.txt").read()
def metric(name):
    m = re.search(rf"^{name} (\S+)$", metrics, re.M)
    return float(m.group(1)) if m else 0.0
count, total_s = metric("ferret_work_overrun_seconds_count"), metric("ferret_work_overrun_seconds_sum")
buckets = [(float(le), float(n)) for le, n in re.findall(r'^ferret_work_overrun_seconds_bucket\{le="([^"+]+)"\} (\S+)$', metrics, re.M)]
p99 = next((le for le, n in buckets if n >= 0.99 * count), float("inf")) if count else 0.0
print(f"\nLLM flood during bm25-flood: {flood} connections of `bm25 % 50 >> pointwise(llm=smollm2)`, server --timeout-s {timeout}:"
      f" {total} LLM searches answered, {non2xx} of them 503 timeout.")
print(f"Work that outlived its deadline (cancelled): {count:.0f} times; it freed its worker on average "
      f"{1000 * total_s / max(count, 1):.1f} ms after the deadline, 99 % within {1000 * p99:.1f} ms.")
PY
