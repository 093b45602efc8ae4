//! TREC runs: query id → ranked (document id, score) list, in the 6-column TREC format
//! `qid Q0 docid rank score tag`.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::read::for_each_line;
use crate::EvalError;

/// How a run made by ferret writes its scores.
///
/// trec_eval does not read the rank column: it sorts each query's documents by score and
/// breaks exact ties by document id, descending. A ranking whose tied documents ferret put in
/// another order (ascending internal number) is then evaluated in an order ferret did not
/// rank, and its numbers differ from the ranking's (on a BEIR set: nDCG@10 0.3206 instead of
/// the 0.3218 of Anserini's run of the same scores). `Separated` writes scores that sort in the
/// ranked order, the way Anserini does (its `ScoreTiesAdjusterReranker`), so that published
/// Pyserini/Anserini numbers are reproduced exactly; `Raw` writes the scores as computed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunScores {
    /// Each score rounded to 4 decimals, then the n-th document of a run of equal rounded
    /// scores lowered by n × 1e-6; written with 6 decimals.
    #[default]
    Separated,
    /// Scores as computed, written in full (shortest round-trip form).
    Raw,
}

impl std::fmt::Display for RunScores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RunScores::Separated => "separated",
            RunScores::Raw => "raw",
        })
    }
}

/// A run: for each query, documents with scores, in the order they were read or produced.
/// Evaluation re-sorts them the way trec_eval does (see [`crate::measures`]), so the stored
/// order and the rank column do not matter for measures.
#[derive(Debug, Clone, Default)]
pub struct Run {
    pub(crate) queries: BTreeMap<String, Vec<(String, f64)>>,
    /// Run tag of the first line read, or the tag given when writing.
    pub tag: String,
    /// Scores written with 6 decimals (set by [`Run::separate_ties`]).
    fixed_decimals: bool,
}

impl Run {
    pub fn new(tag: impl Into<String>) -> Self {
        Run {
            queries: BTreeMap::new(),
            tag: tag.into(),
            fixed_decimals: false,
        }
    }

    /// Makes scores sort in the stored order (each query's documents best first, as a ranking
    /// is stored): Anserini's adjustment, in double precision. Every score is rounded to 4
    /// decimals; a document whose rounded score is within 1e-4 of the one before it (already
    /// adjusted) is a tie and goes n × 1e-6 below its rounded score, n counting the ties in a
    /// row. The result strictly decreases, so trec_eval's sort (and ferret's evaluation) sees
    /// exactly the stored order, and `write_trec` then prints 6 decimals, which keeps it.
    pub fn separate_ties(&mut self) {
        for docs in self.queries.values_mut() {
            let mut ties = 0u32;
            let mut previous = f64::INFINITY;
            for (_, score) in docs.iter_mut() {
                let rounded = (*score * 1e4).round() / 1e4;
                if previous - rounded > 1e-4 {
                    ties = 0;
                    *score = rounded;
                } else {
                    ties += 1;
                    *score = rounded - f64::from(ties) * 1e-6;
                }
                previous = *score;
            }
        }
        self.fixed_decimals = true;
    }

    /// [`Run::separate_ties`] when asked for, nothing for raw scores.
    pub fn apply(&mut self, scores: RunScores) {
        if scores == RunScores::Separated {
            self.separate_ties();
        }
    }

    /// Reads a TREC run. Each line needs 6 whitespace-separated columns with a numeric score;
    /// a document listed twice for one query is an error (trec_eval refuses it as well).
    pub fn read(path: &Path) -> Result<Self, EvalError> {
        let mut run = Run::default();
        let mut seen: HashSet<(String, String)> = HashSet::new();
        for_each_line(path, |line_no, line| {
            if line.trim().is_empty() {
                return Ok(());
            }
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() != 6 {
                return Err(EvalError::parse(
                    path,
                    line_no,
                    format!(
                        "expected 6 columns (qid Q0 docid rank score tag), found {}",
                        cols.len()
                    ),
                ));
            }
            let score: f64 = cols[4].parse().map_err(|_| {
                EvalError::parse(
                    path,
                    line_no,
                    format!("score '{}' is not a number", cols[4]),
                )
            })?;
            if !score.is_finite() {
                return Err(EvalError::parse(
                    path,
                    line_no,
                    format!("score '{}' is not finite", cols[4]),
                ));
            }
            if !seen.insert((cols[0].to_string(), cols[2].to_string())) {
                return Err(EvalError::parse(
                    path,
                    line_no,
                    format!(
                        "document '{}' appears twice for query '{}'",
                        cols[2], cols[0]
                    ),
                ));
            }
            if run.tag.is_empty() {
                run.tag = cols[5].to_string();
            }
            run.push(cols[0], cols[2], score);
            Ok(())
        })?;
        Ok(run)
    }

    pub fn push(&mut self, qid: &str, docid: &str, score: f64) {
        self.queries
            .entry(qid.to_string())
            .or_default()
            .push((docid.to_string(), score));
    }

    /// Sets the whole ranking of one query (best first).
    pub fn set_ranking(&mut self, qid: &str, ranking: Vec<(String, f64)>) {
        self.queries.insert(qid.to_string(), ranking);
    }

    pub fn get(&self, qid: &str) -> Option<&[(String, f64)]> {
        self.queries.get(qid).map(Vec::as_slice)
    }

    pub fn query_ids(&self) -> impl Iterator<Item = &str> {
        self.queries.keys().map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.queries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queries.is_empty()
    }

    /// Writes the run in TREC format, each query's documents in stored order with ranks 1..n.
    /// Scores are written in full (shortest round-trip form), or with 6 decimals after
    /// [`Run::separate_ties`]; either way reading the file back gives the same order as the run
    /// in memory.
    pub fn write_trec(&self, mut out: impl Write) -> std::io::Result<()> {
        let tag = if self.tag.is_empty() {
            "ferret"
        } else {
            &self.tag
        };
        for (qid, docs) in &self.queries {
            for (rank, (docid, score)) in docs.iter().enumerate() {
                if self.fixed_decimals {
                    writeln!(out, "{qid} Q0 {docid} {} {score:.6} {tag}", rank + 1)?;
                } else {
                    writeln!(out, "{qid} Q0 {docid} {} {score} {tag}", rank + 1)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn round_trips_and_reads_tag() {
        let f = write("1 Q0 a 1 2.5 bm25\n1 Q0 b 2 1.5 bm25\n2 Q0 c 1 0.25 bm25\n");
        let run = Run::read(f.path()).unwrap();
        assert_eq!(run.tag, "bm25");
        assert_eq!(run.get("1").unwrap().len(), 2);
        let mut out = Vec::new();
        run.write_trec(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "1 Q0 a 1 2.5 bm25\n1 Q0 b 2 1.5 bm25\n2 Q0 c 1 0.25 bm25\n"
        );
    }

    fn written(run: &Run) -> String {
        let mut out = Vec::new();
        run.write_trec(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn separated_ties_sort_in_ranked_order() {
        let mut run = Run::new("t");
        // Ranked order: b before a although trec_eval would put b (larger id) first anyway;
        // c, a, b tie exactly and must keep this order; e and d differ only below 1e-4.
        run.set_ranking(
            "q",
            vec![
                ("z".into(), 23.439316),
                ("c".into(), 22.087432),
                ("a".into(), 22.087432),
                ("b".into(), 22.087432),
                ("e".into(), 21.60251),
                ("d".into(), 21.60249),
                ("f".into(), -0.5),
            ],
        );
        run.separate_ties();
        assert_eq!(
            written(&run),
            "q Q0 z 1 23.439300 t\n\
             q Q0 c 2 22.087400 t\n\
             q Q0 a 3 22.087399 t\n\
             q Q0 b 4 22.087398 t\n\
             q Q0 e 5 21.602500 t\n\
             q Q0 d 6 21.602499 t\n\
             q Q0 f 7 -0.500000 t\n"
        );
        // Read back, the file sorts (score descending, trec_eval's order) as it was ranked.
        let f = write(&written(&run));
        let back = Run::read(f.path()).unwrap();
        let mut docs = back.get("q").unwrap().to_vec();
        docs.sort_by(|x, y| y.1.total_cmp(&x.1).then_with(|| y.0.cmp(&x.0)));
        let order: Vec<&str> = docs.iter().map(|(d, _)| d.as_str()).collect();
        assert_eq!(order, ["z", "c", "a", "b", "e", "d", "f"]);
    }

    #[test]
    fn long_runs_of_ties_stay_strictly_decreasing() {
        let mut run = Run::new("t");
        let mut ranking: Vec<(String, f64)> = (0..300).map(|i| (format!("d{i}"), 1.0)).collect();
        ranking.push(("last".into(), 0.9999));
        run.set_ranking("q", ranking);
        run.separate_ties();
        let scores: Vec<f64> = run.get("q").unwrap().iter().map(|d| d.1).collect();
        assert!(scores.windows(2).all(|w| w[0] > w[1]), "{scores:?}");
        let text = written(&run);
        let printed: Vec<&str> = text.lines().map(|l| l.split(' ').nth(4).unwrap()).collect();
        let unique: HashSet<&&str> = printed.iter().collect();
        assert_eq!(unique.len(), printed.len(), "printed scores collide");
    }

    #[test]
    fn raw_scores_are_written_unchanged() {
        let mut run = Run::new("t");
        run.set_ranking("q", vec![("a".into(), 1.25), ("b".into(), 1.25)]);
        run.apply(RunScores::Raw);
        assert_eq!(written(&run), "q Q0 a 1 1.25 t\nq Q0 b 2 1.25 t\n");
    }

    #[test]
    fn non_numeric_score_names_line() {
        let f = write("1 Q0 a 1 2.5 t\n1 Q0 b 2 high t\n");
        let err = Run::read(f.path()).unwrap_err().to_string();
        assert!(err.contains(":2:") && err.contains("'high'"), "{err}");
    }

    #[test]
    fn duplicate_document_is_an_error() {
        let f = write("1 Q0 a 1 2.5 t\n1 Q0 a 2 1.5 t\n");
        let err = Run::read(f.path()).unwrap_err().to_string();
        assert!(err.contains(":2:") && err.contains("twice"), "{err}");
    }

    #[test]
    fn invalid_utf8_names_line() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(b"1 Q0 a 1 2.5 t\n1 Q0 \xff 2 1.5 t\n").unwrap();
        let err = Run::read(f.path()).unwrap_err().to_string();
        assert!(err.contains(":2:") && err.contains("UTF-8"), "{err}");
    }
}
