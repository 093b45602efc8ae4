//! `rerank(model=…, max_length=512)`: re-scores the incoming candidates with a cross-encoder
//! (`BertForSequenceClassification`, e.g. cross-encoder/ms-marco-MiniLM-L-6-v2) on (query,
//! title + " " + text) pairs, truncated `only_second`; ordered by the logit. Use after `>>`
//! with a cut-off: `bm25 % 100 >> rerank(model=…)`.

use ferret_models::CrossEncoder;

use crate::args::{Args, Build, StageSpec};
use crate::reranker::{by_score, Passage, Reranker};
use crate::trace::Trace;
use crate::SearchError;

pub struct CrossEncoderReranker {
    model: String,
    encoder: CrossEncoder,
}

pub const SPEC: StageSpec = StageSpec {
    name: "rerank",
    help: "cross-encoder re-scoring of the incoming candidates: model=<folder or id> (BertForSequenceClassification), max_length=512",
    min_inputs: 0,
    needs_candidates: true,
    feeds_inputs: false,
    model_args: &["model"],
    endpoint_args: &[],
    build: Build::Reranker(build),
};

pub fn build(args: &mut Args<'_>) -> Result<Box<dyn Reranker>, SearchError> {
    let model = args
        .text("model")?
        .ok_or_else(|| args.error_at("model", "rerank needs model=<folder or id>".into()))?;
    let max_length = args.count("max_length", 512, 8)?;
    let at = args.position();
    let err = |e: ferret_models::ModelError| SearchError::at(at, format!("rerank: {e}"));
    let resolved = ferret_models::source::resolve(&model).map_err(err)?;
    let encoder = CrossEncoder::load(&resolved.dir, max_length).map_err(err)?;
    Ok(Box::new(CrossEncoderReranker {
        model: resolved.info.id,
        encoder,
    }))
}

impl Reranker for CrossEncoderReranker {
    fn describe(&self) -> String {
        format!(
            "rerank(model={:?}, max_length={})",
            self.model, self.encoder.max_length
        )
    }

    fn rerank(
        &self,
        query: &str,
        passages: &[Passage],
        trace: &mut Trace,
    ) -> Result<Vec<(usize, f32)>, SearchError> {
        let refs: Vec<&str> = passages.iter().map(|p| p.text.as_str()).collect();
        let scores = self
            .encoder
            .score(query, &refs, trace.cancel())
            .map_err(|e| match e {
                ferret_models::ModelError::Cancelled => SearchError::Cancelled,
                e => SearchError::Invalid(e.to_string()),
            })?;
        Ok(by_score(&scores))
    }
}
