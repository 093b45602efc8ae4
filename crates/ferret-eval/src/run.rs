//! TREC runs: query id → ranked (document id, score) list, in the 6-column TREC format
//! `qid Q0 docid rank score tag`.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::Path;

use crate::read::for_each_line;
use crate::EvalError;

/// A run: for each query, documents with scores, in the order they were read or produced.
/// Evaluation re-sorts them the way trec_eval does (see [`crate::measures`]), so the stored
/// order and the rank column do not matter for measures.
#[derive(Debug, Clone, Default)]
pub struct Run {
    pub(crate) queries: BTreeMap<String, Vec<(String, f64)>>,
    /// Run tag of the first line read, or the tag given when writing.
    pub tag: String,
}

impl Run {
    pub fn new(tag: impl Into<String>) -> Self {
        Run {
            queries: BTreeMap::new(),
            tag: tag.into(),
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
    /// Scores are written in full (shortest round-trip form), so reading the file back gives
    /// exactly the same ties and order as the run in memory.
    pub fn write_trec(&self, mut out: impl Write) -> std::io::Result<()> {
        let tag = if self.tag.is_empty() {
            "ferret"
        } else {
            &self.tag
        };
        for (qid, docs) in &self.queries {
            for (rank, (docid, score)) in docs.iter().enumerate() {
                writeln!(out, "{qid} Q0 {docid} {} {score} {tag}", rank + 1)?;
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
