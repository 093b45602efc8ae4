//! `dense(model=...)`: embeds the query with the model that made the index's vectors and
//! ranks documents by inner product (exact search).

use std::sync::Arc;

use ferret_index::Index;
use ferret_models::SentenceEncoder;

use crate::registry::Args;
use crate::stage::{Hit, Stage};
use crate::{Query, SearchError};

pub struct Dense {
    index: Arc<Index>,
    model: String,
    encoder: SentenceEncoder,
}

pub fn build(args: &mut Args<'_>, index: &Arc<Index>) -> Result<Box<dyn Stage>, SearchError> {
    let requested = args.text("model")?;
    let reader = index.dense(requested.as_deref())?;
    let info = reader.info().clone();
    let at = args.position();
    let model_err = |e: ferret_models::ModelError| SearchError::at(at, format!("dense: {e}"));
    let resolved = ferret_models::source::resolve(&info.model).map_err(model_err)?;
    if resolved.info.weights_sha256 != info.weights_sha256 {
        return Err(SearchError::at(
            at,
            format!(
                "dense: {} resolves to weights {} but the index was encoded with {}",
                info.model, resolved.info.weights_sha256, info.weights_sha256
            ),
        ));
    }
    let encoder = SentenceEncoder::load(&resolved.dir).map_err(model_err)?;
    if encoder.dim() != info.dim {
        return Err(SearchError::at(
            at,
            format!(
                "dense: {} embeds in {} dimensions, the index's vectors have {}",
                info.model,
                encoder.dim(),
                info.dim
            ),
        ));
    }
    Ok(Box::new(Dense {
        index: index.clone(),
        model: info.model,
        encoder,
    }))
}

impl Stage for Dense {
    fn describe(&self) -> String {
        format!("dense(model={})", self.model)
    }

    fn run(
        &self,
        query: &Query,
        candidates: Option<&[Hit]>,
        k: usize,
    ) -> Result<Vec<Hit>, SearchError> {
        let reader = self.index.dense(Some(&self.model))?;
        let q = self
            .encoder
            .encode(&[query.text.as_str()], &self.encoder.query_prefix)
            .map_err(|e| SearchError::Invalid(e.to_string()))?
            .pop()
            .expect("one query in, one vector out");
        let docstore = self.index.docstore();
        Ok(match candidates {
            None => reader
                .search(&q, k, |d| docstore.is_deleted(d))
                .into_iter()
                .map(|(doc, score)| Hit { doc, score })
                .collect(),
            Some(cands) => {
                let mut out: Vec<Hit> = cands
                    .iter()
                    .map(|c| Hit {
                        doc: c.doc,
                        score: reader.score(&q, c.doc).unwrap_or(f32::NEG_INFINITY),
                    })
                    .collect();
                out.sort_by(|a, b| b.score.total_cmp(&a.score));
                out.truncate(k);
                out
            }
        })
    }
}
