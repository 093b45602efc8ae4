//! The run-comparison report: one self-contained HTML file (its script, style and data inline,
//! nothing fetched, so it opens offline and can be attached to a paper or an issue). It shows
//! the means and significance tests, the per-query difference chart of IR papers (one bar per
//! query, sorted by gain, wins/ties/losses), and on a click a query's two rankings side by side
//! with their judgements. `ferret compare` writes it from run files, `ferret serve` at
//! `/compare` from two pipelines.

use std::collections::HashMap;

use serde::Serialize;

use crate::compare::{compare_with_first, union_of_queries, Comparison};
use crate::{evaluate, EvalOptions, Evaluation, Measure, Qrels, Run};

/// The report page's script; a server serving the report allows exactly this script (by hash).
pub const SCRIPT: &str = include_str!("../report/report.js");
/// The report page's style.
pub const STYLE: &str = include_str!("../report/report.css");
const PAGE: &str = include_str!("../report/report.html");

/// Hits of each ranking the report shows for a query.
pub const SHOWN: usize = 10;

/// What the report needs besides the runs: names and texts, all optional.
pub struct ReportInput<'a> {
    /// The page's heading (e.g. the collection).
    pub title: String,
    /// The qrels' name (a file or a judgement set).
    pub qrels_name: String,
    pub qrels: &'a Qrels,
    /// Two runs: the baseline first.
    pub runs: [(String, &'a Run); 2],
    pub measures: &'a [Measure],
    pub opts: EvalOptions,
    /// Randomisation test trials.
    pub trials: usize,
    /// A query's text, when known.
    pub query_text: &'a dyn Fn(&str) -> Option<String>,
    /// A document's title, when known.
    pub doc_title: &'a dyn Fn(&str) -> Option<String>,
}

#[derive(Serialize)]
pub struct Report {
    pub title: String,
    pub qrels: String,
    pub runs: [String; 2],
    pub measures: Vec<String>,
    /// Per run, the mean of each measure.
    pub means: [Vec<f64>; 2],
    /// The second run against the first.
    pub comparison: Comparison,
    pub queries: Vec<ReportQuery>,
}

#[derive(Serialize)]
pub struct ReportQuery {
    pub id: String,
    pub text: Option<String>,
    /// Per run, each measure's value (0 where the run lacks the query).
    pub values: [Vec<f64>; 2],
    /// Per run, the first [`SHOWN`] hits in the order trec_eval evaluates them.
    pub hits: [Vec<ReportHit>; 2],
}

#[derive(Serialize)]
pub struct ReportHit {
    pub id: String,
    pub title: Option<String>,
    /// The judgement, `None` when unjudged.
    pub rel: Option<i32>,
}

impl Report {
    pub fn build(input: &ReportInput) -> Report {
        let evals: Vec<Evaluation> = input
            .runs
            .iter()
            .map(|(_, run)| evaluate(input.qrels, run, input.measures, input.opts))
            .collect();
        let comparison = compare_with_first(&evals, input.trials)
            .pop()
            .expect("two runs give one comparison");
        let mut titles: HashMap<String, Option<String>> = HashMap::new();
        let queries = union_of_queries(&evals)
            .into_iter()
            .map(|qid| {
                let judged = input.qrels.get(qid);
                let hits = input.runs.each_ref().map(|(_, run)| {
                    evaluated_order(run.get(qid).unwrap_or(&[]))
                        .into_iter()
                        .take(SHOWN)
                        .map(|doc| ReportHit {
                            title: titles
                                .entry(doc.to_string())
                                .or_insert_with(|| (input.doc_title)(doc))
                                .clone(),
                            rel: judged.and_then(|j| j.get(doc).copied()),
                            id: doc.to_string(),
                        })
                        .collect()
                });
                ReportQuery {
                    id: qid.to_string(),
                    text: (input.query_text)(qid),
                    values: [0, 1].map(|r| {
                        (0..input.measures.len())
                            .map(|m| evals[r].per_query.get(qid).map_or(0.0, |v| v[m]))
                            .collect()
                    }),
                    hits,
                }
            })
            .collect();
        Report {
            title: input.title.clone(),
            qrels: input.qrels_name.clone(),
            runs: input.runs.each_ref().map(|(name, _)| name.clone()),
            measures: input.measures.iter().map(|m| m.to_string()).collect(),
            means: [0, 1].map(|r| evals[r].mean.clone()),
            comparison,
            queries,
        }
    }

    /// The whole page, one file.
    pub fn html(&self) -> String {
        // Inside <script type="application/json">, "<" is written as \u003c so no text in the
        // data (a query, a title) can close the element.
        let data = serde_json::to_string(self)
            .expect("the report serialises")
            .replace('<', "\\u003c");
        PAGE.replace("{{title}}", &escape_html(&self.title))
            .replace("{{style}}", STYLE)
            .replace("{{data}}", &data)
            .replace("{{script}}", SCRIPT)
    }
}

/// The documents of a ranking in trec_eval's order: score descending, then id descending.
fn evaluated_order(ranking: &[(String, f64)]) -> Vec<&str> {
    let mut order: Vec<&(String, f64)> = ranking.iter().collect();
    order.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| b.0.cmp(&a.0)));
    order.into_iter().map(|(d, _)| d.as_str()).collect()
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_holds_every_query_its_values_and_no_way_out_of_its_data() {
        let mut qrels = Qrels::default();
        qrels.insert("1", "a", 2);
        qrels.insert("2", "b", 1);
        let mut first = Run::new("A");
        first.push("1", "a", 2.0);
        first.push("1", "z", 1.0);
        first.push("2", "z", 1.0);
        let mut second = Run::new("B");
        second.push("1", "z", 2.0);
        second.push("1", "a", 1.0);
        second.push("2", "b", 1.0);
        let measures = Measure::parse_all(&["P.1"]).unwrap();
        let report = Report::build(&ReportInput {
            title: "t <b>".into(),
            qrels_name: "q".into(),
            qrels: &qrels,
            runs: [("A".into(), &first), ("B".into(), &second)],
            measures: &measures,
            opts: EvalOptions::default(),
            trials: 100,
            query_text: &|q| Some(format!("query {q} </script><script>alert(1)")),
            doc_title: &|d| (d == "a").then(|| "Doc A".to_string()),
        });
        assert_eq!(report.queries.len(), 2);
        assert_eq!(report.queries[0].values, [vec![1.0], vec![0.0]]);
        assert_eq!(report.queries[1].values, [vec![0.0], vec![1.0]]);
        let (w, t, l) = (
            report.comparison.wins[0],
            report.comparison.ties[0],
            report.comparison.losses[0],
        );
        assert_eq!((w, t, l), (1, 0, 1));
        let shown: Vec<_> = report.queries[0].hits[1]
            .iter()
            .map(|h| (h.id.as_str(), h.rel, h.title.as_deref()))
            .collect();
        assert_eq!(shown, [("z", None, None), ("a", Some(2), Some("Doc A"))]);
        let html = report.html();
        assert!(html.contains("<title>t &lt;b&gt; — ferret compare</title>"));
        assert_eq!(html.matches("</script>").count(), 2, "{html}");
        assert!(!html.contains("src=\"http") && !html.contains("href=\"http"));
    }
}
