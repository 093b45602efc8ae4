//! `rm3(fb_docs=10, fb_terms=10, original_query_weight=0.5, filter=1, k1, b, fields…)`: RM3
//! query expansion as Anserini's `Rm3Reranker` does it, then BM25 with the expanded query.
//!
//! With the incoming ranking's top n = min(fb_docs, depth) documents D₁…Dₙ and their scores
//! s₁…sₙ (the ranking's own, e.g. BM25):
//!
//! ```text
//! vᵢ      = term frequencies of Dᵢ, feedback terms only (2–20 UTF-16 units, [a-z0-9]+ unless
//!           filter=0, in at most 10 % of the documents), pruned to the fb_terms most frequent
//! rm(t)   = Σᵢ (vᵢ(t) / |vᵢ|₁) · sᵢ          (documents with |vᵢ|₁ <= 0.001 skipped)
//! rm      = rm pruned to its fb_terms heaviest terms, scaled to |rm|₁ = 1
//! q(t)    = count of t in the analyzed query / number of query terms
//! w(t)    = λ · q(t) + (1 − λ) · rm(t)        λ = original_query_weight
//! ```
//! and the new query is the sum of BM25 term scores boosted by w(t) (Lucene's BoostQuery),
//! searched over the whole collection. Float/double rounding follows Anserini's Java code.
//! Deviation: ties when pruning are broken by term (see [`super::feedback`]).

use std::sync::Arc;

use ferret_index::Index;

use super::bm25::Bm25Settings;
use super::feedback::{
    expand_and_search, l1_norm, prune, scale, vocabulary, weight, FeatureVector, FeedbackDocs,
    TermFilter,
};
use crate::args::{Args, Build, StageSpec};
use crate::stage::{Hit, Stage};
use crate::trace::Trace;
use crate::{Query, SearchError};

pub struct Rm3 {
    index: Arc<Index>,
    fb_docs: usize,
    fb_terms: usize,
    original_query_weight: f32,
    filter: bool,
    bm25: Bm25Settings,
}

pub const SPEC: StageSpec = StageSpec {
    name: "rm3",
    help: "RM3 query expansion after a ranking (Anserini's): fb_docs=10, fb_terms=10, original_query_weight=0.5, filter=1 (English term filter), then BM25 k1, b, field weights",
    min_inputs: 0,
    needs_candidates: true,
    feeds_inputs: false,
    model_args: &[],
    endpoint_args: &[],
    build: Build::Stage(build),
};

pub fn build(args: &mut Args<'_>, index: &Arc<Index>) -> Result<Box<dyn Stage>, SearchError> {
    Ok(Box::new(Rm3 {
        index: index.clone(),
        fb_docs: args.count("fb_docs", 10, 1)?,
        fb_terms: args.count("fb_terms", 10, 1)?,
        original_query_weight: args.number_in("original_query_weight", 0.5, 0.0..=1.0)? as f32,
        filter: args.number("filter", 1.0)? != 0.0,
        bm25: Bm25Settings::from_args(args, index)?,
    }))
}

impl Rm3 {
    /// The expanded query's terms and weights w(t), sorted by term.
    pub fn expand(&self, query: &Query, feedback: &[Hit]) -> Result<FeatureVector, SearchError> {
        let mut docs = FeedbackDocs::new(&self.index, query)?;
        let filter = TermFilter {
            ascii_only: self.filter,
            max_df_ratio: 0.1,
        };
        let mut vectors = Vec::new();
        let mut scores = Vec::new();
        for hit in feedback.iter().take(self.fb_docs) {
            let mut v = docs.term_vector(hit.doc, filter)?;
            prune(&mut v, self.fb_terms);
            vectors.push(v);
            scores.push(hit.score);
        }
        let norms: Vec<f32> = vectors.iter().map(|v| l1_norm(v) as f32).collect();
        let mut rm: FeatureVector = vocabulary(&vectors)
            .into_iter()
            .map(|term| {
                let mut w = 0f32;
                for ((v, norm), s) in vectors.iter().zip(&norms).zip(&scores) {
                    if *norm > 0.001 {
                        w += (weight(v, &term) / norm) * s;
                    }
                }
                (term, w)
            })
            .collect();
        prune(&mut rm, self.fb_terms);
        let norm = l1_norm(&rm);
        scale(&mut rm, norm);

        let mut q = docs.query_counts(&query.text);
        q.sort_by(|a, b| a.0.cmp(&b.0));
        let norm = l1_norm(&q);
        scale(&mut q, norm);

        let lambda = self.original_query_weight;
        Ok(vocabulary([&q, &rm])
            .into_iter()
            .map(|term| {
                let w = (lambda * weight(&q, &term)) as f64
                    + (1.0 - lambda as f64) * weight(&rm, &term) as f64;
                (term, w as f32)
            })
            .collect())
    }
}

impl Stage for Rm3 {
    fn describe(&self) -> String {
        format!(
            "rm3(fb_docs={}, fb_terms={}, original_query_weight={}, filter={}, {})",
            self.fb_docs,
            self.fb_terms,
            self.original_query_weight,
            u8::from(self.filter),
            self.bm25.describe_args()
        )
    }

    fn feedback_positions(&self, ranking_len: usize) -> Option<Vec<usize>> {
        Some((0..self.fb_docs.min(ranking_len)).collect())
    }

    fn run(
        &self,
        query: &Query,
        candidates: Option<&[Hit]>,
        k: usize,
        trace: &mut Trace,
    ) -> Result<Vec<Hit>, SearchError> {
        expand_and_search(
            "rm3",
            &self.index,
            &self.bm25,
            candidates,
            k,
            trace,
            |ranking| self.expand(query, ranking),
        )
    }
}
