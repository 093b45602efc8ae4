#!/usr/bin/env python3
"""Reference evaluation for ferret's trec_eval-compatibility tests.

Computes per-query values with pytrec_eval (trec_eval 9.x compiled as a Python extension;
package pytrec-eval-terrier) and Judged@k with ir_measures, for the measure names ferret uses.
Prints JSON: {"per_query": {qid: {measure: value}}}.

usage: trec_eval_reference.py QRELS RUN LEVEL MEASURE...
"""
import json
import re
import sys

import ir_measures
import pytrec_eval


def read_qrels(path):
    qrels = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f):
            cols = line.split()
            if not cols:
                continue
            if len(cols) == 3:
                if n == 0 and not cols[2].lstrip("-").isdigit():
                    continue  # BEIR header
                qid, did, rel = cols
            else:
                qid, _, did, rel = cols
            qrels.setdefault(qid, {})[did] = int(rel)
    return qrels


def read_run(path):
    run = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            qid, _, did, _, score, _ = line.split()
            run.setdefault(qid, {})[did] = float(score)
    return run


def trec_order(ranking):
    # trec_eval: score descending, then document id descending
    return sorted(ranking.items(), key=lambda x: (x[1], x[0]), reverse=True)


def main():
    qrels_path, run_path, level = sys.argv[1], sys.argv[2], int(sys.argv[3])
    measures = sys.argv[4:]
    qrels, run = read_qrels(qrels_path), read_run(run_path)
    out = {}

    def put(qid, name, value):
        out.setdefault(qid, {})[name] = value

    simple = {}
    for m in measures:
        k = re.fullmatch(r"(\w+)@(\d+)", m)
        base, cut = (k.group(1), k.group(2)) if k else (m, None)
        if base == "RR" and cut:
            # RR@k is recip_rank over each query's top k (in trec_eval order)
            truncated = {q: dict(trec_order(r)[: int(cut)]) for q, r in run.items()}
            ev = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}, relevance_level=level)
            for qid, vals in ev.evaluate(truncated).items():
                put(qid, m, vals["recip_rank"])
        elif base == "Judged":
            for metric in ir_measures.iter_calc([ir_measures.parse_measure(m)], qrels, run):
                put(metric.query_id, m, metric.value)
        else:
            name = {
                "P": f"P_{cut}", "R": f"recall_{cut}", "nDCG": f"ndcg_cut_{cut}" if cut else "ndcg",
                "AP": f"map_cut_{cut}" if cut else "map", "RR": "recip_rank", "Rprec": "Rprec",
                "Bpref": "bpref", "Success": f"success_{cut}",
            }[base]
            simple[name] = m
    if simple:
        bases = {re.sub(r"_\d+$", "", n) for n in simple}
        ev = pytrec_eval.RelevanceEvaluator(qrels, bases | set(simple), relevance_level=level)
        for qid, vals in ev.evaluate(run).items():
            for name, m in simple.items():
                put(qid, m, vals[name])
    json.dump({"per_query": out}, sys.stdout)


if __name__ == "__main__":
    main()
