//! Building a dense representation at commit: vectors for every chunk that has none yet, then
//! the HNSW graph when one is asked for and the documents changed.

use std::io::Write;

use half::f16;

use super::{hnsw, ChunkFile, DenseParams, DenseReader, HnswInfo, VectorType, KIND};
use crate::representation::{
    for_each_text_batch, model_slug, Builder, CommitContext, DocumentEncoder, Entry, ModelRef,
    Request,
};
use crate::{DocNo, IndexError};

/// How a new dense representation is stored (the `params` of its [`Request`]).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct DenseOptions {
    /// Build an HNSW graph over the vectors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hnsw: Option<hnsw::HnswParams>,
    #[serde(default)]
    pub dtype: VectorType,
    /// Override the model's query / document prompts (recorded in the manifest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_prefix: Option<String>,
    /// How the model makes vectors: absent for a sentence encoder, `promptreps` for the last
    /// token of an instruction-tuned LLM (PromptReps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoder: Option<String>,
    /// Longest document and query in tokens, for encoders that take a limit (PromptReps;
    /// sentence encoders use the model's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_max_length: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_max_length: Option<usize>,
    /// Keep the first `dims` dimensions of each vector (Matryoshka truncation; sentence
    /// encoders only), for documents and queries alike.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dims: Option<usize>,
    /// Encode with int8 linear layers (dynamic quantisation; sentence encoders from
    /// safetensors only), for documents and queries alike.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub int8: bool,
}

impl DenseOptions {
    /// The request for a dense representation made with `model`.
    pub fn request(&self, model: &str) -> Request {
        Request::new(KIND.name, model, self)
    }
}

/// The options an encoder is loaded with, as a new representation's request carries them:
/// how the existing representation encoded its documents (its graph is not the encoder's).
fn encoder_options(params: &DenseParams) -> serde_json::Value {
    let options = DenseOptions {
        hnsw: None,
        dtype: params.dtype,
        query_prefix: params.query_prefix.clone(),
        document_prefix: params.document_prefix.clone(),
        encoder: params.encoder.clone(),
        document_max_length: params.document_max_length,
        query_max_length: params.query_max_length,
        dims: params.dims,
        int8: params.int8,
    };
    serde_json::to_value(options).expect("dense options serialise")
}

struct DenseBuilder {
    existing: Option<Entry>,
    request: Option<Request>,
}

pub(super) fn build(existing: Option<Entry>, request: Option<Request>) -> Box<dyn Builder> {
    Box::new(DenseBuilder { existing, request })
}

impl Builder for DenseBuilder {
    fn commit(&mut self, ctx: &CommitContext<'_>) -> Result<Entry, IndexError> {
        let options: Option<DenseOptions> = match &self.request {
            Some(r) => Some(r.options(ctx.dir)?),
            None => None,
        };
        let mut encoder = None;
        let (model, mut params, mut rebuild_graph) = match self.existing.take() {
            Some(entry) => {
                let mut params: DenseParams = entry.params(ctx.dir)?;
                let model = entry.model_ref(ctx.dir)?;
                // Asking again for an existing representation can add a graph to it.
                let new_graph = options.as_ref().and_then(|o| o.hnsw);
                if let Some(p) = new_graph {
                    params.hnsw = Some(HnswInfo {
                        file: String::new(),
                        params: p,
                    });
                }
                (model, params, ctx.documents_changed || new_graph.is_some())
            }
            None => {
                let request = self
                    .request
                    .as_ref()
                    .expect("a new representation is requested");
                let options = options.expect("a request has options");
                let (model, e) = ctx.encoder(KIND.name, &request.model, &request.params, None)?;
                let DocumentEncoder::Dense(e) = e else {
                    return Err(not_dense(ctx, &model.id));
                };
                let params = DenseParams {
                    dim: e.dim(),
                    dtype: options.dtype,
                    query_prefix: options.query_prefix,
                    document_prefix: options.document_prefix,
                    encoder: options.encoder,
                    document_max_length: options.document_max_length,
                    query_max_length: options.query_max_length,
                    dims: options.dims,
                    int8: options.int8,
                    vectors: Vec::new(),
                    hnsw: options.hnsw.map(|params| HnswInfo {
                        file: String::new(),
                        params,
                    }),
                };
                encoder = Some(e);
                let graph = params.hnsw.is_some();
                (model, params, graph)
            }
        };
        let slug = model_slug(&model.id);
        for c in ctx.chunks {
            if params
                .vectors
                .iter()
                .any(|f| f.chunk_generation == c.generation)
            {
                continue;
            }
            rebuild_graph = true;
            let encoder = match &encoder {
                Some(e) => e.clone(),
                None => {
                    let options = encoder_options(&params);
                    let (_, e) = ctx.encoder(KIND.name, &model.id, &options, Some(&model))?;
                    let DocumentEncoder::Dense(e) = e else {
                        return Err(not_dense(ctx, &model.id));
                    };
                    encoder.insert(e).clone()
                }
            };
            if encoder.dim() != params.dim {
                return Err(IndexError::Invalid {
                    path: ctx.dir.to_path_buf(),
                    message: format!(
                        "{} embeds in {} dimensions, the index's vectors have {}",
                        model.id,
                        encoder.dim(),
                        params.dim
                    ),
                });
            }
            let file = format!(
                "dense/{slug}/vectors-{:06}.{}",
                c.generation,
                params.dtype.name()
            );
            let path = ctx.dir.join(&file);
            tracing::info!("encoding {} documents with {}", c.count, model.id);
            // Written batch by batch: a chunk's vectors are not held in memory.
            let mut out = crate::docstore::create_buffered(&path)?;
            ctx.pool.install(|| {
                for_each_text_batch(ctx.docstore, c, |texts| {
                    let vectors = encoder
                        .encode(texts)
                        .map_err(crate::representation::encode_error(&path))?;
                    let mut bytes = Vec::with_capacity(vectors.len() * params.dim * 4);
                    for v in vectors {
                        match params.dtype {
                            VectorType::F32 => bytes.extend(v.iter().flat_map(|x| x.to_le_bytes())),
                            VectorType::F16 => {
                                bytes.extend(v.iter().flat_map(|x| f16::from_f32(*x).to_le_bytes()))
                            }
                        }
                    }
                    out.write_all(&bytes).map_err(IndexError::io(&path))
                })
            })?;
            crate::docstore::sync_buffered(out, &path)?;
            params.vectors.push(ChunkFile {
                chunk_generation: c.generation,
                file,
            });
        }
        if let Some(graph) = params.hnsw.clone().filter(|_| rebuild_graph) {
            let file = format!("dense/{slug}/hnsw-{:06}.usearch", ctx.generation);
            // The vectors only: the graph being replaced is not opened.
            let vectors = DenseParams {
                hnsw: None,
                ..params.clone()
            };
            let reader = DenseReader::open(ctx.dir, model.clone(), vectors, ctx.chunks)?;
            let docs: Vec<DocNo> = (0..ctx.slots).filter(|d| !(ctx.is_deleted)(*d)).collect();
            ctx.check_memory(
                &format!("HNSW graph of {} vectors", docs.len()),
                hnsw::memory_bytes(docs.len(), params.dim, &graph.params),
            )?;
            tracing::info!(
                "building an HNSW graph over {} vectors of {}",
                docs.len(),
                model.id
            );
            let path = ctx.dir.join(&file);
            ctx.pool.install(|| {
                hnsw::build(
                    params.dim,
                    &docs,
                    |d| reader.vector(d),
                    &graph.params,
                    &path,
                )
            })?;
            params.hnsw = Some(HnswInfo {
                file,
                params: graph.params,
            });
        }
        let files = params
            .vectors
            .iter()
            .map(|f| f.file.clone())
            .chain(params.hnsw.as_ref().map(|h| h.file.clone()))
            .collect();
        Ok(Entry {
            kind: KIND.name.to_string(),
            name: model.id.clone(),
            model: Some(ModelRef {
                id: model.id,
                weights_sha256: model.weights_sha256,
            }),
            params: serde_json::to_value(&params).expect("dense parameters serialise"),
            files,
        })
    }
}

fn not_dense(ctx: &CommitContext<'_>, model: &str) -> IndexError {
    IndexError::Invalid {
        path: ctx.dir.to_path_buf(),
        message: format!("{model} is not a dense (sentence) encoder"),
    }
}
