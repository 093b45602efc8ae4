//! Query sets: BEIR `queries.jsonl` (`{"_id", "text"}`) or TSV (`id<TAB>text`), plain or gzipped.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use ferret_index::DocNo;
use serde::Deserialize;

use crate::SearchError;

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Query {
    pub id: String,
    pub text: String,
    /// A precomputed sparse vector (term → weight, e.g. from another tool's SPLADE), used by
    /// sparse stages instead of encoding `text`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sparse: Option<Vec<(String, f32)>>,
    /// An image to search with (image stages; text stages use `text`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<QueryImage>,
    /// The contents of feedback documents that live elsewhere (other shards of a collection),
    /// by the numbers the incoming ranking gives them: the feedback stages read these instead
    /// of this index's documents.
    #[serde(skip)]
    pub feedback_contents: Option<std::sync::Arc<std::collections::HashMap<DocNo, String>>>,
}

/// A query's image: a file, or bytes sent to the server.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum QueryImage {
    Path(String),
    #[serde(serialize_with = "byte_count")]
    Bytes(std::sync::Arc<Vec<u8>>),
}

fn byte_count<S: serde::Serializer>(b: &std::sync::Arc<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("<{} bytes>", b.len()))
}

impl QueryImage {
    /// Decodes the image (errors name the file, or the query for bytes).
    pub fn decode(&self, query_id: &str) -> Result<ferret_image::RgbImage, SearchError> {
        let limits = ferret_image::DecodeLimits::default();
        let decoded = match self {
            QueryImage::Path(p) => ferret_image::decode_file(Path::new(p), limits),
            QueryImage::Bytes(b) => ferret_image::decode(
                b,
                Path::new(&format!("image of query '{query_id}'")),
                limits,
            ),
        };
        decoded
            .map(|d| d.rgb)
            .map_err(|e| SearchError::Invalid(e.to_string()))
    }
}

impl Query {
    pub fn new(id: impl Into<String>, text: impl Into<String>) -> Self {
        Query {
            id: id.into(),
            text: text.into(),
            sparse: None,
            feedback_contents: None,
            image: None,
        }
    }
}

#[derive(Deserialize)]
struct JsonQuery {
    #[serde(alias = "id", alias = "qid")]
    _id: Option<serde_json::Value>,
    #[serde(alias = "query")]
    text: Option<String>,
    /// Used when there is no text (TREC topics converted with a title only). A corpus file
    /// read as queries has both.
    #[serde(default)]
    title: Option<String>,
    /// An image path, relative to the queries file.
    #[serde(default)]
    image: Option<String>,
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
    let name = path.to_string_lossy();
    let tsv = name.trim_end_matches(".gz").ends_with(".tsv");
    let mut out = Vec::new();
    let mut seen = std::collections::HashMap::new();
    for_each_line(path, |line_no, line| {
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
            let mut q = Query::new(id, raw.text.or(raw.title).unwrap_or_default());
            if let Some(image) = raw.image {
                let base = path.parent().unwrap_or(Path::new(""));
                let full = base.join(&image);
                if !full.is_file() {
                    return Err(err(
                        line_no,
                        format!(
                            "image {image:?} of query '{}': no such file ({})",
                            q.id,
                            full.display()
                        ),
                    ));
                }
                q.image = Some(QueryImage::Path(full.to_string_lossy().into_owned()));
            }
            q
        };
        if !keep(&q.id) {
            return Ok(());
        }
        if q.text.trim().is_empty() && q.image.is_none() {
            return Err(err(line_no, format!("query '{}' has an empty text", q.id)));
        }
        if let Some(first) = seen.insert(q.id.clone(), line_no) {
            return Err(err(
                line_no,
                format!("duplicate query id '{}' (first on line {first})", q.id),
            ));
        }
        out.push(q);
        Ok(())
    })?;
    Ok(out)
}

/// Calls `f` with each non-blank line of a (possibly gzipped) text file and its 1-based
/// number, line endings removed; read errors and invalid UTF-8 are errors naming the line.
pub(crate) fn for_each_line(
    path: &Path,
    mut f: impl FnMut(usize, &str) -> Result<(), SearchError>,
) -> Result<(), SearchError> {
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
    let mut reader = BufReader::new(reader);
    let mut buf = Vec::new();
    let mut line_no = 0;
    loop {
        buf.clear();
        if reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| err(line_no + 1, e.to_string()))?
            == 0
        {
            return Ok(());
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
        f(line_no, line)?;
    }
}

#[derive(Deserialize)]
struct JsonVector {
    #[serde(alias = "_id", alias = "qid")]
    id: Option<serde_json::Value>,
    #[serde(alias = "weights", alias = "terms")]
    vector: Option<std::collections::BTreeMap<String, f64>>,
}

/// Reads precomputed sparse query vectors: JSON lines `{"id": …, "vector": {term: weight}}`
/// (`_id`/`qid` and `weights`/`terms` also accepted), as Pyserini writes encoded queries.
/// Bad lines, negative or non-finite weights and repeated ids are errors naming the file and
/// line; zero weights are dropped.
pub fn read_sparse_vectors(
    path: &Path,
) -> Result<std::collections::HashMap<String, Vec<(String, f32)>>, SearchError> {
    let err = |line: usize, message: String| SearchError::Queries {
        path: path.to_path_buf(),
        line,
        message,
    };
    let mut out = std::collections::HashMap::new();
    for_each_line(path, |line_no, line| {
        let raw: JsonVector = serde_json::from_str(line).map_err(|e| {
            err(
                line_no,
                format!("malformed JSON at column {}: {e}", e.column()),
            )
        })?;
        let id = match raw.id {
            Some(serde_json::Value::String(s)) => s,
            Some(serde_json::Value::Number(n)) => n.to_string(),
            Some(other) => {
                return Err(err(
                    line_no,
                    format!("\"id\" must be a string, found {other}"),
                ))
            }
            None => return Err(err(line_no, "missing \"id\" field".into())),
        };
        let vector = raw
            .vector
            .ok_or_else(|| err(line_no, "missing \"vector\" field (term → weight)".into()))?;
        let mut v = Vec::with_capacity(vector.len());
        for (term, w) in vector {
            if !(w.is_finite() && w >= 0.0) {
                return Err(err(
                    line_no,
                    format!(
                        "query '{id}': weight of {term:?} must be a non-negative number, not {w}"
                    ),
                ));
            }
            // A zero weight matches nothing.
            if w > 0.0 {
                v.push((term, w as f32));
            }
        }
        if out.insert(id.clone(), v).is_some() {
            return Err(err(line_no, format!("duplicate query id '{id}'")));
        }
        Ok(())
    })?;
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
