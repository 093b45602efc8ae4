//! `rerank(model=…, max_length=512)`: re-scores the incoming candidates with a cross-encoder
//! (`BertForSequenceClassification`, e.g. cross-encoder/ms-marco-MiniLM-L-6-v2) on (query,
//! title + " " + text) pairs, truncated `only_second`; ordered by the logit. Use after `>>`
//! with a cut-off: `bm25 % 100 >> rerank(model=…)`.

use std::sync::Arc;

use ferret_index::dense::document_text;
use ferret_index::Index;
use ferret_models::CrossEncoder;

use crate::registry::Args;
use crate::stage::{rescore, Hit, Stage};
use crate::trace::Trace;
use crate::{Query, SearchError};

pub struct Rerank {
    index: Arc<Index>,
    model: String,
    encoder: CrossEncoder,
}

pub fn build(args: &mut Args<'_>, index: &Arc<Index>) -> Result<Box<dyn Stage>, SearchError> {
    let model = args
        .text("model")?
        .ok_or_else(|| args.error_at("model", "rerank needs model=<folder or id>".into()))?;
    let max_length = args.count("max_length", 512, 8)?;
    let at = args.position();
    let err = |e: ferret_models::ModelError| SearchError::at(at, format!("rerank: {e}"));
    let resolved = ferret_models::source::resolve(&model).map_err(err)?;
    let encoder = CrossEncoder::load(&resolved.dir, max_length).map_err(err)?;
    Ok(Box::new(Rerank {
        index: index.clone(),
        model: resolved.info.id,
        encoder,
    }))
}

impl Stage for Rerank {
    fn describe(&self) -> String {
        format!(
            "rerank(model={:?}, max_length={})",
            self.model, self.encoder.max_length
        )
    }

    fn run(
        &self,
        query: &Query,
        candidates: Option<&[Hit]>,
        k: usize,
        _: &mut Trace,
    ) -> Result<Vec<Hit>, SearchError> {
        let cands = candidates.ok_or_else(|| {
            SearchError::Invalid(
                "rerank re-scores a ranking: use it after '>>', e.g. 'bm25 % 100 >> rerank(model=…)'"
                    .into(),
            )
        })?;
        let texts = cands
            .iter()
            .map(|h| self.index.document(h.doc).map(|d| document_text(&d)))
            .collect::<Result<Vec<_>, _>>()?;
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let scores = self
            .encoder
            .score(&query.text, &refs)
            .map_err(|e| SearchError::Invalid(e.to_string()))?;
        let by_doc: std::collections::HashMap<_, _> =
            cands.iter().map(|h| h.doc).zip(scores).collect();
        Ok(rescore(cands, k, |d| by_doc[&d]))
    }
}
