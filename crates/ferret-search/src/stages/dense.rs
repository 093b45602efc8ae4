//! `dense(model=..., ef=128, exact=0)`: embeds the query with the model that made the index's
//! vectors and ranks documents by inner product — through the HNSW graph when the index has
//! one (`ef` sets its candidate list), exactly otherwise or with `exact=1`.

use std::sync::Arc;

use ferret_index::Index;
use ferret_models::SentenceEncoder;

use crate::args::{Args, Build, StageSpec};
use crate::stage::{rescore, Hit, Stage};
use crate::trace::Trace;
use crate::{Query, SearchError};

pub struct Dense {
    index: Arc<Index>,
    model: String,
    encoder: QueryEncoder,
    method: Method,
}

/// The model that embeds queries for a dense representation: a sentence encoder with the
/// query prefix the index records (or the model's own), or PromptReps.
pub(crate) enum QueryEncoder {
    Sentence {
        encoder: Arc<SentenceEncoder>,
        prefix: String,
        /// Matryoshka size the index's vectors were cut to.
        dims: Option<usize>,
    },
    PromptReps(crate::encoders::PromptRepsDense),
    /// CLIP's text tower (texts indexed with it; image queries go through `clip`).
    Clip(crate::encoders::ClipTexts),
}

impl QueryEncoder {
    /// Embeds query texts, spread over the current rayon pool.
    pub(crate) fn embed_all(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, SearchError> {
        match self {
            QueryEncoder::Sentence {
                encoder,
                prefix,
                dims,
            } => encoder
                .encode_dims(texts, prefix, *dims)
                .map_err(|e| SearchError::Invalid(e.to_string())),
            QueryEncoder::PromptReps(p) => {
                ferret_index::DenseEncoder::encode(p, texts).map_err(SearchError::Invalid)
            }
            QueryEncoder::Clip(c) => {
                ferret_index::DenseEncoder::encode(c, texts).map_err(SearchError::Invalid)
            }
        }
    }

    pub(crate) fn embed(&self, query: &Query) -> Result<Vec<f32>, SearchError> {
        Ok(self
            .embed_all(&[query.text.as_str()])?
            .pop()
            .expect("one query in, one vector out"))
    }
}

/// The index's dense representation for the `model` argument (optional when there is one),
/// with the query encoder loaded and checked against it (weights hash, dimension).
pub(crate) fn bind(
    args: &mut Args<'_>,
    index: &Index,
) -> Result<(String, QueryEncoder), SearchError> {
    let requested = args.text("model")?;
    bind_model(index, requested.as_deref(), args.position())
}

/// [`bind`] for a model given as `requested`; `at` places errors.
pub(crate) fn bind_model(
    index: &Index,
    requested: Option<&str>,
    at: usize,
) -> Result<(String, QueryEncoder), SearchError> {
    let reader = index.dense(requested.map(crate::encoders::canonical_id))?;
    let (model, params) = (reader.model().clone(), reader.params());
    let model_err = |e: ferret_models::ModelError| SearchError::at(at, format!("{e}"));
    let resolved = ferret_models::source::resolve(&model.id).map_err(model_err)?;
    if resolved.info.weights_sha256 != model.weights_sha256 {
        return Err(SearchError::at(
            at,
            format!(
                "{} resolves to weights {} but the index was encoded with {}",
                model.id, resolved.info.weights_sha256, model.weights_sha256
            ),
        ));
    }
    let kind = crate::encoders::encoder_kind(params.encoder.as_deref())
        .map_err(|e| SearchError::at(at, e))?;
    let (encoder, dim) = if kind == crate::encoders::Encoder::Clip {
        let model = crate::encoders::clip(&resolved).map_err(|e| SearchError::at(at, e))?;
        let dim = model.dim();
        (QueryEncoder::Clip(crate::encoders::ClipTexts(model)), dim)
    } else if kind == crate::encoders::Encoder::PromptReps {
        let model = crate::encoders::promptreps(&resolved).map_err(|e| SearchError::at(at, e))?;
        let run = crate::encoders::promptreps_run(
            ferret_models::promptreps::Side::Query,
            params.query_max_length,
            None,
        );
        let dim = model.dim();
        (
            QueryEncoder::PromptReps(crate::encoders::PromptRepsDense { model, run }),
            dim,
        )
    } else {
        let encoder =
            ferret_models::sentence::shared_with(&resolved.dir, params.int8).map_err(model_err)?;
        let dim = params.dims.unwrap_or(encoder.dim());
        let prefix = params
            .query_prefix
            .clone()
            .unwrap_or_else(|| encoder.query_prefix.clone());
        let dims = params.dims;
        (
            QueryEncoder::Sentence {
                encoder,
                prefix,
                dims,
            },
            dim,
        )
    };
    if dim != params.dim {
        return Err(SearchError::at(
            at,
            format!(
                "{} embeds in {} dimensions, the index's vectors have {}",
                model.id, dim, params.dim
            ),
        ));
    }
    Ok((model.id, encoder))
}

/// How the whole collection is searched.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Method {
    /// Every vector scored.
    Exact,
    /// The HNSW graph, with this candidate list size (ef); exact when the index has no graph.
    Hnsw { ef: usize },
}

impl Method {
    pub(crate) fn from_args(args: &mut Args<'_>) -> Result<Self, SearchError> {
        let exact = args.number("exact", 0.0)? != 0.0;
        let ef = args.number("ef", 128.0)?;
        if ef < 1.0 {
            return Err(SearchError::at(args.position(), "ef must be at least 1"));
        }
        Ok(if exact {
            Method::Exact
        } else {
            Method::Hnsw { ef: ef as usize }
        })
    }
}

/// Searches the collection (exactly or through the graph), or rescores `candidates` when given.
pub(crate) fn search(
    index: &Index,
    model: &str,
    method: Method,
    q: &[f32],
    candidates: Option<&[Hit]>,
    k: usize,
) -> Result<Vec<Hit>, SearchError> {
    let reader = index.dense(Some(model))?;
    let docstore = index.docstore();
    let live = |d| !docstore.is_deleted(d);
    Ok(match candidates {
        None => match (method, reader.hnsw()) {
            (Method::Hnsw { ef }, Some(graph)) => graph.search(q, k, ef, live)?,
            _ => reader.search(q, k, |d| !live(d)),
        }
        .into_iter()
        .map(|(doc, score)| Hit { doc, score })
        .collect(),
        Some(cands) => rescore(cands, k, |d| {
            reader.score(q, d).unwrap_or(f32::NEG_INFINITY)
        }),
    })
}

pub const SPEC: StageSpec = StageSpec {
    name: "dense",
    help: "inner-product search over a dense representation: model (optional when the index has one), ef (HNSW candidate list), exact=1 to skip the graph",
    min_inputs: 0,
    needs_candidates: false,
    feeds_inputs: false,
    model_args: &["model"],
    endpoint_args: &[],
    build: Build::Stage(build),
};

impl Dense {
    /// Exact search over `model`'s vectors, queries embedded by `encoder`.
    pub(crate) fn exact(index: &Arc<Index>, model: String, encoder: QueryEncoder) -> Self {
        Dense {
            index: index.clone(),
            model,
            encoder,
            method: Method::Exact,
        }
    }
}

pub fn build(args: &mut Args<'_>, index: &Arc<Index>) -> Result<Box<dyn Stage>, SearchError> {
    let method = Method::from_args(args)?;
    let (model, encoder) = bind(args, index)?;
    Ok(Box::new(Dense {
        index: index.clone(),
        model,
        encoder,
        method,
    }))
}

impl Stage for Dense {
    fn describe(&self) -> String {
        match self.method {
            Method::Exact => format!("dense(model={}, exact=1)", self.model),
            Method::Hnsw { ef } => format!("dense(model={}, ef={ef})", self.model),
        }
    }

    fn run(
        &self,
        query: &Query,
        candidates: Option<&[Hit]>,
        k: usize,
        _: &mut Trace,
    ) -> Result<Vec<Hit>, SearchError> {
        let q = self.encoder.embed(query)?;
        search(&self.index, &self.model, self.method, &q, candidates, k)
    }

    fn run_batch(&self, queries: &[Query], k: usize) -> Option<Result<Vec<Vec<Hit>>, SearchError>> {
        let reader = match self.index.dense(Some(&self.model)) {
            Ok(r) => r,
            Err(e) => return Some(Err(e.into())),
        };
        if matches!(self.method, Method::Hnsw { .. }) && reader.hnsw().is_some() {
            return None;
        }
        Some((|| {
            let texts: Vec<&str> = queries.iter().map(|q| q.text.as_str()).collect();
            let vectors = self.encoder.embed_all(&texts)?;
            let docstore = self.index.docstore();
            let found = reader.search_batch(&vectors, k, &|d| docstore.is_deleted(d));
            Ok(found
                .into_iter()
                .map(|hits| {
                    hits.into_iter()
                        .map(|(doc, score)| Hit { doc, score })
                        .collect()
                })
                .collect())
        })())
    }
}
