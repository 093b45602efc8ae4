//! Evaluating a run against qrels: which queries count and how the mean is taken.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::measures::{JudgedRanking, MeasureKind};
use crate::{Measure, Qrels, Run};

/// trec_eval's switches that change what is computed.
#[derive(Debug, Clone, Copy)]
pub struct EvalOptions {
    /// `-l`: judgements at or above this level are relevant for binary measures (default 1).
    pub relevance_level: i32,
    /// `-c`: average over every judged query, a query missing from the run scoring 0 (as an
    /// empty ranking). Without it, only queries in both the run and the qrels count.
    pub average_over_judged: bool,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            relevance_level: 1,
            average_over_judged: false,
        }
    }
}

/// Per-query values and means of a set of measures for one run.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    #[serde(serialize_with = "measure_names")]
    pub measures: Vec<Measure>,
    /// Query id → one value per measure, in `measures` order.
    pub per_query: BTreeMap<String, Vec<f64>>,
    /// Mean over the evaluated queries, one per measure.
    pub mean: Vec<f64>,
}

fn measure_names<S: serde::Serializer>(m: &[Measure], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(m.iter().map(|m| m.to_string()))
}

impl Evaluation {
    pub fn num_queries(&self) -> usize {
        self.per_query.len()
    }

    /// The values of measure `i` over `queries` (0 for a query this evaluation lacks).
    pub fn column<'a>(&self, i: usize, queries: impl Iterator<Item = &'a str>) -> Vec<f64> {
        queries
            .map(|q| self.per_query.get(q).map_or(0.0, |v| v[i]))
            .collect()
    }
}

/// Evaluates `run` against `qrels` with trec_eval's semantics (see [`crate::measures`]).
pub fn evaluate(qrels: &Qrels, run: &Run, measures: &[Measure], opts: EvalOptions) -> Evaluation {
    let wants_id_ascending = measures.iter().any(|m| m.kind == MeasureKind::Judged);
    let empty: Vec<(String, f64)> = Vec::new();
    let mut per_query = BTreeMap::new();
    for (qid, judgements) in &qrels.queries {
        let ranking = match run.queries.get(qid) {
            Some(r) => r,
            None if opts.average_over_judged => &empty,
            None => continue,
        };
        let lookup = |order: &[&(String, f64)]| -> Vec<Option<i32>> {
            order
                .iter()
                .map(|(d, _)| judgements.get(d.as_str()).copied())
                .collect()
        };
        let mut order: Vec<&(String, f64)> = ranking.iter().collect();
        // trec_eval: score descending, then document id descending.
        order.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| b.0.cmp(&a.0)));
        let rels = lookup(&order);
        let rels_id_ascending = if wants_id_ascending {
            order.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            lookup(&order)
        } else {
            Vec::new()
        };
        let q = JudgedRanking {
            rels,
            rels_id_ascending,
            judgements: judgements.values().copied().collect(),
        };
        let values = measures
            .iter()
            .map(|m| m.compute(&q, opts.relevance_level))
            .collect();
        per_query.insert(qid.clone(), values);
    }
    let n = per_query.len().max(1) as f64;
    // Folded from +0.0: an empty f64 sum is -0.0, which would print as "-0.0000".
    let mean = (0..measures.len())
        .map(|i| per_query.values().fold(0.0, |s, v: &Vec<f64>| s + v[i]) / n)
        .collect();
    Evaluation {
        measures: measures.to_vec(),
        per_query,
        mean,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_counted_as_trec_eval_does() {
        let mut qrels = Qrels::default();
        qrels.insert("1", "a", 1);
        qrels.insert("2", "b", 1);
        let mut run = Run::new("t");
        run.push("1", "a", 1.0);
        run.push("3", "zzz", 1.0); // not judged: ignored
        let m = Measure::parse_all(&["P@1"]).unwrap();
        let e = evaluate(&qrels, &run, &m, EvalOptions::default());
        assert_eq!(e.num_queries(), 1);
        assert_eq!(e.mean[0], 1.0);
        let c = EvalOptions {
            average_over_judged: true,
            ..Default::default()
        };
        let e = evaluate(&qrels, &run, &m, c);
        assert_eq!(e.num_queries(), 2);
        assert_eq!(e.mean[0], 0.5);
    }

    #[test]
    fn no_shared_query_means_zero_not_negative_zero() {
        let mut qrels = Qrels::default();
        qrels.insert("1", "a", 1);
        let mut run = Run::new("t");
        run.push("2", "a", 1.0);
        let m = Measure::parse_all(&["AP"]).unwrap();
        let e = evaluate(&qrels, &run, &m, EvalOptions::default());
        assert_eq!(e.num_queries(), 0);
        assert!(e.mean[0] == 0.0 && e.mean[0].is_sign_positive());
    }

    #[test]
    fn ties_are_broken_by_descending_document_id() {
        let mut qrels = Qrels::default();
        qrels.insert("1", "a", 1);
        let mut run = Run::new("t");
        run.push("1", "a", 1.0);
        run.push("1", "b", 1.0);
        let m = Measure::parse_all(&["RR", "Judged@1"]).unwrap();
        let e = evaluate(&qrels, &run, &m, EvalOptions::default());
        // trec_eval puts "b" first; ir_measures' Judged puts "a" first.
        assert_eq!(e.mean, vec![0.5, 1.0]);
    }
}
