//! Rerankers: stages that re-order given passages by their text alone — cross-encoders and the
//! LLM strategies. They need no index, so the same reranker serves a pipeline (`bm25 % 20 >>
//! listwise(llm=smollm2)`, through [`RerankStage`], which looks the texts up) and ad-hoc
//! candidates (`ferret rerank`, the HTTP rerank endpoint).

use std::sync::Arc;

use ferret_index::dense::document_text;
use ferret_index::Index;

use crate::stage::{Hit, Stage};
use crate::trace::Trace;
use crate::{Query, SearchError};

/// A passage to rerank: its text and the score the previous stage gave it (InsertRank shows
/// it to the model).
#[derive(Debug, Clone)]
pub struct Passage {
    pub text: String,
    pub score: f32,
}

pub trait Reranker: Send + Sync {
    fn describe(&self) -> String;

    /// The passages' new order: (position in `passages`, new score), best first, every
    /// passage once. Scores are monotone with the order.
    fn rerank(
        &self,
        query: &str,
        passages: &[Passage],
        trace: &mut Trace,
    ) -> Result<Vec<(usize, f32)>, SearchError>;
}

/// Turns an order (best first) into (position, score) pairs with scores n, n-1, …, 1.
pub fn order_scores(order: &[usize]) -> Vec<(usize, f32)> {
    let n = order.len();
    order
        .iter()
        .enumerate()
        .map(|(rank, &i)| (i, (n - rank) as f32))
        .collect()
}

/// Sorts positions by score, best first; ties keep the incoming order, and tied scores are
/// lowered by one ulp per place so the order survives evaluation (trec_eval re-sorts equal
/// scores by document id: a PRP run whose comparisons are all ties would otherwise be scored
/// in document-id order).
pub fn by_score(scores: &[f32]) -> Vec<(usize, f32)> {
    let mut out: Vec<(usize, f32)> = scores.iter().copied().enumerate().collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    for i in 1..out.len() {
        if out[i].1 >= out[i - 1].1 {
            out[i].1 = out[i - 1].1.next_down();
        }
    }
    out
}

/// A reranker in a pipeline: re-orders all the candidates it is given (cut them first:
/// `bm25 % 20 >> …`), looking their texts up in the index.
pub struct RerankStage {
    pub index: Arc<Index>,
    pub reranker: Box<dyn Reranker>,
}

impl Stage for RerankStage {
    fn describe(&self) -> String {
        self.reranker.describe()
    }

    fn run(
        &self,
        query: &Query,
        candidates: Option<&[Hit]>,
        k: usize,
        trace: &mut Trace,
    ) -> Result<Vec<Hit>, SearchError> {
        let cands = candidates.ok_or_else(|| {
            SearchError::Invalid(format!(
                "{} re-orders a ranking: use it after '>>', e.g. 'bm25 % 20 >> {}'",
                self.describe(),
                self.describe()
            ))
        })?;
        let passages = cands
            .iter()
            .map(|h| {
                Ok(Passage {
                    text: document_text(&self.index.document(h.doc)?),
                    score: h.score,
                })
            })
            .collect::<Result<Vec<_>, SearchError>>()?;
        let order = self.reranker.rerank(&query.text, &passages, trace)?;
        Ok(order
            .into_iter()
            .take(k)
            .map(|(i, score)| Hit {
                doc: cands[i].doc,
                score,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tied_scores_become_strictly_decreasing_in_incoming_order() {
        let out = by_score(&[9.5, 9.5, 10.0, 9.5]);
        let order: Vec<usize> = out.iter().map(|(i, _)| *i).collect();
        assert_eq!(order, [2, 0, 1, 3]);
        assert!(out.windows(2).all(|w| w[0].1 > w[1].1), "{out:?}");
        assert_eq!(out[1].1, 9.5);
        assert!((out[3].1 - 9.5).abs() < 1e-5);
    }
}
