//! Relevance judgements the server was started with (`ferret serve --qrels`): each hit of a
//! judged query gets its grade, each ranking its measures, exactly as `ferret eval` computes
//! them on a run of the same pipeline.

use ferret_eval::{evaluate, EvalOptions, Measure, Qrels, Run};
use serde::Serialize;
use utoipa::ToSchema;

/// The measures shown per query.
pub const MEASURES: [&str; 3] = ["nDCG@10", "R@100", "AP"];

/// Ranking depth evaluated: `ferret run`'s default k, so the measures equal `ferret eval`'s
/// on its run.
pub const EVAL_DEPTH: usize = 1000;

/// One named set of judgements, and the texts of its judged queries when given.
#[derive(Debug)]
pub struct JudgementSet {
    pub name: String,
    /// Where the judgements came from (shown, not read again).
    pub source: String,
    pub qrels: Qrels,
    /// Judged queries with their texts (id, text), in the queries file's order.
    pub queries: Vec<(String, String)>,
}

#[derive(Serialize, ToSchema)]
pub struct QueryEvaluation {
    pub set: String,
    pub query_id: String,
    /// Documents judged for the query, and those judged relevant (grade > 0).
    pub judged: usize,
    pub relevant: usize,
    /// Depth of the ranking evaluated.
    pub depth: usize,
    /// Measure name → value (nDCG@10, R@100, AP).
    #[schema(value_type = Object)]
    pub measures: serde_json::Map<String, serde_json::Value>,
}

impl JudgementSet {
    pub fn measures() -> Vec<Measure> {
        Measure::parse_all(&MEASURES).expect("the measure names parse")
    }

    /// A document's grade for a query; `None` when unjudged.
    pub fn grade(&self, query: &str, doc: &str) -> Option<i32> {
        self.qrels.get(query)?.get(doc).copied()
    }

    pub fn is_judged(&self, query: &str) -> bool {
        self.qrels.get(query).is_some()
    }

    /// The measures of one query's ranking (external ids with scores, ranked order).
    pub fn evaluate(&self, query: &str, ranking: Vec<(String, f64)>) -> QueryEvaluation {
        let mut run = Run::new("page");
        run.set_ranking(query, ranking);
        // Tied scores are evaluated in the order ranked, as `ferret run` writes them.
        run.separate_ties();
        let measures = Self::measures();
        let e = evaluate(&self.qrels, &run, &measures, EvalOptions::default());
        let values = e.per_query.get(query).cloned().unwrap_or_default();
        let judgements = self.qrels.get(query);
        QueryEvaluation {
            set: self.name.clone(),
            query_id: query.to_string(),
            judged: judgements.map_or(0, |j| j.len()),
            relevant: judgements.map_or(0, |j| j.values().filter(|g| **g > 0).count()),
            depth: EVAL_DEPTH,
            measures: measures
                .iter()
                .zip(values)
                .map(|(m, v)| (m.to_string(), v.into()))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ranking_is_evaluated_with_grades_and_ties_in_ranked_order() {
        let mut qrels = Qrels::default();
        qrels.insert("q", "b", 2);
        qrels.insert("q", "c", 0);
        let set = JudgementSet {
            name: "test".into(),
            source: "qrels.tsv".into(),
            qrels,
            queries: vec![],
        };
        assert_eq!(set.grade("q", "b"), Some(2));
        assert_eq!(set.grade("q", "a"), None);
        assert!(!set.is_judged("other"));
        // "b" ties with "a" but was ranked second: AP is 1/2, not the 1 of trec_eval's
        // id-descending order of raw ties.
        let e = set.evaluate("q", vec![("a".into(), 1.0), ("b".into(), 1.0)]);
        assert_eq!((e.judged, e.relevant), (2, 1));
        assert_eq!(e.measures["AP"], 0.5);
        assert_eq!(e.measures["R@100"], 1.0);
    }
}
