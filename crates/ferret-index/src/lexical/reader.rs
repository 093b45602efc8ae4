use std::path::Path;
use std::sync::{Arc, OnceLock};

use ferret_text::AnalyzerKind;
use tantivy::fieldnorm::FieldNormReader;
use tantivy::postings::TermInfo;
use tantivy::schema::{IndexRecordOption, Term};
use tantivy::{DocSet, Index, InvertedIndexReader, ReloadPolicy, Searcher, SegmentReader};

use super::bm25::CollectionStats;
use super::statistics::LexicalStatistics;
use super::{FieldMode, LexicalSchema};
use crate::{DocNo, IndexError};

/// Statistics of one text field over the live documents, as BM25 needs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FieldStats {
    /// Live documents with at least one term in the field (Lucene's `docCount`).
    pub doc_count: u64,
    /// Sum of the field's exact lengths over live documents (Lucene's `sumTotalTermFreq`).
    pub total_len: u64,
}

impl FieldStats {
    /// Average field length, computed as Lucene does (double division, then float).
    pub fn avg_len(&self) -> f32 {
        if self.doc_count == 0 {
            1.0
        } else {
            (self.total_len as f64 / self.doc_count as f64) as f32
        }
    }
}

pub(crate) struct SegmentView {
    pub reader: SegmentReader,
    /// tantivy doc id → internal number.
    pub ords: Vec<DocNo>,
    /// Per text field: norms and postings.
    pub norms: Vec<FieldNormReader>,
    pub inverted: Vec<Arc<InvertedIndexReader>>,
}

/// Read access to a committed lexical representation.
pub struct LexicalReader {
    pub(crate) schema: LexicalSchema,
    mode: FieldMode,
    analyzer: AnalyzerKind,
    pub(crate) segments: Vec<SegmentView>,
    stats: Vec<FieldStats>,
    slots: usize,
    /// The whole collection's statistics when this index is one shard of it.
    collection: OnceLock<Arc<LexicalStatistics>>,
    // Keeps the segment files open for as long as the views above are used.
    _searcher: Searcher,
}

impl LexicalReader {
    pub(crate) fn open(
        index: &Index,
        dir: &Path,
        mode: FieldMode,
        analyzer: AnalyzerKind,
        slots: usize,
    ) -> Result<Self, IndexError> {
        let invalid = |message: String| IndexError::Invalid {
            path: dir.to_path_buf(),
            message,
        };
        let schema = LexicalSchema::from_schema(index.schema(), mode).map_err(invalid)?;
        let searcher = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?
            .searcher();
        let mut segments = Vec::new();
        let mut stats = vec![
            FieldStats {
                doc_count: 0,
                total_len: 0
            };
            schema.text.len()
        ];
        for seg in searcher.segment_readers() {
            let ord_col = seg.fast_fields().u64("ord")?;
            let mut ords = Vec::with_capacity(seg.max_doc() as usize);
            for doc in 0..seg.max_doc() {
                let o = ord_col.first(doc).unwrap_or(u64::MAX);
                if o >= slots as u64 {
                    return Err(invalid(format!(
                        "lexical document {doc} has internal number {o}, but the docstore has {slots}"
                    )));
                }
                ords.push(o as DocNo);
            }
            let mut norms = Vec::new();
            let mut inverted = Vec::new();
            for (i, (field, _)) in schema.text.iter().enumerate() {
                norms.push(seg.get_fieldnorms_reader(*field)?);
                inverted.push(seg.inverted_index(*field)?);
                let name = mode.field_names()[i];
                let len_col = seg.fast_fields().u64(&format!("len_{name}"))?;
                for doc in 0..seg.max_doc() {
                    if seg.alive_bitset().is_some_and(|a| !a.is_alive(doc)) {
                        continue;
                    }
                    let len = len_col.first(doc).unwrap_or(0);
                    stats[i].doc_count += u64::from(len > 0);
                    stats[i].total_len += len;
                }
            }
            segments.push(SegmentView {
                reader: seg.clone(),
                ords,
                norms,
                inverted,
            });
        }
        Ok(LexicalReader {
            schema,
            mode,
            analyzer,
            segments,
            stats,
            slots,
            collection: OnceLock::new(),
            _searcher: searcher,
        })
    }

    pub fn mode(&self) -> FieldMode {
        self.mode
    }

    pub fn analyzer(&self) -> AnalyzerKind {
        self.analyzer
    }

    /// Number of internal numbers (the size a score accumulator needs).
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// Index of a text field by name (`contents`, `title`, `text`).
    pub fn field_index(&self, name: &str) -> Option<usize> {
        self.mode.field_names().iter().position(|n| *n == name)
    }

    /// The field's statistics: the collection's when set, this index's own otherwise.
    pub fn field_stats(&self, field: usize) -> FieldStats {
        match self.collection.get() {
            Some(c) => c.field_stats[field],
            None => self.stats[field],
        }
    }

    /// This index's own statistics of the field, whatever collection it belongs to.
    pub fn own_field_stats(&self, field: usize) -> FieldStats {
        self.stats[field]
    }

    /// Makes BM25 and the feedback stages use `stats` (the statistics of a whole collection
    /// this index is one shard of) instead of the index's own. Set once.
    pub fn use_collection_statistics(&self, stats: Arc<LexicalStatistics>) -> Result<(), String> {
        if stats.analyzer != self.analyzer || stats.fields != self.mode {
            return Err(format!(
                "the collection statistics are for analyzer {:?} and fields {:?}, this index has {:?} and {:?}",
                stats.analyzer, stats.fields, self.analyzer, self.mode
            ));
        }
        self.collection
            .set(stats)
            .map_err(|_| "collection statistics are already set on this index".to_string())
    }

    pub(crate) fn collection_statistics(&self) -> Option<&LexicalStatistics> {
        self.collection.get().map(|c| c.as_ref())
    }

    /// Live documents of the collection when collection statistics are set.
    pub fn collection_docs(&self) -> Option<u64> {
        self.collection.get().map(|c| c.num_docs)
    }

    /// Number of live documents containing `term` in text field `field` (in the collection
    /// when collection statistics are set).
    pub fn doc_freq(&self, field: usize, term: &str) -> Result<u64, IndexError> {
        if let Some(c) = self.collection.get() {
            return c.doc_freq(field, term);
        }
        let t = Term::from_field_text(self.schema.text[field].0, term);
        let infos = self
            .segments
            .iter()
            .map(|seg| seg.inverted[field].get_term_info(&t))
            .collect::<Result<Vec<_>, _>>()?;
        self.live_doc_freq(field, &infos)
    }

    /// This index's own live document frequency of a term, from its per-segment dictionary
    /// entries.
    pub(crate) fn live_doc_freq(
        &self,
        field: usize,
        infos: &[Option<TermInfo>],
    ) -> Result<u64, IndexError> {
        let mut df = 0u64;
        for (seg, info) in self.segments.iter().zip(infos) {
            if let Some(info) = info {
                df += seg.live_postings(field, info)?;
            }
        }
        Ok(df)
    }
}

impl SegmentView {
    /// The term's document frequency over this segment's live documents: the stored one
    /// where the segment has no deletes, a count of live postings where it has.
    pub(crate) fn live_postings(&self, field: usize, info: &TermInfo) -> Result<u64, IndexError> {
        Ok(match self.reader.alive_bitset() {
            None => u64::from(info.doc_freq),
            Some(alive) => {
                let mut postings = self.inverted[field]
                    .read_postings_from_terminfo(info, IndexRecordOption::Basic)?;
                let mut df = 0;
                while postings.doc() != tantivy::TERMINATED {
                    df += u64::from(alive.is_alive(postings.doc()));
                    postings.advance();
                }
                df
            }
        })
    }
}
