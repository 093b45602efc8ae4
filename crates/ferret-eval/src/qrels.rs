//! Relevance judgements: query id → document id → graded relevance.
//!
//! Reads TREC qrels (`qid iter docid rel`, whitespace separated) and BEIR TSV
//! (`query-id<TAB>corpus-id<TAB>score`, with a header line). CRLF line endings are tolerated.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use crate::read::for_each_line;
use crate::EvalError;

/// Judgements per query. A document absent from a query's map is unjudged.
#[derive(Debug, Clone, Default)]
pub struct Qrels {
    pub(crate) queries: BTreeMap<String, HashMap<String, i32>>,
}

impl Qrels {
    /// Reads a TREC or BEIR TSV qrels file, detecting the format per line: 4 columns are TREC,
    /// 3 columns are BEIR (a first line whose score column is not a number is the BEIR header).
    pub fn read(path: &Path) -> Result<Self, EvalError> {
        let mut qrels = Qrels::default();
        for_each_line(path, |line_no, line| {
            if line.trim().is_empty() {
                return Ok(());
            }
            let cols: Vec<&str> = line.split_whitespace().collect();
            let (qid, docid, rel) = match cols.as_slice() {
                [q, _iter, d, r] => (*q, *d, *r),
                [q, d, r] => (*q, *d, *r),
                _ => {
                    return Err(EvalError::parse(
                        path,
                        line_no,
                        format!(
                            "expected 4 columns (qid iter docid rel) or 3 (query-id corpus-id score), found {}",
                            cols.len()
                        ),
                    ))
                }
            };
            let rel: i32 = match rel.parse() {
                Ok(r) => r,
                Err(_) if line_no == 1 && cols.len() == 3 => return Ok(()), // BEIR header
                Err(_) => {
                    // trec_eval accepts "1.0"-style integers written as floats; nothing else.
                    match rel.parse::<f64>() {
                        Ok(f) if f.fract() == 0.0 => f as i32,
                        _ => {
                            return Err(EvalError::parse(
                                path,
                                line_no,
                                format!("relevance '{rel}' is not an integer"),
                            ))
                        }
                    }
                }
            };
            qrels.insert(qid, docid, rel);
            Ok(())
        })?;
        Ok(qrels)
    }

    pub fn insert(&mut self, qid: &str, docid: &str, rel: i32) {
        self.queries
            .entry(qid.to_string())
            .or_default()
            .insert(docid.to_string(), rel);
    }

    /// Judgements of one query, if it has any.
    pub fn get(&self, qid: &str) -> Option<&HashMap<String, i32>> {
        self.queries.get(qid)
    }

    /// Query ids with judgements, in sorted order.
    pub fn query_ids(&self) -> impl Iterator<Item = &str> {
        self.queries.keys().map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.queries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write(text: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text).unwrap();
        f
    }

    #[test]
    fn reads_beir_tsv_with_crlf_and_trec() {
        let f = write(b"query-id\tcorpus-id\tscore\r\n1\td1\t1\r\n1\td2\t0\r\n2\td3\t2\r\n");
        let q = Qrels::read(f.path()).unwrap();
        assert_eq!(q.get("1").unwrap()["d1"], 1);
        assert_eq!(q.get("1").unwrap()["d2"], 0);
        assert_eq!(q.get("2").unwrap()["d3"], 2);
        let f = write(b"7 0 doc9 3\n7 0 doc8 -1\n");
        let q = Qrels::read(f.path()).unwrap();
        assert_eq!(q.get("7").unwrap()["doc8"], -1);
    }

    #[test]
    fn too_few_columns_names_file_and_line() {
        let f = write(b"1 0 d1 1\n1 d2\n");
        let err = Qrels::read(f.path()).unwrap_err().to_string();
        assert!(err.contains(":2:"), "{err}");
        assert!(err.contains("found 2"), "{err}");
    }

    #[test]
    fn non_integer_relevance_is_an_error() {
        let f = write(b"1 0 d1 high\n");
        let err = Qrels::read(f.path()).unwrap_err().to_string();
        assert!(err.contains(":1:") && err.contains("'high'"), "{err}");
    }
}
