//! `splade(model=…, method=auto)`: learned sparse retrieval over a sparse representation. The
//! query is encoded by the model that made the index's vectors (with the representation's
//! query settings) — or taken as given when the query carries a precomputed vector — and
//! matched on the impact index by block-max MaxScore or by scoring every posting
//! (`method=maxscore|exhaustive`; `auto` picks by the query's postings, see
//! [`ferret_index::sparse::Method`]; all exact, same ranking). After `>>` it re-scores the
//! candidates.
//! Explain notes the query's expansion terms and, per hit, the terms that matched.

use std::sync::Arc;

use ferret_index::sparse::{ImpactQuery, Method, SparseOptions, SparseReader};
use ferret_index::Index;

use crate::args::{Args, Build, StageSpec};
use ferret_index::SparseEncoder;

use crate::encoders;
use crate::stage::{rescore, Hit, Stage};
use crate::trace::Trace;
use crate::{Query, SearchError};

pub struct SpladeStage {
    index: Arc<Index>,
    model: String,
    encoder: Arc<dyn SparseEncoder>,
    method: Method,
}

pub const SPEC: StageSpec = StageSpec {
    name: "splade",
    help: "learned sparse retrieval over a sparse representation (exact): model (optional when the index has one), method=auto|maxscore|exhaustive (block-max MaxScore or every posting; auto picks by the query's postings)",
    min_inputs: 0,
    needs_candidates: false,
    feeds_inputs: false,
    model_args: &["model"],
    endpoint_args: &[],
    build: Build::Stage(build),
};

pub fn build(args: &mut Args<'_>, index: &Arc<Index>) -> Result<Box<dyn Stage>, SearchError> {
    let method = match args.choice("method", &["auto", "maxscore", "exhaustive"])? {
        "maxscore" => Method::MaxScore,
        "exhaustive" => Method::Exhaustive,
        _ => Method::Auto,
    };
    let requested = args.text("model")?;
    let stage = for_model(index, requested.as_deref(), method, args.position())?;
    Ok(Box::new(stage))
}

/// The stage over the sparse representation made with `requested` (the only one when `None`),
/// its query encoder loaded and checked against the index's weights; `at` places errors.
pub(crate) fn for_model(
    index: &Arc<Index>,
    requested: Option<&str>,
    method: Method,
    at: usize,
) -> Result<SpladeStage, SearchError> {
    let reader = index.sparse(requested.map(encoders::canonical_id))?;
    let model = reader.model().clone();
    let err = |e: String| SearchError::at(at, format!("splade: {e}"));
    let resolved = ferret_models::source::resolve(&model.id).map_err(|e| err(e.to_string()))?;
    if resolved.info.weights_sha256 != model.weights_sha256 {
        return Err(err(format!(
            "{} resolves to weights {} but the index was encoded with {}",
            model.id, resolved.info.weights_sha256, model.weights_sha256
        )));
    }
    let options: &SparseOptions = &reader.params().encoder;
    let encoder = encoders::sparse_encoder(&resolved, options, true).map_err(err)?;
    Ok(SpladeStage {
        index: index.clone(),
        model: model.id,
        encoder,
        method,
    })
}

impl SpladeStage {
    fn reader(&self) -> Result<&SparseReader, SearchError> {
        Ok(self.index.sparse(Some(&self.model))?)
    }

    /// The query's sparse vector: the one it carries, else the model's encoding of its text.
    fn vector(&self, query: &Query) -> Result<Vec<(String, f32)>, SearchError> {
        if let Some(v) = &query.sparse {
            return Ok(v.clone());
        }
        let mut v = self
            .encoder
            .encode(&[query.text.as_str()])
            .map_err(SearchError::Invalid)?;
        Ok(v.pop().unwrap_or_default())
    }

    fn quantized(&self, query: &Query) -> Result<(Vec<(String, f32)>, ImpactQuery), SearchError> {
        let vector = self.vector(query)?;
        let q = self.reader()?.impacts().quantize(&vector);
        if q.is_empty() {
            return Err(SearchError::Invalid(format!(
                "query {:?}: its sparse vector ({} terms) has no term the index holds",
                query.id,
                vector.len()
            )));
        }
        Ok((vector, q))
    }
}

impl Stage for SpladeStage {
    fn describe(&self) -> String {
        match self.method {
            Method::Auto => format!("splade(model={})", self.model),
            Method::MaxScore => format!("splade(model={}, method=maxscore)", self.model),
            Method::Exhaustive => format!("splade(model={}, method=exhaustive)", self.model),
        }
    }

    fn run(
        &self,
        query: &Query,
        candidates: Option<&[Hit]>,
        k: usize,
        trace: &mut Trace,
    ) -> Result<Vec<Hit>, SearchError> {
        let (vector, q) = self.quantized(query)?;
        let reader = self.reader()?;
        let docstore = self.index.docstore();
        let hits: Vec<Hit> = match candidates {
            Some(c) => rescore(c, k, |d| reader.impacts().score(&q, d)),
            None => reader
                .search(&q, k, self.method, |d| docstore.is_deleted(d))
                .into_iter()
                .map(|(doc, score)| Hit { doc, score })
                .collect(),
        };
        trace.note(|| {
            let terms: Vec<String> = vector
                .iter()
                .take(32)
                .map(|(t, w)| format!("{t}:{w:.3}"))
                .collect();
            format!(
                "{} query terms ({} in the index): {}{}",
                vector.len(),
                q.len(),
                terms.join(" "),
                if vector.len() > 32 { " …" } else { "" }
            )
        });
        trace.hit_details(|| {
            hits.iter()
                .take(crate::trace::DETAILED_HITS)
                .map(|h| {
                    // [term, contribution] pairs, largest first.
                    let matched: Vec<serde_json::Value> = reader
                        .impacts()
                        .contributions(&q, h.doc)
                        .into_iter()
                        .map(|(t, s)| serde_json::json!([t, s]))
                        .collect();
                    (h.doc, serde_json::json!({ "matched_terms": matched }))
                })
                .collect()
        });
        Ok(hits)
    }
}
