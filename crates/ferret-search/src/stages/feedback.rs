//! What the lexical feedback stages (`rm3`, `rocchio`) share: term vectors of feedback
//! documents, Anserini's feedback-term filters, and its `FeatureVector` operations in the
//! same float arithmetic.
//!
//! Anserini reads term vectors stored in the index; ferret analyzes the stored document text
//! again with the index's analyzer, which yields the same terms and counts.
//!
//! Where Anserini breaks ties between equal weights (when pruning a vector to its top terms)
//! the order is that of its hash map, i.e. arbitrary; ferret breaks them by term (byte
//! order), which is deterministic and documented. This is the one known deviation.

use std::collections::{BTreeMap, HashMap};

use ferret_index::{DocNo, Index};
use ferret_text::Analyzer;

use super::bm25::Bm25Settings;
use crate::trace::Trace;
use crate::{Hit, Query, SearchError};

/// Terms with weights, sorted by term.
pub type FeatureVector = Vec<(String, f32)>;

/// Which terms a feedback document may contribute (Anserini's heuristics).
#[derive(Clone, Copy)]
pub struct TermFilter {
    /// Only `[a-z0-9]+` terms (RM3's English filter).
    pub ascii_only: bool,
    /// Drop terms in more than this fraction of the documents (Anserini: 0.1).
    pub max_df_ratio: f32,
}

/// Reads and analyzes feedback documents: this index's, or the contents the query carries for
/// documents of other shards ([`Query::feedback_contents`]).
pub struct FeedbackDocs<'a> {
    index: &'a Index,
    given: Option<&'a HashMap<DocNo, String>>,
    analyzer: Analyzer,
    num_docs: f32,
    df: HashMap<String, u64>,
}

impl<'a> FeedbackDocs<'a> {
    pub fn new(index: &'a Index, query: &'a Query) -> Result<Self, SearchError> {
        let lexical = index.lexical()?;
        let num_docs = lexical
            .collection_docs()
            .unwrap_or(index.docstore().num_live() as u64);
        Ok(FeedbackDocs {
            index,
            given: query.feedback_contents.as_deref(),
            analyzer: Analyzer::new(lexical.analyzer()),
            num_docs: num_docs as f32,
            df: HashMap::new(),
        })
    }

    /// The analyzed query: each term with its count, in order of first appearance.
    pub fn query_counts(&mut self, text: &str) -> Vec<(String, f32)> {
        let mut counts: Vec<(String, f32)> = Vec::new();
        self.analyzer.analyze(
            text,
            &mut |t| match counts.iter_mut().find(|(x, _)| x == t.text) {
                Some((_, c)) => *c += 1.0,
                None => counts.push((t.text.to_string(), 1.0)),
            },
        );
        counts
    }

    /// Term frequencies of document `doc` that pass `filter`, sorted by term.
    pub fn term_vector(
        &mut self,
        doc: DocNo,
        filter: TermFilter,
    ) -> Result<FeatureVector, SearchError> {
        let contents = match self.given {
            Some(given) => given.get(&doc).cloned().ok_or_else(|| {
                SearchError::Invalid(format!(
                    "feedback document {doc} of the incoming ranking came without its contents"
                ))
            })?,
            None => self.index.document(doc)?.contents(),
        };
        let mut tf: BTreeMap<String, f32> = BTreeMap::new();
        self.analyzer.analyze(&contents, &mut |t| {
            *tf.entry(t.text.to_string()).or_insert(0.0) += 1.0;
        });
        let mut out = Vec::with_capacity(tf.len());
        for (term, f) in tf {
            // Java's String.length() counts UTF-16 units.
            let len = term.encode_utf16().count();
            if !(2..=20).contains(&len) {
                continue;
            }
            if filter.ascii_only
                && !term
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            {
                continue;
            }
            let ratio = self.doc_freq(&term)? as f32 / self.num_docs;
            if ratio > filter.max_df_ratio {
                continue;
            }
            out.push((term, f));
        }
        Ok(out)
    }

    /// Document frequency in the lexical representation (the largest over its fields).
    fn doc_freq(&mut self, term: &str) -> Result<u64, SearchError> {
        if let Some(df) = self.df.get(term) {
            return Ok(*df);
        }
        let lexical = self.index.lexical()?;
        let mut df = 0;
        for field in 0..lexical.mode().field_names().len() {
            df = df.max(lexical.doc_freq(field, term)?);
        }
        self.df.insert(term.to_string(), df);
        Ok(df)
    }
}

/// Keeps the `k` heaviest terms (ties: by term), sorted by term again.
pub fn prune(v: &mut FeatureVector, k: usize) {
    v.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.truncate(k);
    v.sort_by(|a, b| a.0.cmp(&b.0));
}

/// Σ|w| in double, as Anserini's `computeL1Norm`.
pub fn l1_norm(v: &[(String, f32)]) -> f64 {
    v.iter().map(|(_, w)| w.abs() as f64).sum()
}

/// √Σw² in double, as `computeL2Norm`.
pub fn l2_norm(v: &[(String, f32)]) -> f64 {
    v.iter()
        .map(|(_, w)| (*w as f64).powi(2))
        .sum::<f64>()
        .sqrt()
}

/// Divides every weight by `norm` (in double, rounded to float).
pub fn scale(v: &mut [(String, f32)], norm: f64) {
    for (_, w) in v.iter_mut() {
        *w = (*w as f64 / norm) as f32;
    }
}

/// The terms of all `vectors`, sorted.
pub fn vocabulary<'v>(vectors: impl IntoIterator<Item = &'v FeatureVector>) -> Vec<String> {
    let mut vocab: Vec<String> = vectors
        .into_iter()
        .flat_map(|v| v.iter().map(|(t, _)| t.clone()))
        .collect();
    vocab.sort();
    vocab.dedup();
    vocab
}

/// The weight of `term` in `v` (0 when absent).
pub fn weight(v: &[(String, f32)], term: &str) -> f32 {
    v.binary_search_by(|(t, _)| t.as_str().cmp(term))
        .map_or(0.0, |i| v[i].1)
}

/// What RM3 and Rocchio do per query: build the expanded query from the incoming ranking
/// (`expand`), note it for explain, and search the whole collection with it by BM25.
pub fn expand_and_search(
    stage: &str,
    index: &Index,
    bm25: &Bm25Settings,
    candidates: Option<&[Hit]>,
    k: usize,
    trace: &mut Trace,
    expand: impl FnOnce(&[Hit]) -> Result<FeatureVector, SearchError>,
) -> Result<Vec<Hit>, SearchError> {
    let ranking = candidates.ok_or_else(|| {
        SearchError::Invalid(format!(
            "{stage} needs a ranking to take feedback documents from: use it after '>>', e.g. 'bm25 % 1000 >> {stage}'"
        ))
    })?;
    let terms = expand(ranking)?;
    trace.note(|| expanded_query(&terms));
    bm25.search(index, &bm25.query(&terms), None, k)
}

/// `term^weight …`, heaviest first: the expanded query, for explain output.
fn expanded_query(terms: &[(String, f32)]) -> String {
    let mut sorted: Vec<&(String, f32)> = terms.iter().collect();
    sorted.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let parts: Vec<String> = sorted.iter().map(|(t, w)| format!("{t}^{w}")).collect();
    parts.join(" ")
}
