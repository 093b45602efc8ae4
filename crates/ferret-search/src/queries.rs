//! Query sets: BEIR `queries.jsonl` (`{"_id", "text"}`) or TSV (`id<TAB>text`), plain or gzipped.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use serde::Deserialize;

use crate::SearchError;

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Query {
    pub id: String,
    pub text: String,
}

impl Query {
    pub fn new(id: impl Into<String>, text: impl Into<String>) -> Self {
        Query {
            id: id.into(),
            text: text.into(),
        }
    }
}

#[derive(Deserialize)]
struct JsonQuery {
    #[serde(alias = "id", alias = "qid")]
    _id: Option<serde_json::Value>,
    #[serde(alias = "query", alias = "title")]
    text: Option<String>,
}

/// Reads every query of a file. Bad lines, duplicate ids and empty query texts are errors
/// naming the file and line.
pub fn read_queries(path: &Path) -> Result<Vec<Query>, SearchError> {
    read_queries_where(path, &|_| true)
}

/// Reads the queries whose id passes `keep` (e.g. the judged ones). Queries left out are still
/// parsed, but an empty text is only an error in a query that is kept.
pub fn read_queries_where(
    path: &Path,
    keep: &dyn Fn(&str) -> bool,
) -> Result<Vec<Query>, SearchError> {
    let err = |line: usize, message: String| SearchError::Queries {
        path: path.to_path_buf(),
        line,
        message,
    };
    let file = std::fs::File::open(path).map_err(|e| err(0, e.to_string()))?;
    let reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let name = path.to_string_lossy();
    let tsv = name.trim_end_matches(".gz").ends_with(".tsv");
    let mut reader = BufReader::new(reader);
    let mut out = Vec::new();
    let mut seen = std::collections::HashMap::new();
    let mut buf = Vec::new();
    let mut line_no = 0;
    loop {
        buf.clear();
        if reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| err(line_no + 1, e.to_string()))?
            == 0
        {
            break;
        }
        line_no += 1;
        while matches!(buf.last(), Some(b'\n' | b'\r')) {
            buf.pop();
        }
        let line = std::str::from_utf8(&buf).map_err(|e| {
            err(
                line_no,
                format!("invalid UTF-8 at byte {}", e.valid_up_to()),
            )
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let q = if tsv {
            let (id, text) = line.split_once('\t').ok_or_else(|| {
                err(
                    line_no,
                    "expected 2 tab-separated columns (id, text)".into(),
                )
            })?;
            Query::new(id, text)
        } else {
            let raw: JsonQuery = serde_json::from_str(line).map_err(|e| {
                err(
                    line_no,
                    format!("malformed JSON at column {}: {e}", e.column()),
                )
            })?;
            let id = match raw._id {
                Some(serde_json::Value::String(s)) => s,
                Some(other) => {
                    return Err(err(
                        line_no,
                        format!("\"_id\" must be a string, found {other}"),
                    ))
                }
                None => return Err(err(line_no, "missing \"_id\" field".into())),
            };
            Query::new(id, raw.text.unwrap_or_default())
        };
        if !keep(&q.id) {
            continue;
        }
        if q.text.trim().is_empty() {
            return Err(err(line_no, format!("query '{}' has an empty text", q.id)));
        }
        if let Some(first) = seen.insert(q.id.clone(), line_no) {
            return Err(err(
                line_no,
                format!("duplicate query id '{}' (first on line {first})", q.id),
            ));
        }
        out.push(q);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn reads_beir_and_reports_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("q.jsonl");
        std::fs::File::create(&p)
            .unwrap()
            .write_all(b"{\"_id\": \"1\", \"text\": \"a b\", \"metadata\": {}}\n{\"_id\": \"2\", \"text\": \"\"}\n")
            .unwrap();
        let err = read_queries(&p).unwrap_err().to_string();
        assert!(
            err.ends_with("q.jsonl:2: query '2' has an empty text"),
            "{err}"
        );
        let p = dir.path().join("q.tsv");
        std::fs::File::create(&p)
            .unwrap()
            .write_all(b"1\thello\r\n2\tworld\n")
            .unwrap();
        let q = read_queries(&p).unwrap();
        assert_eq!(q[1], Query::new("2", "world"));
    }
}
