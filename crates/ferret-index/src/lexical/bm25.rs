//! BM25 exactly as Lucene 9's `BM25Similarity` scores it under Anserini's bag-of-words
//! queries, term-at-a-time over tantivy postings.
//!
//! tantivy's own BM25 has k1 and b fixed at 1.2 / 0.75 and a different float evaluation, so the
//! scoring loop is ours. For a query term t with boost w (its count in the query, times the
//! field weight), in a document with frequency tf and encoded length byte n:
//!
//! ```text
//! idf(t)   = (float) ln(1 + (docCount - df + 0.5) / (df + 0.5))          [double, then float]
//! avgdl    = (float) (sumTotalTermFreq / (double) docCount)
//! cache[n] = 1f / (k1 * ((1 - b) + b * LENGTH_TABLE[n] / avgdl))          [float]
//! weight   = w * idf(t)                                                  [float]
//! score    = weight - weight / (1f + tf * cache[n])                      [float]
//! ```
//!
//! LENGTH_TABLE is Lucene's `SmallFloat.byte4ToInt`, which tantivy's field-norm table equals
//! (checked by a test). Term scores of one field are summed in double and rounded to float, as
//! Lucene's disjunction scorers do; fields are then summed the same way.

use std::cell::RefCell;

use ferret_text::Analyzer;
use tantivy::postings::TermInfo;
use tantivy::schema::{IndexRecordOption, Term};

use super::{FieldStats, LexicalReader};
use crate::{DocNo, IndexError};

/// BM25's free parameters. Defaults are Anserini's (k1 = 0.9, b = 0.4).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Bm25Params {
    pub k1: f32,
    pub b: f32,
}

impl Default for Bm25Params {
    fn default() -> Self {
        Bm25Params { k1: 0.9, b: 0.4 }
    }
}

/// Where collection statistics come from. The index's own ([`LexicalReader`]) by default;
/// a sharded deployment can inject global statistics instead.
pub trait CollectionStats: Sync {
    fn field_stats(&self, field: usize) -> FieldStats;
    fn doc_freq(&self, field: usize, term: &str) -> Result<u64, IndexError>;
}

impl CollectionStats for LexicalReader {
    fn field_stats(&self, field: usize) -> FieldStats {
        LexicalReader::field_stats(self, field)
    }
    fn doc_freq(&self, field: usize, term: &str) -> Result<u64, IndexError> {
        LexicalReader::doc_freq(self, field, term)
    }
}

/// A bag-of-words query over one or more fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Bm25Query {
    pub clauses: Vec<FieldClause>,
}

/// The query's terms in one field, each with its boost (query-term count × field weight).
#[derive(Debug, Clone, PartialEq)]
pub struct FieldClause {
    pub field: usize,
    pub terms: Vec<(String, f32)>,
}

impl Bm25Query {
    /// Anserini's BagOfWordsQueryGenerator: analyze the text; each distinct term once, boosted
    /// by how often it occurs; one clause per (field, weight).
    pub fn bag_of_words(analyzer: &mut Analyzer, text: &str, fields: &[(usize, f32)]) -> Self {
        let mut counts: Vec<(String, u32)> = Vec::new();
        analyzer.analyze(
            text,
            &mut |t| match counts.iter_mut().find(|(term, _)| term == t.text) {
                Some((_, c)) => *c += 1,
                None => counts.push((t.text.to_string(), 1)),
            },
        );
        let clauses = fields
            .iter()
            .map(|&(field, weight)| FieldClause {
                field,
                terms: counts
                    .iter()
                    .map(|(t, c)| (t.clone(), weight * *c as f32))
                    .collect(),
            })
            .collect();
        Bm25Query { clauses }
    }

    pub fn is_empty(&self) -> bool {
        self.clauses.iter().all(|c| c.terms.is_empty())
    }
}

#[derive(Default)]
struct Scratch {
    total: Vec<f64>,
    field: Vec<f64>,
    touched: Vec<DocNo>,
    field_touched: Vec<DocNo>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Lucene's `SmallFloat.byte4ToInt`: the document length a norm byte stands for.
pub fn lucene_length_table() -> [f32; 256] {
    let mut t = [0f32; 256];
    for (i, v) in t.iter_mut().enumerate() {
        *v = tantivy::fieldnorm::FieldNormReader::id_to_fieldnorm(i as u8) as f32;
    }
    t
}

impl LexicalReader {
    /// The top `k` live documents for `query` by BM25, best first; ties go to the lower
    /// internal number (Lucene's order for equal scores). Collection statistics are the
    /// index's own unless `external_stats` supplies them (e.g. global ones for a shard).
    pub fn bm25_top_k(
        &self,
        query: &Bm25Query,
        params: Bm25Params,
        k: usize,
        external_stats: Option<&dyn CollectionStats>,
    ) -> Result<Vec<(DocNo, f32)>, IndexError> {
        let lengths = lucene_length_table();
        SCRATCH.with(|cell| {
            let mut scratch = cell.borrow_mut();
            let s = &mut *scratch;
            if s.total.len() < self.slots() {
                s.total.resize(self.slots(), 0.0);
                s.field.resize(self.slots(), 0.0);
            }
            s.touched.clear();
            for clause in &query.clauses {
                let fs = match external_stats {
                    Some(st) => st.field_stats(clause.field),
                    None => self.field_stats(clause.field),
                };
                let avgdl = fs.avg_len();
                let mut cache = [0f32; 256];
                for (c, len) in cache.iter_mut().zip(lengths.iter()) {
                    *c = 1f32 / (params.k1 * ((1f32 - params.b) + params.b * *len / avgdl));
                }
                s.field_touched.clear();
                for (term, boost) in &clause.terms {
                    // One dictionary lookup per segment serves both the statistics and the
                    // postings.
                    let t = Term::from_field_text(self.schema.text[clause.field].0, term);
                    let infos = self
                        .segments
                        .iter()
                        .map(|seg| seg.inverted[clause.field].get_term_info(&t))
                        .collect::<Result<Vec<_>, _>>()?;
                    let df = match (external_stats, self.collection_statistics()) {
                        (Some(st), _) => st.doc_freq(clause.field, term)?,
                        (None, Some(st)) => st.doc_freq(clause.field, term)?,
                        (None, None) => self.live_doc_freq(clause.field, &infos)?,
                    };
                    if df == 0 {
                        continue;
                    }
                    let idf = (1.0 + (fs.doc_count as f64 - df as f64 + 0.5) / (df as f64 + 0.5))
                        .ln() as f32;
                    let weight = *boost * idf;
                    self.accumulate(clause.field, &infos, weight, &cache, s)?;
                }
                for &d in &s.field_touched {
                    let v = std::mem::take(&mut s.field[d as usize]) as f32;
                    if s.total[d as usize] == 0.0 {
                        s.touched.push(d);
                    }
                    s.total[d as usize] += v as f64;
                }
            }
            let mut hits: Vec<(DocNo, f32)> = s
                .touched
                .iter()
                .map(|&d| (d, std::mem::take(&mut s.total[d as usize]) as f32))
                .collect();
            let order =
                |a: &(DocNo, f32), b: &(DocNo, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
            if hits.len() > k && k > 0 {
                hits.select_nth_unstable_by(k - 1, order);
            }
            hits.truncate(k);
            hits.sort_unstable_by(order);
            Ok(hits)
        })
    }

    /// Adds `weight`-scaled BM25 contributions of one term to the field accumulator.
    fn accumulate(
        &self,
        field: usize,
        infos: &[Option<TermInfo>],
        weight: f32,
        cache: &[f32; 256],
        s: &mut Scratch,
    ) -> Result<(), IndexError> {
        for (seg, info) in self.segments.iter().zip(infos) {
            let Some(info) = info else {
                continue;
            };
            let mut block = seg.inverted[field]
                .read_block_postings_from_terminfo(info, IndexRecordOption::WithFreqs)?;
            let alive = seg.reader.alive_bitset();
            let norms = &seg.norms[field];
            loop {
                let docs = block.docs();
                if docs.is_empty() {
                    break;
                }
                for (&doc, &tf) in docs.iter().zip(block.freqs()) {
                    if alive.is_some_and(|a| !a.is_alive(doc)) {
                        continue;
                    }
                    let norm_inverse = cache[norms.fieldnorm_id(doc) as usize];
                    let score = weight - weight / (1f32 + tf as f32 * norm_inverse);
                    let d = seg.ords[doc as usize];
                    let acc = &mut s.field[d as usize];
                    if *acc == 0.0 {
                        s.field_touched.push(d);
                    }
                    *acc += score as f64;
                }
                block.advance();
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lucene's SmallFloat.intToByte4 / byte4ToInt, from their definition: values below 24
    /// are exact; above, a 3-bit mantissa with an implicit leading bit and a shift.
    fn lucene_byte4_to_int(b: u8) -> u64 {
        const NUM_FREE_VALUES: u64 = 24;
        fn int4_to_long(i: u64) -> u64 {
            let bits = i & 0x07;
            let shift = (i >> 3) as i64 - 1;
            if shift == -1 {
                bits
            } else {
                (bits | 0x08) << shift
            }
        }
        let i = b as u64;
        if i < NUM_FREE_VALUES {
            i
        } else {
            NUM_FREE_VALUES + int4_to_long(i - NUM_FREE_VALUES)
        }
    }

    #[test]
    fn tantivy_norm_table_is_lucenes() {
        for b in 0..=255u8 {
            let tantivy = tantivy::fieldnorm::FieldNormReader::id_to_fieldnorm(b) as u64;
            assert_eq!(tantivy, lucene_byte4_to_int(b), "byte {b}");
        }
    }

    #[test]
    fn bag_of_words_counts_repeated_terms() {
        let mut a = Analyzer::new(ferret_text::AnalyzerKind::En);
        let q = Bm25Query::bag_of_words(&mut a, "cells and more cells", &[(0, 1.0), (1, 0.5)]);
        assert_eq!(
            q.clauses[0].terms,
            [("cell".to_string(), 2.0), ("more".to_string(), 1.0)]
        );
        assert_eq!(q.clauses[1].terms[0], ("cell".to_string(), 1.0));
    }
}
