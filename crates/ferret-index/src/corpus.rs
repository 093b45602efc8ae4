//! Corpus readers: BEIR JSONL (`{"_id", "title", "text", "metadata"}`, also Pyserini's
//! `{"id", "contents"}`), plain or gzipped, and TSV (`id<TAB>text` or `id<TAB>title<TAB>text`).
//! Documents are streamed, never all held in memory. Every problem is an error naming the file
//! and line.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::Deserialize;

use crate::{DocImage, Document, IndexError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CorpusFormat {
    Jsonl,
    Tsv,
}

impl CorpusFormat {
    /// From the file name: `.tsv[.gz]` is TSV, anything else JSONL.
    pub fn detect(path: &Path) -> Self {
        let name = path.to_string_lossy();
        let name = name.strip_suffix(".gz").unwrap_or(&name);
        if name.ends_with(".tsv") || name.ends_with(".tab") {
            CorpusFormat::Tsv
        } else {
            CorpusFormat::Jsonl
        }
    }
}

/// A streaming corpus reader.
pub struct CorpusReader {
    path: PathBuf,
    format: CorpusFormat,
    reader: Box<dyn BufRead + Send>,
    buf: Vec<u8>,
    line: usize,
    bytes_read: Arc<AtomicU64>,
    total_bytes: u64,
}

#[derive(Deserialize)]
struct JsonDoc {
    #[serde(alias = "id")]
    _id: Option<serde_json::Value>,
    #[serde(default)]
    title: Option<String>,
    #[serde(alias = "contents")]
    text: Option<String>,
    #[serde(default)]
    metadata: serde_json::Value,
    /// A path relative to the corpus file.
    #[serde(default)]
    image: Option<String>,
}

impl CorpusReader {
    pub fn open(path: &Path) -> Result<Self, IndexError> {
        let file = std::fs::File::open(path).map_err(IndexError::io(path))?;
        let total_bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
        let bytes_read = Arc::new(AtomicU64::new(0));
        let counted = CountingReader {
            inner: file,
            count: bytes_read.clone(),
        };
        let reader: Box<dyn Read + Send> = if path.extension().is_some_and(|e| e == "gz") {
            Box::new(flate2::read::MultiGzDecoder::new(counted))
        } else {
            Box::new(counted)
        };
        Ok(CorpusReader {
            path: path.to_path_buf(),
            format: CorpusFormat::detect(path),
            reader: Box::new(BufReader::with_capacity(1 << 16, reader)),
            buf: Vec::new(),
            line: 0,
            bytes_read,
            total_bytes,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The line number of the document returned last.
    pub fn line(&self) -> usize {
        self.line
    }

    /// Bytes of the (possibly compressed) file consumed so far, and its size.
    pub fn progress_bytes(&self) -> (u64, u64) {
        (self.bytes_read.load(Ordering::Relaxed), self.total_bytes)
    }

    fn err(&self, message: impl Into<String>) -> IndexError {
        IndexError::Corpus {
            path: self.path.clone(),
            line: self.line,
            message: message.into(),
        }
    }

    /// The next document; `None` at the end. Blank lines are skipped.
    pub fn next_document(&mut self) -> Option<Result<Document, IndexError>> {
        loop {
            self.buf.clear();
            match self.reader.read_until(b'\n', &mut self.buf) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) => {
                    return Some(Err(IndexError::Io {
                        path: self.path.clone(),
                        source: e,
                    }))
                }
            }
            self.line += 1;
            while matches!(self.buf.last(), Some(b'\n' | b'\r')) {
                self.buf.pop();
            }
            if self.buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return Some(self.parse_line());
        }
    }

    fn parse_line(&self) -> Result<Document, IndexError> {
        let line = std::str::from_utf8(&self.buf)
            .map_err(|e| self.err(format!("invalid UTF-8 at byte {}", e.valid_up_to())))?;
        let doc = match self.format {
            CorpusFormat::Jsonl => self.parse_json(line)?,
            CorpusFormat::Tsv => self.parse_tsv(line)?,
        };
        if doc.id.trim().is_empty() {
            return Err(self.err("empty document id"));
        }
        if doc.id.chars().any(char::is_whitespace) {
            // TREC runs are whitespace-separated: such an id could never be evaluated.
            return Err(self.err(format!("document id '{}' contains whitespace", doc.id)));
        }
        if doc.title.trim().is_empty() && doc.text.trim().is_empty() && doc.image.is_none() {
            return Err(self.err(format!("document '{}' has an empty title and text", doc.id)));
        }
        Ok(doc)
    }

    fn parse_json(&self, line: &str) -> Result<Document, IndexError> {
        let raw: JsonDoc = serde_json::from_str(line)
            .map_err(|e| self.err(format!("malformed JSON at column {}: {e}", e.column())))?;
        let id = match raw._id {
            Some(serde_json::Value::String(s)) => s,
            Some(other) => return Err(self.err(format!("\"_id\" must be a string, found {other}"))),
            None => return Err(self.err("missing \"_id\" (or \"id\") field")),
        };
        let image = match raw.image {
            Some(relative) => Some(DocImage {
                path: self.image_path(&relative)?,
                ..Default::default()
            }),
            None => None,
        };
        Ok(Document {
            id,
            title: raw.title.unwrap_or_default(),
            text: raw.text.unwrap_or_default(),
            metadata: raw.metadata,
            image,
        })
    }

    /// An image path of the corpus resolved against the corpus file's folder, which it may not
    /// leave (a corpus cannot make the server read `/etc/passwd`).
    fn image_path(&self, relative: &str) -> Result<String, IndexError> {
        let base = self
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let base = base
            .canonicalize()
            .map_err(|e| self.err(format!("corpus folder {}: {e}", base.display())))?;
        let full = base.join(relative);
        let found = full
            .canonicalize()
            .map_err(|e| self.err(format!("image {relative:?} ({}): {e}", full.display())))?;
        if !found.starts_with(&base) {
            return Err(self.err(format!(
                "image {relative:?} resolves to {}, outside the corpus folder {}",
                found.display(),
                base.display()
            )));
        }
        if !found.is_file() {
            return Err(self.err(format!("image {relative:?} is not a file")));
        }
        Ok(found.to_string_lossy().into_owned())
    }

    fn parse_tsv(&self, line: &str) -> Result<Document, IndexError> {
        let cols: Vec<&str> = line.split('\t').collect();
        let (id, title, text) = match cols.as_slice() {
            [id, text] => (*id, "", *text),
            [id, title, text] => (*id, *title, *text),
            _ => {
                return Err(self.err(format!(
                    "expected 2 tab-separated columns (id, text) or 3 (id, title, text), found {}",
                    cols.len()
                )))
            }
        };
        Ok(Document {
            id: id.to_string(),
            title: title.to_string(),
            text: text.to_string(),
            ..Default::default()
        })
    }
}

struct CountingReader<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn read_all(name: &str, content: &[u8]) -> Vec<Result<Document, String>> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::File::create(&path)
            .unwrap()
            .write_all(content)
            .unwrap();
        let mut r = CorpusReader::open(&path).unwrap();
        let mut out = Vec::new();
        while let Some(d) = r.next_document() {
            out.push(d.map_err(|e| e.to_string()));
        }
        out
    }

    #[test]
    fn reads_beir_and_pyserini_json() {
        let docs = read_all(
            "c.jsonl",
            b"{\"_id\": \"d1\", \"title\": \"T\", \"text\": \"x\", \"metadata\": {\"a\": 1}}\r\n\n{\"id\": \"d2\", \"contents\": \"y\"}\n",
        );
        let d1 = docs[0].as_ref().unwrap();
        assert_eq!(
            (d1.id.as_str(), d1.title.as_str(), d1.text.as_str()),
            ("d1", "T", "x")
        );
        assert_eq!(d1.metadata["a"], 1);
        assert_eq!(docs[1].as_ref().unwrap().text, "y");
    }

    #[test]
    fn each_bad_line_names_file_and_line() {
        let docs = read_all(
            "c.jsonl",
            b"{\"_id\": \"ok\", \"text\": \"x\"}\n{\"_id\": \"a\", \"text\": \n{\"text\": \"no id\"}\n{\"_id\": \"e\", \"title\": \" \", \"text\": \"\"}\n{\"_id\": \"\xff\", \"text\": \"x\"}\n{\"_id\": 7, \"text\": \"x\"}\n",
        );
        assert!(docs[0].is_ok());
        let errs: Vec<&String> = docs[1..].iter().map(|d| d.as_ref().unwrap_err()).collect();
        assert!(
            errs[0].contains("c.jsonl:2: malformed JSON at column"),
            "{}",
            errs[0]
        );
        assert!(errs[1].contains(":3: missing \"_id\""), "{}", errs[1]);
        assert!(
            errs[2].contains(":4: document 'e' has an empty title and text"),
            "{}",
            errs[2]
        );
        assert!(errs[3].contains(":5: invalid UTF-8"), "{}", errs[3]);
        assert!(
            errs[4].contains(":6: \"_id\" must be a string"),
            "{}",
            errs[4]
        );
    }

    #[test]
    fn reads_tsv() {
        let docs = read_all("c.tsv", b"a\thello world\nb\tTitle\tbody\nc\n");
        assert_eq!(docs[0].as_ref().unwrap().text, "hello world");
        assert_eq!(docs[1].as_ref().unwrap().title, "Title");
        assert!(docs[2]
            .as_ref()
            .unwrap_err()
            .contains("c.tsv:3: expected 2"));
    }
}
