//! Collection statistics of the lexical representation, exported from one index and summed
//! over the shards of a collection, so that every shard scores BM25 (and filters feedback
//! terms) with the statistics of the whole collection: what makes a sharded search return
//! exactly the scores one index over all documents would.

use std::collections::HashMap;
use std::path::Path;

use ferret_text::AnalyzerKind;
use serde::{Deserialize, Serialize};

use super::bm25::CollectionStats;
use super::reader::{FieldStats, LexicalReader};
use super::FieldMode;
use crate::IndexError;

/// N, the per-field lengths and every term's document frequency, over live documents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LexicalStatistics {
    pub analyzer: AnalyzerKind,
    pub fields: FieldMode,
    /// Live documents.
    pub num_docs: u64,
    /// Per text field, in the field mode's order.
    pub field_stats: Vec<FieldStats>,
    /// Per text field: term → live document frequency.
    pub doc_freqs: Vec<HashMap<String, u64>>,
}

impl LexicalStatistics {
    /// The statistics of one lexical representation with `num_docs` live documents.
    pub fn of(reader: &LexicalReader, num_docs: u64) -> Result<Self, IndexError> {
        let n_fields = reader.mode().field_names().len();
        let mut doc_freqs = vec![HashMap::new(); n_fields];
        for (field, dfs) in doc_freqs.iter_mut().enumerate() {
            for seg in &reader.segments {
                let inverted = &seg.inverted[field];
                let mut stream = inverted.terms().stream()?;
                while let Some((term, info)) = stream.next() {
                    let df = seg.live_postings(field, info)?;
                    if df == 0 {
                        continue;
                    }
                    let term = std::str::from_utf8(term).map_err(|e| IndexError::Invalid {
                        path: Default::default(),
                        message: format!("a lexical term is not UTF-8: {e}"),
                    })?;
                    *dfs.entry(term.to_string()).or_insert(0) += df;
                }
            }
        }
        Ok(LexicalStatistics {
            analyzer: reader.analyzer(),
            fields: reader.mode(),
            num_docs,
            field_stats: (0..n_fields).map(|f| reader.own_field_stats(f)).collect(),
            doc_freqs,
        })
    }

    /// The statistics of a collection made of `parts` (disjoint sets of documents). The parts
    /// must have been indexed alike (analyzer and fields).
    pub fn sum(parts: &[LexicalStatistics]) -> Result<Self, String> {
        let first = parts.first().ok_or("no statistics to sum")?;
        let mut out = LexicalStatistics {
            analyzer: first.analyzer,
            fields: first.fields,
            num_docs: 0,
            field_stats: vec![
                FieldStats {
                    doc_count: 0,
                    total_len: 0
                };
                first.field_stats.len()
            ],
            doc_freqs: vec![HashMap::new(); first.doc_freqs.len()],
        };
        for (i, p) in parts.iter().enumerate() {
            if p.analyzer != first.analyzer || p.fields != first.fields {
                return Err(format!(
                    "part {i} was indexed with analyzer {:?} and fields {:?}, part 0 with {:?} and {:?}",
                    p.analyzer, p.fields, first.analyzer, first.fields
                ));
            }
            out.num_docs += p.num_docs;
            for (o, s) in out.field_stats.iter_mut().zip(&p.field_stats) {
                o.doc_count += s.doc_count;
                o.total_len += s.total_len;
            }
            for (o, dfs) in out.doc_freqs.iter_mut().zip(&p.doc_freqs) {
                for (term, df) in dfs {
                    *o.entry(term.clone()).or_insert(0) += df;
                }
            }
        }
        Ok(out)
    }

    pub fn read(path: &Path) -> Result<Self, IndexError> {
        let invalid = |message: String| IndexError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let file = std::fs::File::open(path).map_err(|e| invalid(e.to_string()))?;
        serde_json::from_reader(std::io::BufReader::new(file))
            .map_err(|e| invalid(format!("not lexical statistics: {e}")))
    }

    /// Writes the statistics to `path` atomically (a temporary file, synced, then renamed).
    pub fn write(&self, path: &Path) -> Result<(), IndexError> {
        let tmp = path.with_extension("tmp");
        let file = std::fs::File::create(&tmp)?;
        let mut w = std::io::BufWriter::new(file);
        serde_json::to_writer(&mut w, self).map_err(std::io::Error::other)?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }
}

impl CollectionStats for LexicalStatistics {
    fn field_stats(&self, field: usize) -> FieldStats {
        self.field_stats[field]
    }
    fn doc_freq(&self, field: usize, term: &str) -> Result<u64, IndexError> {
        Ok(self.doc_freqs[field].get(term).copied().unwrap_or(0))
    }
}
