//! `rocchio(top_fb_docs=10, top_fb_terms=10, alpha=1, beta=0.75, negative=0,
//! bottom_fb_docs=10, bottom_fb_terms=10, gamma=0.15, k1, b, fields…)`: Rocchio query
//! expansion as Anserini's `RocchioReranker` does it, then BM25 with the new query.
//!
//! ```text
//! q        = term counts of the analyzed query, scaled to |q|₂ = 1
//! vᵢ       = term frequencies of feedback document i (2–20 UTF-16 units, in at most 10 % of
//!            the documents)
//! rel(t)   = (1/n) Σᵢ vᵢ(t) / |vᵢ|₂ over the top n = min(top_fb_docs, depth) documents,
//!            pruned to top_fb_terms terms, scaled to |rel|₂ = 1
//! nrel(t)  = the same over the bottom documents of the ranking (only with negative=1)
//! w(t)     = α·q(t) + β·rel(t) − γ·nrel(t), terms with w(t) <= 0 dropped
//! ```
//! The new query sums BM25 term scores boosted by w(t). Deviation: ties when pruning are
//! broken by term (see [`super::feedback`]).

use std::sync::Arc;

use ferret_index::Index;

use super::bm25::Bm25Settings;
use super::feedback::{
    expand_and_search, l2_norm, prune, scale, vocabulary, weight, FeatureVector, FeedbackDocs,
    TermFilter,
};
use crate::args::{Args, Build, StageSpec};
use crate::stage::{Hit, Stage};
use crate::trace::Trace;
use crate::{Query, SearchError};

pub struct Rocchio {
    index: Arc<Index>,
    top: (usize, usize),
    bottom: Option<(usize, usize)>,
    alpha: f32,
    beta: f32,
    gamma: f32,
    bm25: Bm25Settings,
}

pub const SPEC: StageSpec = StageSpec {
    name: "rocchio",
    help: "Rocchio query expansion after a ranking (Anserini's): top_fb_docs=10, top_fb_terms=10, alpha=1, beta=0.75, negative=0 with bottom_fb_docs=10, bottom_fb_terms=10, gamma=0.15; then BM25 k1, b, field weights",
    min_inputs: 0,
    needs_candidates: true,
    feeds_inputs: false,
    model_args: &[],
    endpoint_args: &[],
    build: Build::Stage(build),
};

pub fn build(args: &mut Args<'_>, index: &Arc<Index>) -> Result<Box<dyn Stage>, SearchError> {
    let top = (
        args.count("top_fb_docs", 10, 1)?,
        args.count("top_fb_terms", 10, 1)?,
    );
    let alpha = args.number("alpha", 1.0)? as f32;
    let beta = args.number("beta", 0.75)? as f32;
    let negative = args.number("negative", 0.0)? != 0.0;
    let bottom = (
        args.count("bottom_fb_docs", 10, 1)?,
        args.count("bottom_fb_terms", 10, 1)?,
    );
    let gamma = args.number("gamma", 0.15)? as f32;
    Ok(Box::new(Rocchio {
        index: index.clone(),
        top,
        bottom: negative.then_some(bottom),
        alpha,
        beta,
        gamma,
        bm25: Bm25Settings::from_args(args, index)?,
    }))
}

/// The mean of the L2-normalised term vectors of `docs`, pruned and normalised.
fn mean_vector<'h>(
    feedback: &mut FeedbackDocs<'_>,
    docs: impl Iterator<Item = &'h Hit>,
    fb_terms: usize,
) -> Result<FeatureVector, SearchError> {
    let filter = TermFilter {
        ascii_only: false,
        max_df_ratio: 0.1,
    };
    let vectors = docs
        .map(|h| feedback.term_vector(h.doc, filter))
        .collect::<Result<Vec<_>, _>>()?;
    let norms: Vec<f32> = vectors.iter().map(|v| l2_norm(v) as f32).collect();
    let n = vectors.len() as f32;
    let mut mean: FeatureVector = vocabulary(&vectors)
        .into_iter()
        .map(|term| {
            let mut w = 0f32;
            for (v, norm) in vectors.iter().zip(&norms) {
                if *norm > 0.001 {
                    w += weight(v, &term) / norm;
                }
            }
            (term, w / n)
        })
        .collect();
    prune(&mut mean, fb_terms);
    let norm = l2_norm(&mean);
    scale(&mut mean, norm);
    Ok(mean)
}

impl Rocchio {
    /// The new query's terms and weights w(t), sorted by term.
    pub fn expand(&self, query: &Query, ranking: &[Hit]) -> Result<FeatureVector, SearchError> {
        let mut feedback = FeedbackDocs::new(&self.index, query)?;
        let mut q = feedback.query_counts(&query.text);
        q.sort_by(|a, b| a.0.cmp(&b.0));
        let norm = l2_norm(&q);
        scale(&mut q, norm);
        let (docs, terms) = self.top;
        let rel = mean_vector(&mut feedback, ranking.iter().take(docs), terms)?;
        let nrel = match self.bottom {
            Some((docs, terms)) => {
                mean_vector(&mut feedback, ranking.iter().rev().take(docs), terms)?
            }
            None => Vec::new(),
        };
        Ok(vocabulary([&q, &rel, &nrel])
            .into_iter()
            .filter_map(|term| {
                let w = self.alpha * weight(&q, &term) + self.beta * weight(&rel, &term)
                    - self.gamma * weight(&nrel, &term);
                (w > 0.0).then_some((term, w))
            })
            .collect())
    }
}

impl Stage for Rocchio {
    fn describe(&self) -> String {
        let mut s = format!(
            "rocchio(top_fb_docs={}, top_fb_terms={}, alpha={}, beta={}",
            self.top.0, self.top.1, self.alpha, self.beta
        );
        if let Some((docs, terms)) = self.bottom {
            s.push_str(&format!(
                ", negative=1, bottom_fb_docs={docs}, bottom_fb_terms={terms}, gamma={}",
                self.gamma
            ));
        }
        format!("{s}, {})", self.bm25.describe_args())
    }

    fn feedback_positions(&self, ranking_len: usize) -> Option<Vec<usize>> {
        let mut positions: Vec<usize> = (0..self.top.0.min(ranking_len)).collect();
        if let Some((docs, _)) = self.bottom {
            positions.extend(ranking_len.saturating_sub(docs)..ranking_len);
        }
        positions.sort_unstable();
        positions.dedup();
        Some(positions)
    }

    fn run(
        &self,
        query: &Query,
        candidates: Option<&[Hit]>,
        k: usize,
        trace: &mut Trace,
    ) -> Result<Vec<Hit>, SearchError> {
        expand_and_search(
            "rocchio",
            &self.index,
            &self.bm25,
            candidates,
            k,
            trace,
            |ranking| self.expand(query, ranking),
        )
    }
}
