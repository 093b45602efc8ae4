//! What a collection split into shards needs from the engine (`ferret.ray` drives it): shards
//! written from documents whose dense vectors were computed elsewhere (Ray Data's encoder
//! actors), the collection's lexical statistics summed over the shards, and the pieces of a
//! pipeline a router runs across shards (the parsed pipeline, the fusion of merged rankings).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use pyo3::prelude::*;

use ferret_index::representation::{DenseEncoder, DocumentEncoder, EncoderSource, ModelRef};
use ferret_index::{Document, IndexOptions, IndexWriter, LexicalStatistics};
use ferret_search::{Hit, Query, Trace};

use crate::{error, request_representations, threads, Index, Representations};

/// Document vectors computed before indexing, by the exact text the writer encodes
/// ([`ferret_index::dense::document_text`]). A text without one is an error, never encoded here.
struct Precomputed {
    model: String,
    model_ref: ModelRef,
    dim: usize,
    vectors: HashMap<String, Vec<f32>>,
    /// Every other representation's encoders.
    models: Arc<dyn EncoderSource>,
}

impl DenseEncoder for Precomputed {
    fn dim(&self) -> usize {
        self.dim
    }

    fn encode(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, String> {
        texts
            .iter()
            .map(|t| {
                self.vectors.get(*t).cloned().ok_or_else(|| {
                    let shown: String = t.chars().take(60).collect();
                    format!(
                        "no precomputed {} vector for the document text '{shown}…'",
                        self.model
                    )
                })
            })
            .collect()
    }
}

struct PrecomputedSource(Arc<Precomputed>);

impl EncoderSource for PrecomputedSource {
    fn model_ref(&self, kind: &str, model: &str) -> Result<ModelRef, String> {
        self.0.models.model_ref(kind, model)
    }

    fn document_encoder(
        &self,
        kind: &str,
        model: &str,
        params: &serde_json::Value,
    ) -> Result<(ModelRef, DocumentEncoder), String> {
        // The writer may name the model as the user did or by its canonical id.
        if kind == "dense" {
            let r = self.0.models.model_ref(kind, model)?;
            if r.id == self.0.model_ref.id {
                return Ok((r, DocumentEncoder::Dense(self.0.clone())));
            }
        }
        self.0.models.document_encoder(kind, model, params)
    }
}

/// Writes shard `shard` of `count` at `path` (a new index) from `(id, title, text)` rows, with
/// the representations asked for; `vectors` (little-endian f32 rows of `dim`, one per
/// document in order) are the documents' vectors of the first dense model, computed by the
/// caller with that model's document prefix. Returns the documents added.
#[pyfunction]
#[pyo3(signature = (path, documents, analyzer, fields, representations, shard, count, vectors, dim, threads=None))]
#[allow(clippy::too_many_arguments)]
pub fn build_shard(
    py: Python<'_>,
    path: PathBuf,
    documents: Vec<(String, String, String)>,
    analyzer: &str,
    fields: &str,
    representations: Representations,
    shard: u32,
    count: u32,
    vectors: Option<Vec<u8>>,
    dim: usize,
    threads: Option<usize>,
) -> PyResult<u64> {
    let opts = IndexOptions {
        analyzer: analyzer.parse().map_err(error)?,
        fields: fields.parse().map_err(error)?,
        threads: self::threads(threads),
        ..Default::default()
    };
    py.detach(move || {
        let models = ferret_search::encoders::ModelEncoders::shared();
        let mut writer = IndexWriter::create(&path, opts, false).map_err(error)?;
        writer.set_shard(shard, count).map_err(error)?;
        let docs: Vec<Document> = documents
            .into_iter()
            .map(|(id, title, text)| Document {
                id,
                title,
                text,
                ..Default::default()
            })
            .collect();
        match (vectors, representations.dense.first()) {
            (Some(bytes), Some(model)) => {
                if dim == 0 || bytes.len() != docs.len() * dim * 4 {
                    return Err(error(format!(
                        "{} bytes of vectors for {} documents of {dim} dimensions",
                        bytes.len(),
                        docs.len()
                    )));
                }
                let vectors = docs
                    .iter()
                    .zip(bytes.chunks_exact(dim * 4))
                    .map(|(d, row)| {
                        let v = row
                            .chunks_exact(4)
                            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                            .collect();
                        (ferret_index::dense::document_text(d), v)
                    })
                    .collect();
                let model_ref = models.model_ref("dense", model).map_err(error)?;
                let pre = Precomputed {
                    model: model.clone(),
                    model_ref,
                    dim,
                    vectors,
                    models,
                };
                writer.set_encoders(Arc::new(PrecomputedSource(Arc::new(pre))));
            }
            (Some(_), None) => return Err(error("vectors were given but no dense model")),
            (None, _) => writer.set_encoders(models),
        }
        for doc in docs {
            writer.add(doc).map_err(error)?;
        }
        request_representations(&mut writer, &representations)?;
        Ok(writer.commit().map_err(error)?.added)
    })
}

/// The text a document is embedded as (title and text as the dense representation joins
/// them): what the vectors given to `build_shard` must have been computed from.
#[pyfunction]
pub fn document_text(title: String, text: String) -> String {
    ferret_index::dense::document_text(&Document {
        title,
        text,
        ..Default::default()
    })
}

/// Sums the lexical statistics of the indexes at `shards` (the shards of one collection) and
/// writes them to `out` (JSON, atomically); returns the collection's documents.
#[pyfunction]
pub fn sum_statistics(py: Python<'_>, shards: Vec<PathBuf>, out: PathBuf) -> PyResult<u64> {
    py.detach(|| {
        let parts = shards
            .iter()
            .map(|p| {
                let index = ferret_index::Index::open(p).map_err(error)?;
                let lexical = index.lexical().map_err(error)?;
                LexicalStatistics::of(lexical, index.docstore().num_live() as u64).map_err(error)
            })
            .collect::<PyResult<Vec<_>>>()?;
        let sum = LexicalStatistics::sum(&parts).map_err(error)?;
        sum.write(&out).map_err(error)?;
        Ok(sum.num_docs)
    })
}

/// Opens the index at `path` as a shard scored with its collection's statistics
/// (`sum_statistics`'s file).
#[pyfunction]
pub fn open_shard(py: Python<'_>, path: PathBuf, statistics: PathBuf) -> PyResult<Index> {
    py.detach(|| {
        let index = ferret_index::Index::open(&path).map_err(error)?;
        let stats = LexicalStatistics::read(&statistics).map_err(error)?;
        index
            .lexical()
            .map_err(error)?
            .use_collection_statistics(Arc::new(stats))
            .map_err(|e| error(format!("{}: {e}", statistics.display())))?;
        Ok(Index {
            inner: Arc::new(index),
        })
    })
}

/// The pipeline's tree in its JSON form (`op`: `stage`, `cutoff` or `then`).
#[pyfunction]
pub fn parse_pipeline(text: &str) -> PyResult<String> {
    let expr = ferret_search::pipeline::parse_any(text).map_err(error)?;
    serde_json::to_string(&expr).map_err(error)
}

/// A stage's declaration: (input pipelines it needs at least, whether it needs an incoming
/// ranking); None for an unknown name.
#[pyfunction]
pub fn stage_info(name: &str) -> Option<(usize, bool)> {
    ferret_search::registry::spec(name).map(|s| (s.min_inputs, s.needs_candidates))
}

/// Runs the combining stage `pipeline` (JSON form, e.g. `rrf(…)`) over `rankings` (one per
/// input, `(number, score)` best first, numbered by the caller) for one query; the fused
/// ranking's first `k`.
#[pyfunction]
pub fn fuse(
    py: Python<'_>,
    index: &Index,
    pipeline: &str,
    rankings: Vec<Vec<(u32, f32)>>,
    qid: String,
    text: String,
    k: usize,
) -> PyResult<Vec<(u32, f32)>> {
    let expr = ferret_search::pipeline::parse_any(pipeline).map_err(error)?;
    py.detach(|| {
        let rankings = rankings
            .into_iter()
            .map(|r| {
                r.into_iter()
                    .map(|(doc, score)| Hit { doc, score })
                    .collect()
            })
            .collect();
        let stage = ferret_search::registry::prepare_combination(&expr, &index.inner, rankings)
            .map_err(error)?;
        let hits = stage
            .run(&Query::new(qid, text), None, k, &mut Trace::off())
            .map_err(error)?;
        Ok(hits.into_iter().map(|h| (h.doc, h.score)).collect())
    })
}
