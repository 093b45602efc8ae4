//! `tprf(scorer, depth=3, agg=sum|max|borda)`: text-based pseudo-relevance feedback for
//! re-scoring stages (Li et al., "Pseudo Relevance Feedback with Deep Language Models and Dense
//! Retrievers: Successes and Pitfalls", TOIS 2023, the reranker PRF variants).
//!
//! After `>>`, with the incoming ranking's top `depth` passages p₁…p_k: the `scorer` pipeline
//! (any stage that rescores candidates: `dense`, `bm25`, later cross-encoders) scores every
//! candidate against k new queries "q p_i" (the query text, a space, the passage's title and
//! text), and the k scores are aggregated per candidate:
//!
//! * `sum`:   Σᵢ scoreᵢ(d)
//! * `max`:   maxᵢ scoreᵢ(d)
//! * `borda`: Σᵢ (n − rankᵢ(d) + 1), n the number of candidates
//!
//! The ranking is the candidates ordered by the aggregate (ties keep the incoming order).

use std::collections::HashMap;
use std::sync::Arc;

use ferret_index::{DocNo, Index};

use crate::args::{Args, Build, StageSpec};
use crate::stage::{rescore, Hit, Stage};
use crate::trace::Trace;
use crate::{Query, SearchError};

#[derive(Clone, Copy, PartialEq)]
enum Aggregate {
    Sum,
    Max,
    Borda,
}

pub struct TextPrf {
    index: Arc<Index>,
    scorer: Box<dyn Stage>,
    depth: usize,
    aggregate: Aggregate,
}

pub const SPEC: StageSpec = StageSpec {
    name: "tprf",
    help: "text-based PRF for a re-scoring stage: tprf(scorer, depth=3, agg=sum|max|borda) re-scores the candidates with the query + each top passage",
    min_inputs: 1,
    needs_candidates: true,
    feeds_inputs: true,
    model_args: &[],
    endpoint_args: &[],
    build: Build::Stage(build),
};

pub fn build(args: &mut Args<'_>, index: &Arc<Index>) -> Result<Box<dyn Stage>, SearchError> {
    let mut inputs = args.inputs()?;
    if inputs.len() != 1 {
        return Err(SearchError::at(
            args.position(),
            format!("tprf takes one scorer pipeline, got {}", inputs.len()),
        ));
    }
    let depth = args.count("depth", 3, 1)?;
    let aggregate = match args.choice("agg", &["sum", "max", "borda"])? {
        "sum" => Aggregate::Sum,
        "max" => Aggregate::Max,
        _ => Aggregate::Borda,
    };
    Ok(Box::new(TextPrf {
        index: index.clone(),
        scorer: inputs.remove(0),
        depth,
        aggregate,
    }))
}

impl Stage for TextPrf {
    fn describe(&self) -> String {
        let agg = match self.aggregate {
            Aggregate::Sum => "sum",
            Aggregate::Max => "max",
            Aggregate::Borda => "borda",
        };
        format!(
            "tprf({}, depth={}, agg={agg})",
            self.scorer.describe(),
            self.depth
        )
    }

    fn run(
        &self,
        query: &Query,
        candidates: Option<&[Hit]>,
        k: usize,
        trace: &mut Trace,
    ) -> Result<Vec<Hit>, SearchError> {
        let cands = candidates.ok_or_else(|| {
            SearchError::Invalid(
                "tprf re-scores a ranking: use it after '>>', e.g. 'bm25 % 100 >> tprf(dense, depth=3)'"
                    .into(),
            )
        })?;
        let n = cands.len();
        let mut total: HashMap<DocNo, f32> = HashMap::with_capacity(n);
        for feedback in cands.iter().take(self.depth) {
            let passage = self.index.document(feedback.doc)?.contents();
            let expanded = Query::new(query.id.clone(), format!("{} {passage}", query.text));
            let scored = trace.run(self.scorer.as_ref(), &expanded, Some(cands), n)?;
            for (rank, h) in scored.iter().enumerate() {
                let v = match self.aggregate {
                    Aggregate::Sum | Aggregate::Max => h.score,
                    Aggregate::Borda => (n - rank) as f32,
                };
                total
                    .entry(h.doc)
                    .and_modify(|t| match self.aggregate {
                        Aggregate::Max => *t = t.max(v),
                        _ => *t += v,
                    })
                    .or_insert(v);
            }
        }
        Ok(rescore(cands, k, |d| {
            total.get(&d).copied().unwrap_or(f32::NEG_INFINITY)
        }))
    }
}
